"""AsyncMcastRxSocket: McastRxSocket for asyncio (the receives are coroutines that never block
the event loop); exported by :mod:`multicast_expert.aio`.

Each read is the synchronous socket's private read with a per-call timeout of 0
(``_recvfrom``/``_recv_packet``/``_recv_batch``), done only when the loop reports a descriptor
readable (``add_reader``) or, on loops without it, a worker thread's wait on the poller returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable
from typing import TypeVar

from . import _platform
from ._compat import rx as _compat
from ._compat.values import LegacyIfaceInfo
from ._describe import describe, endpoint, some
from ._errors import SocketClosedError
from ._lifecycle import AsyncOpenCloseContext
from ._validate import IPv4Or6Address, MulticastAddress, family_name
from .interfaces import IfaceInfo, IfaceSpecifier
from .rx_socket import BaseMcastRxSocket, McastPacket, McastRxSocket

_T = TypeVar("_T")

#: Results handed out without waiting before a coroutine lets the event loop run other tasks
#: (asyncio's own transports also read a bounded amount per loop iteration).
YIELD_EVERY = 16
#: Longest single wait of the worker thread on loops without ``add_reader`` (seconds).
THREAD_WAIT_SLICE = 0.5


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop of this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class AsyncMcastRxSocket(AsyncOpenCloseContext):
    """:class:`McastRxSocket` for asyncio: the same constructor arguments and properties; the
    receives are coroutines.

    ``recvfrom()``, ``recv()``, ``recv_packet()`` and ``recv_batch()`` wait by :attr:`timeout`, as
    in 1.6.0: None (the default) waits as long as it takes, 0 raises ``TimeoutError`` at once when
    nothing is queued, a number of seconds raises ``TimeoutError`` after that long. They never
    return None and never block the event loop: the OS sockets are read only when the loop says
    one is readable, and only without waiting. Cancelling a waiting receive loses no datagram
    (data is only taken off a socket by a receive that then returns it). Any number of tasks may
    wait on one socket, and one loop may serve many sockets.

    Live membership (:meth:`join_group`, :meth:`leave_group`, :meth:`block_source`,
    :meth:`unblock_source`, :meth:`refresh_interfaces`) are plain methods: they set socket options
    and return at once, and a receive already waiting sees the change.

    :meth:`close` wakes every waiting receive, which raises :class:`SocketClosedError`; it may be
    called from the loop or from another thread. Every operation on a closed socket raises
    :class:`SocketClosedError` too.

    Where the loop has no ``add_reader`` (Windows' default ProactorEventLoop) a worker thread waits
    on the socket's poller in slices of at most ``THREAD_WAIT_SLICE`` seconds, and ``close()``
    wakes it at once.

    Args: see :class:`McastRxSocket`; every argument means the same here.
    """

    def __init__(
        self,
        addr_family: int,
        mcast_ips: Iterable[MulticastAddress],
        port: int,
        iface_ip: IfaceSpecifier | None = None,
        iface_ips: Iterable[IfaceSpecifier] | None = None,
        source_ips: Iterable[MulticastAddress] | None = None,
        blocking: bool | float | None = True,
        *more_1_6_args: object,
        iface: IfaceSpecifier | None = None,
        ifaces: Iterable[IfaceSpecifier] | None = None,
        timeout: float | _compat.Unset | None = _compat.UNSET,
        rcvbuf: int | None = None,
        enable_external_loopback: bool = False,
        follow_interfaces: bool = False,
        raise_fd_limit: bool = True,
        recv_ttl: bool = False,
        recv_tos: bool = False,
        timestamps: bool = False,
    ) -> None:
        self._rx = McastRxSocket(
            addr_family,
            mcast_ips,
            port,
            iface_ip,
            iface_ips,
            source_ips,
            blocking,
            *more_1_6_args,
            iface=iface,
            ifaces=ifaces,
            timeout=timeout,
            rcvbuf=rcvbuf,
            enable_external_loopback=enable_external_loopback,
            follow_interfaces=follow_interfaces,
            raise_fd_limit=raise_fd_limit,
            recv_ttl=recv_ttl,
            recv_tos=recv_tos,
            timestamps=timestamps,
        )
        self._rx._members.nonblocking = True  # (its OS sockets: never block the loop, whoever reads them)
        #: Waiting receives: (the open they began in, their future).
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: Opens so far, and the open the watch was made in: a close and reopen by another thread
        #: leaves a watch (and waiters) of the old open, which only they concern.
        self._opens = self._watch_opens = 0
        self._watching: list[int] = []
        #: The descriptor watched (``rx.fileno()``; -1: each OS socket's) through ``_watching``'s copies.
        self._watched = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._no_reader = False
        self._streak = 0

    def __repr__(self) -> str:
        """``<AsyncMcastRxSocket AF_INET 239.1.2.3:5000 on eth0 open>``."""
        rx = self._rx
        return describe(
            type(self).__name__,
            family_name(rx.addr_family),
            endpoint(rx.mcast_ips, rx.port),
            "on " + some([i.machine_name for i in rx.network_interfaces], "no interface"),
            is_open=rx.is_opened,
        )

    # ---- properties (the synchronous socket's) -------------------------------------------------
    @property
    def sync_socket(self) -> McastRxSocket:
        """The underlying McastRxSocket (the async class reads it only without waiting)."""
        return self._rx

    @property
    def addr_family(self) -> int:
        """``socket.AF_INET`` or ``socket.AF_INET6``."""
        return self._rx.addr_family

    @property
    def port(self) -> int:
        """The UDP port received on."""
        return self._rx.port

    @property
    def rcvbuf(self) -> int | None:
        """The SO_RCVBUF asked for (None: the OS default); see :attr:`granted_rcvbuf`."""
        return self._rx.rcvbuf

    @property
    def enable_external_loopback(self) -> bool:
        """Whether this host's own multicasts on non-loopback interfaces are received."""
        return self._rx.enable_external_loopback

    @property
    def network_interfaces(self) -> list[IfaceInfo]:
        """The interfaces this socket listens on."""
        return self._rx.network_interfaces

    @property
    def iface_infos(self) -> dict[str, LegacyIfaceInfo]:
        """1.2.0's records of the interfaces listened on, by interface IP (see
        :attr:`McastRxSocket.iface_infos`)."""
        return self._rx.iface_infos

    @property
    def iface_ips(self) -> list[str]:
        """Address of each interface listened on."""
        return self._rx.iface_ips

    @property
    def skipped_interfaces(self) -> dict[str, str]:
        """Interfaces of the default set left out because they could not join: name -> reason."""
        return self._rx.skipped_interfaces

    @property
    def mcast_ips(self) -> list[str]:
        """The groups currently joined."""
        return self._rx.mcast_ips

    @property
    def source_ips(self) -> list[str] | None:
        """The sources given to the constructor, or None for any-source."""
        return self._rx.source_ips

    @property
    def is_source_specific(self) -> bool:
        """Whether the socket was opened for source-specific multicast."""
        return self._rx.is_source_specific

    @property
    def sources_by_group(self) -> dict[str, list[str]]:
        """Sources of each source-specific group now joined (live joins included)."""
        return self._rx.sources_by_group

    @property
    def granted_rcvbuf(self) -> int | None:
        """The SO_RCVBUF the OS granted when ``rcvbuf`` was given (None otherwise)."""
        return self._rx.granted_rcvbuf

    @property
    def is_opened(self) -> bool:
        """Whether the socket is open."""
        return self._rx.is_opened

    def _is_open(self) -> bool:
        return self._rx.is_opened

    @property
    def sockets(self) -> list[socket.socket]:
        """The underlying OS sockets (read only without waiting; do not read them yourself)."""
        return self._rx.sockets

    @property
    def timeout(self) -> float | None:
        """How long a receive waits: None forever, 0 not at all, else seconds. Assignable.

        The same value as ``sync_socket.timeout``; the async receives never let the OS wait.
        """
        return self._rx.timeout

    @timeout.setter
    def timeout(self, timeout: float | None) -> None:
        self._rx.timeout = timeout

    @property
    def blocking(self) -> bool:
        """False when the timeout is 0."""
        return self._rx.blocking

    def settimeout(self, timeout: float | None) -> None:
        """Set :attr:`timeout` (1.6.0's method)."""
        self._rx.timeout = timeout

    # ---- open / close ---------------------------------------------------------------------------
    def open(self) -> None:
        """Create the OS sockets and join every group (see :meth:`McastRxSocket.open`).

        Raises:
            MulticastExpertError: already open, or a join failed.
        """
        self._opens += 1  # (first: a receive begun while it opens is this open's, not the last one's)
        self._rx.open()

    def close(self) -> None:
        """Close every OS socket; receives waiting on it raise :class:`SocketClosedError`.

        May be called from the event loop's thread or from any other thread.

        Raises:
            MulticastExpertError: already closed.
        """
        loop = self._loop
        if loop is None or loop.is_closed() or running_loop() is loop:
            self._unwatch()
            self._rx.close()
            self._fail_waiters(self._opens)
            return
        opens = self._opens
        self._rx.close()  # another thread: the loop's own thread undoes its watch and wakes the tasks
        with contextlib.suppress(RuntimeError):  # (the loop closed meanwhile: nothing waits on it)
            loop.call_soon_threadsafe(self._after_close_elsewhere, opens)

    def _after_close_elsewhere(self, opens: int) -> None:
        """On the loop's thread, after a close by another thread that ended open number ``opens``
        (the socket may be open again by now: what began since is left alone)."""
        if self._watch_opens <= opens:
            self._unwatch()
        self._fail_waiters(opens)

    def _fail_waiters(self, opens: int) -> None:
        """Fail the receives that began in open number ``opens`` or before."""
        failed = [w for began, w in self._waiters if began <= opens]
        self._waiters = [entry for entry in self._waiters if entry[0] > opens]
        for w in failed:
            if not w.done() and not w.get_loop().is_closed():  # (a closed loop runs nothing)
                w.set_exception(SocketClosedError("The AsyncMcastRxSocket was closed while receiving"))

    # ---- live membership (returns at once; a waiting receive sees the change) -------------------
    def join_group(
        self, mcast_ip: MulticastAddress, source_ips: Iterable[MulticastAddress] | None = None
    ) -> None:
        """Start receiving another group (source-specific if ``source_ips``) on every interface.

        Raises:
            SocketClosedError: the socket is closed.
            MulticastExpertError: the group is already joined or invalid, or the join failed.
        """
        self._rx.join_group(mcast_ip, source_ips)
        self._rewatch()

    def leave_group(self, mcast_ip: MulticastAddress) -> None:
        """Stop receiving a group on every interface.

        Raises:
            SocketClosedError: the socket is closed.
            MulticastExpertError: the group is not joined by it.
        """
        self._rx.leave_group(mcast_ip)
        self._rewatch()

    def block_source(self, mcast_ip: MulticastAddress, source_ip: MulticastAddress) -> None:
        """Stop receiving one sender on an any-source group (see :meth:`McastRxSocket.block_source`).

        Raises:
            SocketClosedError: the socket is closed.
            MulticastExpertError: group not joined or source-specific, source already blocked, or
                the OS refused.
        """
        self._rx.block_source(mcast_ip, source_ip)

    def unblock_source(self, mcast_ip: MulticastAddress, source_ip: MulticastAddress) -> None:
        """Undo :meth:`block_source`.

        Raises:
            SocketClosedError: the socket is closed.
            MulticastExpertError: group not joined, or the source is not blocked.
        """
        self._rx.unblock_source(mcast_ip, source_ip)

    def refresh_interfaces(self) -> None:
        """Rescan the machine's interfaces now and apply the result (see
        :meth:`McastRxSocket.refresh_interfaces`).

        Raises:
            SocketClosedError: the socket is closed.
        """
        self._rx.refresh_interfaces()
        self._rewatch()

    # ---- descriptors and options ------------------------------------------------------------------
    def filenos(self) -> list[int]:
        """Descriptors of the underlying OS sockets; empty when closed."""
        return self._rx.filenos()

    def fileno(self) -> int:
        """One descriptor readable whenever any group has data (see :meth:`McastRxSocket.fileno`);
        -1 when closed."""
        return self._rx.fileno()

    def setsockopt(self, level: int, opt: int, value: int | bytes) -> None:
        """Set a socket option on every underlying OS socket.

        Raises:
            SocketClosedError: the socket is closed.
        """
        self._rx.setsockopt(level, opt, value)

    # ---- waiting ----------------------------------------------------------------------------------
    def _unwatch(self) -> None:
        watching, self._watching = self._watching, []
        if self._loop is not None and not self._loop.is_closed():
            for fd in watching:
                self._loop.remove_reader(fd)
        for fd in watching:  # (our own copies: the number stays ours until unregistered)
            _platform.IO.unwatch_copy(fd)

    def _rewatch(self) -> None:
        """After a change of OS sockets: watch the new set (only where each socket is watched on
        its own, i.e. where the OS has no single poller descriptor)."""
        if self._watching and (self._watched < 0 or self._rx.fileno() != self._watched):
            self._unwatch()
            if self._waiters and self._loop is not None:
                self._watch(self._loop)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._watch_opens = loop, self._opens
        fd = self._watched = self._rx.fileno()
        try:
            for number in [fd] if fd >= 0 else self._rx.filenos():
                # (a copy of the number, let go of only by _unwatch, on the loop's thread)
                self._watching.append(_platform.IO.watch(loop, number, self._on_readable))
        except (NotImplementedError, ValueError):  # ProactorEventLoop; select()'s 512 cap
            self._unwatch()
            self._no_reader = True
        except OSError as exc:  # (no descriptor to spare for the copy: EMFILE names ulimit -n)
            self._unwatch()
            better = _platform.translate_oserror(exc, _platform.Action.WAIT, self.addr_family, "Waiting")
            if better is exc:
                raise
            raise better from exc

    def _on_readable(self) -> None:
        self._unwatch()
        waiters, self._waiters = self._waiters, []
        for _, w in waiters:
            if not w.done():
                w.set_result(None)

    async def _readable(self) -> None:
        """Wait until a receive may find data (or the socket was closed)."""
        loop = asyncio.get_running_loop()
        old = self._loop
        dead = old is not None and old is not loop and old.is_closed()
        if self._watching and (dead or self._watch_opens != self._opens):
            # A watch of an earlier open (closed and reopened by another thread) or of a loop
            # since closed (with the receives it had, which will never run): made afresh here.
            self._unwatch()
            self._waiters = [entry for entry in self._waiters if not entry[1].get_loop().is_closed()]
        if not self._no_reader and not self._watching:
            self._watch(loop)
        if self._no_reader:
            self._loop = loop
            await loop.run_in_executor(None, self._rx._engine.wait_ready, THREAD_WAIT_SLICE)
            return
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (self._opens, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
            if not self._waiters:
                self._unwatch()

    async def _receive(self, attempt: Callable[[], _T | None]) -> _T:
        if self._streak >= YIELD_EVERY:  # data kept coming: let other tasks run first
            self._streak = 0
            await asyncio.sleep(0)
        got = attempt()  # raises SocketClosedError once closed
        if got is None:
            self._streak = 0
            timeout = self._rx.timeout
            if timeout == 0:
                raise TimeoutError("no datagram is queued (timeout 0)")
            async with asyncio.timeout(timeout):
                while got is None:
                    await self._readable()
                    got = attempt()
        self._streak += 1
        return got

    # ---- receiving (each read is the synchronous socket's with a timeout of 0) --------------------
    async def recvfrom(self, bufsize: int = 4096, flags: int = 0) -> tuple[bytes, IPv4Or6Address]:
        """Wait for one datagram: ``(payload, sender address)`` (see :meth:`McastRxSocket.recvfrom`).

        Raises:
            TimeoutError: nothing arrived within the timeout.
            SocketClosedError: the socket is closed (also while waiting).
            ValueError, TypeError: a bufsize outside 1..2**31-1.
        """
        rx = self._rx
        return await self._receive(lambda: rx._recvfrom(bufsize, flags, 0))

    async def recv(self, bufsize: int = 4096, flags: int = 0) -> bytes:
        """Wait for one datagram's payload (see :meth:`recvfrom`)."""
        return (await self.recvfrom(bufsize, flags))[0]

    async def recv_packet(self, bufsize: int = 65535) -> McastPacket:
        """Wait for one datagram with its group and arrival interface (see
        :meth:`McastRxSocket.recv_packet`).

        Raises:
            TimeoutError: nothing arrived within the timeout.
            SocketClosedError: the socket is closed (also while waiting).
        """
        rx = self._rx
        return await self._receive(lambda: rx._recv_packet(bufsize, 0))

    async def recv_batch(self, max_packets: int = 64, bufsize: int = 65535) -> list[McastPacket]:
        """Wait (by the timeout rules) for the first datagram, then return up to ``max_packets``
        that are ready, never an empty list (see :meth:`McastRxSocket.recv_batch`).

        Raises:
            TimeoutError: nothing arrived within the timeout.
            SocketClosedError: the socket is closed (also while waiting).
            ValueError, TypeError: ``max_packets`` outside 1..1024 or a bad ``bufsize``.
        """
        rx = self._rx
        return await self._receive(lambda: rx._recv_batch(max_packets, bufsize, 0) or None)


BaseMcastRxSocket.register(AsyncMcastRxSocket)

__all__ = ["THREAD_WAIT_SLICE", "YIELD_EVERY", "AsyncMcastRxSocket", "running_loop"]
