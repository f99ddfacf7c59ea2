"""Local emulator of the Azure ML Studio (classic) retraining surfaces (see README.md)."""
