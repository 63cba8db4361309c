"""asyncio versions of the sockets: receives wait without blocking the event loop.

They need an event loop with ``add_reader`` (the default on Linux and macOS; on Windows use
``asyncio.SelectorEventLoop``).
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from ._errors import MulticastExpertError
from ._lifecycle import AsyncOpenCloseContext
from ._validate import IPv4Or6Address, check_timeout
from .rx_socket import McastPacket, McastRxSocket
from .tx_socket import McastTxSocket

_T = TypeVar("_T")

#: Results handed out without waiting before a coroutine lets the event loop run other tasks
#: (asyncio's own transports also read a bounded amount per loop iteration).
YIELD_EVERY = 16
#: Longest single wait of the worker thread on loops without ``add_reader`` (seconds).
THREAD_WAIT_SLICE = 0.5


class AsyncMcastRxSocket(AsyncOpenCloseContext):
    """McastRxSocket for asyncio: same constructor arguments; receives are coroutines.

    ``recvfrom()``, ``recv()`` and ``recv_packet()`` wait by the socket's timeout, as in 1.6.0:
    None (the default) waits as long as it takes, 0 raises ``TimeoutError`` at once when nothing
    is queued, a number of seconds raises ``TimeoutError`` after that long. Cancelling a waiting
    receive loses no datagram: data is only taken off a socket by a receive that then returns
    it. Any number of tasks may wait on one socket, and one loop may serve many sockets.

    Works on every event loop: where the loop has ``add_reader`` (Linux, macOS, Windows'
    SelectorEventLoop) readiness comes from the loop; where it has none (Windows' default
    ProactorEventLoop) a worker thread waits on the socket's poller in slices of at most
    ``THREAD_WAIT_SLICE`` seconds, and ``close()`` wakes it at once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._rx = McastRxSocket(*args, **kwargs)
        self._timeout = self._rx.timeout  # the async wait limit; every OS-side read passes timeout 0
        self._waiters: list[asyncio.Future[None]] = []
        self._watching: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._no_reader = False
        self._streak = 0

    @property
    def sync_socket(self) -> McastRxSocket:
        """The underlying (non-blocking) McastRxSocket, for its properties and live membership."""
        return self._rx

    @property
    def timeout(self) -> float | None:
        """How long a receive waits: None forever, 0 not at all, else seconds. Assignable."""
        return self._timeout

    @timeout.setter
    def timeout(self, timeout: float | None) -> None:
        self._timeout = check_timeout(timeout)

    def settimeout(self, timeout: float | None) -> None:
        """Set :attr:`timeout` (1.6.0's method)."""
        self.timeout = timeout

    @property
    def is_opened(self) -> bool:
        """Whether the socket is open."""
        return self._rx.is_opened

    def _is_open(self) -> bool:
        return self._rx.is_opened

    def open(self) -> None:
        """Open the underlying socket (see McastRxSocket.open)."""
        self._rx.open()

    def close(self) -> None:
        """Close it; tasks waiting on it get MulticastExpertError."""
        self._unwatch()
        self._rx.close()
        for w in self._waiters:
            if not w.done():
                w.set_exception(MulticastExpertError("The AsyncMcastRxSocket was closed while receiving"))
        self._waiters.clear()

    def _unwatch(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            for fd in self._watching:
                self._loop.remove_reader(fd)
        self._watching = []

    def _on_readable(self) -> None:
        self._unwatch()
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def _readable(self) -> None:
        """Wait until a receive may find data (or the socket was closed)."""
        loop = asyncio.get_running_loop()
        if not self._no_reader and not self._watching:
            self._loop = loop
            fd = self._rx.fileno()
            try:
                for w in [fd] if fd >= 0 else self._rx.filenos():
                    loop.add_reader(w, self._on_readable)
                    self._watching.append(w)
            except (NotImplementedError, ValueError):  # ProactorEventLoop; select()'s 512 cap
                self._unwatch()
                self._no_reader = True
        if self._no_reader:
            await loop.run_in_executor(None, self._rx._engine.wait_ready, THREAD_WAIT_SLICE)
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if not self._waiters:
                self._unwatch()

    async def _receive(self, attempt: Callable[[], _T | None]) -> _T:
        if self._streak >= YIELD_EVERY:  # data kept coming: let other tasks run first
            self._streak = 0
            await asyncio.sleep(0)
        got = attempt()  # raises MulticastExpertError once closed
        if got is None:
            self._streak = 0
            if self._timeout == 0:
                raise TimeoutError("no datagram is queued (timeout 0)")
            async with asyncio.timeout(self._timeout):
                while got is None:
                    await self._readable()
                    got = attempt()
        self._streak += 1
        return got

    async def recvfrom(self, bufsize: int = 4096, flags: int = 0) -> tuple[bytes, IPv4Or6Address]:
        """Wait for one datagram: ``(payload, sender address)``.

        Raises:
            TimeoutError: nothing arrived within the timeout.
            MulticastExpertError: the socket is closed (also while waiting).
        """
        return await self._receive(lambda: self._rx._recvfrom(bufsize, flags, 0.0))

    async def recv(self, bufsize: int = 4096, flags: int = 0) -> bytes:
        """Wait for one datagram's payload."""
        return (await self.recvfrom(bufsize, flags))[0]

    async def recv_packet(self, bufsize: int = 65535) -> McastPacket:
        """Wait for one datagram with its group and arrival interface."""
        return await self._receive(lambda: self._rx._recv_packet(bufsize, 0.0))

    async def recv_batch(self, max_packets: int = 64, bufsize: int = 65535) -> list[McastPacket]:
        """Wait (by the timeout rules) for the first datagram, then return up to ``max_packets``
        that are ready (see McastRxSocket.recv_batch).

        Raises:
            TimeoutError: nothing arrived within the timeout.
            MulticastExpertError: the socket is closed.
        """
        rx = self._rx
        return await self._receive(lambda: rx._recv_batch(max_packets, bufsize, 0.0) or None)

    def filenos(self) -> list[int]:
        """Descriptors of the underlying OS sockets."""
        return self._rx.filenos()


class AsyncMcastTxSocket(AsyncOpenCloseContext):
    """McastTxSocket for asyncio: same constructor arguments; ``sendto`` is a coroutine."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._tx = McastTxSocket(*args, **kwargs)
        self._streak = 0

    @property
    def sync_socket(self) -> McastTxSocket:
        """The underlying McastTxSocket."""
        return self._tx

    def _is_open(self) -> bool:
        return self._tx.is_opened

    def open(self) -> None:
        """Open the underlying socket, in non-blocking mode."""
        self._tx.open()
        self._os_socket().setblocking(False)

    def close(self) -> None:
        """Close the underlying socket."""
        self._tx.close()

    def _os_socket(self) -> socket.socket:
        sock = self._tx._sock
        if sock is None:
            raise MulticastExpertError("sendto() on a closed AsyncMcastTxSocket; open it first")
        return sock

    async def sendto(self, data: bytes, address: IPv4Or6Address) -> None:
        """Send one datagram, waiting (without blocking the loop) if the send buffer is full."""
        self._streak += 1
        if self._streak >= YIELD_EVERY:  # many sends in a row: let other tasks run
            self._streak = 0
            await asyncio.sleep(0)
        while True:
            try:
                self._tx.sendto(data, address)
                return
            except BlockingIOError:
                loop = asyncio.get_running_loop()
                sock = self._os_socket()
                fut: asyncio.Future[None] = loop.create_future()
                try:
                    loop.add_writer(sock.fileno(), _wake, fut)
                except NotImplementedError:  # e.g. ProactorEventLoop: wait in a worker thread
                    await loop.run_in_executor(None, select.select, [], [sock], [], THREAD_WAIT_SLICE)
                    continue
                try:
                    await fut
                finally:
                    loop.remove_writer(sock.fileno())


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


__all__ = ["AsyncMcastRxSocket", "AsyncMcastTxSocket"]
