"""The ledger's scripts against a real Redis, and who may write run records at all."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.runs import put_in_state
from worker.keys import Keys
from worker.redisio import reply
from worker.run import model as m
from worker.run.ledger import Placement, StaleRun
from worker.run.scripts import lua_prelude, now_ms
from worker.schemas import Batch, ClassicTarget, DeployedModel, Lane, RunState, Tenant, utcnow
from worker.store import RunRequest, Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(redis: aioredis.Redis) -> Store:
    """A store on the flushed test Redis."""
    return Store(redis, Keys("t"))


async def _tenant(store: Store, tenant_id: str = "acme") -> Tenant:
    tenant = Tenant(
        id=tenant_id,
        target=ClassicTarget(web_service_id="svc", resource_name="Model [trained model]"),
        data_path=f"data/{tenant_id}/v1.csv",
    )
    await store.create_tenant(tenant)
    return tenant


async def _queued(store: Store, tenant_id: str = "acme", **request: Any) -> m.Run:
    created = await store.create_run(RunRequest(tenant_id=tenant_id, **request))
    run = await store.get_run(created.run_id)
    assert run is not None
    return run


def test_the_scripts_terminal_set_is_the_models() -> None:
    """The Lua constant TERMINAL is generated from TERMINAL_STATES, state names from RunState."""
    prelude = lua_prelude()
    (terminal,) = re.findall(r"local TERMINAL = \{(.*)\}", prelude)
    names = {part.split("=")[0].strip() for part in terminal.split(",")}
    assert names == {state.value for state in m.TERMINAL_STATES}
    for state in m.RunState:
        assert f"local S_{state.name} = '{state.value}'" in prelude


async def test_apply_places_the_run_in_exactly_one_index(store: Store) -> None:
    """Due, parked and waiting are exclusive: each placement takes the run off the others."""
    await _tenant(store)
    run = await _queued(store)
    keys, ledger, now = store.keys, store.ledger, utcnow()
    waiting = await ledger.apply(run, (m.Waiting(),), now, Placement(waiting=True))
    assert await store.redis.zscore(keys.waiting("default", "interactive"), run.id) is not None
    assert not await ledger.is_due(run.id)
    granted = await ledger.apply(waiting, (m.Granted(bes_endpoint=0),), now, Placement(due_in=5))
    assert await ledger.is_due(run.id)
    parked = await ledger.apply(granted, (m.JobStarted(),), now, Placement(park_in=5), polls=1)
    assert not await ledger.is_due(run.id)
    assert await store.redis.zscore(keys.polls, run.id) is not None
    assert parked.polls == 1
    assert parked.version == 3
    await ledger.apply(parked, (m.JobFinished(),), now, Placement(due_in=0))
    assert await store.redis.zscore(keys.polls, run.id) is None
    assert await ledger.is_due(run.id)


async def test_a_stale_apply_changes_nothing(store: Store) -> None:
    """A CAS on an old version raises and leaves record and indices as they were."""
    await _tenant(store)
    run = await _queued(store)
    await store.ledger.apply(run, (m.Waiting(),), utcnow(), Placement(waiting=True))
    with pytest.raises(StaleRun):
        await store.ledger.apply(run, (m.Cancelled(),), utcnow(), Placement(due_in=0))
    current = await store.get_run(run.id)
    assert current is not None
    assert (current.state, current.version) == (RunState.WAITING_SLOT, 1)
    assert not await store.ledger.is_due(run.id)


async def test_ending_a_run_counts_it_in_its_batch_and_frees_the_tenant(store: Store) -> None:
    """Batch counters move with the state; a terminal state clears the tenant's active run."""
    await _tenant(store)
    await store.create_batch(Batch(id="b1", total=1))
    run = await _queued(store, batch_id="b1", lane=Lane.BULK)
    assert await store.active_run_id("acme") == run.id
    await put_in_state(store, run, RunState.FAILED)
    found = await store.get_batch("b1")
    assert found is not None
    assert found[1]["n:queued"] == 0
    assert found[1]["n:failed"] == 1
    assert "last_finished_ms" in found[1]
    assert await store.active_run_id("acme") is None


