"""asyncio versions of the sockets: receives and sends wait without blocking the event loop.

:class:`AsyncMcastRxSocket` and :class:`AsyncMcastTxSocket` take exactly the synchronous classes'
constructor arguments and offer their whole surface (properties, live membership, descriptors,
options); only the calls that may wait are coroutines. They run on every asyncio event loop:
readiness comes from ``add_reader`` / ``add_writer`` where the loop has them (Linux, macOS,
Windows' SelectorEventLoop), and from a worker thread where it has not (Windows' default
ProactorEventLoop).

trio and anyio are served by the synchronous classes (see the "asyncio, trio and anyio" section
of the documentation): a receive run with ``trio.to_thread.run_sync`` / ``anyio.to_thread.run_sync``
is woken at once by ``close()`` from any thread or task (it raises :class:`SocketClosedError`),
and ``fileno()`` is one descriptor that becomes readable whenever any group has data.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from collections.abc import Callable, Iterable

from . import _platform
from ._async_rx import THREAD_WAIT_SLICE, YIELD_EVERY, AsyncMcastRxSocket, running_loop
from ._compat.values import LegacyIfaceInfo
from ._describe import describe, some
from ._errors import MulticastSendError, SocketClosedError
from ._lifecycle import AsyncOpenCloseContext
from ._packet import McastPacket
from ._tx_args import check_batch, check_destination
from ._tx_replies import AsyncWaiter
from ._validate import IPv4Or6Address, MulticastAddress, check_timeout, family_name
from .interfaces import IfaceInfo, IfaceSpecifier
from .tx_socket import McastTxSocket

_OsSocket = socket.socket  # (the class has a property named socket)


class AsyncMcastTxSocket(AsyncOpenCloseContext):
    """:class:`McastTxSocket` for asyncio: the same constructor arguments and properties;
    ``sendto`` and ``send_batch`` are coroutines.

    Every OS socket (one per interface) is non-blocking, so a send never blocks the event loop:
    an interface whose send buffer is full is waited for (by ``add_writer``, or a worker thread
    on loops without it) while the others go ahead, and a datagram goes out at most once on each
    interface. On several interfaces a failure on one still sends on the others, then raises
    :class:`MulticastSendError` (as the synchronous class does).
    """

    def __init__(
        self,
        addr_family: int,
        mcast_ips: Iterable[MulticastAddress],
        iface_ip: IfaceSpecifier | None = None,
        ttl: int = 1,
        enable_external_loopback: bool = False,
        *legacy: IfaceSpecifier | None,
        iface: IfaceSpecifier | None = None,
        ifaces: Iterable[IfaceSpecifier] | None = None,
        source_port: int = 0,
        timeout: float | None = None,
    ) -> None:
        self._tx = McastTxSocket(
            addr_family,
            mcast_ips,
            iface_ip,
            ttl,
            enable_external_loopback,
            *legacy,
            iface=iface,
            ifaces=ifaces,
            source_port=source_port,
            timeout=timeout,
        )
        self._streak = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._replies = AsyncWaiter(self._tx._replies)
        self._timeout = self._tx.timeout  # the async wait limit (the reads themselves never wait)

    def __repr__(self) -> str:
        """``<AsyncMcastTxSocket AF_INET to 239.1.2.3 on eth0 open>``."""
        tx = self._tx
        return describe(
            type(self).__name__,
            family_name(tx.addr_family),
            "to " + some(tx.mcast_ips, "no groups"),
            "on " + some([i.machine_name for i in tx.network_interfaces], "no interface"),
            is_open=tx.is_opened,
        )

    @property
    def sync_socket(self) -> McastTxSocket:
        """The underlying McastTxSocket (non-blocking while open)."""
        return self._tx

    # ---- properties (the synchronous socket's) -------------------------------------------------
    @property
    def addr_family(self) -> int:
        """``socket.AF_INET`` or ``socket.AF_INET6``."""
        return self._tx.addr_family

    @property
    def mcast_ips(self) -> list[str]:
        """The groups this socket may send to."""
        return list(self._tx.mcast_ips)

    @property
    def mcast_ips_set(self) -> frozenset[str]:
        """The groups this socket may send to, as a set (1.6.0)."""
        return self._tx.mcast_ips_set

    @property
    def ttl(self) -> int:
        """IPv4 TTL / IPv6 hop limit of every datagram."""
        return self._tx.ttl

    @property
    def source_port(self) -> int:
        """The UDP port sent from (0: an ephemeral one)."""
        return self._tx.source_port

    @property
    def enable_external_loopback(self) -> bool:
        """Whether receivers on this host get the datagrams sent on a non-loopback interface."""
        return self._tx.enable_external_loopback

    @property
    def iface_ip(self) -> str:
        """The address datagrams leave from (the first interface's)."""
        return self._tx.iface_ip

    @property
    def network_interface(self) -> IfaceInfo:
        """The interface this socket sends from (the first one, when sending on several)."""
        return self._tx.network_interface

    @property
    def iface_info(self) -> LegacyIfaceInfo:
        """1.2.0's record of the interface sent from (see :attr:`McastTxSocket.iface_info`)."""
        return self._tx.iface_info

    @property
    def network_interfaces(self) -> list[IfaceInfo]:
        """Every interface this socket sends on."""
        return self._tx.network_interfaces

    @property
    def sockets(self) -> list[socket.socket]:
        """The OS sockets (non-blocking), one per interface, while open."""
        return self._tx.sockets

    @property
    def socket(self) -> _OsSocket | None:
        """The OS socket (non-blocking; the first interface's) while open, else None (1.2.0's)."""
        return self._tx.socket

    @property
    def is_opened(self) -> bool:
        """Whether the socket is open."""
        return self._tx.is_opened

    def _is_open(self) -> bool:
        return self._tx.is_opened

    def fileno(self) -> int:
        """The first interface's OS socket descriptor; -1 when closed."""
        return self._tx.fileno()

    def getsockname(self) -> IPv4Or6Address:
        """The local address sent from (see :meth:`McastTxSocket.getsockname`).

        Raises:
            SocketClosedError: the socket is closed.
        """
        return self._tx.getsockname()

    def setsockopt(self, level: int, opt: int, value: int | bytes) -> None:
        """Set an extra socket option on every underlying OS socket.

        Raises:
            SocketClosedError: the socket is closed.
        """
        self._tx.setsockopt(level, opt, value)

    def open(self) -> None:
        """Open the underlying socket, every OS socket non-blocking."""
        self._tx.open()
        self._tx.setblocking(False)

    def close(self) -> None:
        """Close the underlying socket; sends and receives waiting on it raise
        :class:`SocketClosedError`."""
        self._replies.close()
        self._tx.close()
        here = running_loop()
        for w in self._waiters:
            if w.get_loop() is here:
                _fail(w, "The AsyncMcastTxSocket was closed while sending")
            else:  # closed from another thread: the future's own loop sets it
                with contextlib.suppress(RuntimeError):  # (that loop closed meanwhile: nothing waits)
                    w.get_loop().call_soon_threadsafe(
                        _fail, w, "The AsyncMcastTxSocket was closed while sending"
                    )
        self._waiters.clear()

    async def _pace(self) -> None:
        """Let other tasks run now and then during a long run of sends."""
        self._streak += 1
        if self._streak >= YIELD_EVERY:
            self._streak = 0
            await asyncio.sleep(0)

    async def sendto(self, data: bytes, address: IPv4Or6Address) -> None:
        """Send one datagram on every interface, waiting (without blocking the loop) for any
        whose send buffer is full.

        Raises:
            MulticastSendError: on several interfaces, the OS refused the send on some (the
                others were sent on); on one, the OS's error as McastTxSocket.sendto raises it.
            SocketClosedError: the socket is closed (also while waiting).
        """
        await self._pace()
        tx = self._tx
        if len(tx.network_interfaces) == 1:
            while True:
                try:
                    tx.sendto(data, address)
                    return
                except BlockingIOError:
                    await self._writable(self._os_sockets([0]))

        # Checked against every interface first (a scope id must suit them all): each attempt
        # below checks it against its own interface only, after others may have sent it.
        check_destination(address, tx.addr_family, tx.mcast_ips_set, tx.network_interfaces)

        def attempt(iface: IfaceInfo, done: int) -> tuple[int, OSError | None]:
            del done  # (one datagram: none sent yet on an interface this is called for)
            try:
                tx.sendto(data, address, iface=iface)
            except BlockingIOError:
                return 0, None
            except OSError as exc:
                return 0, exc
            return 1, None

        await self._on_each(f"Sending to {address[0]}", 1, attempt)

    async def send_batch(self, datagrams: Iterable[tuple[bytes, IPv4Or6Address]]) -> int:
        """Send ``(payload, (group, port))`` pairs on every interface, waiting (without blocking
        the loop) wherever a send buffer is full; returns how many were sent (all of them).

        Every pair is checked first, as McastTxSocket.send_batch checks it (nothing is sent if
        one is wrong). Cancelled midway, the datagrams sent so far stay sent.

        Raises:
            MulticastSendError: the OS refused a datagram on some interface; ``sent_by_iface``
                says how many went out on each (the other interfaces were still sent on).
            SocketClosedError: the socket is closed (also while waiting).
        """
        await self._pace()
        tx = self._tx
        if not tx.is_opened:  # (an empty batch too, as the synchronous socket's)
            raise SocketClosedError("send_batch() on a closed AsyncMcastTxSocket; open it first")
        batch = check_batch(datagrams, tx.addr_family, tx.mcast_ips_set, None, tx.network_interfaces)

        def attempt(iface: IfaceInfo, done: int) -> tuple[int, OSError | None]:
            try:
                return tx.send_batch(batch[done:], iface=iface), None
            except MulticastSendError as exc:  # (raised for this one interface)
                return exc.sent, exc.failures[iface.machine_name]

        await self._on_each(f"Sending a batch of {len(batch)}", len(batch), attempt)
        return len(batch)

    async def _on_each(
        self, what: str, total: int, attempt: Callable[[IfaceInfo, int], tuple[int, OSError | None]]
    ) -> None:
        """Call ``attempt(interface, sent there so far)`` -> (how many more went out, error) on
        each interface until all ``total`` went out there or it failed, waiting while every
        interface left has a full send buffer; then raise for the failures."""
        ifaces = self._tx.network_interfaces
        done = [0] * len(ifaces)
        failures: dict[str, OSError] = {}
        while True:
            full = []
            for k, iface in enumerate(ifaces):
                if done[k] == total or iface.machine_name in failures:
                    continue
                n, error = attempt(iface, done[k])
                done[k] += n
                if error is not None:
                    failures[iface.machine_name] = error
                elif done[k] < total:
                    full.append(k)
            if not full:
                break
            await self._writable(self._os_sockets(full))
        if failures:
            sent = {i.machine_name: n for i, n in zip(ifaces, done, strict=True)}
            raise MulticastSendError(what, failures, sent)

    @property
    def timeout(self) -> float | None:
        """How long a receive waits: None forever, 0 not at all, else seconds. Assignable."""
        return self._timeout

    @timeout.setter
    def timeout(self, timeout: float | None) -> None:
        self._timeout = check_timeout(timeout)

    def settimeout(self, timeout: float | None) -> None:
        """Set :attr:`timeout`."""
        self.timeout = timeout

    async def recvfrom(self, bufsize: int = 4096, flags: int = 0) -> tuple[bytes, IPv4Or6Address]:
        """Wait for one reply: ``(payload, sender address)`` (see McastTxSocket.recvfrom).

        Raises:
            TimeoutError: nothing arrived within the timeout.
            MulticastExpertError: the socket is closed (also while waiting).
        """
        replies = self._tx._replies
        return await self._replies.receive(lambda: replies.recvfrom(bufsize, flags, 0), self._timeout)

    async def recv(self, bufsize: int = 4096, flags: int = 0) -> bytes:
        """Wait for one reply's payload."""
        return (await self.recvfrom(bufsize, flags))[0]

    async def recv_packet(self, bufsize: int = 65535) -> McastPacket:
        """Wait for one reply with the local address and interface it came to."""
        replies = self._tx._replies
        return await self._replies.receive(lambda: replies.recv_packet(bufsize, 0), self._timeout)

    async def recv_batch(self, max_packets: int = 64, bufsize: int = 65535) -> list[McastPacket]:
        """Wait for the first reply, then return up to ``max_packets`` that are queued."""
        replies = self._tx._replies
        return await self._replies.receive(
            lambda: replies.recv_batch(max_packets, bufsize, 0) or None, self._timeout
        )

    def _os_sockets(self, which: list[int]) -> list[_OsSocket]:
        socks = self._tx.sockets
        if not socks:
            raise SocketClosedError("sendto() on a closed AsyncMcastTxSocket; open it first")
        return [socks[k] for k in which]

    async def _writable(self, socks: list[_OsSocket]) -> None:
        """Wait until one of ``socks`` may take a datagram (or the socket was closed)."""
        loop, io = asyncio.get_running_loop(), _platform.IO
        fut: asyncio.Future[None] = loop.create_future()
        # The loop watches copies of the numbers (DatagramIO.watch_copy), let go of here after
        # the last remove_writer: close() from elsewhere frees the sockets' own numbers at once,
        # and a new socket given one of them must not meet this wait's registration.
        fds: list[int] = []
        own = False  # (watching the sockets' own numbers: no descriptor to spare for copies)
        try:
            try:
                for s in socks:
                    fds.append(io.watch_copy(s.fileno()))
            except OSError as exc:
                if any(s.fileno() < 0 for s in socks):
                    raise SocketClosedError("sendto() on a closed AsyncMcastTxSocket; open it first") from exc
                for fd in fds:  # the descriptor table is full: the numbers themselves, as before
                    io.unwatch_copy(fd)
                fds, own = [s.fileno() for s in socks], True
            try:
                for fd in fds:
                    loop.add_writer(fd, _wake, fut)
            except NotImplementedError:  # e.g. ProactorEventLoop: wait in a worker thread
                await loop.run_in_executor(None, select.select, [], socks, [], THREAD_WAIT_SLICE)
                return
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)
                if not loop.is_closed():
                    for fd in fds:
                        loop.remove_writer(fd)
        finally:
            if not own:
                for fd in fds:
                    io.unwatch_copy(fd)


def _fail(fut: asyncio.Future[None], message: str) -> None:
    if not fut.done():
        fut.set_exception(SocketClosedError(message))


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


__all__ = ["THREAD_WAIT_SLICE", "YIELD_EVERY", "AsyncMcastRxSocket", "AsyncMcastTxSocket"]
