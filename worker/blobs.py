"""Blob storage of one container: tenant-scoped paths, bounded reads and read-only blob SAS."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobBlock, BlobSasPermissions, generate_blob_sas
from azure.storage.blob.aio import BlobServiceClient
from pydantic import SecretStr

from worker.azureml.errors import TRANSIENT_STATUSES
from worker.azureml.locations import BlobLocation, BlobReference
from worker.logs import redact_text
from worker.naming import TENANT_ID
from worker.settings import BlobConfig

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
CLOCK_SKEW = timedelta(minutes=5)
# Azurite's development account; its key is public (Microsoft documents it).
_DEV_ACCOUNT = "devstoreaccount1"
_DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_PATH = 1024


class BlobStoreError(Exception):
    """A blob operation failed; ``transient`` says whether repeating it later may help."""

    def __init__(self, message: str, *, path: str | None = None, transient: bool = False):
        super().__init__(redact_text(message))
        self.path = path
        self.transient = transient


class BlobNotFoundError(BlobStoreError):
    """The blob does not exist."""


class BlobTooLargeError(BlobStoreError):
    """The blob is larger than the caller is willing to read."""


def _name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"{what} is not a valid name: {value!r}")
    return value


def _tenant(tenant_id: str) -> str:
    if not TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    return tenant_id


def validate_path(path: str) -> str:
    """``path`` checked to be a plain relative blob path: no ``..``, no empty or odd segments."""
    segments = path.split("/")
    if len(path) > _MAX_PATH or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise ValueError(f"not a valid blob path: {path!r}")
    if any(".." in s for s in segments):
        raise ValueError(f"blob path may not contain '..': {path!r}")
    return path


def training_data_path(tenant_id: str, version: str) -> str:
    """Where a tenant's training CSV of ``version`` lives: ``data/{tenant}/{version}.csv``."""
    return f"data/{_tenant(tenant_id)}/{_name(version, 'data version')}.csv"


def model_path(tenant_id: str, run_id: str) -> str:
    """Where a run's trained model goes: ``models/{tenant}/{run_id}.ilearner``."""
    return f"models/{_tenant(tenant_id)}/{_name(run_id, 'run id')}.ilearner"


def evaluation_path(tenant_id: str, run_id: str) -> str:
    """Where a run's Evaluate Model CSV goes: ``models/{tenant}/{run_id}.eval.csv``."""
    return f"models/{_tenant(tenant_id)}/{_name(run_id, 'run id')}.eval.csv"


