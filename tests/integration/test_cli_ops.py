"""The operator's CLI end to end: import tenants, bulk retrain on a real worker and the
emulator, watch to the end, list failed runs, retry them; and the output contract
(data on stdout in table, json or jsonl; progress, notes and errors on stderr)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from producer.api.app import create_app
from producer.cli.main import main
from producer.devtools.emulated import predictive_service_ids, training_services
from producer.devtools.processes import free_port
from tests.integration.conftest_api import ADMIN_KEY, make_settings
from tests.integration.fleet import RESOURCE, Fleet
from worker.blobs import training_data_path

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .env of the developer's and no API settings from their environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RETRAINQ_API_URL", raising=False)
    monkeypatch.setenv("RETRAINQ_API_KEY", "")


@pytest.fixture
async def fleet_api(
    fleet: Fleet, redis_url: str, blob_connection_string: str
) -> AsyncIterator[TestClient[Any, Any]]:
    """The real API on the fleet's Redis, blob container and emulator training services."""
    settings = make_settings(
        redis_url,
        blob_connection_string,
        blob={"connection_string": blob_connection_string, "container": "retrainq"},
        training_services=training_services(fleet.config, fleet.emulator_url),
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


async def cli(
    api: TestClient[Any, Any], capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    """Run ``retrainq ARGV`` against ``api``: (exit code, stdout, stderr)."""
    url = str(api.make_url("/"))
    code = await asyncio.to_thread(main, [*argv, "--api-url", url, "--api-key", ADMIN_KEY])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_import_file(path: Path, service_id: str, rows: list[tuple[str, str]]) -> Path:
    """A tenants CSV of (id, data_path) rows on one classic predictive service."""
    lines = ["id,web_service_id,resource_name,data_path"]
    lines += [f"{tenant},{service_id},{RESOURCE},{data}" for tenant, data in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_import_bulk_watch_list_failed_and_retry(
    fleet: Fleet,
    fleet_api: TestClient[Any, Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Two tenants with data succeed, one without its blob fails; the CLI says which and why,
    and ``batches retry-failed`` retrains only that one (its data uploaded by then)."""
    good = ["good-a", "good-b"]
    rows = [(t, await fleet.upload(t, version=1)) for t in good]
    rows.append(("broken", training_data_path("broken", "v9")))  # never uploaded
    service_id = predictive_service_ids(fleet.config)["bike-rental"]
    csv_file = write_import_file(tmp_path / "tenants.csv", service_id, rows)

    code, out, err = await cli(
        fleet_api, capsys, "tenants", "import", str(csv_file), "--no-train", "-o", "jsonl"
    )
    assert code == 0, err
    imported = [json.loads(line) for line in out.splitlines()]
    assert sorted(item["id"] for item in imported) == ["broken", *good]
    assert all(item["api_key"].startswith("rtq_") for item in imported)
    assert "3 tenants onboarded" in err

    code, out, err = await cli(fleet_api, capsys, "tenants", "import", str(csv_file), "--no-train")
    assert code == 0, err
    assert "0 tenants onboarded" in err
    assert "3 already existed" in err

    fleet.start_workers(1)
    code, out, err = await cli(fleet_api, capsys, "bulk", "--all")
    assert code == 0, err
    batch_id = out.strip()

    code, out, err = await cli(
        fleet_api, capsys, "batches", "watch", batch_id, "--interval", "0.2", "-o", "json"
    )
    assert code == 1, err
    report = json.loads(out)  # stdout is the JSON document alone
    assert report["batch"]["done"] == report["batch"]["total"] == 3
    assert [run["tenant_id"] for run in report["failed"]] == ["broken"]
    assert report["failed"][0]["error"]
    progress = err.splitlines()
    assert progress
    assert all(f"batch {batch_id[:8]}: " in line for line in progress)
    assert "3/3 ended" in progress[-1]

    code, out, err = await cli(
        fleet_api, capsys, "runs", "list", "--state", "failed", "-o", "jsonl"
    )
    assert code == 0, err
    failed = [json.loads(line) for line in out.splitlines()]
    assert [(run["tenant_id"], run["batch_id"]) for run in failed] == [("broken", batch_id)]
    code, out, err = await cli(
        fleet_api, capsys, "runs", "list", "--batch", batch_id, "--state", "succeeded"
    )
    assert code == 0, err
    assert "good-a" in out
    assert "good-b" in out
    assert "broken" not in out

    code, out, err = await cli(fleet_api, capsys, "batches", "show", batch_id)
    assert code == 0, err
    assert "failed or cancelled: 1" in out
    assert "broken" in out

    # The missing blob arrives: the retry's run trains on it, so the retry has no failed run
    # to retry whether that run is still going or done (a run failing on a missing blob ends
    # at once: its holdout split reads the blob first).
    assert await fleet.upload("broken", version=9) == training_data_path("broken", "v9")
    code, out, err = await cli(fleet_api, capsys, "batches", "retry-failed", batch_id)
    assert code == 0, err
    retry_id = out.strip()
    assert err.strip() == "1 run queued"
    code, out, err = await cli(fleet_api, capsys, "batches", "list", "-o", "json")
    listed = json.loads(out)
    assert [b["id"] for b in listed["items"]] == [retry_id, batch_id]
    assert listed["items"][0]["total"] == 1
    assert listed["items"][0]["reason"] == f"retry of {batch_id}"

    code, out, err = await cli(
        fleet_api, capsys, "tenants", "list", "--prefix", "good", "--sort=-id", "-o", "json"
    )
    assert code == 0, err
    assert [t["id"] for t in json.loads(out)["items"]] == ["good-b", "good-a"]
    code, _, err = await cli(fleet_api, capsys, "tenants", "list", "--state", "sleeping")
    assert code != 0
    assert "state: one or more of" in err


async def test_output_modes_put_only_data_on_stdout(
    fleet_api: TestClient[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """-o json is one JSON document, -o jsonl one object a line; counts go to stderr."""
    for tenant in ("t1", "t2"):
        code, _, err = await cli(
            fleet_api,
            capsys,
            "tenants",
            "create",
            tenant,
            "--new",
            "bike-rental-template",
            "--no-train",
        )
        assert code == 0, err
    code, out, err = await cli(fleet_api, capsys, "-o", "json", "tenants", "list")
    assert code == 0, err
    assert [t["id"] for t in json.loads(out)["items"]] == ["t1", "t2"]
    assert err == "2 shown of 2\n"
    code, out, _ = await cli(fleet_api, capsys, "tenants", "list", "-o", "jsonl")
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["t1", "t2"]
    code, out, _ = await cli(fleet_api, capsys, "tenants", "list")
    assert [line.split()[1] for line in out.splitlines() if " t" in line] == ["t1", "t2"]


async def test_errors_name_cli_commands_and_suggest_close_tenant_ids(
    fleet_api: TestClient[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A 404 on a tenant id offers the ids that look like it; a 409 names the CLI command."""
    for tenant in ("acme-prod", "acme-staging", "zeta"):
        code, _, err = await cli(
            fleet_api, capsys, "tenants", "create", tenant, "--classic", "ws1:model", "--no-train"
        )
        assert code == 0, err
    code, out, err = await cli(fleet_api, capsys, "tenants", "show", "acme-prd")
    assert (code, out) == (1, "")
    assert err == "retrainq: 404 Not Found: no tenant 'acme-prd'; did you mean 'acme-prod'?\n"
    code, _, err = await cli(fleet_api, capsys, "retrain", "acme")
    assert code == 1
    assert "did you mean 'acme-prod' or 'acme-staging'?" in err
    code, _, err = await cli(fleet_api, capsys, "retrain", "zeta")
    assert code == 1
    assert "upload it with 'retrainq data upload zeta FILE' first" in err
    assert "/v1/" not in err


async def test_patch_gate_schedules_and_offboard(
    fleet_api: TestClient[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """tenants patch changes only what is given; gate show/set; schedules put/list/delete;
    offboard makes the tenant unknown."""
    code, _, err = await cli(
        fleet_api, capsys, "tenants", "create", "t1", "--classic", "ws1:model", "--name", "One",
        "--no-train",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = await cli(
        fleet_api, capsys, "tenants", "patch", "t1", "--param", "region=eu", "--schedule",
        "0 3 * * *", "-o", "json",
    )  # fmt: skip
    assert code == 0, err
    patched = json.loads(out)
    assert patched["display_name"] == "One"
    assert patched["global_parameters"] == {"region": "eu"}
    assert patched["schedule"] == "0 3 * * *"
    code, out, _ = await cli(fleet_api, capsys, "tenants", "patch", "t1", "--no-schedule", "--json")
    assert json.loads(out)["schedule"] is None
    assert json.loads(out)["global_parameters"] == {"region": "eu"}
    code, _, err = await cli(fleet_api, capsys, "tenants", "patch", "t1")
    assert code == 2
    assert "nothing to change" in err

    code, out, err = await cli(fleet_api, capsys, "gate", "show", "t1", "-o", "json")
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["metric"], shown["evaluation"]) == ("Coefficient of Determination", "holdout")
    assert err == ""  # onboarding stored the holdout gate: no "default applies" note
    code, out, err = await cli(fleet_api, capsys, "gate", "set", "t1", "--threshold", "0.8")
    assert code == 0, err
    assert re.search(r"^threshold +0\.8$", out, re.MULTILINE), out
    assert re.search(r"^evaluation +holdout$", out, re.MULTILINE), out
    code, out, err = await cli(
        fleet_api, capsys, "gate", "set", "t1", "--holdout-fraction", "0.3", "--confidence",
        "0.9", "--min-holdout-rows", "50", "-o", "json",
    )  # fmt: skip
    assert code == 0, err
    gate = json.loads(out)
    assert gate["holdout"]["fraction"] == 0.3
    assert (gate["holdout"]["min_rows"], gate["confidence"]) == (50, 0.9)
    code, _, err = await cli(fleet_api, capsys, "gate", "set", "t1", "--holdout-fraction", "2")
    assert code == 2
    assert "fraction" in err
    code, out, err = await cli(
        fleet_api, capsys, "gate", "set", "t1", "--evaluation", "reported", "--no-confidence",
        "-o", "json",
    )  # fmt: skip
    assert code == 0, err
    assert (json.loads(out)["evaluation"], json.loads(out)["confidence"]) == ("reported", None)
    code, out, err = await cli(
        fleet_api, capsys, "gate", "set", "t1", "--metric", "Mean Absolute Error", "-o", "json"
    )
    gate = json.loads(out)
    assert (gate["metric"], gate["threshold"]) == ("Mean Absolute Error", 0.8)
    code, _, err = await cli(fleet_api, capsys, "gate", "set", "t1", "--metric", "Custom")
    assert code == 2
    assert "direction is required for metric 'Custom'" in err

    code, out, err = await cli(
        fleet_api, capsys, "schedules", "put", "nightly", "--cron", "0 2 * * *", "--kind", "new"
    )
    assert code == 0, err
    assert "nightly" in out
    code, out, _ = await cli(fleet_api, capsys, "schedules", "list", "-o", "jsonl")
    assert [json.loads(line)["name"] for line in out.splitlines()] == ["nightly"]
    code, out, err = await cli(fleet_api, capsys, "schedules", "delete", "nightly")
    assert (code, out, err) == (0, "", "deleted schedule nightly\n")
    code, _, err = await cli(fleet_api, capsys, "schedules", "delete", "nightly")
    assert code == 1
    assert "404" in err

    code, out, err = await cli(fleet_api, capsys, "tenants", "offboard", "t1")
    assert code == 0, err
    assert out.startswith("offboarded t1")
    code, _, err = await cli(fleet_api, capsys, "tenants", "show", "t1")
    assert code == 1
    assert "no tenant 't1'" in err


async def test_import_checks_every_row_before_creating_any(
    fleet_api: TestClient[Any, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Bad rows are all named with their line numbers, and nothing is imported (exit 2)."""
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("id,template_service\nok-one,tmpl\nBad_Id,tmpl\nno-target,\nok-one,tmpl\n")
    code, out, err = await cli(fleet_api, capsys, "tenants", "import", str(csv_file))
    assert (code, out) == (2, "")
    assert err.startswith("retrainq: 3 bad rows, nothing imported: line 3: ")
    assert "line 4: give template_service, or web_service_id and resource_name" in err
    assert "line 5: id 'ok-one' repeats line 2" in err
    code, out, _ = await cli(fleet_api, capsys, "tenants", "list", "-o", "json")
    assert json.loads(out)["items"] == []
    csv_file.write_text("id,colour\nx,red\n")
    code, _, err = await cli(fleet_api, capsys, "tenants", "import", str(csv_file))
    assert code == 2
    assert "unknown: colour" in err


def test_version_and_exit_codes_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version; --help documents the exit codes."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("retrainq ")
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "exit codes:" in text
    assert "130  interrupted" in text


async def test_watch_rides_out_an_api_that_answers_503(
    fleet: Fleet,
    redis_url: str,
    blob_connection_string: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Redis paused under the API (503s) while a batch trains: watch says it retries, then
    follows the batch to its end and exits 0."""
    settings = make_settings(
        redis_url,
        blob_connection_string,
        blob={"connection_string": blob_connection_string, "container": "retrainq"},
        training_services=training_services(fleet.config, fleet.emulator_url),
        redis_timeout_seconds=0.2,
    )
    tenant = await fleet.onboard("steady")
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 3})
    fleet.start_workers(1)
    async with TestClient(TestServer(create_app(settings))) as api:
        code, out, err = await cli(api, capsys, "bulk", tenant.id)
        assert code == 0, err
        batch_id = out.strip()
        url = str(api.make_url("/"))
        argv = ["batches", "watch", batch_id, "--interval", "0.1", "--api-url", url]
        watching = asyncio.create_task(asyncio.to_thread(main, [*argv, "--api-key", ADMIN_KEY]))
        progress = await until_training(fleet, capsys, f"batch {batch_id[:8]}: 0/1 ended")
        await fleet.redis.client_pause(1500)
        code = await watching
    progress += capsys.readouterr().err
    assert code == 0, progress
    assert "503 Service Unavailable" in progress
    assert "retrying in" in progress
    assert f"batch {batch_id[:8]}: 1/1 ended" in progress
    # The batch succeeded: the API's 409 (nothing to retry) is a note, not an error.
    async with TestClient(TestServer(create_app(settings))) as api:
        code, out, err = await cli(api, capsys, "batches", "retry-failed", batch_id)
    assert (code, out) == (0, ""), err
    assert err.strip() == f"batch {batch_id} has no failed runs to retry: nothing to retry"


async def until_training(fleet: Fleet, capsys: pytest.CaptureFixture[str], shown: str) -> str:
    """Wait until the watch printed ``shown`` and the batch's job is training (so Redis pauses
    while the watch is mid-batch); returns the stderr read so far."""
    err = ""
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        err += capsys.readouterr().err
        stats = await fleet.training_stats()
        if shown in err and stats["jobs_started"] >= 1:
            return err
        await asyncio.sleep(0.05)
    raise AssertionError(f"the watch or the run never started: {err}")


async def test_import_reports_failed_rows_and_still_prints_the_created_keys(
    fleet_api: TestClient[Any, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A row the API refuses is listed with its reason (exit 1); the others' keys are printed."""
    csv_file = tmp_path / "mixed.csv"
    csv_file.write_text(
        "id,template_service,data_path\nmixed-a,tmpl,\nmixed-b,tmpl,data/someone-else/v1.csv\n"
    )
    code, out, err = await cli(fleet_api, capsys, "tenants", "import", str(csv_file), "-o", "jsonl")
    assert code == 1
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["mixed-a"]
    assert "1 tenant onboarded" in err
    assert "line 3 (mixed-b): 422 " in err
    assert "import: 2/2 rows done" in err


def test_import_against_an_api_that_is_down_fails_every_row_in_one_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """No traceback: the first row names the error, the rest were not attempted."""
    csv_file = tmp_path / "down.csv"
    csv_file.write_text("id,template_service\nd1,tmpl\nd2,tmpl\nd3,tmpl\n")
    argv = ["tenants", "import", str(csv_file), "--concurrency", "1"]
    code = main([*argv, "--api-url", f"http://127.0.0.1:{free_port()}", "--api-key", "k"])
    err = capsys.readouterr().err
    assert code == 1
    assert "0 tenants onboarded" in err
    assert "line 2 (d1): cannot reach the API" in err
    assert err.count("not attempted: the API stopped answering") == 2
    assert "Traceback" not in err
