"""A TLS-terminating TCP proxy that requires a client certificate, like Aiven's Kafka.

The test broker's own TLS cannot check client certificates, so the tests put
this proxy in front of a plaintext broker whose *advertised* address is the
proxy's: every connection a Kafka client makes (bootstrap, then the broker from
metadata, then the group coordinator) goes through TLS here.

It runs on its own event loop in a background thread, so synchronous fixtures
and async tests (on their own loop) can use it alike::

    proxy = TlsProxy(files.server_context(), upstream=("127.0.0.1", broker_port)).start()
    ...  # clients connect to proxy.address
    proxy.refusals  # why each refused client was refused
    proxy.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Coroutine
from typing import Any, Self

from clickstream_devstack.servers.ports import LOOPBACK

_CHUNK = 64 * 1024
#: Bounds every blocking step of start and stop, so a broken proxy fails the test.
_CONTROL_TIMEOUT_S = 10.0
_HANDSHAKE_TIMEOUT_S = 10.0


class TlsProxy:
    """Accepts TLS on ``host:port`` (0: a free port) and forwards plaintext to ``upstream``."""

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        upstream: tuple[str, int] | None = None,
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        self._context = context
        self.upstream = upstream
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        # Guards the records below: written on the proxy's loop, read by the tests.
        self._lock = threading.Condition()
        self._refusals: list[str] = []
        self._accepted = 0

    # -- what the tests look at ----------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy has not been started")
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` for KAFKA_BOOTSTRAP_SERVERS."""
        return f"{self.host}:{self.port}"

    @property
    def refusals(self) -> list[str]:
        """The TLS error of every client whose handshake failed, oldest first."""
        with self._lock:
            return list(self._refusals)

    def wait_refused(self, count: int, timeout: float = _CONTROL_TIMEOUT_S) -> list[str]:
        """The refusals, once there are at least ``count``.

        A refused client can see its connection fail before the proxy has filed
        the reason, so tests wait for the record rather than read it at once.
        """
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._refusals) >= count, timeout):
                raise TimeoutError(f"the proxy refused {len(self._refusals)} of {count} clients")
            return list(self._refusals)

    @property
    def accepted(self) -> int:
        """How many clients completed the handshake (with a valid client certificate)."""
        with self._lock:
            return self._accepted

    # -- life cycle ----------------------------------------------------------

    def start(self) -> Self:
        """Bind the port (known from here on) and start serving in a background thread."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="tls-proxy", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._call(self._listen())
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then end the thread (all bounded)."""
        if self._loop is None:
            return
        try:
            self._call(self._close())
        finally:
            self._shutdown_loop()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        future.result(timeout=_CONTROL_TIMEOUT_S)

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_CONTROL_TIMEOUT_S)
        if thread.is_alive():
            raise RuntimeError("the TLS proxy thread did not stop")
        loop.close()

    # -- on the proxy's loop -------------------------------------------------

    async def _listen(self) -> None:
        # Plain TCP here, TLS per connection in _serve: a failed handshake then
        # raises where we can record it, instead of only reaching the loop's log.
        self._server = await asyncio.start_server(
            self._accept, self.host, self._requested_port, family=socket.AF_INET
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            try:
                await writer.start_tls(self._context, ssl_handshake_timeout=_HANDSHAKE_TIMEOUT_S)
            except (ssl.SSLError, OSError, TimeoutError) as error:
                with self._lock:
                    self._refusals.append(str(error))
                    self._lock.notify_all()
                return
            with self._lock:
                self._accepted += 1
            if self.upstream is None:
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            # Either side closing ends the pair: a Kafka connection is one conversation.
            pumps = [
                asyncio.create_task(_pump(reader, upstream_writer)),
                asyncio.create_task(_pump(upstream_reader, writer)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except OSError:
            return  # the broker or the client went away: the client sees its socket close
        finally:
            for stream in (upstream_writer, writer):
                if stream is not None:
                    await _close(stream)


async def _pump(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while chunk := await source.read(_CHUNK):
            target.write(chunk)
            await target.drain()


async def _close(stream: asyncio.StreamWriter) -> None:
    stream.close()
    # A TLS close_notify can wait on a peer that is already gone; never block stop().
    with contextlib.suppress(OSError, TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(stream.wait_closed(), timeout=1.0)
