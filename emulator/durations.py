"""How long a training job lasts when per-job durations are on (pure; no I/O).

With the run-time setting ``job_durations`` a training job lasts ``median_seconds`` times its
input's rows over ``reference_rows``, times a lognormal factor ``exp(sigma * z)`` with ``z``
drawn from a standard normal seeded by the emulator's seed and the job's *duration key*: its
input (blob location, or data URL without its query) and the folder of its model output.
A client that writes each tenant's models under a folder of its own (retrainq writes
``models/{tenant}/``) so gets one draw per tenant and input: the same tenant retraining on the
same data lasts the same every time, and a run of the emulator is reproducible.
"""

from __future__ import annotations

import math
import random
from pathlib import PurePosixPath

from pydantic import BaseModel, Field


class JobDurations(BaseModel):
    """Per-job training durations: proportional to the input's rows, with lognormal noise."""

    median_seconds: float = Field(gt=0, le=86_400)
    sigma: float = Field(default=0.0, ge=0, le=4)
    reference_rows: int = Field(default=1000, ge=1)


def count_rows(data: bytes) -> int:
    """Data rows of a CSV with a header row (blank lines not counted)."""
    lines = sum(1 for line in data.splitlines() if line.strip())
    return max(0, lines - 1)


def duration_key(input_location: str, model_output: str) -> str:
    """The key a job's noise is drawn from: its input and the folder of its model output."""
    data = input_location.split("?", 1)[0]
    return f"{data}|{PurePosixPath(model_output).parent}"


def noise_factor(seed: int, key: str, sigma: float) -> float:
    """The lognormal factor ``exp(sigma * z)`` of ``key``; the same for the same seed and key."""
    if sigma == 0:
        return 1.0
    z = random.Random(f"job-duration:{seed}:{key}").gauss(0.0, 1.0)
    return math.exp(sigma * z)


def job_seconds(durations: JobDurations, seed: int, key: str, rows: int) -> float:
    """Seconds a training job of ``rows`` rows with duration key ``key`` lasts."""
    scale = durations.median_seconds * rows / durations.reference_rows
    return scale * noise_factor(seed, key, durations.sigma)
