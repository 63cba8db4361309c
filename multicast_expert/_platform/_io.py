"""The per-OS layer's datagram I/O: reading without waiting, reading with metadata, batch receive
and send, and the poller with its wake-up descriptor.

Layering rule: part of ``_platform``; imports only its siblings. Nothing above it knows which
system call reads a datagram.

Results are classified for the receive engine: a read returns its datagram, raises
``BlockingIOError`` when nothing is queued, or returns :data:`DROPPED` when it took a datagram
that the socket must not deliver (Windows' destination filter), so the engine reads again.
"""

from __future__ import annotations

import enum
import os
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Final, TypeVar

from ._options import Address, Meta
from ._poller import Poller, Waker


class Dropped(enum.Enum):
    """The type of :data:`DROPPED`."""

    DROPPED = "dropped"


#: A read took a datagram that was not for this socket; read again.
DROPPED: Final = Dropped.DROPPED

_MSG_TRUNC = int(getattr(socket, "MSG_TRUNC", 0x20))  # a plain int: IntFlag's & costs ~0.7 us

_P = TypeVar("_P", bound=tuple[object, ...])

#: One datagram with its ancillary data, as batch reads return it.
Raw = tuple[bytes, Address, bool, list[tuple[int, int, bytes]]]


class DatagramIO:
    """One OS's datagram I/O; this base is the POSIX one (recvmsg, selectors, socket-pair waker)."""

    #: The flag that makes one read never wait on a blocking socket (MSG_DONTWAIT). 0 where the OS
    #: has none (Windows): receive sockets are then made non-blocking instead (see :meth:`prepare_rx`).
    DONTWAIT: ClassVar[int] = int(getattr(socket, "MSG_DONTWAIT", 0))
    #: :meth:`recvfrom` and :meth:`recv_packet` are this class's (no destination filter): exactly
    #: ``reader.recvfrom(bufsize, flags | DONTWAIT)`` and ``reader.recvmsg(bufsize, 0, DONTWAIT)``,
    #: so callers may make those calls themselves, one Python call less per datagram.
    UNFILTERED: ClassVar[bool] = True
    #: recvmsg's MSG_TRUNC flag (<sys/socket.h>), as a plain int.
    TRUNC: ClassVar[int] = _MSG_TRUNC

    def reader(self, sock: socket.socket, family: int | None = None) -> socket.socket:
        """The object the library reads a new receive socket through, made so reads never wait.

        With MSG_DONTWAIT the socket itself stays blocking (as multicast_expert 1.2.0's were, for
        programs that read ``rx.sockets``), and the library reads through a second socket object on
        the same descriptor whose timeout is always None: a timeout a program sets on the exposed
        socket (which makes CPython poll before every read) never slows the library's reads. Where
        there is no such flag (Windows) the socket is made non-blocking and read directly.
        ``family``: the socket's, when the caller knows it and the socket is a datagram one (the
        socket object's ``family`` and ``type`` properties cost more than the rest of this call).
        """
        if not self.DONTWAIT:
            sock.setblocking(False)
            return sock
        if family is None:
            shadow = socket.socket(sock.family, sock.type, sock.proto, fileno=sock.fileno())
        else:
            shadow = socket.socket(family, socket.SOCK_DGRAM, sock.proto, fileno=sock.fileno())
        if shadow.gettimeout() is not None:  # socket.setdefaulttimeout() was called
            shadow.settimeout(None)
        return shadow

    def open_reader(self, sock: socket.socket) -> socket.socket | None:
        """What a new receive socket is read through from the start: None where :meth:`reader`
        may make it on first need (with MSG_DONTWAIT: the socket stays blocking, and most sockets
        are never read through a second object, e.g. with the C accelerator); else (no such flag:
        Windows) the socket itself, made non-blocking now."""
        if self.DONTWAIT:
            return None
        return self.reader(sock)

    @staticmethod
    def watch_copy(fd: int) -> int:
        """The number an event loop watches for ``fd``: a duplicate, which the watcher closes with
        :meth:`unwatch_copy` on the loop's thread once it unregistered it, so a socket closed by
        another thread meanwhile cannot free the number for a new socket that the late
        unregistration would then leave deaf. (Windows: ``fd`` itself, a socket handle.)"""
        return os.dup(fd)

    @staticmethod
    def unwatch_copy(fd: int) -> None:
        """Let go of a number :meth:`watch_copy` gave."""
        os.close(fd)

    def watch(self, loop: Any, fd: int, callback: Callable[[], None]) -> int:
        """``loop.add_reader`` for ``fd`` through :meth:`watch_copy`'s number, which it returns
        (let go of again when ``add_reader`` raises, e.g. NotImplementedError on a Proactor loop)."""
        w = self.watch_copy(fd)
        try:
            loop.add_reader(w, callback)
        except BaseException:
            self.unwatch_copy(w)
            raise
        return w

    @staticmethod
    def release(reader: socket.socket, sock: socket.socket) -> None:
        """Close a receive socket and let go of its reader (which never closes the descriptor)."""
        if reader is not sock:
            reader.detach()
        sock.close()

    def recvfrom(
        self, sock: socket.socket, bufsize: int, flags: int, group: str
    ) -> tuple[bytes, Address] | Dropped:
        """One datagram without waiting: ``(payload, sender)``."""
        got: tuple[bytes, Address] = sock.recvfrom(bufsize, flags | self.DONTWAIT)
        return got

    def recv_packet(
        self, sock: socket.socket, bufsize: int, group: str
    ) -> tuple[bytes, Address, bool] | Dropped:
        """One datagram without waiting: ``(payload, sender, truncated)``."""
        if sys.platform == "win32":  # (type checkers: Windows' class overrides this)
            raise NotImplementedError
        data, _anc, msg_flags, addr = sock.recvmsg(bufsize, 0, self.DONTWAIT)
        return data, addr, bool(msg_flags & _MSG_TRUNC)

    def recv_packet_meta(
        self, sock: socket.socket, bufsize: int, family: int, group: str
    ) -> tuple[bytes, Address, bool, Meta] | Dropped:
        """One datagram with its metadata: ``(payload, sender, truncated, (ttl, tos, time))``."""
        if sys.platform == "win32":
            raise NotImplementedError
        data, anc, msg_flags, addr = sock.recvmsg(bufsize, 256, self.DONTWAIT)
        return data, addr, bool(msg_flags & _MSG_TRUNC), self.decode_meta(anc, family)

    def decode_meta(self, anc: list[tuple[int, int, bytes]], family: int) -> Meta:
        """(ttl, tos, timestamp) from ancillary data; None for what is absent or unknown here."""
        return (None, None, None)

    #: ``recv_unit(bufsize, flags, packet_cls, unit)``: :meth:`recvfrom` (``packet_cls`` None) or a
    #: packet (:meth:`recv_packet` with the unit's group and interface index) straight from a
    #: unit's descriptor, where the OS layer has it (the C accelerator; never with a destination
    #: filter); else None. The unit's liveness is checked in the same call as the read, so a unit
    #: left or closed by another thread is never read through a descriptor number reused since.
    recv_unit: Callable[[int, int, Any, Any], Any] | None = None
    #: ``poll_read(bufsize, packet_cls, by_fd, poll_fd, wake_fd, timeout)``: the wait on a poller's
    #: descriptor and, when exactly one socket became ready, its read, in a single call: None
    #: (timeout), the datagram (a ``packet_cls`` tuple unless that is None), or the ready
    #: descriptors (nothing read); where the OS layer has such a call (the C accelerator over
    #: epoll); else None.
    poll_read: Callable[[int, Any, dict[int, Any], int, int, float | None], Any] | None = None
    #: ``recv_share(bufsize, packet_cls, units, start, room, out, gone)``: a whole fair batch over
    #: several sockets in one call, appending packets to ``out`` (the sharing rule and errors of
    #: ``_speedups.recv_share``), where the OS layer has it; else None (the engine shares itself).
    recv_share: (
        Callable[[int, type[Any], list[Any], int, int, list[Any], Callable[[Any], object]], None] | None
    ) = None
    #: ``recv_poll_share(bufsize, packet_cls, epfd, by_fd, turn, room, out, gone)``: one
    #: non-waiting poll of the engine's poller and the share over the sockets it reports, in one
    #: call (returns how many were ready, -1 if the poll failed), where the OS layer has it.
    recv_poll_share: Callable[..., int] | None = None
    #: ``rx_hot(owner_ref, slow_from, slow_packet, resume, packet_cls, timeout)``: a receiving
    #: socket's ``recvfrom`` and ``recv_packet`` as C methods over the engine's fast-path state
    #: (``_speedups.RxHot``), where the OS layer has them; else None (``_rx_hot.PyHot`` serves
    #: where this layer reads without a destination filter, the class's methods elsewhere).
    rx_hot: Callable[..., Any] | None = None
    #: ``tx_hot(owner_ref, original, slow, family)``: a sending socket's one-interface ``sendto`` as a C
    #: method over destinations the Python method checked (``_speedups.TxHot``); else None.
    tx_hot: Callable[..., Any] | None = None

    def recv_packets(
        self, sock: socket.socket, count: int, size: int, group: str, ifindex: int, packet: type[_P]
    ) -> list[_P] | None:
        """Up to ``count`` queued datagrams as ``packet`` tuples ``(payload, sender, group, ifindex,
        truncated, None, None, None)`` in one call, or None where the OS layer can't (the caller
        then uses :meth:`recv_many`)."""
        return None

    def recv_many(
        self, sock: socket.socket, count: int, size: int, meta: bool, unit: Any = None
    ) -> list[Raw] | None:
        """Up to ``count`` queued datagrams in one system call, or None where the OS has no such
        call (the caller then reads one at a time). ``unit``: the receive unit read (its
        ``live`` is checked right before each system call)."""
        return None

    def send_many(
        self, sock: socket.socket, family: int, datagrams: Sequence[tuple[bytes, Address]]
    ) -> int | None:
        """Send datagrams in as few system calls as possible; None where the OS has no such call."""
        return None

    def send_known(
        self,
        sock: socket.socket,
        family: int,
        datagrams: Sequence[tuple[bytes, Address]],
        known: dict[object, object],
    ) -> int | None:
        """:meth:`send_many` of datagrams not yet checked, if every one is a ``(bytes, (str, int))``
        tuple to an address in ``known`` (found valid before; the values are the platform's to
        keep, None at first); else None, nothing sent, and the caller checks them (here: always
        None)."""
        return None

    def poller(self, fds: Iterable[int]) -> Poller:
        """A poller over ``fds`` plus a fresh wake-up descriptor."""
        return Poller(fds, Waker())
