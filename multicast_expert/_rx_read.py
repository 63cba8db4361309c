"""The read functions the receive engine calls for McastRxSocket, built once per receive call from
the per-OS I/O layer: one datagram, one packet (with or without metadata), a batch.

Layering rule: uses the per-OS I/O layer, the packet type and the membership's units only. Each
read returns its datagram, ``DROPPED`` (taken but not this socket's: read again) or raises
BlockingIOError (nothing queued); the *multi* one, where the OS layer offers a single-call wait
and read over a poller (the C accelerator), waits too (see ``ReceiveEngine.receive``).
"""

from __future__ import annotations

import errno
import functools
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from . import _platform
from ._packet import McastPacket
from ._platform import DROPPED, Dropped
from ._unit import Unit
from ._validate import IPv4Or6Address

#: Largest buffer a batch receive reads each datagram into (a UDP payload is at most 65,535 bytes).
BATCH_BUFSIZE = 65535
_new = tuple.__new__  # skips the NamedTuple's Python-level __new__ on the hot path

Datagram = tuple[bytes, IPv4Or6Address]
_T = TypeVar("_T")
#: ``read_share(units, start, room, out, gone)``: see :meth:`~._engine.ReceiveEngine.receive_batch`.
ShareReader = Callable[[list[Unit], int, int, list[McastPacket], Callable[[Unit], bool]], None]
#: ``poll_share(epfd, by_fd, turn, room, out, gone)``: see ``ReceiveEngine.receive_batch``.
PollShareReader = Callable[[int, dict[int, Unit], int, int, list[McastPacket], Callable[[Unit], bool]], int]


#: ``multi(by_fd, poll_fd, wake_fd, timeout)``: a poller's wait and, when one socket became ready,
#: its read: the datagram, None (timeout) or the ready descriptors (nothing read).
Multi = Callable[[dict[int, Unit], int, int, float | None], _T | list[int] | None]
Readers = tuple[Callable[[Unit], _T | Dropped], Multi[_T] | None]


def gone(u: Unit) -> OSError:
    """The error for a packet read from ``u`` while another thread left or closed it (raised, and
    the packet dropped, when ``u`` is no longer live after the read). Python's socket methods
    release the GIL before their system call: the descriptor number may have been closed and
    reused by a new socket (a group joined meanwhile) by the time the read ran, and its datagram
    must not be labelled with ``u``'s group. (Were it ``u``'s, ``u``'s group was being left.)"""
    return OSError(errno.EBADF, f"the socket for {u.group} was closed during the read")


def reader_of(u: Unit) -> socket.socket:
    """``u``'s reader, once its socket is found still open on its number: closed by the program
    (one of ``rx.sockets``), the number may already be another socket's, which the reader (a
    second socket object on the same number) would read; then OSError (EBADF)."""
    if u.sock.fileno() != u.fd:
        raise OSError(errno.EBADF, f"the socket for {u.group} was closed outside the library")
    return u.reader


def datagram_readers(bufsize: int, flags: int) -> Readers[Datagram]:
    """``(read, multi)`` for recvfrom: ``(payload, sender)``. No ``multi`` with ``flags``."""
    io = _platform.IO
    recvfrom, recv_unit = io.recvfrom, io.recv_unit
    if recv_unit is not None:  # (the C accelerator: a C call straight from the engine)
        read: Callable[[Unit], Datagram | Dropped] = functools.partial(recv_unit, bufsize, flags, None)
    elif io.UNFILTERED:  # (no destination filter: the OS layer's recvfrom is just this call)
        read_flags = flags | io.DONTWAIT

        def read_direct(u: Unit) -> Datagram | Dropped:
            got: Datagram = reader_of(u).recvfrom(bufsize, read_flags)
            return got

        read = read_direct
    else:

        def read_filtered(u: Unit) -> Datagram | Dropped:
            return recvfrom(reader_of(u), bufsize, flags, u.group)

        read = read_filtered

    return read, None if flags else _multi_reader(bufsize, None)


def _multi_reader(bufsize: int, packet_cls: type[McastPacket] | None) -> Any:
    """The OS layer's single-call wait-and-read over a poller with ``bufsize`` and the result type
    bound (a C function: no Python frame between the engine and the OS), or None where it has
    none. ``packet_cls`` None: datagram tuples."""
    io = _platform.IO
    return None if io.poll_read is None else functools.partial(io.poll_read, bufsize, packet_cls)


