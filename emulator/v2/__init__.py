"""Azure Machine Learning v2 surfaces of the emulator: workspace, datastores, command jobs,
MLflow tracking, the model registry, online endpoints and scoring.

``install(app)`` adds them to the emulator's application beside the classic surfaces; they
share its ARM subscription, first resource group and bearer token, its trainer and its blob
I/O, and import nothing from ``worker/`` or ``producer/``.
"""

from __future__ import annotations

from aiohttp import web

from emulator.state import STATE
from emulator.v2 import admin, endpoints, jobs, mlflow, models, serving, workspace
from emulator.v2.state import V2_STATE, V2Config, V2State


def install(app: web.Application, config: V2Config | None = None) -> None:
    """Keep the v2 state on ``app`` and register the v2 routes (after ``app[STATE]`` is set)."""
    app[V2_STATE] = V2State(config or V2Config(), app[STATE].seed)
    for module in (workspace, jobs, mlflow, models, endpoints, serving, admin):
        module.add_routes(app)
