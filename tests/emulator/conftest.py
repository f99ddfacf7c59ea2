"""Fixtures of the emulator tests: an in-process emulator on a free port and Azurite blobs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from azure.storage.blob.aio import BlobServiceClient

from emulator.app import create_app
from emulator.config import EmulatorConfig, EmulatorSettings, WebServiceConfig, default_config
from producer.devtools.processes import free_port

TRAINING = "Bike Rental Training"
SCORING = "Bike Rental Scoring"


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Emu:
    """A running emulator: its URL, default config and a client session."""

    url: str
    http: aiohttp.ClientSession
    config: EmulatorConfig

    @property
    def ws_id(self) -> str:
        """The workspace id."""
        return self.config.workspaces[0].id

    @property
    def ws_token(self) -> dict[str, str]:
        """Headers with the workspace authorization token."""
        return bearer(self.config.workspaces[0].authorization_token)

    def service(self, name: str) -> WebServiceConfig:
        """A configured classic web service by name."""
        return next(s for s in self.config.workspaces[0].web_services if s.name == name)

    def runtime(self, name: str = TRAINING, index: int = 0) -> tuple[str, dict[str, str]]:
        """(runtime base URL, auth headers) of a configured endpoint."""
        endpoint = self.service(name).endpoints[index]
        base = f"{self.url}/workspaces/{self.ws_id}/services/{endpoint.id}"
        return base, bearer(endpoint.primary_key)

    def management(self, name: str = SCORING) -> str:
        """Management URL of a web service."""
        return f"{self.url}/workspaces/{self.ws_id}/webservices/{self.service(name).id}"

    @property
    def arm_base(self) -> str:
        """ARM URL of the configured resource group's web services."""
        arm = self.config.arm
        return (
            f"{self.url}/subscriptions/{arm.subscription_id}/resourceGroups/"
            f"{arm.resource_groups[0]}/providers/Microsoft.MachineLearning/webServices"
        )

    @property
    def arm_auth(self) -> dict[str, str]:
        """Headers with the ARM bearer token."""
        return bearer(self.config.arm.token)

    async def json(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, parsed JSON or None) of one request."""
        async with self.http.request(method, url, **kwargs) as response:
            text = await response.text()
            return response.status, (await response.json(content_type=None)) if text else None

    async def put_settings(self, **values: Any) -> None:
        """Change run-time settings through the admin API."""
        status, _ = await self.json("PUT", f"{self.url}/_emulator/settings", json=values)
        assert status == 200

    async def stats(self) -> dict[str, Any]:
        """The admin counters."""
        _, body = await self.json("GET", f"{self.url}/_emulator/stats")
        assert isinstance(body, dict)
        return body


async def start_emulator(config: EmulatorConfig) -> tuple[TestServer, str]:
    """Serve ``config`` in this event loop on a free port."""
    port = free_port()
    settings = EmulatorSettings(_env_file=None, host="127.0.0.1", port=port, seed=7)
    server = TestServer(create_app(config, settings), host="127.0.0.1", port=port)
    await server.start_server()
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def emu() -> AsyncIterator[Emu]:
    """The emulator with the default config (provisioning settles in 50 ms)."""
    config = default_config()
    config.settings.provisioning_delay_seconds = 0.05
    server, url = await start_emulator(config)
    async with aiohttp.ClientSession() as http:
        yield Emu(url=url, http=http, config=config)
    await server.close()


@dataclass
class Blobs:
    """One fresh Azurite container for a test."""

    connection_string: str
    container: str
    service: BlobServiceClient

    def ref(self, path: str) -> dict[str, str]:
        """A BES blob reference (connection string form) to ``container/path``."""
        return {
            "ConnectionString": self.connection_string,
            "RelativeLocation": f"{self.container}/{path}",
        }

    async def upload(self, path: str, data: str | bytes) -> None:
        """Write a blob."""
        await self.service.get_blob_client(self.container, path).upload_blob(data, overwrite=True)

    async def download(self, path: str) -> bytes:
        """Read a blob."""
        downloader = await self.service.get_blob_client(self.container, path).download_blob()
        return bytes(await downloader.readall())

    async def download_text(self, path: str) -> str:
        """Read a blob as UTF-8 text."""
        return (await self.download(path)).decode()


@pytest.fixture
async def blobs(blob_connection_string: str) -> AsyncIterator[Blobs]:
    """A new container in Azurite."""
    service = BlobServiceClient.from_connection_string(blob_connection_string, retry_total=0)
    name = f"t{uuid.uuid4().hex[:20]}"
    await service.create_container(name)
    yield Blobs(blob_connection_string, name, service)
    await service.close()


async def wait_for_job(emu: Emu, base: str, headers: dict[str, str], job_id: str) -> Any:
    """Poll a BES job until it leaves NotStarted/Running; return the status body."""
    for _ in range(400):
        status, body = await emu.json(
            "GET", f"{base}/jobs/{job_id}?api-version=2.0", headers=headers
        )
        assert status == 200, body
        if body["StatusCode"] not in ("NotStarted", "Running"):
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")
