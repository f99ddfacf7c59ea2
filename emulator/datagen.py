"""Deterministic per-tenant datasets: bike-rental hours (regression) and customer churn.

Every tenant gets its own pattern, derived from ``(tenant_id, seed)`` only: base demand,
commuter peak strength, temperature sensitivity, weather penalty and weekend share for bike
rental; churn propensity per contract and sensitivity to price and support calls for churn.
``drift=True`` shifts that pattern (busier, peaks moved an hour later, temperature effect
reversed) so a model trained on the first version predicts the second one badly. Pure
functions, no side effects on import.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

BIKE_COLUMNS = (
    "instant",
    "dteday",
    "season",
    "yr",
    "mnth",
    "hr",
    "holiday",
    "weekday",
    "workingday",
    "weathersit",
    "temp",
    "atemp",
    "hum",
    "windspeed",
    "cnt",
)
CHURN_COLUMNS = (
    "customer",
    "tenure",
    "monthly_charges",
    "support_calls",
    "paperless",
    "contract",
    "churn",
)
_HOLIDAYS = {(1, 1), (1, 17), (2, 21), (4, 15), (5, 30), (7, 4), (9, 5), (11, 11), (11, 24)}


def _rng(kind: str, tenant_id: str, seed: int, salt: str) -> random.Random:
    digest = hashlib.sha256(f"{kind}|{tenant_id}|{seed}|{salt}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


@dataclass(frozen=True)
class BikePattern:
    """How one tenant's rentals respond to hour, temperature and weather."""

    base: float
    peak: float
    peak_shift: int
    temp_effect: float
    weather_penalty: float
    weekend_share: float
    noise: float


def bike_pattern(tenant_id: str, seed: int = 0, drift: bool = False) -> BikePattern:
    """The tenant's bike-rental pattern (drifted when ``drift``)."""
    r = _rng("bike", tenant_id, seed, "pattern")
    pattern = BikePattern(
        base=r.uniform(40, 220),
        peak=r.uniform(0.8, 2.5),
        peak_shift=0,
        temp_effect=r.uniform(0.4, 1.6),
        weather_penalty=r.uniform(0.1, 0.35),
        weekend_share=r.uniform(0.6, 1.4),
        noise=r.uniform(0.05, 0.15),
    )
    if not drift:
        return pattern
    return BikePattern(
        base=pattern.base * 1.6 + 30,
        peak=pattern.peak * 0.5,
        peak_shift=1,
        temp_effect=-pattern.temp_effect,
        weather_penalty=pattern.weather_penalty * 2,
        weekend_share=2.0 - pattern.weekend_share + 0.4,
        noise=pattern.noise,
    )


def _hour_profile(hour: int, working: bool, pattern: BikePattern) -> float:
    h = (hour - pattern.peak_shift) % 24
    daylight = max(0.05, math.sin(math.pi * (h - 5) / 18)) if 5 <= h <= 23 else 0.05
    if not working:
        return daylight * pattern.weekend_share
    commute = math.exp(-((h - 8) ** 2) / 2) + 1.2 * math.exp(-((h - 17.5) ** 2) / 2)
    return daylight + pattern.peak * commute


