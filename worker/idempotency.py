"""``Idempotency-Key`` records: one caller's key, the fingerprint of its request, its answer.

A key is claimed before the request is handled (short TTL), completed with the answer (full
TTL) and compared by fingerprint on reuse: the same request gets the first answer again,
another request under the same key is refused (IETF draft "The Idempotency-Key HTTP Header
Field"). Only answers without secrets are kept (run and batch routes, never onboarding).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis

from worker.keys import Keys
from worker.redisio import reply

CLAIM_ATTEMPTS = 3


def fingerprint(method: str, path: str, body: object) -> str:
    """SHA-256 of the request: method, path and the body as canonical JSON (sorted keys)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class IdempotentAnswer:
    """An earlier request under a key: its fingerprint and answer (status 0: in progress)."""

    fingerprint: str
    status: int = 0
    body: str = ""

    def dumps(self) -> str:
        """The record as stored."""
        return json.dumps(
            {"fingerprint": self.fingerprint, "status": self.status, "body": self.body}
        )


class IdempotencyRecords:
    """Claim, complete and release ``Idempotency-Key`` records of one caller (hashed key id)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def claim(
        self, caller: str, key: str, print_: str, pending: timedelta
    ) -> IdempotentAnswer | None:
        """Claim ``key`` for a request; None when claimed, else the earlier request's record."""
        name = self.keys.idempotent_request(caller, key)
        for _ in range(CLAIM_ATTEMPTS):
            claim = IdempotentAnswer(print_).dumps()
            if await reply(self.redis.set(name, claim, nx=True, ex=pending)):
                return None
            raw = await reply(self.redis.get(name))
            if raw is not None:
                found = json.loads(raw)
                return IdempotentAnswer(
                    str(found["fingerprint"]), int(found["status"]), str(found["body"])
                )
        raise ConnectionError("idempotency record kept vanishing")  # expired thrice in a row

    async def complete(
        self, caller: str, key: str, answer: IdempotentAnswer, ttl: timedelta
    ) -> None:
        """Record what the claimed request answered; the record lives ``ttl`` from now."""
        name = self.keys.idempotent_request(caller, key)
        await reply(self.redis.set(name, answer.dumps(), ex=ttl))

    async def release(self, caller: str, key: str) -> None:
        """Drop a claim whose request failed, so that the client may try the key again."""
        await reply(self.redis.delete(self.keys.idempotent_request(caller, key)))
