"""The dashboard's static files (a package only so that built wheels carry them)."""
