"""swagger.json of classic endpoints: input columns with types and declared global parameters."""

from __future__ import annotations

from tests.emulator.conftest import SCORING, TRAINING, Emu, bearer
from worker.azureml.swagger import parse_swagger

V = "?api-version=2.0"


async def test_a_training_endpoint_declares_its_columns_label_and_data_parameters(
    emu: Emu,
) -> None:
    """Training: the features, the label (numeric) and the data-URL parameters."""
    base, auth = emu.runtime(TRAINING)
    status, doc = await emu.json("GET", f"{base}/swagger.json{V}", headers=auth)
    assert status == 200
    schema = parse_swagger(doc)
    assert schema.inputs["cnt"] == "number"
    assert schema.inputs["season"] in ("number", "string")
    assert schema.global_parameters == {"URI", "Data URI"}


async def test_a_scoring_endpoint_declares_its_inputs_and_no_parameters(emu: Emu) -> None:
    """Scoring: input columns without the label, no global parameters."""
    base, auth = emu.runtime(SCORING)
    status, doc = await emu.json("GET", f"{base}/swagger.json{V}", headers=auth)
    assert status == 200
    schema = parse_swagger(doc)
    assert "cnt" not in schema.inputs
    assert "temp" in schema.inputs
    assert schema.global_parameters == frozenset()


async def test_swagger_needs_the_endpoint_key(emu: Emu) -> None:
    """Without the endpoint's key: 401, as every runtime call."""
    base, _ = emu.runtime(SCORING)
    status, _ = await emu.json("GET", f"{base}/swagger.json{V}", headers=bearer("wrong"))
    assert status == 401
