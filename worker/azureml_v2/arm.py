"""One ARM request of the v2 clients: within the principal's budget, fresh token per try.

Every try first waits for (or is refused) budget (``ArmBudget.acquire``), then sends the call
with a current bearer token; the answer's rate-limit headers update the budget and a 429
pauses calls of its kind for its ``Retry-After``. Tries repeat by the retry policy, so callers
make only calls that may be repeated.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from worker.azureml.arm import TokenProvider
from worker.azureml.errors import PermanentError, ThrottledError
from worker.azureml.http import JsonReply, request_json
from worker.azureml.retry import RetryPolicy, with_retries
from worker.azureml_v2.budget import ArmBudget
from worker.settings import ArmBudgetConfig


class V2Arm:
    """The ARM calls of one principal: session, token source, retry policy and budget."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        arm_url: str,
        token: TokenProvider,
        policy: RetryPolicy | None = None,
        budget: ArmBudget | None = None,
        *,
        timeout_seconds: float = 20.0,
    ) -> None:
        self.session = session
        self.arm_url = arm_url.rstrip("/")
        self.token = token
        self.policy = policy or RetryPolicy()
        self.budget = budget or ArmBudget(ArmBudgetConfig())
        self.timeout = timeout_seconds

    def same_origin(self, url: str) -> str:
        """``url`` when it is on the ARM base's scheme and host (a ``nextLink`` the bearer
        token may follow), else ``PermanentError``."""
        base, other = urlsplit(self.arm_url), urlsplit(url)
        if (base.scheme, base.netloc) != (other.scheme, other.netloc):
            raise PermanentError(
                "a list's nextLink leaves the ARM host", url=url, code="ForeignNextLink"
            )
        return url

    async def call(self, method: str, url: str, body: object = None) -> JsonReply:
        """One call, tried by the policy, each try within budget."""

        async def once() -> JsonReply:
            await self.budget.acquire(method, url)
            try:
                reply = await request_json(
                    self.session,
                    method,
                    url,
                    token=await self.token.token(),
                    timeout_seconds=self.timeout,
                    json_body=body,
                )
            except ThrottledError as exc:
                if exc.status == 429:
                    self.budget.refused(method, exc.retry_after)
                raise
            self.budget.answered(method, reply.headers)
            return reply

        return await with_retries(once, self.policy, idempotent=True)
