"""recvmmsg(2) and sendmmsg(2) through ctypes (Linux): many datagrams per system call, with
per-datagram sender, truncation and ancillary data. No compiler needed.

Layouts (x86_64 / aarch64, glibc <sys/socket.h>, <bits/uio.h>, <netinet/in.h>):
``struct iovec {void *base; size_t len}``; ``struct msghdr {void *name; socklen_t namelen;
struct iovec *iov; size_t iovlen; void *control; size_t controllen; int flags}``;
``struct mmsghdr {struct msghdr hdr; unsigned int len}``; ``struct cmsghdr {size_t len; int level;
int type}`` followed by data aligned to ``sizeof(size_t)``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
import threading
from collections.abc import Sequence

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
MSG_DONTWAIT = 0x40  # <bits/socket.h>
MSG_TRUNC = 0x20
_NAME_SIZE = 128  # sockaddr_storage
_CONTROL_SIZE = 256
_ALIGN = ctypes.sizeof(ctypes.c_size_t)


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(_Iovec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


_recvmmsg = _libc.recvmmsg
_recvmmsg.argtypes = [ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
_recvmmsg.restype = ctypes.c_int
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int

Address = tuple[str, int] | tuple[str, int, int, int]
#: One received datagram: payload, sender, truncated, ancillary items [(level, type, data)].
Received = tuple[bytes, Address, bool, list[tuple[int, int, bytes]]]


class _RecvBuffers:
    """Buffers for up to ``count`` datagrams of ``size`` bytes (kept per thread and reused)."""

    def __init__(self, count: int, size: int, control: bool) -> None:
        self.count, self.size = count, size
        self.data = ctypes.create_string_buffer(count * size)
        self.names = ctypes.create_string_buffer(count * _NAME_SIZE)
        self.control = ctypes.create_string_buffer(count * _CONTROL_SIZE) if control else None
        self.iovs = (_Iovec * count)()
        self.msgs = (_Mmsghdr * count)()
        base = ctypes.addressof(self.data)
        names = ctypes.addressof(self.names)
        for i in range(count):
            self.iovs[i].base = base + i * size
            self.iovs[i].len = size
            h = self.msgs[i].hdr
            h.name = names + i * _NAME_SIZE
            h.iov = ctypes.pointer(self.iovs[i])
            h.iovlen = 1
            if self.control is not None:
                h.control = ctypes.addressof(self.control) + i * _CONTROL_SIZE

        self.dirty = count  # entries the kernel may have changed since the last reset
        self.reset()

    def reset(self) -> None:
        controllen = _CONTROL_SIZE if self.control is not None else 0
        for i in range(self.dirty):
            h = self.msgs[i].hdr
            h.namelen = _NAME_SIZE
            h.controllen = controllen
        self.dirty = 0


_local = threading.local()


def _buffers(count: int, size: int, control: bool) -> _RecvBuffers:
    cache: dict[tuple[int, int, bool], _RecvBuffers] = getattr(_local, "cache", None) or {}
    _local.cache = cache
    bufs = cache.get((count, size, control))
    if bufs is None:
        if len(cache) > 4:
            cache.clear()
        bufs = cache[(count, size, control)] = _RecvBuffers(count, size, control)
    return bufs


def parse_sockaddr(raw: bytes) -> Address:
    """A ``sockaddr_in`` / ``sockaddr_in6`` as the socket module returns it."""
    family = struct.unpack_from("=H", raw)[0]
    if family == socket.AF_INET:
        port, addr = struct.unpack_from("!H4s", raw, 2)
        return (socket.inet_ntop(socket.AF_INET, addr), port)
    port, flowinfo, addr, scope = struct.unpack_from("!HI16sI", raw, 2)
    scope = struct.unpack_from("=I", raw, 24)[0]
    return (socket.inet_ntop(socket.AF_INET6, addr), port, flowinfo, scope)


def _parse_control(raw: bytes) -> list[tuple[int, int, bytes]]:
    items = []
    offset = 0
    header = struct.calcsize("@Nii")
    while offset + header <= len(raw):
        length, level, kind = struct.unpack_from("@Nii", raw, offset)
        if length < header:
            break
        items.append((level, kind, raw[offset + header : offset + length]))
        offset += (length + _ALIGN - 1) & ~(_ALIGN - 1)
    return items


_names: dict[bytes, Address] = {}


def recv_many(sock: socket.socket, count: int, size: int, control: bool) -> list[Received]:
    """Up to ``count`` queued datagrams from ``sock`` without waiting; [] if none is queued."""
    bufs = _buffers(count, size, control)
    bufs.reset()
    n = _recvmmsg(sock.fileno(), bufs.msgs, count, MSG_DONTWAIT, None)
    if n < 0:
        err = ctypes.get_errno()
        if err in (11, 4):  # EAGAIN / EINTR
            return []
        raise OSError(err, os.strerror(err))
    bufs.dirty = n
    string_at = ctypes.string_at
    data = ctypes.addressof(bufs.data)
    names = ctypes.addressof(bufs.names)
    ctrl = ctypes.addressof(bufs.control) if bufs.control is not None else 0
    known = _names
    out: list[Received] = []
    for i in range(n):
        m = bufs.msgs[i]
        hdr = m.hdr
        raw_name = string_at(names + i * _NAME_SIZE, hdr.namelen)
        src = known.get(raw_name)
        if src is None:
            src = parse_sockaddr(raw_name)
            if len(known) < 4096:
                known[raw_name] = src
        anc = _parse_control(string_at(ctrl + i * _CONTROL_SIZE, hdr.controllen)) if ctrl else []
        out.append((string_at(data + i * size, min(m.len, size)), src, bool(hdr.flags & MSG_TRUNC), anc))
    return out


def send_many(sock: socket.socket, datagrams: Sequence[tuple[bytes, bytes]]) -> int:
    """Send ``(payload, raw sockaddr)`` pairs in as few calls as the kernel allows; returns how many
    were sent (fewer when the send buffer filled: the rest would block)."""
    count = len(datagrams)
    if not count:
        return 0
    iovs = (_Iovec * count)()
    msgs = (_Mmsghdr * count)()
    keep = []
    for i, (payload, name) in enumerate(datagrams):
        pbuf = ctypes.create_string_buffer(payload, len(payload))
        nbuf = ctypes.create_string_buffer(name, len(name))
        keep.append((pbuf, nbuf))
        iovs[i].base = ctypes.addressof(pbuf)
        iovs[i].len = len(payload)
        h = msgs[i].hdr
        h.name = ctypes.addressof(nbuf)
        h.namelen = len(name)
        h.iov = ctypes.pointer(iovs[i])
        h.iovlen = 1
    sent = 0
    while sent < count:
        n = _sendmmsg(sock.fileno(), ctypes.byref(msgs[sent]), count - sent, 0)
        if n < 0:
            err = ctypes.get_errno()
            if err == 4:  # EINTR
                continue
            if err == 11 and sent:  # EAGAIN after some went out
                break
            raise OSError(err, os.strerror(err))
        sent += n
    return sent


def sockaddr(family: int, ip: str, port: int, scope: int = 0) -> bytes:
    """The raw ``sockaddr_in`` / ``sockaddr_in6`` for a destination."""
    if family == socket.AF_INET:
        return struct.pack("=H", family) + struct.pack("!H4s", port, socket.inet_pton(family, ip)) + bytes(8)
    return (
        struct.pack("=H", family)
        + struct.pack("!HI16s", port, 0, socket.inet_pton(family, ip.split("%", 1)[0]))
        + struct.pack("=I", scope)
    )
