"""BlobStore against a real Azurite: round trips, bounded reads and blob-scoped read SAS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from pydantic import SecretStr

from worker.blobs import (
    BlobNotFoundError,
    BlobStore,
    BlobTooLargeError,
    account_credentials,
    evaluation_path,
    model_path,
    training_data_path,
    validate_path,
)


@pytest.fixture
async def store(blob_connection_string: str) -> AsyncIterator[BlobStore]:
    """A store on a fresh container of the test Azurite."""
    container = f"t{uuid.uuid4().hex[:12]}"
    async with BlobStore(SecretStr(blob_connection_string), container, retry_total=0) as store:
        await store.ensure_container()
        yield store


async def test_upload_download_round_trip(store: BlobStore) -> None:
    """Bytes written to a tenant path read back identically; exists() follows."""
    path = training_data_path("acme-1", "v1")
    assert path == "data/acme-1/v1.csv"
    assert not await store.exists(path)
    await store.upload(path, b"season,temp,cnt\n1,0.2,100\n")
    assert await store.exists(path)
    assert await store.download(path) == b"season,temp,cnt\n1,0.2,100\n"
    await store.upload(path, b"")
    assert await store.download(path) == b""


async def test_ensure_container_is_repeatable(store: BlobStore) -> None:
    """A second ensure_container on an existing container is fine."""
    await store.ensure_container()


async def test_missing_blob_is_not_found(store: BlobStore) -> None:
    """Reading a blob that was never written raises BlobNotFoundError (not transient)."""
    with pytest.raises(BlobNotFoundError) as caught:
        await store.download(model_path("acme", "nope"))
    assert not caught.value.transient
    assert caught.value.path == "models/acme/nope.ilearner"


async def test_download_respects_the_size_cap(store: BlobStore) -> None:
    """A blob one byte over the cap is refused; one at the cap is read whole."""
    path = evaluation_path("acme", "r1")
    await store.upload(path, b"x" * 100)
    assert await store.download(path, max_bytes=100) == b"x" * 100
    with pytest.raises(BlobTooLargeError):
        await store.download(path, max_bytes=99)


async def test_read_sas_reads_over_plain_http(store: BlobStore) -> None:
    """The SAS location's URL serves the blob to anyone, without other credentials."""
    path = model_path("acme", "r1")
    await store.upload(path, b"model-bytes")
    location = store.read_sas(path, timedelta(minutes=5))
    assert location.relative_location == f"{store.container}/{path}"
    assert location.uri.endswith(f"/devstoreaccount1/{store.container}/{path}")
    async with (
        aiohttp.ClientSession() as session,
        session.get(location.url.get_secret_value()) as response,
    ):
        assert response.status == 200
        assert await response.read() == b"model-bytes"
    assert "sig=" not in repr(location)


async def test_read_sas_cannot_write(store: BlobStore) -> None:
    """A PUT with the read SAS is refused and the blob is unchanged."""
    path = model_path("acme", "r1")
    await store.upload(path, b"original")
    url = store.read_sas(path, timedelta(minutes=5)).url.get_secret_value()
    async with (
        aiohttp.ClientSession() as session,
        session.put(url, data=b"overwritten", headers={"x-ms-blob-type": "BlockBlob"}) as response,
    ):
        assert response.status == 403
    assert await store.download(path) == b"original"


async def test_read_sas_is_scoped_to_one_blob(store: BlobStore) -> None:
    """The SAS of one tenant's model does not read another blob, even a sibling."""
    mine, other = model_path("acme", "r1"), model_path("globex", "r1")
    await store.upload(mine, b"mine")
    await store.upload(other, b"theirs")
    location = store.read_sas(mine, timedelta(minutes=5))
    sas = location.sas_blob_token.get_secret_value() if location.sas_blob_token else ""
    forged = f"{location.base_location}{store.container}/{other}{sas}"
    async with aiohttp.ClientSession() as session, session.get(forged) as response:
        assert response.status == 403


async def test_reference_names_container_and_connection_string(
    store: BlobStore, blob_connection_string: str
) -> None:
    """BES references carry the store's connection string and container-relative path."""
    reference = store.reference(model_path("acme", "r9"))
    payload = reference.to_payload()
    assert payload == {
        "ConnectionString": blob_connection_string,
        "RelativeLocation": f"{store.container}/models/acme/r9.ilearner",
    }


@pytest.mark.parametrize(
    ("tenant_id", "name"),
    [
        ("../etc", "r1"),
        ("acme/x", "r1"),
        ("Acme", "r1"),
        ("acme", "../r1"),
        ("acme", "a/b"),
        ("acme", ".."),
        ("acme", ""),
        ("", "r1"),
    ],
)
def test_tenant_paths_cannot_escape(tenant_id: str, name: str) -> None:
    """Ids with slashes, dots-dots, capitals or nothing at all are refused."""
    with pytest.raises(ValueError, match="not a"):
        model_path(tenant_id, name)
    with pytest.raises(ValueError, match="not a"):
        training_data_path(tenant_id, name)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/data/x.csv",
        "data//x.csv",
        "data/../x.csv",
        "data/x/..",
        "data\\x.csv",
        "a/b c",
        "models/acme/..hidden",
        "x" * 1025,
    ],
)
async def test_store_refuses_odd_paths(store: BlobStore, path: str) -> None:
    """Every store operation validates its path before touching storage."""
    with pytest.raises(ValueError, match="blob path"):
        validate_path(path)
    with pytest.raises(ValueError, match="blob path"):
        await store.upload(path, b"x")
    with pytest.raises(ValueError, match="blob path"):
        store.read_sas(path, timedelta(minutes=1))


def test_account_credentials_from_connection_strings() -> None:
    """Account name and key come from the string; dev storage maps to Azurite's account."""
    name, key = account_credentials(
        SecretStr("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc==;")
    )
    assert (name, key.get_secret_value()) == ("acct", "abc==")
    assert account_credentials(SecretStr("UseDevelopmentStorage=true"))[0] == "devstoreaccount1"
    with pytest.raises(ValueError, match="AccountKey"):
        account_credentials(SecretStr("BlobEndpoint=https://x/;SharedAccessSignature=sv=1"))
