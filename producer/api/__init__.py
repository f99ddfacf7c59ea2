"""The enqueue HTTP API (``retrainq-api``) and the dashboard it serves."""
