"""A run's life in one place: its model and transitions, the pure machine, the ledger that
alone writes run records and their indices, the slot leases, and the ports to the outside."""
