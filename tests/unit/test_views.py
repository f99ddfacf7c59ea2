"""The fleet's read models from raw counts (``worker/views.py``), and the API's promise never
to name a Redis key itself (it reads through the views and stores)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from worker.schemas import Lane
from worker.settings import BesEndpointConfig, TrainingServiceConfig
from worker.tenants import FleetPage, TenantBrief
from worker.views import (
    HOUR_MS,
    Backlog,
    EndpointLoad,
    Load,
    ServiceLoad,
    count_pages,
    load_of,
    model_state,
    runs_by_hour,
    service_names,
    throttle_seconds,
    window_start,
)

PRODUCER = Path(__file__).resolve().parents[2] / "producer"
# The app wiring builds the Keys and Store objects (and declares the Redis client's app key);
# nothing else in the API names keys.
WIRING = {"api/app.py", "api/state.py"}
KEY_LITERAL = re.compile(r"\b(?:retrainq|arq):(?!\s)")


def service(*caps: int, max_running: int = 10) -> TrainingServiceConfig:
    """A training service with one BES endpoint per cap."""
    endpoints = [
        BesEndpointConfig(url=f"http://bes/{i}", api_key=SecretStr("k"), max_concurrent_jobs=cap)
        for i, cap in enumerate(caps)
    ]
    return TrainingServiceConfig(endpoints=endpoints, max_running=max_running)


@pytest.mark.parametrize(
    ("deployed", "latest", "expected"),
    [
        (False, None, "no_model"),
        (False, "failed", "no_model"),
        (False, "training", "retraining"),
        (True, "queued", "retraining"),
        (True, None, "up_to_date"),
        (True, "succeeded", "up_to_date"),
        (True, "rejected", "kept_previous"),
        (True, "failed", "kept_previous"),
        (True, "cancelled", "kept_previous"),
    ],
)
def test_model_state_follows_the_deployed_model_and_the_latest_run(
    deployed: bool, latest: str | None, expected: str
) -> None:
    """A running latest run means retraining; otherwise the deployed model and how the latest
    run ended decide."""
    assert model_state(deployed, latest) == expected


def test_pages_are_counted_by_kind_model_state_and_recent_runs() -> None:
    """Every page adds its tenants and recent runs; ``scanned`` says how many were read."""
    pages = [
        FleetPage(
            [TenantBrief("classic", True, "succeeded"), TenantBrief("new_service", False, None)],
            [("succeeded", 5)],
        ),
        FleetPage([TenantBrief("classic", True, "training")], [("training", 7), ("failed", 9)]),
    ]
    counts = count_pages(4, pages)
    assert (counts.total, counts.scanned) == (4, 3)
    assert counts.by_kind == {"classic": 2, "new_service": 1}
    assert counts.by_model_state == {"up_to_date": 1, "no_model": 1, "retraining": 1}
    assert counts.recent == (("succeeded", 5), ("training", 7), ("failed", 9))
    assert counts.runs_by_state() == {"succeeded": 1, "training": 1, "failed": 1}


def test_runs_fall_into_the_hour_they_were_created_in_oldest_first() -> None:
    """The window starts ``hours - 1`` whole hours before the current one; older runs and
    runs from the future are left out."""
    now = 10 * HOUR_MS + 123
    assert window_start(now, 3) == 8 * HOUR_MS
    recent = [
        ("failed", 8 * HOUR_MS),
        ("queued", 10 * HOUR_MS + 100),
        ("failed", 10 * HOUR_MS + 5),
        ("queued", 8 * HOUR_MS - 1),
        ("queued", 11 * HOUR_MS),
    ]
    assert runs_by_hour(recent, now, 3) == [
        (8 * HOUR_MS, {"failed": 1}),
        (9 * HOUR_MS, {}),
        (10 * HOUR_MS, {"queued": 1, "failed": 1}),
    ]


def test_services_shown_are_the_configured_ones_or_the_default() -> None:
    """Configured services in name order; with none configured, the one runs default to."""
    assert service_names({"b": service(1), "a": service(1)}) == ["a", "b"]
    assert service_names({}) == ["default"]


@pytest.mark.parametrize(("pttl", "expected"), [(-2, None), (1500, 1.5), (0, 0.0), (-1, 0.0)])
def test_a_throttle_left_is_its_key_time_to_live(pttl: int, expected: float | None) -> None:
    """No key: not throttled; otherwise the seconds left (a key without TTL reads as 0)."""
    assert throttle_seconds(pttl) == expected


def test_pipeline_replies_become_service_loads_and_the_backlog() -> None:
    """Replies in the documented order: per service (in use, per endpoint, per lane, PTTL),
    then ready, deferred and parked; waiting_slot adds both lanes of every service."""
    configured = {"svc-b": service(2, 3, max_running=4), "svc-a": service(5, max_running=5)}
    replies = [
        *(1, 1, 0, 2, -2),  # svc-a: 1 in use, endpoint 0 has 1, lanes 0 and 2, no throttle
        *(3, 2, 1, 4, 5, 2500),  # svc-b: 3 in use (2 + 1), lanes 4 and 5, throttled 2.5 s
        *(7, 8, 9),
    ]
    load = load_of(configured, replies)
    assert load == Load(
        services=(
            ServiceLoad(
                name="svc-a",
                in_use=1,
                cap=5,
                endpoints=(EndpointLoad(0, 1, 5),),
                waiting={Lane.INTERACTIVE: 0, Lane.BULK: 2},
                throttle_seconds=None,
            ),
            ServiceLoad(
                name="svc-b",
                in_use=3,
                cap=4,
                endpoints=(EndpointLoad(0, 2, 2), EndpointLoad(1, 1, 3)),
                waiting={Lane.INTERACTIVE: 4, Lane.BULK: 5},
                throttle_seconds=2.5,
            ),
        ),
        backlog=Backlog(ready=7, deferred=8, waiting_slot=11, parked=9),
    )
    assert load.in_flight == 4
    assert [s.throttled for s in load.services] == [False, True]
    assert load.backlog.by_kind() == {"ready": 7, "deferred": 8, "waiting_slot": 11, "parked": 9}


def test_an_unconfigured_default_service_has_no_cap_and_no_endpoints() -> None:
    """With no service configured, runs waiting for the default one still count."""
    load = load_of({}, [0, 3, 1, -2, 0, 0, 0])
    assert load.services[0].name == "default"
    assert (load.services[0].cap, load.services[0].endpoints) == (None, ())
    assert load.backlog.waiting_slot == 4


def key_names(source: str, path: str) -> list[str]:
    """Where ``source`` names Redis keys: uses of the ``Keys`` builder (``keys.x``,
    ``store.keys``, ``Keys``), ``REDIS`` outside the wiring, and literal key prefixes
    (docstrings aside: an image tag like ``retrainq:0.1.0`` in one names no key)."""
    found: list[str] = []
    wiring = path in WIRING
    tree = ast.parse(source)
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute):
            if node.attr == "keys" and id(node) not in called:
                found.append(f"{path}:{line}: .keys")
            elif isinstance(node.value, ast.Name) and node.value.id == "keys":
                found.append(f"{path}:{line}: keys.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in {"Keys", "REDIS"} and not wiring:
            found.append(f"{path}:{line}: {node.id}")
        elif isinstance(node, ast.alias) and node.name in {"Keys", "REDIS"} and not wiring:
            found.append(f"{path}:{line}: imports {node.name}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and KEY_LITERAL.search(node.value)
            and id(node) not in docstrings
        ):
            found.append(f"{path}:{line}: {node.value[:40]!r}")
    return found


@pytest.mark.parametrize(
    "source",
    [
        "n = redis.zcard(request.app[STORE].keys.batches)",
        "n = redis.zcard(keys.slots(name))",
        "keys = Keys('retrainq')",
        "from producer.api.state import REDIS",
        "queue = 'arq:queue'",
        "key = f'retrainq:run:{run_id}'",
    ],
)
def test_the_key_check_catches_each_way_of_naming_a_key(source: str) -> None:
    """The check below can fail: each of these names a key (or reaches for raw Redis)."""
    assert key_names(source, "api/routes_x.py")


def test_the_key_check_lets_dict_keys_and_messages_pass() -> None:
    """``mapping.keys()``, a ``retrainq: error`` message and a docstring are no key names."""
    source = (
        "names = list(mapping.keys())\nprint(f'retrainq: {exc}')\n"
        'def image() -> str:\n    """The image ``localhost/retrainq:0.1.0``."""\n'
    )
    assert key_names(source, "cli/main.py") == []


def test_the_api_never_names_a_redis_key() -> None:
    """Every module of ``producer/`` reads Redis through the views and stores; only the app
    wiring builds the ``Keys`` and ``Store`` objects."""
    found = [
        hit
        for path in sorted(PRODUCER.rglob("*.py"))
        for hit in key_names(path.read_text(), path.relative_to(PRODUCER).as_posix())
    ]
    # Reads the API lacks belong in worker/views.py (or a store method); objects that need
    # the Keys builder are built in the app wiring.
    assert found == []
