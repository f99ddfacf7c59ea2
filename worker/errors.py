"""Errors of the run pipeline itself (the remote API's errors live in ``worker.azureml.errors``).

RunFailed      a step decided the run cannot succeed (reason shown to users)
"""

from __future__ import annotations


class RunFailed(Exception):
    """A step decided the run cannot succeed; carries the reason shown to users."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
