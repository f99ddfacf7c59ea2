"""E1: the emulator's own capacity — BES jobs/s in instant mode, status GETs/s, RRS requests/s.

Starts Azurite and ``retrainq-emulator`` as subprocesses on free ports, switches the emulator
to instant mode, then drives it with raw HTTP from this process:

- BES: ``--jobs`` jobs, ``--concurrency`` clients each doing submit + start; then waits until
  the emulator's stats count them all finished (each job writes its .ilearner and eval CSV to
  Azurite). Reported: jobs/s from the first submit to the last finish.
- status: ``--status-requests`` GETs of finished jobs (each mints a SAS).
- RRS: ``--rrs-requests`` execute calls of 1 row and of 100 rows, ``--rrs-concurrency`` clients.

Usage: ``.venv/bin/python bench/emulator_capacity.py [--jobs 2000] [--concurrency 64]``.
Prints a JSON document with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp

from emulator.datagen import bike_rental_rows
from producer.devtools.processes import (
    ManagedProcess,
    azurite_argv,
    azurite_connection_string,
    console_script,
    ensure_azurite,
    free_port,
)


async def _gather_limited(n: int, concurrency: int, one: Any) -> list[float]:
    """Run ``one(i)`` for i < n with ``concurrency`` workers; latencies in seconds."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            began = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _summary(count: int, seconds: float, latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "count": count,
        "seconds": round(seconds, 3),
        "per_second": round(count / seconds, 1),
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p99_ms": round(1000 * ordered[int(len(ordered) * 0.99) - 1], 2),
    }


async def bench(url: str, blob_cs: str, args: argparse.Namespace) -> dict[str, Any]:
    """Drive the emulator at ``url`` and return the figures."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{url}/_emulator/config") as response:
            config = await response.json()
        async with http.put(f"{url}/_emulator/settings", json={"instant": True}):
            pass
        ws = config["workspaces"][0]
        training = next(s for s in ws["web_services"] if s["name"] == "Bike Rental Training")
        scoring = next(s for s in ws["web_services"] if s["name"] == "Bike Rental Scoring")
        t_end = training["endpoints"][0]
        s_end = scoring["endpoints"][0]
        base = f"{url}/workspaces/{ws['id']}/services/{t_end['id']}"
        auth = {"Authorization": f"Bearer {t_end['primary_key']}"}
        job_ids: list[str] = []

        async def one_job(i: int) -> None:
            body = {
                "Inputs": {
                    "input1": {"ConnectionString": blob_cs, "RelativeLocation": "bench/in.csv"}
                },
                "Outputs": {
                    "output1": {
                        "ConnectionString": blob_cs,
                        "RelativeLocation": f"bench/m/{i}.ilearner",
                    },
                    "output2": {
                        "ConnectionString": blob_cs,
                        "RelativeLocation": f"bench/m/{i}.csv",
                    },
                },
            }
            async with http.post(f"{base}/jobs?api-version=2.0", json=body, headers=auth) as r:
                assert r.status == 200, await r.text()
                job_id = await r.json()
            async with http.post(f"{base}/jobs/{job_id}/start?api-version=2.0", headers=auth) as r:
                assert r.status == 200
            job_ids.append(job_id)

        began = time.perf_counter()
        latencies = await _gather_limited(args.jobs, args.concurrency, one_job)
        submitted = time.perf_counter() - began
        while True:
            async with http.get(f"{url}/_emulator/stats") as response:
                stats = (await response.json())["web_services"]["Bike Rental Training"]
            if stats["jobs_finished"] + stats["jobs_failed"] >= args.jobs:
                break
            await asyncio.sleep(0.05)
        finished = time.perf_counter() - began
        assert stats["jobs_failed"] == 0, stats
        bes = _summary(args.jobs, finished, latencies)
        bes["submit_start_per_second"] = round(args.jobs / submitted, 1)
        bes["max_concurrent_running"] = stats["max_concurrent_running"]

        async def one_status(i: int) -> None:
            job_id = job_ids[i % len(job_ids)]
            async with http.get(f"{base}/jobs/{job_id}?api-version=2.0", headers=auth) as r:
                assert (await r.json())["StatusCode"] == "Finished"

        began = time.perf_counter()
        latencies = await _gather_limited(args.status_requests, args.concurrency, one_status)
        status = _summary(args.status_requests, time.perf_counter() - began, latencies)

        rrs: dict[str, Any] = {}
        api = f"{url}/workspaces/{ws['id']}/services/{s_end['id']}/execute?api-version=2.0"
        rrs_auth = {"Authorization": f"Bearer {s_end['primary_key']}"}
        for rows in (1, 100):
            data = bike_rental_rows("bench", rows, seed=1)
            columns = list(data[0])
            body = {
                "Inputs": {
                    "input1": {
                        "ColumnNames": columns,
                        "Values": [[r[c] for c in columns] for r in data],
                    }
                },
                "GlobalParameters": {},
            }

            async def one_call(i: int, body: dict[str, Any] = body) -> None:
                async with http.post(api, json=body, headers=rrs_auth) as r:
                    assert r.status == 200, await r.text()
                    await r.read()

            began = time.perf_counter()
            latencies = await _gather_limited(args.rrs_requests, args.rrs_concurrency, one_call)
            rrs[f"rows_{rows}"] = _summary(
                args.rrs_requests, time.perf_counter() - began, latencies
            )
    return {"bes_instant": bes, "bes_status": status, "rrs": rrs}


def main() -> None:
    """Start the services, run the benchmark, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--status-requests", type=int, default=5000)
    parser.add_argument("--rrs-requests", type=int, default=5000)
    parser.add_argument("--rrs-concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        azurite_port, emulator_port = free_port(), free_port()
        azurite = ManagedProcess(
            "azurite",
            azurite_argv(ensure_azurite(), azurite_port),
            azurite_port,
            Path(tmp) / "a.log",
        )
        emulator = ManagedProcess(
            "emulator",
            [
                console_script("retrainq-emulator"),
                "--port",
                str(emulator_port),
                "--log-level",
                "WARNING",
            ],
            emulator_port,
            Path(tmp) / "e.log",
        )
        azurite.start(timeout=60)
        emulator.start(timeout=60)
        try:
            figures = asyncio.run(
                bench(
                    f"http://127.0.0.1:{emulator_port}",
                    azurite_connection_string(azurite_port),
                    args,
                )
            )
        finally:
            emulator.stop()
            azurite.stop()
    figures["args"] = vars(args)
    figures["machine"] = {
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "azure-storage-blob": version("azure-storage-blob"),
        "scikit-learn": version("scikit-learn"),
        "cpus": __import__("os").cpu_count(),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
