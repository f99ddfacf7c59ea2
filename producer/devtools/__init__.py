"""The local stack (``retrainq dev``) and the demo that drives it."""
