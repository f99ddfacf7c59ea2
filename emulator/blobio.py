"""Blob and URL I/O of the emulator: BES inputs/outputs, result SAS tokens, model downloads.

A blob reference is given either by ``ConnectionString`` + ``RelativeLocation`` (read and
written with azure-storage-blob, one cached client per connection string) or by
``BaseLocation`` + ``RelativeLocation`` + ``SasBlobToken`` (plain HTTP). Model locations of
PATCH and ARM assets are URLs fetched over HTTP. Results carry a fresh read-only SAS scoped
to one blob, signed with the account key of the output's connection string.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import aiohttp
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import BlobSasPermissions, generate_blob_sas
from azure.storage.blob.aio import BlobServiceClient


class BlobError(Exception):
    """A blob or URL could not be read or written; ``code`` is the Azure ML detail code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.args[0]}"


@dataclass(frozen=True)
class BlobRef:
    """One BES input or output: where the blob is and how to reach it."""

    relative_location: str
    connection_string: str | None = None
    base_location: str | None = None
    sas_blob_token: str | None = None

    @property
    def path(self) -> str:
        """``container/blob`` without a leading slash."""
        return self.relative_location.lstrip("/")

    @property
    def container(self) -> str:
        """The container name."""
        return self.path.split("/", 1)[0]

    @property
    def blob(self) -> str:
        """The blob name inside the container."""
        return self.path.split("/", 1)[1]

    def sas_url(self) -> str:
        """Full URL of a SAS reference."""
        base = (self.base_location or "").rstrip("/") + "/"
        token = self.sas_blob_token or ""
        if token and not token.startswith("?"):
            token = "?" + token
        return base + self.path + token


def location_url(base: str, relative: str, sas: str | None) -> str:
    """``BaseLocation + RelativeLocation + SasBlobToken`` with tolerant slashes and ``?``."""
    url = base.rstrip("/") + "/" + relative.lstrip("/")
    if sas:
        url += sas if sas.startswith(("?", "&")) else "?" + sas
    return url


class BlobStore:
    """Cached storage clients and an HTTP session; owned by the app, closed on shutdown."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._services: dict[str, BlobServiceClient] = {}

    def service(self, connection_string: str) -> BlobServiceClient:
        """The client of one connection string; ``BlobError`` when it is malformed."""
        client = self._services.get(connection_string)
        if client is None:
            try:
                client = BlobServiceClient.from_connection_string(
                    connection_string, retry_total=1, retry_backoff_factor=0.2
                )
            except (ValueError, AzureError) as exc:
                raise BlobError("InvalidBlobConnectionString", str(exc)) from exc
            if getattr(client.credential, "account_key", None) is None:
                raise BlobError(
                    "InvalidBlobConnectionString", "The connection string has no AccountKey."
                )
            self._services[connection_string] = client
        return client

    async def read(self, ref: BlobRef) -> bytes:
        """The blob's content."""
        if ref.connection_string is None:
            return await self.fetch_url(ref.sas_url())
        blob = self.service(ref.connection_string).get_blob_client(ref.container, ref.blob)
        try:
            downloader = await blob.download_blob()
            return await downloader.readall()
        except ResourceNotFoundError as exc:
            raise BlobError("BlobNotFound", f"The blob '{ref.path}' was not found.") from exc
        except AzureError as exc:
            raise BlobError("BlobNotFound", f"The blob '{ref.path}' cannot be read: {exc}") from exc

    async def write(self, ref: BlobRef, data: bytes) -> None:
        """Create or overwrite the blob (creating its container if needed)."""
        if ref.connection_string is None:
            if await self._put_url(ref.sas_url(), data) == 404:
                raise BlobError("BlobWriteFailed", f"The container of '{ref.path}' is missing.")
            return
        # A plain PUT with a write SAS costs far less CPU than the SDK's upload pipeline.
        url = self._signed_url(ref, BlobSasPermissions(create=True, write=True), 600)
        if await self._put_url(url, data) == 404:
            container = self.service(ref.connection_string).get_container_client(ref.container)
            # Another job may create it at the same time; the second PUT decides.
            with contextlib.suppress(AzureError):
                await container.create_container()
            if await self._put_url(url, data) == 404:
                raise BlobError("BlobWriteFailed", f"The container of '{ref.path}' is missing.")

    def _signed_url(self, ref: BlobRef, permission: BlobSasPermissions, ttl: int) -> str:
        service = self.service(str(ref.connection_string))
        token = generate_blob_sas(
            account_name=str(service.account_name),
            container_name=ref.container,
            blob_name=ref.blob,
            account_key=service.credential.account_key,
            permission=permission,
            expiry=datetime.now(UTC) + timedelta(seconds=ttl),
        )
        base = service.url.split("?", 1)[0].rstrip("/")
        return f"{base}/{quote(ref.container)}/{quote(ref.blob)}?{token}"

    def result_location(self, ref: BlobRef, ttl_seconds: int) -> dict[str, str | None]:
        """A BES ``Results`` entry with a fresh read-only SAS for this one blob."""
        if ref.connection_string is None:
            return {
                "ConnectionString": None,
                "BaseLocation": ref.base_location,
                "RelativeLocation": ref.relative_location,
                "SasBlobToken": ref.sas_blob_token,
            }
        service = self.service(ref.connection_string)
        token = generate_blob_sas(
            account_name=str(service.account_name),
            container_name=ref.container,
            blob_name=ref.blob,
            account_key=service.credential.account_key,
            permission=BlobSasPermissions(read=True),
            expiry=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
        )
        base = service.url.split("?", 1)[0]
        return {
            "ConnectionString": None,
            "BaseLocation": base if base.endswith("/") else base + "/",
            "RelativeLocation": ref.path,
            "SasBlobToken": "?" + token,
        }

    async def fetch_url(self, url: str) -> bytes:
        """GET a URL (a SAS blob URL, a data URI parameter, a model location)."""
        try:
            async with self._session.get(url) as response:
                if response.status == 404:
                    raise BlobError("BlobNotFound", f"{url.split('?')[0]} was not found (404).")
                if response.status >= 400:
                    raise BlobError(
                        "BlobNotFound",
                        f"{url.split('?')[0]} cannot be read: HTTP {response.status}.",
                    )
                return await response.read()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BlobError("BlobNotFound", f"{url.split('?')[0]} cannot be read: {exc}") from exc

    async def _put_url(self, url: str, data: bytes) -> int:
        """PUT a block blob; 404 (missing container) is returned, other errors raise."""
        headers = {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"}
        try:
            async with self._session.put(url, data=data, headers=headers) as response:
                if response.status == 404:
                    return 404
                if response.status >= 400:
                    raise BlobError(
                        "BlobWriteFailed",
                        f"{url.split('?')[0]} cannot be written: HTTP {response.status}.",
                    )
                return response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BlobError("BlobWriteFailed", f"{url.split('?')[0]}: {exc}") from exc

    async def close(self) -> None:
        """Close every cached storage client."""
        services, self._services = list(self._services.values()), {}
        for client in services:
            await client.close()
