"""Serving the API: problem answers for HTTP the parser refuses, and metrics on their own port.

aiohttp answers a request its parser refuses (a NUL or other control byte in a header, a
malformed request line) before any middleware runs, with a plain-text 400 that quotes the
offending bytes, header values (keys) included. The request handler here answers those with
a problem document naming only the status, and logs the error's type, never its text.
aiohttp exposes no public hook for this, so the runner builds the server with this handler.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from producer.api.problems import problem_response

log = structlog.get_logger("retrainq.api")

_DETAILS = {
    400: "the request is not valid HTTP/1.1 (a control byte in a header, a malformed line)",
    413: "the request line or headers are larger than this API accepts",
    431: "the request headers are larger than this API accepts",
}


class ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering its own errors as problem documents."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A problem document for ``status``; neither ``exc`` nor ``message`` is echoed."""
        log.warning("api.bad_http_request", status=status, error=type(exc).__name__)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot answer the error")
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        detail = _DETAILS.get(status, "the API failed to handle this request; it was logged")
        response = problem_response(status, phrase, detail)
        response.force_close()
        return response


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """An ``AppRunner`` whose connections use ``ProblemRequestHandler``."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _ProblemServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **server._kwargs,
        )


def bound_port(runner: web.BaseRunner) -> int:
    """The TCP port the first site of ``runner`` listens on (after ``site.start()``)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            port: int = server.sockets[0].getsockname()[1]
            return port
    raise RuntimeError("the runner has no listening site")


async def serve(
    app: web.Application, metrics: web.Application, host: str, port: int, metrics_port: int
) -> None:
    """Serve ``app`` on ``port`` and ``metrics`` on ``metrics_port`` until SIGTERM/SIGINT."""
    # The metrics site binds first: it has no startup work, so a port taken fails at once.
    metrics_runner = ProblemAppRunner(metrics, access_log=None)
    await metrics_runner.setup()
    try:
        await web.TCPSite(metrics_runner, host, metrics_port).start()
        runner = ProblemAppRunner(app, handle_signals=True)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            log.info("api.listening", port=port, metrics_port=bound_port(metrics_runner))
            await asyncio.Event().wait()  # until a signal raises GracefulExit
        finally:
            await runner.cleanup()
    finally:
        await metrics_runner.cleanup()
