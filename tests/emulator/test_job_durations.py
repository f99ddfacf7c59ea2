"""Per-job training durations: rows times a lognormal factor seeded per input and model folder."""

from __future__ import annotations

import math
import statistics
from typing import Any

from emulator.datagen import bike_rental_csv
from emulator.durations import JobDurations, count_rows, duration_key, job_seconds, noise_factor

from .conftest import TRAINING, Blobs, Emu, wait_for_job

V = "?api-version=2.0"


def test_rows_are_counted_without_the_header_or_blank_lines() -> None:
    """A CSV's data rows: every non-blank line but the header."""
    assert count_rows(b"a,b\n1,2\n3,4\n") == 2
    assert count_rows(b"a,b\r\n1,2\r\n\r\n3,4") == 2
    assert count_rows(b"a,b\n") == 0
    assert count_rows(b"") == 0


def test_the_key_is_the_input_and_the_model_folder() -> None:
    """Runs of one tenant on one input share a key; a SAS query does not change it."""
    one = duration_key("c/shared/v1.csv", "c/models/t1/run-a.ilearner")
    assert one == duration_key("c/shared/v1.csv", "c/models/t1/run-b.ilearner")
    assert one != duration_key("c/shared/v1.csv", "c/models/t2/run-a.ilearner")
    assert one != duration_key("c/shared/v2.csv", "c/models/t1/run-a.ilearner")
    assert duration_key("https://h/d.csv?sig=1", "c/m/x.ilearner") == duration_key(
        "https://h/d.csv?sig=2", "c/m/y.ilearner"
    )


def test_duration_is_proportional_to_rows_and_reproducible() -> None:
    """Twice the rows last twice as long; the same seed and key draw the same factor."""
    durations = JobDurations(median_seconds=5, sigma=0.8, reference_rows=300)
    once = job_seconds(durations, 7, "k", 300)
    assert job_seconds(durations, 7, "k", 300) == once
    assert math.isclose(job_seconds(durations, 7, "k", 600), 2 * once)
    assert job_seconds(durations, 8, "k", 300) != once
    flat = JobDurations(median_seconds=5, sigma=0, reference_rows=300)
    assert job_seconds(flat, 7, "k", 150) == 2.5


def test_factors_are_lognormal_with_the_given_sigma() -> None:
    """Over many keys the log factor has median about 0 and standard deviation about sigma."""
    logs = [math.log(noise_factor(7, f"tenant-{i}", 0.8)) for i in range(4000)]
    assert abs(statistics.median(logs)) < 0.05
    assert abs(statistics.stdev(logs) - 0.8) < 0.04


def body(blobs: Blobs, data: str, tenant: str, run: str) -> dict[str, Any]:
    """A submit body training on ``data`` into the folder of ``tenant``."""
    return {
        "Inputs": {"input1": blobs.ref(data)},
        "Outputs": {
            "output1": blobs.ref(f"models/{tenant}/{run}.ilearner"),
            "output2": blobs.ref(f"models/{tenant}/{run}.eval.csv"),
        },
    }


async def run_job(emu: Emu, submit_body: dict[str, Any]) -> str:
    """Submit, start and wait for a job on the default training endpoint; its status."""
    base, auth = emu.runtime()
    status, job_id = await emu.json("POST", f"{base}/jobs{V}", json=submit_body, headers=auth)
    assert status == 200, job_id
    async with emu.http.post(f"{base}/jobs/{job_id}/start{V}", headers=auth) as response:
        assert response.status == 200
    finished = await wait_for_job(emu, base, auth, job_id)
    status_code: str = finished["StatusCode"]
    return status_code


async def planned(emu: Emu) -> dict[str, float]:
    """Seconds drawn per model output (emulator stats)."""
    stats = await emu.stats()
    result: dict[str, float] = stats["web_services"][TRAINING]["planned_seconds_by_output"]
    return result


async def test_jobs_draw_their_durations_from_rows_and_key(emu: Emu, blobs: Blobs) -> None:
    """With job_durations on (instant mode), a job's drawn seconds follow its input's rows
    and its tenant folder: the same tenant and input draw the same, double rows double it."""
    await blobs.upload("data/small.csv", bike_rental_csv("t", 40, seed=1))
    await blobs.upload("data/large.csv", bike_rental_csv("t", 80, seed=1))
    await emu.put_settings(
        instant=True, job_durations={"median_seconds": 0.05, "sigma": 0.5, "reference_rows": 40}
    )
    for tenant, data, run in [
        ("t1", "data/small.csv", "a"),
        ("t1", "data/small.csv", "b"),
        ("t2", "data/small.csv", "a"),
    ]:
        assert await run_job(emu, body(blobs, data, tenant, run)) == "Finished"
    drawn = await planned(emu)
    root = f"{blobs.container}/models"
    assert drawn[f"{root}/t1/a.ilearner"] == drawn[f"{root}/t1/b.ilearner"]
    assert drawn[f"{root}/t1/a.ilearner"] != drawn[f"{root}/t2/a.ilearner"]

    await emu.put_settings(job_durations={"median_seconds": 0.05, "sigma": 0, "reference_rows": 40})
    assert await run_job(emu, body(blobs, "data/small.csv", "t3", "a")) == "Finished"
    assert await run_job(emu, body(blobs, "data/large.csv", "t3", "b")) == "Finished"
    drawn = await planned(emu)
    assert math.isclose(drawn[f"{root}/t3/a.ilearner"], 0.05)
    assert math.isclose(drawn[f"{root}/t3/b.ilearner"], 0.1)


async def test_durations_are_off_by_default_and_validated(emu: Emu, blobs: Blobs) -> None:
    """By default no duration is drawn; the setting is validated and null turns it off."""
    _, settings = await emu.json("GET", f"{emu.url}/_emulator/settings")
    assert settings["job_durations"] is None
    await blobs.upload("data/small.csv", bike_rental_csv("t", 40, seed=1))
    await emu.put_settings(instant=True)
    assert await run_job(emu, body(blobs, "data/small.csv", "t1", "a")) == "Finished"
    assert await planned(emu) == {}

    url = f"{emu.url}/_emulator/settings"
    for bad in ({"median_seconds": 0}, {"median_seconds": 1, "sigma": -1}, {"sigma": 1}):
        status, _ = await emu.json("PUT", url, json={"job_durations": bad})
        assert status == 400, bad
    await emu.put_settings(job_durations={"median_seconds": 1})
    _, settings = await emu.json("GET", url)
    assert settings["job_durations"] == {"median_seconds": 1, "sigma": 0, "reference_rows": 1000}
    await emu.put_settings(job_durations=None)
    _, settings = await emu.json("GET", url)
    assert settings["job_durations"] is None
