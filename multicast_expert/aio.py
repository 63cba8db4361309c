"""asyncio versions of the sockets: receives wait without blocking the event loop.

They need an event loop with ``add_reader`` (the default on Linux and macOS; on Windows use
``asyncio.SelectorEventLoop``).
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ._errors import MulticastExpertError, MulticastSendError
from ._lifecycle import AsyncOpenCloseContext
from ._tx_args import check_batch
from ._tx_replies import AsyncWaiter
from ._validate import IPv4Or6Address, check_timeout
from .interfaces import IfaceInfo
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
    """McastTxSocket for asyncio: same constructor arguments; ``sendto`` and ``send_batch`` are
    coroutines.

    Every OS socket (one per interface) is non-blocking, so a send never blocks the event loop:
    an interface whose send buffer is full is waited for (by ``add_writer``, or a worker thread
    on loops without it) while the others go ahead, and a datagram goes out at most once on each
    interface. On several interfaces a failure on one still sends on the others, then raises
    :class:`MulticastSendError` (as the synchronous class does).

    ``recvfrom()``, ``recv()``, ``recv_packet()`` and ``recv_batch()`` await the unicast replies
    to the socket's own port as McastTxSocket's do, by :attr:`timeout` (None, the default: no
    limit), raising ``TimeoutError`` as AsyncMcastRxSocket does; cancelling one loses no reply.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._tx = McastTxSocket(*args, **kwargs)
        self._streak = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._replies = AsyncWaiter(self._tx._replies)
        self._timeout = self._tx.timeout  # the async wait limit (the reads themselves never wait)

    @property
    def sync_socket(self) -> McastTxSocket:
        """The underlying McastTxSocket."""
        return self._tx

    @property
    def is_opened(self) -> bool:
        """Whether the socket is open."""
        return self._tx.is_opened

    def _is_open(self) -> bool:
        return self._tx.is_opened

    def open(self) -> None:
        """Open the underlying socket, every OS socket non-blocking."""
        self._tx.open()
        self._tx.setblocking(False)

    def close(self) -> None:
        """Close the underlying socket; sends and receives waiting on it get MulticastExpertError."""
        self._replies.close()
        self._tx.close()
        for w in self._waiters:
            if not w.done():
                w.set_exception(MulticastExpertError("The AsyncMcastTxSocket was closed while sending"))
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
            MulticastExpertError: the socket is closed (also while waiting).
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
            MulticastExpertError: the socket is closed (also while waiting).
        """
        await self._pace()
        tx = self._tx
        batch = check_batch(datagrams, tx.addr_family, tx.mcast_ips_set)

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

    def _os_sockets(self, which: list[int]) -> list[socket.socket]:
        socks = self._tx.sockets
        if not socks:
            raise MulticastExpertError("sendto() on a closed AsyncMcastTxSocket; open it first")
        return [socks[k] for k in which]

    async def _writable(self, socks: list[socket.socket]) -> None:
        """Wait until one of ``socks`` may take a datagram (or the socket was closed)."""
        loop = asyncio.get_running_loop()
        fds = [s.fileno() for s in socks]
        fut: asyncio.Future[None] = loop.create_future()
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
            for fd in fds:
                loop.remove_writer(fd)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


__all__ = ["AsyncMcastRxSocket", "AsyncMcastTxSocket"]
