"""Typed keys of the API's application and request state."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web

from producer.api.settings import ApiSettings
from worker.blobs import BlobStore
from worker.queue import StepQueue
from worker.schedules import Schedules
from worker.store import Store


@dataclass(frozen=True)
class Principal:
    """Who is calling: an admin, or one tenant; ``key_id`` names the key for rate limits."""

    key_id: str
    tenant_id: str | None = None

    @property
    def admin(self) -> bool:
        """Whether this is an admin key (sees every tenant)."""
        return self.tenant_id is None


SETTINGS = web.AppKey("settings", ApiSettings)
REDIS = web.AppKey("redis", aioredis.Redis)
STORE = web.AppKey("store", Store)
QUEUE = web.AppKey("queue", StepQueue)
SCHEDULES = web.AppKey("schedules", Schedules)
BLOBS = web.AppKey("blobs", BlobStore)
PRINCIPAL = web.RequestKey("principal", Principal)
