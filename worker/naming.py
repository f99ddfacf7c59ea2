"""Deterministic remote names for tenants: classic endpoint names that are always valid."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container

ENDPOINT_NAME = re.compile(r"^[a-z0-9]{1,24}$")
TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DEFAULT_ENDPOINT = "default"

_MAX_LENGTH = 24
_DIGEST_LENGTH = 10  # base36: about 51 bits, so distinct tenants practically never collide
_PREFIX_LENGTH = _MAX_LENGTH - _DIGEST_LENGTH
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_MAX_SALT = 1000


def _base36(data: bytes, length: int) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 36)
        chars.append(_ALPHABET[rest])
    return "".join(chars)


def _candidate(tenant_id: str, salt: int) -> str:
    prefix = re.sub(r"[^a-z0-9]", "", tenant_id.lower())[:_PREFIX_LENGTH]
    seed = tenant_id if salt == 0 else f"{tenant_id}#{salt}"
    digest = hashlib.sha256(seed.encode()).digest()
    return prefix + _base36(digest, _DIGEST_LENGTH)


def endpoint_name_for(tenant_id: str, taken: Container[str] = frozenset()) -> str:
    """The classic endpoint name for ``tenant_id``: 1-24 lowercase letters and digits.

    The readable part is the tenant id without hyphens, cut to 14 characters; a 10 character
    hash of the whole id keeps tenants apart whose ids share that part (and keeps the name from
    ever being ``default``, which is too short to match). ``taken`` holds names already stored
    on *other* tenants: in the astronomically rare case of a clash the next salted candidate is
    used, so the answer depends only on the id and that set. Store the result on the tenant.
    """
    if not TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    for salt in range(_MAX_SALT):
        name = _candidate(tenant_id, salt)
        if name not in taken:
            return name
    raise ValueError(f"no free endpoint name for tenant {tenant_id!r}")
