"""recvmmsg(2) through ctypes (Linux): many datagrams per system call, with per-datagram sender,
truncation and ancillary data, and the C library's calls bound once (``_sendmmsg`` sends with
them). No compiler needed.

Layouts (x86_64 / aarch64, glibc <sys/socket.h>, <bits/uio.h>, <netinet/in.h>):
``struct iovec {void *base; size_t len}``; ``struct msghdr {void *name; socklen_t namelen;
struct iovec *iov; size_t iovlen; void *control; size_t controllen; int flags}``;
``struct mmsghdr {struct msghdr hdr; unsigned int len}``; ``struct cmsghdr {size_t len; int level;
int type}`` followed by data aligned to ``sizeof(size_t)``.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar

MSG_DONTWAIT = 0x40  # <bits/socket.h>
_EINTR, _EAGAIN = 4, 11  # <asm-generic/errno-base.h>
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


#: Linux <linux/fcntl.h>: F_DUPFD_CLOEXEC = F_LINUX_SPECIFIC_BASE (1024) + 6 (this module is
#: Linux-only; the fcntl module, absent on Windows, is not needed for one number).
F_DUPFD_CLOEXEC = 1030


#: The C library's functions as the process has them (dlopen(NULL): every Python on Linux has the C
#: library loaded). Not ctypes.util.find_library, which runs a program and writes a temporary
#: file: it fails at the descriptor limit, where a first batch may well be sent.
_LIBC = None


class _Calls:
    """recvmmsg, sendmmsg and fcntl from the C library, bound on first use (only Linux has them).
    ``recvmmsg`` and ``dup`` keep the GIL through the call (a PyDLL's functions): a read never
    waits (MSG_DONTWAIT), so it is one step with the check before it that its unit is live and
    its socket open on its number; no other thread can close the number and reuse it between."""

    def __init__(self) -> None:
        libc, held = ctypes.CDLL(_LIBC, use_errno=True), ctypes.PyDLL(_LIBC, use_errno=True)
        self.recvmmsg = held.recvmmsg
        c_int, mmsg = ctypes.c_int, ctypes.POINTER(_Mmsghdr)
        self.recvmmsg.argtypes = [c_int, mmsg, ctypes.c_uint, c_int, ctypes.c_void_p]
        self.recvmmsg.restype = ctypes.c_int
        #: The same, releasing the GIL (a large read; see _pinned_read).
        self.recvmmsg_released = libc.recvmmsg
        self.recvmmsg_released.restype = ctypes.c_int
        #: ``dup(fd, F_DUPFD_CLOEXEC, 0)``: the duplicate, or -1 (EBADF: closed; EMFILE: none to spare).
        self.dup = held.fcntl
        self.dup.argtypes = [c_int, c_int, c_int]
        self.dup.restype = ctypes.c_int
        self.sendmmsg = libc.sendmmsg
        self.sendmmsg.argtypes = [c_int, mmsg, ctypes.c_uint, c_int]
        self.sendmmsg.restype = ctypes.c_int
        #: The same, keeping the GIL (MSG_DONTWAIT: on the socket's own number, see _send_on).
        self.sendmmsg_held = held.sendmmsg
        self.sendmmsg_held.argtypes = [c_int, mmsg, ctypes.c_uint, c_int]
        self.sendmmsg_held.restype = ctypes.c_int


_calls: _Calls | None = None


def _c() -> _Calls:
    global _calls
    if _calls is None:
        _calls = _Calls()
    return _calls


Address = tuple[str, int] | tuple[str, int, int, int]
#: One received datagram: payload, sender, truncated, ancillary items [(level, type, data)].
Received = tuple[bytes, Address, bool, list[tuple[int, int, bytes]]]


_P = TypeVar("_P", bound=tuple[object, ...])
_MMSG = ctypes.sizeof(_Mmsghdr)
_OFF_NAMELEN = _Msghdr.namelen.offset
_OFF_CONTROLLEN = _Msghdr.controllen.offset
_OFF_FLAGS = _Msghdr.flags.offset
_OFF_LEN = _Mmsghdr.len.offset
_UINT = struct.Struct("@I")
#: One whole mmsghdr: name, namelen, iov, iovlen, control, controllen, flags, len (x86_64/aarch64).
_HDR = struct.Struct("@PI4xPNPNi4xI4x")
_SIZE_T = struct.Struct("@N")
_INT = struct.Struct("@i")


#: Most bytes of datagram buffer one thread keeps for batch receives, whatever the batch size:
#: a batch of more datagrams than fit is read with several recvmmsg calls into the same buffers.
RECV_BUDGET = 4 << 20
#: Most datagrams one recvmmsg call reads (the kernel caps a call at UIO_MAXIOV, 1024).
_MAX_SLOTS = 1024


class _RecvBuffers:
    """Buffers for up to ``count`` datagrams of ``size`` bytes (kept per thread and reused; the
    memory is zero-filled once, when made, never per call).

    Results are read back through memoryviews and ``struct`` rather than ctypes field access,
    which costs microseconds per field.
    """

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
            h.namelen = _NAME_SIZE
            h.iov = ctypes.pointer(self.iovs[i])
            h.iovlen = 1
            if self.control is not None:
                h.control = ctypes.addressof(self.control) + i * _CONTROL_SIZE
                h.controllen = _CONTROL_SIZE
        self.hdrs = memoryview(self.msgs).cast("B")
        self.data_view = memoryview(self.data).cast("B")
        self.name_view = memoryview(self.names).cast("B")
        self.control_view = memoryview(self.control).cast("B") if self.control is not None else None
        self.dirty = 0  # entries whose lengths the kernel changed since the last reset
        #: The headers as made: copied back over the entries a call used, in one slice assignment.
        self.pristine = memoryview(bytes(self.hdrs))
        self.blank_names = memoryview(bytes(count * _NAME_SIZE))
        #: By result count k: the first k headers, the first k sender slots, the k payload offsets.
        self.results: dict[int, tuple[memoryview, memoryview, range]] = {}

    def first(self, k: int) -> tuple[memoryview, memoryview, range]:
        """Views of the first ``k`` entries, made once per k (at most ``count`` of them)."""
        views = self.results[k] = (
            self.hdrs[: k * _MMSG],
            self.name_view[: k * _NAME_SIZE],
            range(0, k * self.size, self.size),
        )
        return views

    def reset(self) -> None:
        # The kernel writes back namelen (the sender's address size: 16 after an IPv4 datagram,
        # too short for a later IPv6 one on the same thread) and controllen (what it used): both
        # are restored on every entry the last call used.
        pack_uint, pack_size, hdrs = _UINT.pack_into, _SIZE_T.pack_into, self.hdrs
        control = self.control is not None
        for i in range(self.dirty):
            pack_uint(hdrs, i * _MMSG + _OFF_NAMELEN, _NAME_SIZE)
            if control:
                pack_size(hdrs, i * _MMSG + _OFF_CONTROLLEN, _CONTROL_SIZE)
        self.dirty = 0


_local = threading.local()


def _buffers(size: int, control: bool) -> _RecvBuffers:
    """This thread's buffers for datagrams of ``size`` bytes: as many slots as RECV_BUDGET allows.
    One set per thread (a new size replaces it), so memory stays bounded whatever callers ask."""
    bufs: _RecvBuffers | None = getattr(_local, "recv", None)
    if bufs is None or bufs.size != size or (bufs.control is not None) != control:
        slots = max(1, min(_MAX_SLOTS, RECV_BUDGET // size))
        bufs = _local.recv = _RecvBuffers(slots, size, control)
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


def recv_many(sock: socket.socket, count: int, size: int, control: bool, unit: Any = None) -> list[Received]:
    """Up to ``count`` queued datagrams from ``sock`` without waiting; [] if none is queued.

    Reads with as many recvmmsg calls as the thread's buffers need (one, unless ``count`` datagrams
    of ``size`` bytes exceed RECV_BUDGET); stops at the first call that finds fewer than it asked.
    ``unit``: the receive unit ``sock`` reads, whose ``live`` is checked right before each call
    (see recv_share): no longer live, nothing more is read.
    """
    bufs = _buffers(size, control)
    fd = sock.fileno()
    out: list[Received] = []
    while len(out) < count:
        want = min(count - len(out), bufs.count)
        got = _recv_into(bufs, fd, want, size, out, unit)
        if got < want:
            break
    return out


def _recv_into(bufs: _RecvBuffers, fd: int, want: int, size: int, out: list[Received], unit: Any) -> int:
    bufs.reset()
    recvmmsg = _c().recvmmsg
    if unit is not None and (unit.sock.fileno() != fd or not unit.live):  # (attribute last: see recv_share)
        return 0
    n = recvmmsg(fd, bufs.msgs, want, MSG_DONTWAIT, None)
    if n < 0:
        err = ctypes.get_errno()
        if err in (11, 4):  # EAGAIN / EINTR
            return 0
        raise OSError(err, os.strerror(err))
    bufs.dirty = n
    data, names, ctrl = bufs.data_view, bufs.name_view, bufs.control_view
    known = _names
    append = out.append
    for i, (_, namelen, _, _, _, used, flags, length) in enumerate(_HDR.iter_unpack(bufs.hdrs[: n * _MMSG])):
        raw_name = bytes(names[i * _NAME_SIZE : i * _NAME_SIZE + namelen])
        src = known.get(raw_name)
        if src is None:
            src = parse_sockaddr(raw_name)
            if len(known) < 4096:
                known[raw_name] = src
        start = i * size
        payload = bytes(data[start : start + (length if length < size else size)])
        anc = (
            _parse_control(bytes(ctrl[i * _CONTROL_SIZE : i * _CONTROL_SIZE + used]))
            if ctrl is not None
            else []
        )
        append((payload, src, bool(flags & MSG_TRUNC), anc))
    return int(n)


#: From one mmsghdr: flags and len (the fields the kernel writes that a plain read needs).
_RESULT = struct.Struct(f"@{_OFF_FLAGS}xi{_OFF_LEN - _OFF_FLAGS - 4}xI{_MMSG - _OFF_LEN - 4}x")
#: A sender slot's first 28 bytes: a whole sockaddr_in6, or a sockaddr_in and zeros.
_SENDER = struct.Struct(f"28s{_NAME_SIZE - 28}x")
_recvmmsg_fast: Callable[..., int] | None = None


def _sender(raw: bytes) -> Address:
    """The address of a raw sender slot, remembered (for up to 4,096 senders)."""
    src = parse_sockaddr(raw)
    if len(_names) < 4096:
        _names[raw] = src
    return src


def _fast_call() -> Callable[..., int]:
    """recvmmsg without argtypes (half the per-call cost; the arguments convert exactly), keeping
    the GIL as _Calls.recvmmsg does."""
    global _recvmmsg_fast
    if _recvmmsg_fast is None:
        call = ctypes.PyDLL(_LIBC, use_errno=True).recvmmsg
        call.restype = ctypes.c_int
        _recvmmsg_fast = call
    return _recvmmsg_fast


#: A recvmmsg whose slots hold at most this many bytes keeps the GIL (it never waits, and
#: releasing costs more than a few small datagrams); a larger one lets other threads run.
HOLD_GIL_BYTES = 256 * 1024


def _pinned_read(unit: Any, sock: Any, fd: int, msgs: Any, want: int) -> int | None:
    """recvmmsg of a unit without the GIL, on a duplicate of its number checked *after* it was
    made (a unit is marked dead before its socket closes: still live then, the duplicate is of
    its socket). None to spare: the number itself, GIL held. None: not to be read."""
    pin = _c().dup(fd, F_DUPFD_CLOEXEC, 0)
    if pin < 0:
        held = _recvmmsg_fast or _fast_call()
        if sock.fileno() != fd or not unit.live:  # (the attribute last: see recv_share)
            return None
        return int(held(fd, msgs, want, MSG_DONTWAIT, None))
    try:
        if sock.fileno() != fd or not unit.live:
            return None
        return int(_c().recvmmsg_released(pin, msgs, want, MSG_DONTWAIT, None))
    finally:
        os.close(pin)


def recv_share(
    size: int,
    cls: type[_P],
    units: list[Any],
    start: int,
    room: int,
    out: list[_P],
    gone: Callable[[Any], object],
) -> None:
    """A fair share of ``room`` datagrams over several sockets, appended to ``out``: the contract
    of the C accelerator's ``recv_share`` (see ``_speedups.pyi``: the units' attributes, the
    rounds, the errors) done here through ctypes, in one pass per recvmmsg.

    The units are of one address family (one receiving socket's), so the headers and sender slots
    are restored once per share, not per call: every call writes the same sender length.
    """
    n = len(units)
    if not n or not room:
        return
    start %= n
    active = units[start:] + units[:start] if start else units
    bufs: _RecvBuffers | None = getattr(_local, "recv", None)
    if bufs is None or bufs.size != size or bufs.control is not None:
        bufs = _buffers(size, False)
    slots = bufs.count
    used = room if room < slots else slots
    hdrs, names = bufs.hdrs, bufs.name_view
    hdrs[: used * _MMSG] = bufs.pristine[: used * _MMSG]
    names[: used * _NAME_SIZE] = bufs.blank_names[: used * _NAME_SIZE]
    bufs.dirty = max(bufs.dirty, used)  # (for recv_many's reset on this thread)
    call, msgs, data = _recvmmsg_fast or _fast_call(), bufs.msgs, bufs.data
    known, new, append = _names.get, tuple.__new__, out.append
    unpack_results, unpack_senders = _RESULT.iter_unpack, _SENDER.iter_unpack
    results, first = bufs.results.get, bufs.first
    while active and room > 0:
        base, extra = divmod(room, len(active))
        more = []
        for i, unit in enumerate(active):
            quota = base + (i < extra)
            if not quota or not unit.live:  # (left or closed since the call began: skipped)
                continue
            fd, group, ifindex, sock = unit.fd, unit.group, unit.iface.index, unit.sock
            got = 0
            while got < quota:
                want = quota - got if quota - got < slots else slots
                if want * size <= HOLD_GIL_BYTES:
                    # Checked before every call (making packets may run a garbage collection's
                    # finalizers), the attribute last: no thread switch can come between it and
                    # the call (CPython switches at calls and backward jumps), which keeps the GIL.
                    if sock.fileno() != fd or not unit.live:
                        break  # left, or its socket closed by the program: nothing more read
                    k = call(fd, msgs, want, MSG_DONTWAIT, None)
                else:  # a large read lets other threads run: it reads a duplicate of the number
                    pinned = _pinned_read(unit, sock, fd, msgs, want)
                    if pinned is None:
                        break
                    k = pinned
                if k < 0:
                    err = ctypes.get_errno()
                    if err in (_EAGAIN, _EINTR) or got:
                        break
                    if gone(unit):
                        break  # left or closed under us: skipped
                    raise OSError(err, os.strerror(err))
                heads, senders, offsets = results(k) or first(k)
                # (len is what was copied, never more than the slot: MSG_TRUNC is not a flag here)
                for (flags, length), (raw,), at in zip(
                    unpack_results(heads), unpack_senders(senders), offsets, strict=True
                ):
                    append(
                        new(
                            cls,
                            (
                                data[at : at + length],
                                known(raw) or _sender(raw),
                                group,
                                ifindex,
                                (flags & MSG_TRUNC) != 0,
                                None,
                                None,
                                None,
                            ),
                        )
                    )
                got += k
                if k < want:
                    break
            room -= got
            if got == quota:
                more.append(unit)  # it may hold more
        active = more
