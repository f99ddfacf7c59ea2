"""retrainq producer: the enqueue HTTP API and the command-line client."""
