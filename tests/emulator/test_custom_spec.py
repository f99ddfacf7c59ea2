"""A config file's own model spec: ``retrainq-emulator --config`` starts with it and serves it.

The config (tests/custom_spec.py) has a diabetes regression spec whose initial data is a CSV
next to the file, and a ``blank`` spec with none: its endpoints answer a clear error until a
trained model is PATCHed onto one of them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from emulator.app import main
from emulator.config import EmulatorConfig, load_config
from emulator.training import Model, parse_csv, train
from producer.devtools.processes import free_port
from tests.custom_spec import DIABETES, custom_config, custom_emulator, diabetes_csv

from .conftest import Blobs, Emu, bearer, wait_for_job

V = "?api-version=2.0"


@pytest.fixture(scope="module")
def custom_emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``retrainq-emulator --config emulator.json`` as a subprocess; its URL."""
    with custom_emulator(tmp_path_factory.mktemp("custom")) as url:
        yield url


@pytest.fixture
async def emu(custom_emulator_url: str) -> AsyncIterator[Emu]:
    """A client of the custom emulator, reset to its config before the test."""
    async with aiohttp.ClientSession() as http:
        emu = Emu(url=custom_emulator_url, http=http, config=custom_config())
        assert (await emu.json("POST", f"{custom_emulator_url}/_emulator/reset"))[0] == 200
        yield emu


def probe_table(rows: list[dict[str, str]]) -> dict[str, Any]:
    """An RRS body of ``rows`` (features only)."""
    features = DIABETES.numeric_features
    return {
        "Inputs": {
            "input1": {"ColumnNames": features, "Values": [[r[c] for c in features] for r in rows]}
        }
    }


async def rrs(emu: Emu, base: str, key: str, rows: list[dict[str, str]]) -> tuple[int, Any]:
    """(status, body) of an RRS call."""
    return await emu.json("POST", f"{base}/execute{V}", json=probe_table(rows), headers=bearer(key))


async def test_the_default_endpoint_serves_the_spec_trained_on_its_initial_data(emu: Emu) -> None:
    """The diabetes default endpoint predicts what training on the config's CSV predicts."""
    rows = parse_csv(diabetes_csv(400))
    base, auth = emu.runtime("Diabetes Scoring")
    status, body = await rrs(emu, base, auth["Authorization"].split()[1], rows)
    assert status == 200, body
    scored = [float(r[-1]) for r in body["Results"]["output1"]["value"]["Values"]]
    assert scored == train(parse_csv(diabetes_csv()), DIABETES).predict(rows)
    _, config = await emu.json("GET", f"{emu.url}/_emulator/config")
    assert Path(config["models"][0]["initial_data"]).is_absolute()


async def test_a_custom_spec_retrains_and_scores_batches(emu: Emu, blobs: Blobs) -> None:
    """BES trains the diabetes spec on tenant rows; the model PATCHed onto an added endpoint
    scores a BES batch of held-out rows."""
    await blobs.upload("data/train.csv", diabetes_csv(0, 350))
    await blobs.upload("data/holdout.csv", diabetes_csv(350))
    base, auth = emu.runtime("Diabetes Training")
    body = {
        "Inputs": {"input1": blobs.ref("data/train.csv")},
        "Outputs": {"output1": blobs.ref("m/t.ilearner"), "output2": blobs.ref("m/t.eval.csv")},
    }
    result = await run(emu, base, auth, body)
    trained = Model.from_json(await blobs.download("m/t.ilearner"))
    assert trained == train(parse_csv(diabetes_csv(0, 350)), DIABETES)
    endpoint = await patched_endpoint(emu, "Diabetes Scoring", "tenant1", result)
    scoring = {
        "Inputs": {"input1": blobs.ref("data/holdout.csv")},
        "Outputs": {"output1": blobs.ref("scored/holdout.csv")},
    }
    await run(emu, endpoint["ApiLocation"], bearer(endpoint["PrimaryKey"]), scoring)
    scored = parse_csv(await blobs.download_text("scored/holdout.csv"))
    holdout = parse_csv(diabetes_csv(350))
    assert [r["target"] for r in scored] == [r["target"] for r in holdout]
    assert [float(r["Scored Labels"]) for r in scored] == trained.predict(holdout)