async def test_a_cancel_keeps_an_active_run_due_even_when_a_step_saves_after_it(
    store: Store,
) -> None:
    """The cancel flag makes the run due now; a later save of a non-terminal state keeps it
    due; a cancel of an ended run does not make it due again."""
    await _tenant(store)
    run = await _queued(store)
    assert await store.request_cancel(run.id)
    await store.ledger.apply(run, (m.Waiting(),), utcnow(), Placement(waiting=True))
    assert await store.ledger.is_due(run.id)
    assert not await store.request_cancel("nope")
    ended = await store.get_run(run.id)
    assert ended is not None
    ended = await put_in_state(store, ended, RunState.CANCELLED)
    await store.ledger.not_due(run.id)
    assert await store.request_cancel(run.id)
    assert not await store.ledger.is_due(run.id)


async def test_a_run_that_ends_while_waiting_leaves_its_waiting_set(store: Store) -> None:
    """Cancelled while waiting for a slot: it is never granted one afterwards."""
    await _tenant(store)
    run = await _queued(store)
    waiting = await store.ledger.apply(run, (m.Waiting(),), utcnow(), Placement(waiting=True))
    await store.ledger.apply(waiting, (m.Cancelled(),), utcnow(), Placement(due_in=0))
    assert await store.redis.zcard(store.keys.waiting("default", "interactive")) == 0


async def test_creating_a_run_for_a_busy_tenant_returns_the_active_one(store: Store) -> None:
    """One active run per tenant: a second request gets the first, flagged to run again."""
    await _tenant(store)
    first = await store.create_run(RunRequest(tenant_id="acme"))
    again = await store.create_run(RunRequest(tenant_id="acme", rerun_if_active=True))
    assert (again.run_id, again.created) == (first.run_id, False)
    run = await store.get_run(first.run_id)
    assert run is not None
    assert run.rerun_requested


async def _writes_of(
    redis: aioredis.Redis, call: Callable[[], Awaitable[object]]
) -> list[dict[str, Any]]:
    """The commands Redis ran while ``call`` ran, as MONITOR saw them (scripts' marked lua)."""
    seen: list[dict[str, Any]] = []
    async with redis.monitor() as monitor:
        await redis.ping()  # the monitor is attached once it sees this

        async def collect() -> None:
            async for command in monitor.listen():
                if command["command"] == "ECHO end-of-call":
                    return
                seen.append(command)

        task = asyncio.create_task(collect())
        await call()
        await redis.echo("end-of-call")
        await asyncio.wait_for(task, timeout=10)
    return seen


WRITES = ("HSET", "HSETNX", "ZADD", "LPUSH", "RPUSH", "MULTI", "HINCRBY", "DEL")


def _direct_writes(commands: list[dict[str, Any]]) -> list[str]:
    return [
        c["command"]
        for c in commands
        if c.get("client_type") != "lua" and c["command"].split()[0].upper() in WRITES
    ]


async def test_onboarding_writes_record_version_and_index_in_one_script(
    redis: aioredis.Redis, store: Store
) -> None:
    """create_tenant: no write outside one script, so a crash cannot leave a tenant without
    its version (every later update would fail) or outside the tenant index."""
    tenant = Tenant(
        id="atomic",
        target=ClassicTarget(web_service_id="svc", resource_name="Model [trained model]"),
    )
    commands = await _writes_of(redis, lambda: store.create_tenant(tenant))
    assert _direct_writes(commands) == []
    assert await reply(redis.hget(store.keys.tenant("atomic"), "version")) == "0"
    assert await redis.zscore(store.keys.tenants, "atomic") is not None