def bike_rental_rows(
    tenant_id: str, rows: int, seed: int = 0, drift: bool = False
) -> list[dict[str, str]]:
    """``rows`` hourly records for one tenant, from 2011-01-01 00:00, as CSV cells."""
    pattern = bike_pattern(tenant_id, seed, drift)
    r = _rng("bike", tenant_id, seed, f"rows:{drift}")
    start = date(2011, 1, 1)
    out: list[dict[str, str]] = []
    weather = 1
    for i in range(rows):
        day = start + timedelta(days=i // 24)
        hour = i % 24
        if hour == 0 or r.random() < 0.1:
            weather = r.choices((1, 2, 3, 4), weights=(60, 28, 11, 1))[0]
        season = (day.month % 12) // 3 + 1
        holiday = int((day.month, day.day) in _HOLIDAYS)
        weekday = (day.weekday() + 1) % 7
        working = int(weekday not in (0, 6) and not holiday)
        yearly = 0.5 - 0.35 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 20) / 365)
        daily = 0.06 * math.sin(math.pi * (hour - 6) / 12)
        temp = min(1.0, max(0.02, yearly + daily + r.gauss(0, 0.04)))
        atemp = min(1.0, max(0.0, temp * 0.95 + r.gauss(0, 0.02)))
        hum = min(1.0, max(0.1, 0.55 + 0.1 * weather + r.gauss(0, 0.1)))
        wind = min(0.9, max(0.0, abs(r.gauss(0.19, 0.1))))
        level = pattern.base * _hour_profile(hour, bool(working), pattern)
        level *= max(0.05, 1 + pattern.temp_effect * (temp - 0.5))
        level *= max(0.05, 1 - pattern.weather_penalty * (weather - 1))
        level *= 1 + 0.25 * (day.year - 2011)
        cnt = max(0, round(level * (1 + r.gauss(0, pattern.noise))))
        out.append(
            {
                "instant": str(i + 1),
                "dteday": day.isoformat(),
                "season": str(season),
                "yr": str(day.year - 2011),
                "mnth": str(day.month),
                "hr": str(hour),
                "holiday": str(holiday),
                "weekday": str(weekday),
                "workingday": str(working),
                "weathersit": str(weather),
                "temp": f"{temp:.4f}",
                "atemp": f"{atemp:.4f}",
                "hum": f"{hum:.2f}",
                "windspeed": f"{wind:.4f}",
                "cnt": str(cnt),
            }
        )
    return out


def churn_rows(
    tenant_id: str, rows: int, seed: int = 0, drift: bool = False
) -> list[dict[str, str]]:
    """``rows`` customer records for one tenant with a binary ``churn`` label (1 = left)."""
    p = _rng("churn", tenant_id, seed, "pattern")
    bias = p.uniform(-1.0, 0.2) + (0.8 if drift else 0.0)
    price = p.uniform(0.01, 0.04) * (-1 if drift else 1)
    calls = p.uniform(0.2, 0.6)
    contract_effect = {"month": p.uniform(0.5, 1.5), "one_year": 0.0, "two_year": -1.2}
    r = _rng("churn", tenant_id, seed, f"rows:{drift}")
    out: list[dict[str, str]] = []
    for i in range(rows):
        tenure = r.randint(0, 72)
        charges = round(r.uniform(18, 120), 2)
        support = min(10, int(abs(r.gauss(1.5, 1.5))))
        paperless = int(r.random() < 0.6)
        contract = r.choices(("month", "one_year", "two_year"), weights=(55, 25, 20))[0]
        z = bias + price * (charges - 65) + calls * (support - 1.5) - 0.04 * (tenure - 30)
        z += contract_effect[contract] + 0.3 * paperless
        churn = int(r.random() < 1 / (1 + math.exp(-z)))
        out.append(
            {
                "customer": f"{tenant_id}-{i + 1}",
                "tenure": str(tenure),
                "monthly_charges": f"{charges:.2f}",
                "support_calls": str(support),
                "paperless": str(paperless),
                "contract": contract,
                "churn": str(churn),
            }
        )
    return out


def to_csv(rows: list[dict[str, str]], columns: tuple[str, ...]) -> str:
    """CSV text with a header row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def bike_rental_csv(tenant_id: str, rows: int, seed: int = 0, drift: bool = False) -> str:
    """One tenant's bike-rental dataset as CSV text."""
    return to_csv(bike_rental_rows(tenant_id, rows, seed, drift), BIKE_COLUMNS)


def churn_csv(tenant_id: str, rows: int, seed: int = 0, drift: bool = False) -> str:
    """One tenant's churn dataset as CSV text."""
    return to_csv(churn_rows(tenant_id, rows, seed, drift), CHURN_COLUMNS)


def dataset_csv(kind: str, tenant_id: str, rows: int, seed: int = 0, drift: bool = False) -> str:
    """Dataset of ``kind`` (``bike_rental`` or ``churn``) as CSV text."""
    if kind == "churn":
        return churn_csv(tenant_id, rows, seed, drift)
    if kind == "bike_rental":
        return bike_rental_csv(tenant_id, rows, seed, drift)
    raise ValueError(f"unknown dataset kind {kind!r}")
