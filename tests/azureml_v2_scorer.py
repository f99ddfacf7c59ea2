"""The pooled scorer of ``deploy/azureml-v2/score.py``, loaded from its file as Azure ML does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCORE_PY = Path(__file__).resolve().parent.parent / "deploy" / "azureml-v2" / "score.py"


def load_scorer(name: str = "retrainq_pooled_scorer") -> ModuleType:
    """A fresh module object of the scoring script (its own globals)."""
    spec = importlib.util.spec_from_file_location(name, SCORE_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while they are built
    spec.loader.exec_module(module)
    return module
