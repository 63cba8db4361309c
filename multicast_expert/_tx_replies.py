"""Replies to a sending socket: the unicast datagrams that come back to its own address and port,
read through the receive engine (one unit per interface), and waited for on an event loop.

A sending socket is bound to its interface's address and its (ephemeral or chosen) port, so what
arrives on it is unicast sent to that address and port: the answers of SSDP devices, mDNS
responders to a one-shot query, ssmping. Reads never wait in the OS, whatever the socket's own
blocking mode or timeout: they use MSG_DONTWAIT through a reader object of their own on the same
descriptor, or, where the OS has no such flag (Windows), they read under a lock only when a
zero-timeout select() says a datagram is queued. All waiting is the engine's (poller and waker).

Layering: imports ``_engine``, ``_platform``, ``_packet``, ``_validate`` and ``_errors``; only
``tx_socket`` and ``aio`` import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import select
import socket
import threading
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from . import _platform
from ._engine import ReceiveEngine
from ._errors import EngineClosedError, SocketClosedError
from ._packet import McastPacket
from ._platform import DROPPED, Dropped
from ._validate import IPv4Or6Address, check_bufsize, check_flags, check_int_range

_T = TypeVar("_T")
_R = TypeVar("_R")
_MAX_BUF = 2**31
#: Largest buffer a batch receive reads each datagram into (a UDP payload is at most 65,535 bytes).
_BATCH_BUFSIZE = 65535
#: Longest single wait of the worker thread on event loops without ``add_reader`` (seconds).
THREAD_WAIT_SLICE = 0.5
#: Replies handed out without waiting before a coroutine lets the event loop run other tasks.
YIELD_EVERY = 16


class ReplyUnit:
    """One sending OS socket as the receive engine sees it (see :class:`~._engine.Readable`)."""

    __slots__ = ("fd", "guard", "iface_index", "live", "local", "os_sock", "sock")

    def __init__(self, os_sock: socket.socket, iface_index: int, local: str) -> None:
        io = _platform.IO
        self.os_sock = os_sock
        #: What the library reads through: a second socket object on the same descriptor whose
        #: timeout is always None (reads add MSG_DONTWAIT); without that flag the socket itself,
        #: read only under ``guard`` after select() found a datagram queued.
        self.sock: socket.socket = io.reader(os_sock) if io.DONTWAIT else os_sock
        self.guard: threading.Lock | None = None if io.DONTWAIT else threading.Lock()
        self.fd: int = os_sock.fileno()
        self.live = True
        self.iface_index = iface_index
        #: The local address replies are sent to (the interface address sent from, no ``%scope``).
        self.local = local.split("%", maxsplit=1)[0]

    def close(self) -> None:
        """Let go of the reader; the sending socket closes the OS socket itself."""
        self.live = False
        if self.sock is not self.os_sock:
            self.sock.detach()


class Added(NamedTuple):
    """The one membership change of a sending socket: all its units, at open."""

    added: list[ReplyUnit]
    removed: list[ReplyUnit]


def _guarded(u: ReplyUnit, read: Callable[[], _R]) -> _R:
    """``read()`` where a read could wait (no MSG_DONTWAIT): only if a datagram is queued now."""
    guard = u.guard
    if guard is None:
        return read()
    with guard:
        try:
            ready = select.select([u.sock], [], [], 0)[0]
        except ValueError:  # closed under us: the engine looks at the new state
            raise OSError(errno.EBADF, "socket closed") from None
        if not ready:
            raise BlockingIOError(errno.EAGAIN, "no datagram queued")
        return read()


def from_reader(bufsize: int, flags: int) -> Callable[[ReplyUnit], tuple[bytes, IPv4Or6Address] | Dropped]:
    """``read(unit)`` for recvfrom: ``(payload, sender)``."""
    recvfrom = _platform.IO.recvfrom

    def read(u: ReplyUnit) -> tuple[bytes, IPv4Or6Address] | Dropped:
        if u.guard is None:
            return recvfrom(u.sock, bufsize, flags, u.local)
        return _guarded(u, lambda: recvfrom(u.sock, bufsize, flags, u.local))

    return read


def packet_reader(bufsize: int) -> Callable[[ReplyUnit], McastPacket | Dropped]:
    """``read(unit)`` for recv_packet: an McastPacket whose ``group`` is the local address."""
    recv_packet = _platform.IO.recv_packet

    def read(u: ReplyUnit) -> McastPacket | Dropped:
        if u.guard is None:
            got = recv_packet(u.sock, bufsize, u.local)
        else:
            got = _guarded(u, lambda: recv_packet(u.sock, bufsize, u.local))
        if got is DROPPED:
            return got
        data, src, truncated = got
        return McastPacket(data, src, u.local, u.iface_index, truncated)

    return read


def batch_reader(bufsize: int) -> Callable[[ReplyUnit, int], list[McastPacket]]:
    """``read_many(unit, n)``: recvmmsg where the OS has it, else one datagram at a time."""
    io = _platform.IO
    size = min(bufsize, _BATCH_BUFSIZE)
    one = packet_reader(bufsize)

    def read_many(u: ReplyUnit, n: int) -> list[McastPacket]:
        if u.guard is None:
            got = io.recv_many(u.sock, n, size, False)
            if got is not None:
                return [McastPacket(d, src, u.local, u.iface_index, t) for d, src, t, _ in got]
        out: list[McastPacket] = []
        while len(out) < n:
            try:
                packet = one(u)
            except (BlockingIOError, InterruptedError):
                break
            if packet is not DROPPED:
                out.append(packet)
        return out

    return read_many


def closed(what: str) -> SocketClosedError:
    """The error for a receive on a closed sending socket."""
    return SocketClosedError(f"{what} on a closed McastTxSocket; open it first")


class Replies:
    """The receiving side of one McastTxSocket: its engine and units, and the read calls."""

    __slots__ = ("engine", "units")

    def __init__(self) -> None:
        self.engine: ReceiveEngine[ReplyUnit] = ReceiveEngine()
        self.units: list[ReplyUnit] = []

    def open(self, socks: list[tuple[socket.socket, int, str]]) -> None:
        """Watch the OS sockets ``(socket, interface index, local address)`` just opened."""
        self.units = [ReplyUnit(s, index, local) for s, index, local in socks]
        self.engine.open()
        self.engine.apply(Added(self.units, []))

    def close(self) -> None:
        """Wake every receive waiting in any thread (they raise) and let go of the readers."""
        units, self.units = self.units, []
        self.engine.close(units)

    def recvfrom(
        self, bufsize: int, flags: int, timeout: float | None
    ) -> tuple[bytes, IPv4Or6Address] | None:
        if type(bufsize) is not int or not 0 < bufsize < _MAX_BUF:
            check_bufsize(bufsize)
        if flags.__class__ is not int:
            flags = check_flags(flags)
        try:
            return self.engine.receive(from_reader(bufsize, flags), timeout, bool(flags & _MSG_PEEK))
        except EngineClosedError:
            raise closed("recvfrom()") from None

    def recv_packet(self, bufsize: int, timeout: float | None) -> McastPacket | None:
        if type(bufsize) is not int or not 0 < bufsize < _MAX_BUF:
            check_bufsize(bufsize)
        try:
            return self.engine.receive(packet_reader(bufsize), timeout)
        except EngineClosedError:
            raise closed("recv_packet()") from None

    def recv_batch(self, max_packets: int, bufsize: int, timeout: float | None) -> list[McastPacket]:
        check_int_range(max_packets, "max_packets", 1, 1024)
        check_bufsize(bufsize)
        try:
            return self.engine.receive_batch(batch_reader(bufsize), max_packets, timeout)
        except EngineClosedError:
            raise closed("recv_batch()") from None


_MSG_PEEK = int(socket.MSG_PEEK)


class AsyncWaiter:
    """Waits on an event loop until a sending socket's replies may be read, for any number of
    tasks at once: one ``add_reader`` on the engine's descriptor (or on each OS socket where the
    poller has none), or a worker thread on loops without ``add_reader``."""

    def __init__(self, replies: Replies) -> None:
        self._replies = replies
        #: Waiting receives: (the closes counted when the receive began, its future).
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._watching: list[int] = []
        #: Closes so far (counted at once, from any thread), and the count when the watch was
        #: made: a close and reopen by another thread fails only what began before the close.
        self._closes = self._watch_closes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._no_reader = False
        self._streak = 0

    def close(self) -> None:
        """Stop watching; tasks waiting get MulticastExpertError (from any thread: the loop's
        own thread does it)."""
        self._closes += 1
        closes = self._closes
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                here = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is not loop:
                with contextlib.suppress(RuntimeError):  # (closed meanwhile: nothing waits)
                    loop.call_soon_threadsafe(self._close_here, closes)
                return
        self._close_here(closes)

    def _close_here(self, closes: int) -> None:
        """On the loop's thread: what began before close number ``closes`` ends."""
        if self._watch_closes < closes:
            self._unwatch()
        failed = [w for began, w in self._waiters if began < closes]
        self._waiters = [(began, w) for began, w in self._waiters if began >= closes]
        for w in failed:
            if not w.done():
                w.set_exception(_closed_while_receiving())

    def _unwatch(self) -> None:
        loop, watching, self._watching = self._loop, self._watching, []
        if loop is not None and not loop.is_closed():
            for fd in watching:
                loop.remove_reader(fd)
        for fd in watching:  # (our own copies: see DatagramIO.watch_copy)
            _platform.IO.unwatch_copy(fd)

    def _on_readable(self) -> None:
        self._unwatch()
        waiters, self._waiters = self._waiters, []
        for _, w in waiters:
            if not w.done():
                w.set_result(None)

    async def _readable(self, began: int) -> None:
        loop = asyncio.get_running_loop()
        engine = self._replies.engine
        if not self._no_reader and (not self._watching or self._watch_closes != self._closes):
            self._unwatch()  # (a watch of a socket closed since: the reopened one's is made now)
            self._loop, self._watch_closes = loop, self._closes
            fd = engine.fileno()
            fds = [fd] if fd >= 0 else [u.fd for u in self._replies.units]
            if not fds:
                raise closed("receiving")
            try:
                for number in fds:
                    # (a copy of the number, let go of only by _unwatch, on the loop's thread)
                    self._watching.append(_platform.IO.watch(loop, number, self._on_readable))
            except NotImplementedError:  # e.g. Windows' ProactorEventLoop
                self._unwatch()
                self._no_reader = True
        if self._no_reader:
            await loop.run_in_executor(None, engine.wait_ready, THREAD_WAIT_SLICE)
            return
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (began, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
            if not self._waiters:
                self._unwatch()

    async def receive(self, attempt: Callable[[], _T | None], timeout: float | None) -> _T:
        """The first non-None ``attempt()`` (a read that never waits), waiting for readiness in
        between; TimeoutError after ``timeout`` seconds (at once for 0; None: no limit)."""
        if self._streak >= YIELD_EVERY:  # replies kept coming: let other tasks run first
            self._streak = 0
            await asyncio.sleep(0)
        began = self._closes
        got = attempt()  # raises MulticastExpertError once closed
        if got is None:
            self._streak = 0
            if timeout == 0:
                raise TimeoutError("no reply is queued (timeout 0)")
            async with asyncio.timeout(timeout):
                while got is None:
                    await self._readable(began)
                    if self._closes != began:  # (closed meanwhile, perhaps opened again since)
                        raise _closed_while_receiving()
                    got = attempt()
        self._streak += 1
        return got


def _closed_while_receiving() -> SocketClosedError:
    return SocketClosedError("The AsyncMcastTxSocket was closed while receiving")
