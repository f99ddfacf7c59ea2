"""Exceptions of the ports, translated once into the machine's ``Failure`` observations."""

from __future__ import annotations

from worker.azureml.errors import PermanentError, ThrottledError, TransientError
from worker.blobs import BlobStoreError
from worker.classic import UnknownEndpoint
from worker.errors import RunFailed
from worker.run.machine import Failure, FailureKind

# What a step catches from its ports; anything else is a bug and fails the arq job loudly
# (the reconciler runs the step again).
HANDLED: tuple[type[Exception], ...] = (
    RunFailed,
    UnknownEndpoint,
    TransientError,
    PermanentError,
    BlobStoreError,
)


def failure_of(exc: Exception, *, tenant_id: str, run_id: str) -> Failure:
    """The failure observation of a handled exception (see ``HANDLED``)."""
    if isinstance(exc, RunFailed):
        return Failure(FailureKind.PERMANENT, exc.reason, exc.code)
    if isinstance(exc, UnknownEndpoint):  # the run's endpoint or service left the settings
        return Failure(FailureKind.PERMANENT, str(exc), "config")
    if isinstance(exc, ThrottledError):
        return Failure(
            FailureKind.THROTTLED,
            str(exc),
            exc.remote_code,
            retry_after=exc.retry_after,
            answered=exc.status is not None,
        )
    if isinstance(exc, TransientError):
        return Failure(
            FailureKind.TRANSIENT, str(exc), exc.remote_code, answered=exc.status is not None
        )
    if isinstance(exc, BlobStoreError):
        kind = FailureKind.TRANSIENT if exc.transient else FailureKind.PERMANENT
        return Failure(kind, str(exc), "blob_storage")
    if isinstance(exc, PermanentError):
        message = str(exc.bind(tenant_id=tenant_id, run_id=run_id))
        return Failure(FailureKind.PERMANENT, message, exc.remote_code or "remote_error")
    raise TypeError(f"not a handled step failure: {type(exc).__name__}") from exc
