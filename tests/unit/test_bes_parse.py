"""BES bodies: the submit payload we send and the status payloads we parse."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from worker.azureml.bes import (
    BesJobRequest,
    BlobLocation,
    BlobReference,
    JobState,
    parse_job_id,
    parse_job_status,
)
from worker.azureml.errors import PermanentError

CONN = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=SECRETKEY=="
FINISHED = {
    "StatusCode": "Finished",
    "Results": {
        "output1": {
            "ConnectionString": None,
            "BaseLocation": "https://acct.blob.core.windows.net/",
            "RelativeLocation": "mycontainer/models/r1.ilearner",
            "SasBlobToken": "?sv=2020&sr=b&sig=SECRETSIG&sp=r",
        },
        "output2": {
            "BaseLocation": "http://127.0.0.1:10000/devstoreaccount1",
            "RelativeLocation": "/mycontainer/models/r1.eval.csv",
            "SasBlobToken": "sv=2020&sig=S2",
        },
    },
    "Details": None,
}


def test_submit_payload_uses_protocol_names_and_omits_absent_members() -> None:
    """Inputs/Outputs/GlobalParameters spelled as in PROTOCOL §2.2; None members left out."""
    request = BesJobRequest(
        inputs={
            "input1": BlobReference(
                connection_string=SecretStr(CONN), relative_location="c/data/t1/v1.csv"
            )
        },
        outputs={
            "output1": BlobReference(
                connection_string=SecretStr(CONN), relative_location="c/models/t1/r1.ilearner"
            ),
            "output2": BlobReference(
                base_location="https://acct.blob.core.windows.net/",
                sas_blob_token=SecretStr("?sv=1&sig=x"),
                relative_location="c/models/t1/r1.eval.csv",
            ),
        },
    )
    assert request.to_payload() == {
        "Inputs": {"input1": {"ConnectionString": CONN, "RelativeLocation": "c/data/t1/v1.csv"}},
        "Outputs": {
            "output1": {"ConnectionString": CONN, "RelativeLocation": "c/models/t1/r1.ilearner"},
            "output2": {
                "BaseLocation": "https://acct.blob.core.windows.net/",
                "SasBlobToken": "?sv=1&sig=x",
                "RelativeLocation": "c/models/t1/r1.eval.csv",
            },
        },
    }
    assert BesJobRequest(global_parameters={"URI": "x"}).to_payload() == {
        "GlobalParameters": {"URI": "x"}
    }
    assert BesJobRequest().to_payload() == {}


def test_secrets_stay_masked_outside_the_wire_payload() -> None:
    """repr, str and a plain dump never show the connection string or SAS."""
    reference = BlobReference(connection_string=SecretStr(CONN), relative_location="c/x.csv")
    request = BesJobRequest(inputs={"input1": reference})
    for text in (repr(request), str(request), str(request.model_dump(by_alias=True))):
        assert "SECRETKEY" not in text


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"base_location": "https://a/"},
        {"sas_blob_token": SecretStr("?s")},
        {
            "connection_string": SecretStr(CONN),
            "sas_blob_token": SecretStr("?s"),
            "base_location": "https://a/",
        },
    ],
)
def test_blob_reference_needs_exactly_one_way_in(fields: dict[str, object]) -> None:
    """Either a connection string or base location plus SAS, never neither or both."""
    with pytest.raises(ValidationError, match="either ConnectionString"):
        BlobReference(relative_location="c/x.csv", **fields)


def test_finished_status_has_result_locations() -> None:
    """Results become BlobLocations whose URL joins base, relative path and SAS."""
    status = parse_job_status(FINISHED)
    assert status.state is JobState.FINISHED
    assert status.state.terminal
    model = status.results["output1"]
    assert model.uri == "https://acct.blob.core.windows.net/mycontainer/models/r1.ilearner"
    assert model.url.get_secret_value() == model.uri + "?sv=2020&sr=b&sig=SECRETSIG&sp=r"
    assert "SECRETSIG" not in repr(status)
    evaluation = status.results["output2"]
    assert evaluation.url.get_secret_value() == (
        "http://127.0.0.1:10000/devstoreaccount1/mycontainer/models/r1.eval.csv?sv=2020&sig=S2"
    )


def test_location_payload_round_trips_for_a_patch() -> None:
    """A result location serializes back to the PATCH Location shape, SAS included."""
    location = parse_job_status(FINISHED).results["output1"]
    assert location.to_payload() == {
        "BaseLocation": "https://acct.blob.core.windows.net/",
        "RelativeLocation": "mycontainer/models/r1.ilearner",
        "SasBlobToken": "?sv=2020&sr=b&sig=SECRETSIG&sp=r",
    }
    assert BlobLocation.model_validate(location.to_payload()) == location


@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("NotStarted", JobState.NOT_STARTED),
        ("Running", JobState.RUNNING),
        ("Failed", JobState.FAILED),
        ("Cancelled", JobState.CANCELLED),
        ("Finished", JobState.FINISHED),
        (0, JobState.NOT_STARTED),
        (1, JobState.RUNNING),
        (2, JobState.FAILED),
        (3, JobState.CANCELLED),
        (4, JobState.FINISHED),
        ("4", JobState.FINISHED),
    ],
)
def test_status_codes_as_strings_or_numbers(code: object, state: JobState) -> None:
    """Both the string names and the legacy numbers 0-4 are understood."""
    status = parse_job_status({"StatusCode": code, "Results": None, "Details": None})
    assert status.state is state
    assert status.results == {}


def test_failed_status_keeps_details() -> None:
    """The failure text survives; structured details are kept as JSON text."""
    failed = parse_job_status({"StatusCode": "Failed", "Details": "Module execution failed"})
    assert failed.details == "Module execution failed"
    assert not JobState.RUNNING.terminal
    structured = parse_job_status({"StatusCode": 2, "Details": {"code": "X"}})
    assert structured.details == '{"code": "X"}'


def test_unknown_fields_are_tolerated() -> None:
    """Extra members from a newer service do not break parsing."""
    status = parse_job_status({"StatusCode": "Running", "Progress": 50, "Results": {}})
    assert status.state is JobState.RUNNING


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "Finished",
        {},
        {"StatusCode": "Done"},
        {"StatusCode": 5},
        {"StatusCode": True},
        {"StatusCode": "Finished", "Results": {"output1": {"SasBlobToken": "?sig=LEAK"}}},
    ],
)
def test_garbage_status_is_a_permanent_error_without_echoing_values(payload: object) -> None:
    """A body that is not a BES status raises PermanentError; values never appear in it."""
    with pytest.raises(PermanentError, match="unexpected response") as caught:
        parse_job_status(payload)
    assert caught.value.code == "InvalidResponse"
    assert "LEAK" not in str(caught.value)


def test_job_id_is_a_plain_json_string() -> None:
    """Submit answers a job id string; anything else is rejected."""
    assert parse_job_id("539d0bc2fde945b6ac986b851d0000f0") == "539d0bc2fde945b6ac986b851d0000f0"
    for bad in (None, 42, "", "../x", {"id": "a"}, "a" * 200):
        with pytest.raises(PermanentError):
            parse_job_id(bad)
