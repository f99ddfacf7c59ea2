"""The ``retrainq`` command-line client of the enqueue API."""