async def test_a_spec_without_initial_data_answers_a_clear_error_until_patched(
    emu: Emu, blobs: Blobs
) -> None:
    """Blank: RRS 400 NoTrainedModel naming the reason, a BES scoring job Failed with it; an
    added endpoint PATCHed with a trained model serves it."""
    rows = parse_csv(diabetes_csv(0, 5))
    base, auth = emu.runtime("Blank Scoring")
    status, body = await rrs(emu, base, auth["Authorization"].split()[1], rows)
    assert status == 400
    assert (body["error"]["code"], body["error"]["details"][0]["code"]) == (
        "WebServicePackageError",
        "NoTrainedModel",
    )
    assert "names no initial data" in body["error"]["message"]
    await blobs.upload("data/rows.csv", diabetes_csv(0, 5))
    scoring = {
        "Inputs": {"input1": blobs.ref("data/rows.csv")},
        "Outputs": {"output1": blobs.ref("scored/rows.csv")},
    }
    failed = await run(emu, base, auth, scoring, expect="Failed")
    assert "names no initial data" in failed["Details"]
    _, shown = await emu.json(
        "GET", f"{emu.management('Blank Scoring')}/endpoints/default", headers=emu.ws_token
    )
    assert shown["Resources"][0]["Location"] is None

    await blobs.upload("data/train.csv", diabetes_csv())
    training_base, training_auth = emu.runtime("Blank Training")
    body = {
        "Inputs": {"input1": blobs.ref("data/train.csv")},
        "Outputs": {"output1": blobs.ref("m/blank.ilearner")},
    }
    result = await run(emu, training_base, training_auth, body)
    endpoint = await patched_endpoint(emu, "Blank Scoring", "tenant2", result, "Blank")
    status, body = await rrs(emu, endpoint["ApiLocation"], endpoint["PrimaryKey"], rows)
    assert status == 200, body


async def run(
    emu: Emu, base: str, auth: dict[str, str], body: dict[str, Any], expect: str = "Finished"
) -> Any:
    """Submit and start a BES job; its final status body, which must be ``expect``."""
    status, job_id = await emu.json("POST", f"{base}/jobs{V}", json=body, headers=auth)
    assert status == 200, job_id
    assert (await emu.json("POST", f"{base}/jobs/{job_id}/start{V}", headers=auth))[0] == 200
    result = await wait_for_job(emu, base, auth, job_id)
    assert result["StatusCode"] == expect, result["Details"]
    return result


async def patched_endpoint(
    emu: Emu, service: str, name: str, result: Any, resource: str = "Diabetes"
) -> Any:
    """Add endpoint ``name`` and PATCH it with a finished training job's output1."""
    url = f"{emu.management(service)}/endpoints/{name}"
    assert (await emu.json("PUT", url, json={}, headers=emu.ws_token))[0] == 200
    location = {
        k: result["Results"]["output1"][k]
        for k in ("BaseLocation", "RelativeLocation", "SasBlobToken")
    }
    patch = {"Resources": [{"Name": f"{resource} [trained model]", "Location": location}]}
    status, answer = await emu.json("PATCH", url, json=patch, headers=emu.ws_token)
    assert status == 200, answer
    _, endpoint = await emu.json("GET", url, headers=emu.ws_token)
    return endpoint


@pytest.fixture
def start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[Path], tuple[int, str]]:
    """Run ``retrainq-emulator --config FILE`` in this process up to serving; (code, stderr)."""

    def start(path: Path) -> tuple[int, str]:
        capsys.readouterr()
        monkeypatch.setenv("RETRAINQ_EMULATOR_PORT", str(free_port()))
        code = main(["--config", str(path)])
        return code, capsys.readouterr().err

    return start


def _write(folder: Path, config: EmulatorConfig) -> Path:
    path = folder / "emulator.json"
    path.write_text(config.model_dump_json())
    return path


def test_unusable_initial_data_stops_the_emulator_with_one_line(
    tmp_path: Path, start: Callable[[Path], tuple[int, str]]
) -> None:
    """A missing file, or data without the spec's columns, exits 2 naming the spec and cause."""
    path = _write(tmp_path, custom_config())
    code, err = start(path)
    assert code == 2
    assert err.startswith("retrainq-emulator: invalid configuration: model spec 'diabetes': ")
    assert "cannot read initial_data" in err
    assert str(tmp_path / "diabetes.csv") in err
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "diabetes.csv").write_text("sex,bmi,target\n" + "1,2,3\n" * 20)
    code, err = start(path)
    assert code == 2
    assert "column 'age' not found" in err
    assert len(err.strip().splitlines()) == 1


def test_a_spec_names_one_initial_source(tmp_path: Path) -> None:
    """initial_data and datagen together are refused when the config is read."""
    doc = json.loads(custom_config().model_dump_json())
    doc["models"][0]["datagen"] = "bike_rental"
    path = tmp_path / "emulator.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="initial_data or datagen, not both"):
        load_config(path)
