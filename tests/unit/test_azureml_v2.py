"""Pure parts of the Azure ML v2 training backend: status mapping, names, bodies, settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from worker.azureml.bes import JobState
from worker.azureml.errors import PermanentError, error_for_status
from worker.azureml_v2.jobs import failure_text, is_name_taken, job_state, parse_job
from worker.azureml_v2.training import MAX_JOB_NAME, asset_id, command_job_body, job_name
from worker.errors import RunFailed
from worker.run.model import BesOutputs, Run
from worker.settings import AzureMLV2Config, TrainingServiceConfig

V2: dict[str, Any] = {
    "subscription_id": "sub-1",
    "resource_group": "rg",
    "workspace": "ws",
    "compute": "cpu-cluster",
    "environment": "rq-sklearn/versions/4",
    "code": "rq-train/versions/3",
    "datastore": "retrainq",
    "model_kind": "bike_rental",
}
WS = (
    "/subscriptions/sub-1/resourceGroups/rg"
    "/providers/Microsoft.MachineLearningServices/workspaces/ws"
)


def a_run(tenant: str = "rental001", seq: int = 42, **fields: Any) -> Run:
    """A run as the store creates it."""
    run_id = "0123456789abcdef0123456789abcdef"
    values: dict[str, Any] = {
        "id": run_id,
        "tenant_id": tenant,
        "seq": seq,
        "training_service": "v2",
        "data_path": f"data/{tenant}/v1.csv",
        "outputs": BesOutputs(
            model_path=f"models/{tenant}/{run_id}.ilearner",
            evaluation_path=f"models/{tenant}/{run_id}.eval.csv",
        ),
        "deadline_at": datetime(2030, 1, 1, tzinfo=UTC) + timedelta(hours=6),
        **fields,
    }
    return Run(**values)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("NotStarted", JobState.RUNNING),
        ("Starting", JobState.RUNNING),
        ("Preparing", JobState.RUNNING),
        ("Queued", JobState.RUNNING),
        ("Running", JobState.RUNNING),
        ("Finalizing", JobState.RUNNING),
        ("CancelRequested", JobState.RUNNING),
        ("NotResponding", JobState.RUNNING),
        ("Paused", JobState.RUNNING),
        ("Unknown", JobState.RUNNING),
        ("SomethingNew", JobState.RUNNING),
        (None, JobState.RUNNING),
        ("Completed", JobState.FINISHED),
        ("Failed", JobState.FAILED),
        ("Canceled", JobState.CANCELLED),
    ],
)
def test_only_completed_failed_and_canceled_end_a_job(status: str | None, state: JobState) -> None:
    """Every status but the three terminal ones (new ones included) keeps the job polled."""
    assert job_state(status) is state


def test_a_job_body_parses_with_its_failure_reason() -> None:
    """Status and the failure reason the service leaves in properties."""
    reason = json.dumps({"code": "UserError", "message": "no such blob"})
    job = parse_job(
        {
            "name": "rq-a-1-x",
            "properties": {"status": "Failed", "properties": {"azureml.failureReason": reason}},
        }
    )
    assert (job.state, job.failure) == (JobState.FAILED, "UserError: no such blob")
    assert failure_text("plain text") == "plain text"
    assert failure_text(None) is None
    with pytest.raises(PermanentError):
        parse_job({"properties": {}})


def test_a_refused_put_of_a_changed_body_is_told_apart_from_other_refusals() -> None:
    """400 UserError 'already exists' (or detail Immutable) means the name is taken."""
    taken = error_for_status(
        400,
        json.dumps(
            {"error": {"code": "UserError", "message": "A job with this name already exists."}}
        ),
        method="PUT",
        url="http://x/jobs/a",
    )
    immutable = error_for_status(
        400,
        json.dumps(
            {"error": {"code": "UserError", "message": "m", "details": [{"code": "Immutable"}]}}
        ),
        method="PUT",
        url="http://x/jobs/a",
    )
    other = error_for_status(
        400,
        json.dumps({"error": {"code": "UserError", "message": "Datastore missing"}}),
        method="PUT",
        url="http://x/jobs/a",
    )
    assert isinstance(taken, PermanentError)
    assert isinstance(immutable, PermanentError)
    assert isinstance(other, PermanentError)
    assert is_name_taken(taken)
    assert is_name_taken(immutable)
    assert not is_name_taken(other)


def test_job_names_are_deterministic_short_and_plain() -> None:
    """rq-{tenant}-{seq}-{run id head}: the same run, the same name; at most 60 characters."""
    run = a_run()
    assert job_name(run) == "rq-rental001-42-0123456789ab"
    assert job_name(run) == job_name(a_run())
    long = a_run(tenant="t" + "-x" * 31, seq=123456789)
    name = job_name(long)
    assert len(name) <= MAX_JOB_NAME
    assert name.endswith("-123456789-0123456789ab")
    assert all(c.isdigit() or c == "-" or "a" <= c <= "z" for c in name)
    assert "--" not in name


def test_the_body_is_byte_stable_and_names_datastore_paths() -> None:
    """Two builds of one run give the same bytes; inputs and outputs are datastore paths of
    the run's data and output blobs; assets are workspace ids unless given whole."""
    config = AzureMLV2Config.model_validate(V2)
    run = a_run(batch_id="B17")
    body = command_job_body(run, config)
    assert json.dumps(body) == json.dumps(command_job_body(a_run(batch_id="B17"), config))
    props = body["properties"]
    assert props["inputs"]["train"]["uri"] == (
        "azureml://datastores/retrainq/paths/data/rental001/v1.csv"
    )
    assert props["inputs"]["kind"] == {"jobInputType": "literal", "value": "bike_rental"}
    assert props["outputs"]["model"]["uri"].endswith(f"paths/{run.outputs.model_path}")
    assert props["outputs"]["evaluation"]["uri"].endswith(f"paths/{run.outputs.evaluation_path}")
    assert props["codeId"] == f"{WS}/codes/rq-train/versions/3"
    assert props["computeId"] == f"{WS}/computes/cpu-cluster"
    assert props["properties"]["retrainq.batch"] == "B17"
    assert props["limits"]["timeout"] == "PT3600S"
    full = "azureml://registries/azureml/environments/sklearn/versions/1"
    assert asset_id(WS, "environments", full) == full