def account_credentials(connection_string: SecretStr) -> tuple[str, SecretStr]:
    """Account name and key from a connection string (needed to sign SAS tokens)."""
    fields: dict[str, str] = {}
    for part in connection_string.get_secret_value().split(";"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return _DEV_ACCOUNT, SecretStr(_DEV_KEY)
    if not fields.get("accountname") or not fields.get("accountkey"):
        raise ValueError("the connection string has no AccountName and AccountKey to sign a SAS")
    return fields["accountname"], SecretStr(fields["accountkey"])


@contextmanager
def _translated(path: str | None) -> Iterator[None]:
    try:
        yield
    except ResourceNotFoundError as exc:
        raise BlobNotFoundError(f"blob not found: {path}", path=path) from exc
    except HttpResponseError as exc:
        status = exc.status_code or 0
        raise BlobStoreError(
            f"blob storage answered {status}: {exc.reason or type(exc).__name__}",
            path=path,
            transient=status in TRANSIENT_STATUSES,
        ) from exc
    except AzureError as exc:
        # Connection and timeout trouble below HTTP.
        raise BlobStoreError(
            f"blob storage unreachable: {type(exc).__name__}", path=path, transient=True
        ) from exc


class BlobStore:
    """One container of one storage account; owns its client (``async with`` or ``close()``)."""

    def __init__(
        self, connection_string: SecretStr, container: str, *, retry_total: int = 2
    ) -> None:
        if not _CONTAINER.fullmatch(container):
            raise ValueError(f"not a valid container name: {container!r}")
        self._connection_string = connection_string
        self._container = container
        self._service = BlobServiceClient.from_connection_string(
            connection_string.get_secret_value(),
            retry_total=retry_total,
            retry_backoff_factor=0.2,
        )

    @classmethod
    def from_config(cls, config: BlobConfig, *, retry_total: int = 2) -> Self:
        """A store for the configured account and container."""
        return cls(config.connection_string, config.container, retry_total=retry_total)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the underlying client and its connections."""
        await self._service.close()

    @property
    def connection_string(self) -> SecretStr:
        """The account's connection string (what BES ``Inputs``/``Outputs`` carry)."""
        return self._connection_string

    @property
    def container(self) -> str:
        """The container every path is relative to."""
        return self._container

    def relative_location(self, path: str) -> str:
        """``container/path``: the protocol's ``RelativeLocation`` of a blob."""
        return f"{self._container}/{validate_path(path)}"

    def reference(self, path: str) -> BlobReference:
        """A BES input or output reference to ``path`` by connection string."""
        return BlobReference(
            connection_string=self._connection_string,
            relative_location=self.relative_location(path),
        )

    async def ensure_container(self) -> None:
        """Create the container unless it exists."""
        with _translated(None):
            try:
                await self._service.get_container_client(self._container).create_container()
            except ResourceExistsError:
                return

    async def upload(self, path: str, data: bytes, *, overwrite: bool = True) -> None:
        """Write ``data`` to ``path``."""
        blob = self._service.get_blob_client(self._container, validate_path(path))
        with _translated(path):
            await blob.upload_blob(data, overwrite=overwrite)

    async def download(self, path: str, *, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
        """The blob's bytes; ``BlobTooLargeError`` when it holds more than ``max_bytes``."""
        blob = self._service.get_blob_client(self._container, validate_path(path))
        with _translated(path):
            try:
                # Ask for one byte past the cap: a longer answer proves the blob is too large.
                downloader = await blob.download_blob(offset=0, length=max_bytes + 1)
            except HttpResponseError as exc:
                if exc.status_code == 416:  # no byte range fits an empty blob
                    return b""
                raise
            if downloader.size > max_bytes:
                raise BlobTooLargeError(f"blob larger than {max_bytes} bytes: {path}", path=path)
            return await downloader.readall()

    async def chunks(self, path: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks, whatever its size (for streaming reads)."""
        blob = self._service.get_blob_client(self._container, validate_path(path))
        with _translated(path):
            try:
                downloader = await blob.download_blob()
            except HttpResponseError as exc:
                if exc.status_code == 416:  # an empty blob
                    return
                raise
            async for chunk in downloader.chunks():
                yield chunk

    async def stage_block(self, path: str, block_id: str, data: bytes) -> None:
        """Stage one block of a block blob (not visible until committed)."""
        blob = self._service.get_blob_client(self._container, validate_path(path))
        with _translated(path):
            await blob.stage_block(block_id, data, length=len(data))

    async def commit_blocks(self, path: str, block_ids: Sequence[str]) -> None:
        """Make the blob exactly the staged blocks ``block_ids``, in order."""
        blob = self._service.get_blob_client(self._container, validate_path(path))
        with _translated(path):
            await blob.commit_block_list([BlobBlock(block_id=i) for i in block_ids])

    async def exists(self, path: str) -> bool:
        """Whether a blob is stored at ``path``."""
        blob = self._service.get_blob_client(self._container, validate_path(path))
        with _translated(path):
            return bool(await blob.exists())

    def read_sas(self, path: str, ttl: timedelta) -> BlobLocation:
        """A read-only SAS for this one blob, valid for ``ttl``, as a protocol location."""
        if ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        account, key = account_credentials(self._connection_string)
        now = datetime.now(UTC)
        token = generate_blob_sas(
            account_name=account,
            container_name=self._container,
            blob_name=validate_path(path),
            account_key=key.get_secret_value(),
            permission=BlobSasPermissions(read=True),
            start=now - CLOCK_SKEW,
            expiry=now + ttl,
        )
        return BlobLocation(
            base_location=self._service.url.split("?", 1)[0],
            relative_location=self.relative_location(path),
            sas_blob_token=SecretStr(f"?{token}"),
        )