async def test_a_deployment_and_its_history_entry_are_one_write(
    redis: aioredis.Redis, store: Store
) -> None:
    """record_deployment sets the deployed model and pushes the history entry in one script."""
    await _tenant(store)
    model = DeployedModel(run_id="r1", seq=1, model_path="models/r1", deployed_at=utcnow())
    commands = await _writes_of(redis, lambda: store.record_deployment("acme", model))
    assert _direct_writes(commands) == []
    assert [h.run_id for h in await store.model_history("acme")] == ["r1"]
    older = model.model_copy(update={"run_id": "r0", "seq": 0})
    assert not await store.record_deployment("acme", older)
    assert [h.run_id for h in await store.model_history("acme")] == ["r1"]


async def test_a_grant_moves_the_run_from_waiting_to_due(store: Store) -> None:
    """Dispatch takes the oldest waiting run, leases it a slot and makes it due now."""
    ledger = store.ledger
    await ledger.ensure_waiting("svc", Lane.BULK, "r1")
    grants = await ledger.grant(
        "svc", endpoint_caps=[1], cap=1, reserve=0, lease_seconds=60, bulk_every=5
    )
    assert [(g.run_id, g.endpoint, g.version) for g in grants] == [("r1", 0, None)]
    assert await store.redis.zcard(store.keys.waiting("svc", "bulk")) == 0
    assert await ledger.is_due("r1")
    lease = await store.redis.zscore(store.keys.slots("svc"), "r1")
    assert lease is not None
    assert lease > now_ms() + timedelta(seconds=50).total_seconds() * 1000


async def test_a_grant_names_the_version_of_the_granted_runs_next_step(store: Store) -> None:
    """The grant carries the run's version, so its step is enqueued without another read."""
    await _tenant(store)
    run = await _queued(store)
    waiting = await store.ledger.apply(run, (m.Waiting(),), utcnow(), Placement(waiting=True))
    (grant,) = await store.ledger.grant(
        "default", endpoint_caps=[1], cap=1, reserve=0, lease_seconds=60, bulk_every=5
    )
    assert (grant.run_id, grant.version) == (run.id, waiting.version)


# --- ownership -------------------------------------------------------------------------------

# Key builders of run records and their indices: only the ledger may write through them.
RUN_KEYS = re.compile(
    r"keys\.(run\(|due\b|polls\b|waiting\(|tenant_runs\(|batch_runs\(|run_prefix\()"
)
# Modules that read those keys (never write them); tenants.py passes the run key prefix to
# the fleet page script, which only reads; archive_walk.py pipelines the archiver's reads.
READERS = {"worker/views.py", "worker/store.py", "worker/tenants.py", "worker/archive_walk.py"}
LEDGER = "worker/run/ledger.py"
# The archive's part of the ledger: removal of archived batches (their run lists) and history.
LEDGER_MODULES = {LEDGER, "worker/run/archive_ledger.py"}


def test_only_the_ledger_names_run_keys_for_writing() -> None:
    """Outside the ledger, run keys appear only in read-only modules, and those issue no
    write command on them."""
    offenders = []
    for path in sorted([*ROOT.glob("worker/**/*.py"), *ROOT.glob("producer/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel in LEDGER_MODULES:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not RUN_KEYS.search(line):
                continue
            write = re.search(r"\.(hset|hsetnx|zadd|zrem|hincrby|rpush|lpush|delete|hdel)\(", line)
            if rel not in READERS or write:
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


def test_a_transition_refuses_unknown_fields_and_wrong_types() -> None:
    """Typos and wrong types fail when the change is built, not when the run is read."""
    with pytest.raises(ValueError, match="bes_endpiont"):
        m.Granted(bes_endpiont=1)  # type: ignore[call-arg]  # the misspelling is the test
    with pytest.raises(ValueError, match="bes_endpoint"):
        m.Granted(bes_endpoint="1")  # type: ignore[arg-type]  # the wrong type is the test
