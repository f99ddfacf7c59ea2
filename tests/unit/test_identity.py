"""ARM tokens from an azure-identity credential: fetched for the ARM scope, cached, refreshed."""

from __future__ import annotations

import time

from azure.core.credentials import AccessToken

from worker.azureml.identity import ARM_SCOPE, AzureIdentityToken


class CountingCredential:
    """A credential that issues numbered tokens with a chosen lifetime."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.scopes: list[tuple[str, ...]] = []
        self.closed = False

    async def get_token(self, *scopes: str) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"token-{len(self.scopes)}", int(time.time() + self.lifetime))

    async def close(self) -> None:
        self.closed = True


async def test_a_token_is_reused_while_it_is_fresh() -> None:
    """Two calls within the token's life ask the credential once, for the ARM scope."""
    credential = CountingCredential(lifetime=3600)
    provider = AzureIdentityToken(credential)
    assert (await provider.token()).get_secret_value() == "token-1"
    assert (await provider.token()).get_secret_value() == "token-1"
    assert credential.scopes == [(ARM_SCOPE,)]


async def test_a_token_close_to_expiry_is_fetched_again() -> None:
    """A token expiring within the refresh margin is replaced."""
    credential = CountingCredential(lifetime=60)
    provider = AzureIdentityToken(credential)
    await provider.token()
    assert (await provider.token()).get_secret_value() == "token-2"
    await provider.close()
    assert credential.closed