def test_runs_without_data_or_with_global_parameters_are_refused() -> None:
    """The data is always a datastore input; BES global parameters have no v2 meaning here."""
    config = AzureMLV2Config.model_validate(V2)
    with pytest.raises(RunFailed) as refused:
        command_job_body(a_run(global_parameters={"alpha": "1"}), config)
    assert refused.value.code == "unsupported_parameters"
    with pytest.raises(RunFailed):
        command_job_body(a_run(data_path=None), config)


def test_a_v2_service_has_one_slot_pool_the_workspace() -> None:
    """No BES endpoints: one pool whose cap is max_concurrent_jobs; settings survive a round
    trip; classic stays the default backend."""
    service = TrainingServiceConfig.model_validate(
        {"backend": "azureml_v2", "azureml_v2": {**V2, "max_concurrent_jobs": 7}}
    )
    (pool,) = service.endpoints
    assert (pool.url, pool.max_concurrent_jobs) == (WS, 7)
    again = TrainingServiceConfig.model_validate(service.model_dump(mode="json"))
    assert again.endpoints == service.endpoints
    assert TrainingServiceConfig().backend == "classic"


@pytest.mark.parametrize(
    "raw",
    [
        {"backend": "azureml_v2"},
        {"azureml_v2": V2},
        {"backend": "azureml_v2", "azureml_v2": V2, "data_parameter": "URI"},
        {"backend": "azureml_v2", "azureml_v2": {**V2, "workspace": "a/b"}},
        {"backend": "azureml_v2", "azureml_v2": {**V2, "environment": "no-version"}},
    ],
)
def test_inconsistent_v2_settings_are_refused(raw: dict[str, Any]) -> None:
    """A v2 backend without its settings, v2 settings on a classic service, a data parameter,
    a workspace that is not one path segment, an asset without a version."""
    with pytest.raises(ValidationError):
        TrainingServiceConfig.model_validate(raw)
