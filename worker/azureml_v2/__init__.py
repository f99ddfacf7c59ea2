"""Azure Machine Learning v2 (ARM ``Microsoft.MachineLearningServices``): clients and adapters."""
