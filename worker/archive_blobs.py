"""Listing and deleting the archive's blobs by prefix (a tenant's parts, its data blobs).

``BlobStore`` reads and writes single blobs; the archive also needs to find a tenant's
parts and to erase everything under a tenant's prefixes, which this does with its own
container client of the same account and container.
"""

from __future__ import annotations

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient

from worker.blobs import BlobStore, BlobStoreError


class ArchiveBlobs:
    """Blobs under a prefix of ``blobs``' container: listed, or deleted."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def _client(self) -> ContainerClient:
        return ContainerClient.from_connection_string(
            self.blobs.connection_string.get_secret_value(), self.blobs.container
        )

    async def paths(self, prefix: str) -> list[str]:
        """Paths of the blobs whose names start with ``prefix``, in name order."""
        try:
            async with self._client() as container:
                return [blob.name async for blob in container.list_blobs(name_starts_with=prefix)]
        except AzureError as exc:
            raise BlobStoreError(f"listing {prefix} failed: {exc}", transient=True) from exc

    async def delete_under(self, prefix: str) -> int:
        """Delete every blob under ``prefix``: how many were deleted (a blob gone meanwhile
        is not counted)."""
        deleted = 0
        try:
            async with self._client() as container:
                names = [blob.name async for blob in container.list_blobs(name_starts_with=prefix)]
                for name in names:
                    try:
                        await container.delete_blob(name, delete_snapshots="include")
                    except ResourceNotFoundError:
                        continue
                    deleted += 1
        except AzureError as exc:
            raise BlobStoreError(f"deleting {prefix} failed: {exc}", transient=True) from exc
        return deleted
