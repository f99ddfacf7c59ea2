"""retrainq's pooled scorer: one Azure ML v2 online deployment serves the models of many tenants.

A request names its tenant (and may name a version): ``{"tenant": "rental001", "rows": [{...}],
"version": "42"}``. Without a version the scorer serves the version the tenant's pointer tag
names (``retrainq-deployed-version`` on the model container ``rq-{tenant}``), read from the
workspace's model registry and kept for ``RETRAINQ_POINTER_TTL_SECONDS``. It loads a version's
model from the blob its ``modelUri`` names (``azureml://…/datastores/{ds}/paths/{path}``),
keeps the ``RETRAINQ_MODEL_CACHE`` most recently used models, and answers which version
served: ``{"tenant", "version", "source": "pointer" | "explicit", "predictions": [...]}``.

Azure ML calls ``init()`` once and ``run(raw)`` per request. Settings come from the
deployment's environment variables:

- ``RETRAINQ_WORKSPACE_URL``: the workspace's ARM URL (``https://management.azure.com/
  subscriptions/…/workspaces/{ws}``); ``RETRAINQ_API_VERSION`` (``2025-12-01``);
- ``RETRAINQ_POOL``: when set, a tenant whose container's ``retrainq-pool`` tag names another
  pool is refused;
- credentials: the deployment's managed identity (``azure-identity``; it needs read access to
  the workspace's models and ``Storage Blob Data Reader`` on the datastore's account), or
  ``RETRAINQ_ARM_TOKEN`` and ``RETRAINQ_STORAGE_CONNECTION_STRING`` where no identity exists
  (the emulator, local runs).

It reads models in the JSON linear format retrainq's training script writes
(``retrainq-emulator.linear/1``). This file imports nothing from retrainq: it ships as the
deployment's code.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

POINTER_TAG = "retrainq-deployed-version"
POOL_TAG = "retrainq-pool"
MODEL_FORMAT = "retrainq-emulator.linear/1"
MAX_ROWS = 1000
_TENANT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DATASTORE_URI = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resource[Gg]roups/[^/]+/"
    r"(?:providers/Microsoft\.MachineLearningServices/)?workspaces/[^/]+/)?"
    r"datastores/(?P<datastore>[A-Za-z0-9_]+)/paths/(?P<path>\S+)$"
)


class ScoreError(Exception):
    """A request the scorer cannot answer: an HTTP-like status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- the model format --------------------------------------------------------------------


def _level(cell: str) -> str:
    text = cell.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