def packet_readers(bufsize: int, family: int, meta: bool) -> Readers[McastPacket]:
    """``(read, multi)`` for recv_packet. No ``multi`` with metadata."""
    if meta:
        return meta_reader(bufsize, family), None
    return plain_reader(bufsize), _multi_reader(bufsize, McastPacket)


def plain_reader(bufsize: int) -> Callable[[Unit], McastPacket | Dropped]:
    """One datagram as an McastPacket without metadata."""
    io = _platform.IO
    if io.recv_unit is not None:  # (the C accelerator: the packet made in the same C call)
        return functools.partial(io.recv_unit, bufsize, 0, McastPacket)
    if io.UNFILTERED:  # (no destination filter: the OS layer's recv_packet is just this call)
        dontwait, trunc = io.DONTWAIT, io.TRUNC

        def read_direct(u: Unit) -> McastPacket | Dropped:
            data, _anc, msg_flags, src = reader_of(u).recvmsg(bufsize, 0, dontwait)  # type: ignore[attr-defined,unused-ignore]  # (win32: never UNFILTERED)
            if not u.live:
                raise gone(u)
            packet: McastPacket = _new(
                McastPacket, (data, src, u.group, u.iface.index, bool(msg_flags & trunc), None, None, None)
            )
            return packet

        return read_direct
    recv_packet = io.recv_packet

    def read(u: Unit) -> McastPacket | Dropped:
        got = recv_packet(reader_of(u), bufsize, u.group)
        if got is DROPPED:
            return got
        if not u.live:
            raise gone(u)
        data, src, truncated = got
        packet: McastPacket = _new(
            McastPacket, (data, src, u.group, u.iface.index, truncated, None, None, None)
        )
        return packet

    return read


def meta_reader(bufsize: int, family: int) -> Callable[[Unit], McastPacket | Dropped]:
    """One datagram as an McastPacket with TTL, TOS and receive time (None where unsupported)."""
    recv_meta = _platform.IO.recv_packet_meta

    def read(u: Unit) -> McastPacket | Dropped:
        got = recv_meta(reader_of(u), bufsize, family, u.group)
        if got is DROPPED:
            return got
        if not u.live:
            raise gone(u)
        data, src, truncated, (ttl, tos, stamp) = got
        return McastPacket(data, src, u.group, u.iface.index, truncated, ttl, tos, stamp)

    return read


BatchReaders = tuple[Callable[[Unit, int], list[McastPacket]], ShareReader | None, PollShareReader | None]


def batch_readers(bufsize: int, family: int, meta: bool) -> BatchReaders:
    """``(read_many, read_share, poll_share)``. ``read_many(unit, n)``: recvmmsg where the OS has
    it (straight into packets with the C accelerator), else one datagram at a time.
    ``read_share(units, start, room, out, gone)``: a whole fair batch in one call where the OS
    layer has one (Linux, without metadata), else None. ``poll_share(epfd, by_fd, turn, room,
    out, gone)``: the poll for ready sockets and the share in one call (the C accelerator)."""
    io = _platform.IO
    size = min(bufsize, BATCH_BUFSIZE)
    share, polled = io.recv_share, io.recv_poll_share
    read_share = None if meta or share is None else functools.partial(share, size, McastPacket)
    poll_share = None if meta or polled is None else functools.partial(polled, size, McastPacket)
    one = meta_reader(bufsize, family) if meta else plain_reader(bufsize)

    def read_many(u: Unit, n: int) -> list[McastPacket]:
        # (both batch calls keep the GIL from their checks of the unit through each recvmmsg)
        reader = reader_of(u)
        if not meta:
            packets = io.recv_packets(reader, n, size, u.group, u.iface.index, McastPacket)
            if packets is not None:
                return packets
        got = io.recv_many(reader, n, size, meta, u)
        group, index = u.group, u.iface.index
        if got is not None:
            if not meta:
                return [
                    _new(McastPacket, (d, src, group, index, t, None, None, None)) for d, src, t, _ in got
                ]
            decode = io.decode_meta
            return [McastPacket(d, src, group, index, t, *decode(anc, family)) for d, src, t, anc in got]
        out: list[McastPacket] = []
        while len(out) < n:
            try:
                packet = one(u)
            except (BlockingIOError, InterruptedError):
                break
            if packet is not DROPPED:
                out.append(packet)
        return out

    return read_many, read_share, poll_share
