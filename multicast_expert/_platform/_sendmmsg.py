"""sendmmsg(2) through ctypes (Linux): many datagrams per system call from prepared buffers,
through a checked duplicate of the socket's number. No compiler needed.

Layouts: see ``_mmsg`` (``struct iovec``, ``struct msghdr``, ``struct mmsghdr``); a destination is
a raw ``sockaddr_in`` (16 bytes) or ``sockaddr_in6`` (28 bytes, <netinet/in.h>).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import struct
import sys
from collections.abc import Sequence
from itertools import accumulate
from operator import itemgetter

from ._mmsg import (
    _EAGAIN,
    _EINTR,
    _MMSG,
    _NAME_SIZE,
    F_DUPFD_CLOEXEC,
    MSG_DONTWAIT,
    Address,
    _c,
    _Iovec,
    _local,
    _Mmsghdr,
    _Msghdr,
)


class _SendBuffers:
    """Preallocated sendmmsg arrays, a payload area and a destination area for up to ``count``
    datagrams (kept per thread, grown as needed).

    Message ``i`` always points at iovec ``i`` and at destination slot ``i`` (``namelen`` bytes
    each, back to back), so a call writes only the destinations (one copy of their joined raw
    sockaddrs) and the payloads (one copy of their join); the iovecs are rewritten (one ``struct``
    call) only when the payload sizes differ from the previous call's.
    """

    def __init__(self, count: int, capacity: int) -> None:
        self.count, self.capacity = count, capacity
        self.iovs = (_Iovec * count)()
        self.msgs = (_Mmsghdr * count)()
        self.payload = ctypes.create_string_buffer(capacity)
        self.payload_view = memoryview(self.payload).cast("B")
        self.names = ctypes.create_string_buffer(_NAME_SIZE * count)
        self.names_view = memoryview(self.names).cast("B")
        self.iov_view = memoryview(self.iovs).cast("B")
        self.namelen = 0  # the destination size the headers describe (0: none yet)
        self.sizes: list[int] = []  # the payload sizes the iovecs describe
        for i in range(count):
            h = self.msgs[i].hdr
            h.iov = ctypes.pointer(self.iovs[i])
            h.iovlen = 1

    def point_names(self, namelen: int) -> None:
        """Point message ``i`` at destination slot ``i`` of ``namelen`` bytes."""
        hdrs, base = memoryview(self.msgs).cast("B"), ctypes.addressof(self.names)
        for i in range(self.count):
            _NAME_FIELDS.pack_into(hdrs, i * _MMSG + _OFF_NAME, base + i * namelen, namelen)
        self.namelen = namelen

    def describe(self, sizes: list[int]) -> None:
        """Point the first ``len(sizes)`` iovecs at consecutive payloads of these sizes."""
        fields: list[int] = [0] * (2 * len(sizes))
        fields[0::2] = accumulate(sizes[:-1], initial=ctypes.addressof(self.payload))
        fields[1::2] = sizes
        _iov_struct(len(sizes)).pack_into(self.iov_view, 0, *fields)
        self.sizes = sizes


#: Message name pointer and namelen, consecutive in struct msghdr.
_NAME_FIELDS = struct.Struct("@PI")
_OFF_NAME = _Msghdr.name.offset
_CHUNK = 1024  # sendmmsg takes at most UIO_MAXIOV (1024) messages per call
#: How long send_batch waits for room in a blocking socket's buffer at a time (seconds).
SEND_WAIT = 0.05
_iov_structs: dict[int, struct.Struct] = {}
_PAYLOAD, _DESTINATION = itemgetter(0), itemgetter(1)
#: Raw sockaddr of each destination sent to, per family (few groups, many datagrams).
_raw_names: dict[int, dict[object, bytes]] = {socket.AF_INET: {}, socket.AF_INET6: {}}
_NAMELEN: dict[int, int] = {socket.AF_INET: 16, socket.AF_INET6: 28}
_KNOWN_MAX = 4096


def _iov_struct(count: int) -> struct.Struct:
    """The layout of ``count`` consecutive iovecs (one per batch size, at most _CHUNK of them)."""
    layout = _iov_structs.get(count)
    if layout is None:
        layout = _iov_structs[count] = struct.Struct("@" + "PN" * count)
    return layout


def _send_buffers(count: int, capacity: int) -> _SendBuffers:
    bufs: _SendBuffers | None = getattr(_local, "send", None)
    if bufs is None or bufs.count < count or bufs.capacity < capacity:
        bufs = _local.send = _SendBuffers(max(count, 64), max(capacity, 1 << 16))
    return bufs


def _raw_name(family: int, known: dict[object, bytes], address: Address) -> bytes:
    """The raw sockaddr of ``address``, remembered while fewer than _KNOWN_MAX are."""
    name = known.get(address)
    if name is None:
        flow, scope = (address[2], address[3]) if len(address) == 4 else (0, 0)
        name = sockaddr(family, address[0], address[1], scope, flow)
        if len(known) < _KNOWN_MAX:
            known[address] = name
    return name


def send_many(sock: socket.socket, family: int, datagrams: Sequence[tuple[bytes, Address]]) -> int:
    """Send checked ``(payload, address)`` pairs (``sock``'s ``family``) in as few sendmmsg calls
    as the kernel allows.

    Returns how many were sent, in order. Like sendmmsg(2) itself it stops early, returning the
    count, when a datagram after the first fails or would block; the caller learns why by sending
    the rest. Raises OSError (BlockingIOError for EAGAIN) only when the first datagram fails.
    """
    known = _raw_names[family]
    try:
        names = list(map(known.__getitem__, map(_DESTINATION, datagrams)))
    except KeyError:  # a destination new to this process
        names = [_raw_name(family, known, a) for a in map(_DESTINATION, datagrams)]
    return _send(sock, list(map(_PAYLOAD, datagrams)), names, _NAMELEN[family])


def send_known(
    sock: socket.socket, family: int, datagrams: Sequence[tuple[bytes, Address]], known: dict[object, object]
) -> int | None:
    """:func:`send_many` of pairs not checked yet, if every one is a tuple of bytes and an
    address in ``known`` (destinations found valid, each with its raw sockaddr once sent to, else
    None) with an int port; else None, nothing sent. One pass does the check and gathers."""
    payloads: list[bytes] = []
    names: list[bytes] = []
    payload, name = payloads.append, names.append
    try:
        for item in datagrams:
            if type(item) is not tuple:
                return None
            data, addr = item
            if type(data) is not bytes or type(addr) is not tuple or type(addr[1]) is not int:
                return None
            raw = known[addr]
            if raw is None:
                raw = known[addr] = _raw_name(family, _raw_names[family], addr)
            payload(data)
            name(raw)  # type: ignore[arg-type]  # (the raw sockaddrs stored just above)
    except (KeyError, TypeError, ValueError):  # unknown, unhashable, not a pair
        return None
    return _send(sock, payloads, names, _NAMELEN[family])


def _send(sock: socket.socket, payloads: list[bytes], names: list[bytes], namelen: int) -> int:
    """Send ``payloads[i]`` to raw sockaddr ``names[i]`` (each ``namelen`` bytes), in order,
    through a duplicate of ``sock``'s number made first and checked after (another thread may
    close ``sock`` and a new socket take the number meanwhile); none to spare: the number, with
    the GIL held through each call. The contract of the accelerator's ``send_batch``: every call
    MSG_DONTWAIT, a blocking socket's full buffer waited for a slice at a time, and ``sock``
    checked between calls and slices (closed meanwhile: EBADF)."""
    number = sock.fileno()
    pin = _c().dup(number, F_DUPFD_CLOEXEC, 0) if number >= 0 else -1
    if pin >= 0 and sock.fileno() != number:
        os.close(pin)
        raise OSError(errno.EBADF, "the socket was closed during send_batch")
    try:
        return _send_on(sock, number, pin, payloads, names, namelen)
    finally:
        if pin >= 0:
            os.close(pin)


def _send_on(
    sock: socket.socket, number: int, pin: int, payloads: list[bytes], names: list[bytes], namelen: int
) -> int:
    count, calls = len(payloads), _c()
    call, fd = (calls.sendmmsg_held, number) if pin < 0 else (calls.sendmmsg, pin)
    sent, blocking = 0, None
    while sent < count:
        if sent or count > _CHUNK:
            chunk, dests = payloads[sent : sent + _CHUNK], names[sent : sent + _CHUNK]
        else:
            chunk, dests = payloads, names
        n = len(chunk)
        sizes = list(map(len, chunk))
        bufs = _send_buffers(n, sum(sizes))
        if bufs.namelen != namelen:
            bufs.point_names(namelen)
        if sizes != bufs.sizes:
            bufs.describe(sizes)
        joined = b"".join(dests)
        bufs.names_view[: len(joined)] = joined
        joined = b"".join(chunk)
        bufs.payload_view[: len(joined)] = joined
        if pin < 0 and sock.fileno() != number:  # (the number itself: checked with the GIL held)
            raise OSError(errno.EBADF, "the socket was closed during send_batch")
        done = call(fd, bufs.msgs, n, MSG_DONTWAIT)
        if done < 0:
            err = ctypes.get_errno()
            if err == _EAGAIN:
                if blocking is None:
                    if sys.platform == "win32":  # (never: Linux only; for the type checker)
                        raise OSError(err, os.strerror(err))
                    blocking = os.get_blocking(fd)
                if not blocking:
                    if sent:
                        break  # the send buffer is full: report how many went
                    raise BlockingIOError(err, os.strerror(err))
                select.select([], [fd], [], SEND_WAIT)  # (a slice; then the checks below)
            elif err != _EINTR:
                if sent:  # report what went out; the caller's next call meets the error itself
                    break
                raise OSError(err, os.strerror(err))
        elif done == 0:
            break
        else:
            sent += done
        if sent < count and sock.fileno() != number:
            raise OSError(errno.EBADF, "the socket was closed during send_batch")
    return sent


def sockaddr(family: int, ip: str, port: int, scope: int = 0, flowinfo: int = 0) -> bytes:
    """The raw ``sockaddr_in`` / ``sockaddr_in6`` for a destination (flowinfo in network order,
    as CPython's sendto writes it)."""
    if family == socket.AF_INET:
        return struct.pack("=H", family) + struct.pack("!H4s", port, socket.inet_pton(family, ip)) + bytes(8)
    return (
        struct.pack("=H", family)
        + struct.pack("!HI16s", port, flowinfo, socket.inet_pton(family, ip.split("%", 1)[0]))
        + struct.pack("=I", scope)
    )
