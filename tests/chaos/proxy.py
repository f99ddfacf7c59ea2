"""An in-process asyncio TCP proxy that injects network faults between workers and a server.

For each chunk a client sends (on keep-alive HTTP connections, mostly one request) it draws
from a seeded RNG: pass it through, reset the connection (RST; the request never arrives),
or drop the reply (forward the request, then reset the client when the server's answer
comes back — the server did the work, the client never hears of it). Every forwarded chunk
can be delayed. Counters say what was injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass, field


@dataclass
class ProxyFaults:
    """Fault rates (per request chunk) and added latency (per chunk, seconds)."""

    latency: float = 0.0
    reset_rate: float = 0.0
    drop_reply_rate: float = 0.0


@dataclass
class ProxyStats:
    """What the proxy did."""

    connections: int = 0
    resets: int = 0
    dropped_replies: int = 0


@dataclass
class FaultProxy:
    """Listens on 127.0.0.1 and forwards to ``upstream_host:upstream_port``."""

    upstream_host: str
    upstream_port: int
    faults: ProxyFaults = field(default_factory=ProxyFaults)
    seed: int = 7
    stats: ProxyStats = field(default_factory=ProxyStats)
    port: int = 0
    _server: asyncio.Server | None = None
    _rng: random.Random = field(default_factory=random.Random)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start listening on a free port."""
        self._rng.seed(self.seed)
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and cut every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            _reset(writer)
            return
        drop_next_reply = asyncio.Event()
        upstream = asyncio.create_task(self._requests(reader, up_writer, writer, drop_next_reply))
        try:
            await self._replies(up_reader, writer, drop_next_reply)
        finally:
            upstream.cancel()
            await asyncio.gather(upstream, return_exceptions=True)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _requests(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
        drop_next_reply: asyncio.Event,
    ) -> None:
        """Client to server; each chunk (a request, mostly) may be reset or lose its reply."""
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await src.read(65536):
                draw = self._rng.random()
                if draw < self.faults.reset_rate:
                    self.stats.resets += 1
                    _reset(client)
                    _reset(dst)
                    return
                if draw < self.faults.reset_rate + self.faults.drop_reply_rate:
                    drop_next_reply.set()
                await self._forward(chunk, dst)

    async def _replies(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, drop_next_reply: asyncio.Event
    ) -> None:
        """Server to client; a reply marked to be dropped resets the client instead."""
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await src.read(65536):
                if drop_next_reply.is_set():
                    self.stats.dropped_replies += 1
                    _reset(dst)
                    return
                await self._forward(chunk, dst)

    async def _forward(self, chunk: bytes, dst: asyncio.StreamWriter) -> None:
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        dst.write(chunk)
        await dst.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) so the peer sees a reset, not a clean close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
