"""Pure parts of the archiver: what retention keeps, part names and bytes."""

from __future__ import annotations

from datetime import timedelta

from worker.archive import month_of, past_retention, protected_runs
from worker.archive_parts import PartName, decode_part, encode_part
from worker.run.model import BesOutputs, Run, RunState
from worker.schemas import ClassicTarget, DeployedModel, Tenant, utcnow

NOW = utcnow()
OLD = NOW - timedelta(days=40)


def run(run_id: str, state: RunState = RunState.FAILED, **fields: object) -> Run:
    """A run of tenant acme, last changed 40 days ago unless told."""
    values: dict[str, object] = {
        "id": run_id,
        "tenant_id": "acme",
        "seq": 1,
        "state": state,
        "outputs": BesOutputs(model_path="m", evaluation_path="e"),
        "deadline_at": NOW,
        "updated_at": OLD,
        "created_at": OLD,
        **fields,
    }
    return Run.model_validate(values)


def deployed(run_id: str, rollback_of: str | None = None) -> DeployedModel:
    """A deployed model of ``run_id``."""
    return DeployedModel(
        run_id=run_id, seq=1, model_path="m", deployed_at=NOW, rollback_of=rollback_of
    )


def test_past_retention_takes_only_old_finished_unprotected_runs_with_no_tail_work() -> None:
    """Active, young, protected and still-due runs stay."""
    runs = [
        run("old"),
        run("active", RunState.TRAINING),
        run("young", updated_at=NOW - timedelta(days=1)),
        run("deployed"),
        run("due"),
    ]
    chosen = past_retention(runs, {"deployed"}, {"due"}, NOW - timedelta(days=30))
    assert [r.id for r in chosen] == ["old"]


def test_protected_runs_are_the_deployed_the_last_k_versions_and_a_rollbacks_source() -> None:
    """Deployed run, the runs (and rollback sources) of the last K history entries, the
    active run and the run it rolls back to; older history is not protected."""
    target = ClassicTarget(web_service_id="svc", resource_name="Model [trained model]")
    tenant = Tenant(id="acme", target=target, deployed=deployed("current"))
    history = [deployed("current"), deployed("rb", rollback_of="src"), deployed("older")]
    active = run("next", RunState.DEPLOYING, rollback_to="restored")
    kept = protected_runs(tenant, history, active, keep_deployed=2)
    assert kept == {"current", "rb", "src", "next", "restored"}
    assert protected_runs(None, [], run("ended", rollback_to="x"), keep_deployed=5) == set()


def test_a_part_name_round_trips_through_its_index_form() -> None:
    """``{tenant}/{yyyy-mm}/{pass}`` names the part's blob path."""
    name = PartName("acme", "2026-11", "20261204T193000-1f2e3d4c")
    assert PartName.parse(name.where) == name
    assert name.path == "archive/runs/acme/2026-11/part-20261204T193000-1f2e3d4c.jsonl.gz"
    assert month_of(run("r", created_at=OLD)) == OLD.strftime("%Y-%m")


def test_the_same_runs_make_the_same_part_bytes() -> None:
    """Parts are deterministic (sorted by id, no gzip timestamp) and decode to the runs."""
    runs = [run("b"), run("a")]
    data = encode_part(runs)
    assert encode_part(list(reversed(runs))) == data
    assert [r.id for r in decode_part(data)] == ["a", "b"]