@dataclass(frozen=True)
class LinearModel:
    """A linear model over standardised numbers and one-hot categories (interactions a*b)."""

    kind: str
    numeric: list[str]
    categories: list[tuple[str, list[str]]]
    means: list[float]
    scales: list[float]
    coefficients: list[float]
    intercept: float
    classes: list[str]

    @classmethod
    def parse(cls, data: bytes) -> LinearModel:
        """The model in ``data``; ``ScoreError`` 424 when it is not one."""
        try:
            doc = json.loads(data)
            if doc.get("format") != MODEL_FORMAT:
                raise ValueError(f"not a {MODEL_FORMAT} model")
            model = cls(
                kind=str(doc["kind"]),
                numeric=[str(f) for f in doc["numeric_features"]],
                categories=[
                    (str(c["name"]), [str(x) for x in c["levels"]])
                    for c in doc["categorical_features"]
                ],
                means=[float(x) for x in doc["means"]],
                scales=[float(x) for x in doc["scales"]],
                coefficients=[float(x) for x in doc["coefficients"]],
                intercept=float(doc["intercept"]),
                classes=[str(c) for c in doc.get("classes", [])],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ScoreError(424, f"the model cannot be loaded: {exc}") from exc
        width = len(model.numeric) + sum(len(levels) for _, levels in model.categories)
        if width != len(model.coefficients) or model.kind not in (
            "regression",
            "binary_classification",
        ):
            raise ScoreError(424, "the model cannot be loaded: coefficients do not fit")
        return model

    def _cell(self, row: Mapping[str, Any], column: str) -> str:
        value = row.get(column)
        if value is None:
            raise ScoreError(400, f"a row has no column '{column}'")
        return str(value)

    def predict(self, row: Mapping[str, Any]) -> float:
        """The regression value, or the positive class's probability."""
        total = self.intercept
        for j, column in enumerate(self.numeric):
            try:
                value = float(self._cell(row, column))
            except ValueError as exc:
                raise ScoreError(400, f"column '{column}' is not a number") from exc
            total += (value - self.means[j]) / self.scales[j] * self.coefficients[j]
        offset = len(self.numeric)
        for column, levels in self.categories:
            level = "|".join(_level(self._cell(row, name)) for name in column.split("*"))
            if level in levels:
                total += self.coefficients[offset + levels.index(level)]
            offset += len(levels)
        if self.kind == "binary_classification":
            return 1.0 / (1.0 + math.exp(-total))
        return total

    def score(self, row: Mapping[str, Any]) -> dict[str, str]:
        """Azure ML's Score Model columns for one row."""
        value = self.predict(row)
        if self.kind == "binary_classification":
            negative, positive = self.classes
            label = positive if value >= 0.5 else negative
            return {"Scored Labels": label, "Scored Probabilities": repr(value)}
        return {"Scored Labels": repr(value)}


# --- where pointers and models come from -------------------------------------------------


class Registry(Protocol):
    """The workspace's model registry, as the scorer reads it."""

    def container_tags(self, tenant: str) -> dict[str, str]:
        """Tags of the tenant's container (``ScoreError`` 404 when there is none)."""
        ...

    def model_uri(self, tenant: str, version: str) -> str:
        """The ``modelUri`` of one version (``ScoreError`` 404 when there is none)."""
        ...

    def read_model(self, uri: str) -> bytes:
        """The bytes of the model blob ``uri`` names."""
        ...


class LruModels:
    """The most recently used models, at most ``capacity`` of them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.models: OrderedDict[tuple[str, str], LinearModel] = OrderedDict()
        self.loads = 0

    def get(self, key: tuple[str, str], load: Callable[[], LinearModel]) -> LinearModel:
        """The cached model, or ``load()``'s (evicting the least recently used)."""
        model = self.models.get(key)
        if model is not None:
            self.models.move_to_end(key)
            return model
        model = load()
        self.loads += 1
        self.models[key] = model
        while len(self.models) > self.capacity:
            self.models.popitem(last=False)
        return model


class Scorer:
    """Resolves tenant → version, loads and caches models, and scores rows."""

    def __init__(
        self,
        registry: Registry,
        *,
        cache_size: int = 64,
        pointer_ttl: float = 10.0,
        pool: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.models = LruModels(cache_size)
        self.pointer_ttl = pointer_ttl
        self.pool = pool
        self.clock = clock
        self.pointers: dict[str, tuple[float, str | None]] = {}
        self.lock = threading.Lock()

    def pointed(self, tenant: str) -> str | None:
        """The version the tenant's pointer names, as read at most ``pointer_ttl`` ago."""
        now = self.clock()
        with self.lock:
            seen = self.pointers.get(tenant)
        if seen is not None and now - seen[0] < self.pointer_ttl:
            return seen[1]
        tags = self.registry.container_tags(tenant)
        if self.pool is not None and tags.get(POOL_TAG) not in (None, self.pool):
            raise ScoreError(404, f"tenant {tenant} is served by another pool")
        version = tags.get(POINTER_TAG) or None
        with self.lock:
            self.pointers[tenant] = (now, version)
        return version

    def score(self, request: object) -> dict[str, Any]:
        """The answer to one request (``ScoreError`` for one that cannot be served)."""
        if not isinstance(request, dict):
            raise ScoreError(400, "the body must be a JSON object")
        tenant, rows, explicit = request.get("tenant"), request.get("rows"), request.get("version")
        if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
            raise ScoreError(400, "'tenant' must be a tenant id")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ScoreError(400, "'rows' must be a list of objects")
        if len(rows) > MAX_ROWS:
            raise ScoreError(400, f"at most {MAX_ROWS} rows per request")
        if explicit is not None:
            version = str(explicit)
            if not _VERSION.fullmatch(version):
                raise ScoreError(400, "'version' is not a model version")
        else:
            pointed = self.pointed(tenant)
            if pointed is None:
                raise ScoreError(404, f"tenant {tenant} has no deployed version")
            version = pointed

        def load() -> LinearModel:
            uri = self.registry.model_uri(tenant, version)
            return LinearModel.parse(self.registry.read_model(uri))

        model = self.models.get((tenant, version), load)
        return {
            "tenant": tenant,
            "version": version,
            "source": "explicit" if explicit is not None else "pointer",
            "predictions": [model.score(row) for row in rows],
        }


# --- the workspace over HTTP (ARM) and its blobs -----------------------------------------


def datastore_of(uri: str) -> tuple[str, str]:
    """(datastore, path) of an ``azureml://…/datastores/{ds}/paths/{path}`` URI."""
    match = _DATASTORE_URI.fullmatch(uri)
    if match is None:
        raise ScoreError(424, "the model's modelUri is not a datastore path")
    return match["datastore"], match["path"].lstrip("/")


class ArmRegistry:
    """The registry and datastores of one workspace through ARM, blobs through Azure Storage."""

    def __init__(
        self,
        workspace_url: str,
        token: Callable[[], str],
        blob_reader: Callable[[Mapping[str, Any], str], bytes],
        api_version: str = "2025-12-01",
        timeout: float = 10.0,
    ) -> None:
        if not workspace_url.startswith(("https://", "http://")):
            raise ValueError("RETRAINQ_WORKSPACE_URL must be an http(s) URL")
        self.workspace_url = workspace_url.rstrip("/")
        self.token = token
        self.blob_reader = blob_reader
        self.api_version = api_version
        self.timeout = timeout
        self.datastores: dict[str, Mapping[str, Any]] = {}

    def _get(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 (an http(s) URL, checked when built)
            f"{self.workspace_url}/{path}?api-version={self.api_version}",
            headers={"Authorization": f"Bearer {self.token()}", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310 (as above)
                body = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise ScoreError(404, f"not found in the registry: {path}") from exc
            raise ScoreError(503, f"the registry answered {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise ScoreError(503, f"the registry cannot be read: {exc}") from exc
        if not isinstance(body, dict):
            raise ScoreError(503, "the registry answered no object")
        return body

    def container_tags(self, tenant: str) -> dict[str, str]:
        """Tags of ``models/rq-{tenant}``."""
        body = self._get(f"models/rq-{tenant}")
        tags = (body.get("properties") or {}).get("tags") or {}
        return {str(k): str(v) for k, v in tags.items()}

    def model_uri(self, tenant: str, version: str) -> str:
        """``modelUri`` of ``models/rq-{tenant}/versions/{version}``."""
        body = self._get(f"models/rq-{tenant}/versions/{version}")
        uri = (body.get("properties") or {}).get("modelUri")
        if not isinstance(uri, str):
            raise ScoreError(424, "the model version has no modelUri")
        return uri

    def read_model(self, uri: str) -> bytes:
        """The blob behind the datastore URI (the datastore read once)."""
        name, path = datastore_of(uri)
        if name not in self.datastores:
            self.datastores[name] = self._get(f"datastores/{name}").get("properties") or {}
        return self.blob_reader(self.datastores[name], path)


def blob_reader(connection_string: str | None) -> Callable[[Mapping[str, Any], str], bytes]:
    """Reads ``container/path`` of a datastore's account: with the connection string when
    given (Azurite, local), else with the deployment's managed identity."""
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobServiceClient

    if connection_string:
        service = BlobServiceClient.from_connection_string(connection_string)

        def of(props: Mapping[str, Any]) -> BlobServiceClient:
            del props  # one account: the connection string's
            return service
    else:
        from azure.identity import ManagedIdentityCredential

        credential = ManagedIdentityCredential()

        def of(props: Mapping[str, Any]) -> BlobServiceClient:
            endpoint = props.get("endpoint", "core.windows.net")
            url = f"{props.get('protocol', 'https')}://{props['accountName']}.blob.{endpoint}"
            return BlobServiceClient(url, credential=credential)

    def read(props: Mapping[str, Any], path: str) -> bytes:
        try:
            blob = of(props).get_blob_client(str(props["containerName"]), path)
            return bytes(blob.download_blob().readall())
        except (AzureError, KeyError) as exc:
            raise ScoreError(424, f"the model blob cannot be read: {type(exc).__name__}") from exc

    return read


def arm_token(static: str | None) -> Callable[[], str]:
    """ARM bearer tokens: a fixed one when given, else the managed identity's."""
    if static:
        return lambda: static
    from azure.identity import ManagedIdentityCredential

    credential = ManagedIdentityCredential()
    return lambda: credential.get_token("https://management.azure.com/.default").token


def from_environment(env: Mapping[str, str]) -> Scorer:
    """A scorer configured by the deployment's environment variables."""
    registry = ArmRegistry(
        env["RETRAINQ_WORKSPACE_URL"],
        arm_token(env.get("RETRAINQ_ARM_TOKEN")),
        blob_reader(env.get("RETRAINQ_STORAGE_CONNECTION_STRING")),
        api_version=env.get("RETRAINQ_API_VERSION", "2025-12-01"),
    )
    return Scorer(
        registry,
        cache_size=int(env.get("RETRAINQ_MODEL_CACHE", "64")),
        pointer_ttl=float(env.get("RETRAINQ_POINTER_TTL_SECONDS", "10")),
        pool=env.get("RETRAINQ_POOL") or None,
    )


# --- Azure ML's entry points -------------------------------------------------------------

_SCORER: Scorer | None = None


def init() -> None:
    """Azure ML calls this once per process: build the scorer from the environment."""
    global _SCORER  # the scoring-script contract keeps its state in the module
    _SCORER = from_environment(os.environ)


def answer(body: dict[str, Any]) -> Any:
    """``body`` as the inference server sends it: an error with its HTTP status where Azure
    ML's ``AMLResponse`` is there (in a deployment), else the body itself (the emulator
    answers ``{"error", "status"}`` with that status)."""
    status = body.get("status") if "error" in body else None
    if not isinstance(status, int):
        return body
    try:
        from azureml.contrib.services.aml_response import (  # type: ignore[import-not-found]  # only in a deployment
            AMLResponse,
        )
    except ImportError:
        return body
    return AMLResponse(json.dumps(body), status, json_str=True)


def run(raw_data: str) -> Any:
    """Azure ML calls this per request; errors are answered as ``{"error", "status"}``."""
    if _SCORER is None:
        return answer({"error": "the scorer was not initialised", "status": 500})
    try:
        return _SCORER.score(json.loads(raw_data))
    except ValueError:
        return answer({"error": "the body is not JSON", "status": 400})
    except ScoreError as exc:
        return answer({"error": exc.message, "status": exc.status})


def score_rows(scorer: Scorer, tenant: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Score ``rows`` for ``tenant`` with its pointed version (for local use and tests)."""
    return scorer.score({"tenant": tenant, "rows": [dict(r) for r in rows]})
