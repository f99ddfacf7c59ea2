"""ARM bearer tokens from an azure-identity credential (managed identity, workload identity, CLI).

Real Azure Resource Manager calls need an Azure AD token for ``management.azure.com``; this
provider asks the credential for one and reuses it until five minutes before it expires.
"""

from __future__ import annotations

import time
from typing import Protocol

from azure.core.credentials import AccessToken
from pydantic import SecretStr

ARM_SCOPE = "https://management.azure.com/.default"
REFRESH_MARGIN_SECONDS = 300


class AsyncCredential(Protocol):
    """What the provider needs of an azure-identity async credential."""

    async def get_token(self, *scopes: str) -> AccessToken:
        """A token for ``scopes``."""
        ...

    async def close(self) -> None:
        """Release the credential's transport."""
        ...


class AzureIdentityToken:
    """A ``TokenProvider`` backed by an azure-identity credential (DefaultAzureCredential)."""

    def __init__(self, credential: AsyncCredential | None = None) -> None:
        if credential is None:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self._credential = credential
        self._cached: AccessToken | None = None

    async def token(self) -> SecretStr:
        """A valid ARM token, fetched again shortly before the cached one expires."""
        cached = self._cached
        if cached is None or cached.expires_on - REFRESH_MARGIN_SECONDS <= time.time():
            cached = await self._credential.get_token(ARM_SCOPE)
            self._cached = cached
        return SecretStr(cached.token)

    async def close(self) -> None:
        """Close the credential."""
        await self._credential.close()
