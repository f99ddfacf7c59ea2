"""retrainq worker: arq processes that drive per-tenant retrain runs against Azure ML (classic)."""
