"""Pure parts of the v2 model registry: version bodies, parsing them back, the history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.test_azureml_v2 import V2, a_run
from worker.azureml.errors import PermanentError
from worker.azureml_v2.registry import (
    history,
    model_name,
    model_uri,
    parse_version,
    version_body,
)
from worker.evaluate import Decision
from worker.run.model import Run
from worker.settings import AzureMLV2Config

CONFIG = AzureMLV2Config.model_validate(V2)
DEPLOYING = datetime(2026, 12, 6, 21, 30, tzinfo=UTC)


def deployed_run(seq: int = 42, **fields: Any) -> Run:
    """A run that passed its gate and began deploying."""
    values: dict[str, Any] = {
        "phases": {"deploying": DEPLOYING},
        "metrics": {"Coefficient of Determination": 0.91, "Mean Absolute Error": 12.5},
        "decision": Decision(accepted=True, reason="better", metric="r2", value=0.91),
        "bes_job_id": f"rq-rental001-{seq}-0123456789ab",
        "data_version": 3,
        **fields,
    }
    return a_run(seq=seq, **values)


def as_answered(body: dict[str, Any], version: str) -> dict[str, Any]:
    """The version resource a registry answers for ``body``."""
    props = {**body["properties"], "provisioningState": "Succeeded"}
    return {"name": version, "properties": props}


def test_a_runs_version_names_its_job_blob_tenant_run_and_data_version() -> None:
    """Long datastore URI of the model blob, jobName, searchable tags, the history's
    properties; the same bytes for every PUT of the run."""
    run = deployed_run()
    props = version_body(run, CONFIG)["properties"]
    assert props["modelUri"] == (
        "azureml://subscriptions/sub-1/resourceGroups/rg/workspaces/ws/datastores/retrainq"
        f"/paths/{run.outputs.model_path}"
    )
    assert props["modelUri"] == model_uri(CONFIG, run.outputs.model_path)
    assert (props["modelType"], props["jobName"]) == ("CustomModel", run.bes_job_id)
    assert props["tags"] == {
        "retrainq-tenant": "rental001",
        "retrainq-run": run.id,
        "retrainq-seq": "42",
        "retrainq-data-version": "3",
    }
    assert props["properties"]["retrainq.registered_at"] == DEPLOYING.isoformat()
    assert version_body(run, CONFIG) == version_body(run, CONFIG)
    assert model_name("rental001") == "rq-rental001"


def test_a_version_parses_back_into_the_deployed_model_it_records() -> None:
    """Run id, seq, model path, metrics, decision and time survive the round trip."""
    run = deployed_run()
    registered = parse_version(as_answered(version_body(run, CONFIG), "42"))
    assert registered is not None
    model = registered.model
    assert (model.run_id, model.seq, model.model_path) == (run.id, 42, run.outputs.model_path)
    assert model.metrics == run.metrics
    assert model.decision == run.decision
    assert model.deployed_at == DEPLOYING
    assert (registered.version, registered.data_version, registered.archived) == ("42", 3, False)


def test_versions_retrainq_did_not_register_are_skipped_and_broken_ones_refused() -> None:
    """No retrainq properties: None. retrainq's with a bad seq: PermanentError."""
    assert parse_version({"name": "1", "properties": {"modelUri": "x"}}) is None
    broken = as_answered(version_body(deployed_run(), CONFIG), "42")
    broken["properties"]["properties"]["retrainq.seq"] = "many"
    with pytest.raises(PermanentError):
        parse_version(broken)
    with pytest.raises(PermanentError):
        parse_version(["not", "a", "version"])


def test_the_history_is_the_versions_newest_first() -> None:
    """Ordered by sequence number, whatever order the registry listed them in."""
    versions = []
    for seq in (3, 7, 5):
        registered = parse_version(as_answered(version_body(deployed_run(seq), CONFIG), str(seq)))
        assert registered is not None
        versions.append(registered)
    assert [m.seq for m in history(versions)] == [7, 5, 3]
