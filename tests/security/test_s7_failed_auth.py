"""S7: a burst of wrong keys against a real ``retrainq-api`` with the default failed-login
limits: past the limit every one is 429 + Retry-After, while valid keys of other callers are
answered as before."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable

import aiohttp

from producer.api.settings import ApiSettings
from tests.integration.conftest_api import ADMIN, bearer
from tests.security.support import ServedApi, clear_of_window_edge, report, size

DEFAULTS = ApiSettings.model_fields
WINDOW = 3600  # the default limits, counted over an hour so that the burst fits one window


async def _get(url: str, address: str, key: str) -> tuple[int, str | None]:
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{url}/v1/me", headers=bearer(key)) as answer,
    ):
        return answer.status, answer.headers.get("Retry-After")


async def test_a_burst_of_wrong_keys_is_limited_and_others_are_not_slowed(
    served_api: Callable[..., ServedApi],
) -> None:
    """600 distinct wrong keys from one address: 30 x 401, then 429 with Retry-After."""
    per_address = DEFAULTS["failed_auth_per_address"].default
    served = served_api(
        RETRAINQ_FAILED_AUTH_PER_ADDRESS=str(per_address),
        RETRAINQ_FAILED_AUTH_PER_KEY_PREFIX=str(DEFAULTS["failed_auth_per_key_prefix"].default),
        RETRAINQ_FAILED_AUTH_WINDOW_SECONDS=str(WINDOW),
    )
    async with (
        aiohttp.ClientSession() as admin,
        admin.post(
            f"{served.url}/v1/tenants",
            json={"id": "good", "target": {"kind": "new", "template_service": "t"}, "train": False},
            headers=ADMIN,
        ) as created,
    ):
        good_key = json.loads(await created.read())["api_key"]
    burst = size(600, 3000)
    await clear_of_window_edge(WINDOW, 120)  # the whole burst counts in one window
    answers = []
    for start in range(0, burst, 50):  # 50 at a time, as a scanning client would
        answers += await asyncio.gather(
            *(_get(served.url, "127.0.0.2", f"guess-{i:06d}") for i in range(start, start + 50))
        )
    counts = Counter(status for status, _ in answers)
    began = time.perf_counter()
    others = [await _get(served.url, "127.0.0.3", good_key) for _ in range(20)]
    other_seconds = (time.perf_counter() - began) / len(others)
    async with aiohttp.ClientSession() as http, http.get(f"{served.url}/metrics") as metrics:
        on_api_port = metrics.status
    listening = next(
        json.loads(line) for line in served.log_text().splitlines() if "api.listening" in line
    )
    metrics_url = f"http://127.0.0.1:{listening['metrics_port']}/metrics"
    async with aiohttp.ClientSession() as http, http.get(metrics_url) as metrics:
        exposition = await metrics.text()
    report(
        "S7-failed-auth",
        wrong_keys=burst,
        statuses=dict(counts),
        limit_per_address=per_address,
        valid_from_other_address=Counter(s for s, _ in others),
        valid_seconds_each=round(other_seconds, 4),
        metrics_on_api_port=on_api_port,
    )
    assert counts == {401: per_address, 429: burst - per_address}
    assert all(wait and int(wait) >= 1 for status, wait in answers if status == 429)
    assert {status for status, _ in others} == {200}
    assert on_api_port == 401
    assert f"retrainq_api_auth_limited_total {float(burst - per_address)}" in exposition
    assert (
        f'retrainq_api_failed_auth_limit{{limit="per_address"}} {float(per_address)}' in exposition
    )
