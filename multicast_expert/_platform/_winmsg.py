"""WSARecvMsg through ctypes (Windows): a datagram with its destination address, so a receive
socket can tell its own group from unicast to the interface (and, under Wine, from other groups).

Layouts, x64 (mswsock.h, ws2def.h, ws2ipdef.h): ``WSABUF {ULONG len; CHAR *buf}``;
``WSAMSG {LPSOCKADDR name; INT namelen; LPWSABUF lpBuffers; ULONG dwBufferCount; WSABUF Control;
ULONG dwFlags}``; ``WSACMSGHDR {SIZE_T cmsg_len; INT cmsg_level; INT cmsg_type}`` with data at 16;
``IN_PKTINFO {IN_ADDR ipi_addr; ULONG ipi_ifindex}``; ``IN6_PKTINFO {IN6_ADDR ipi6_addr; ULONG
ipi6_ifindex}``. The function pointer comes from WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER,
WSAID_WSARECVMSG).
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys
import uuid

SIO_GET_EXTENSION_FUNCTION_POINTER = 0xC8000006
WSAID_WSARECVMSG = uuid.UUID("f689d7c8-6f1f-436b-8a53-e54fe351c322")
IP_PKTINFO = 19  # ws2ipdef.h, level IPPROTO_IP
IPV6_PKTINFO = 19  # ws2ipdef.h, level IPPROTO_IPV6
MSG_TRUNC = 0x0100  # ws2def.h
WSAEWOULDBLOCK = 10035
_CMSG_DATA = 16  # WSA_CMSG_DATA offset: the header rounded up to 8-byte alignment
_last_error = getattr(ctypes, "get_last_error", lambda: 0)  # (Windows only)


class _WsaBuf(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ulong), ("buf", ctypes.c_void_p)]


class _WsaMsg(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_int),
        ("buffers", ctypes.POINTER(_WsaBuf)),
        ("count", ctypes.c_ulong),
        ("control", _WsaBuf),
        ("flags", ctypes.c_ulong),
    ]


_recvmsg: dict[int, object] = {}  # one function pointer per process (any socket will do)


def _function(sock: socket.socket) -> object:
    fn = _recvmsg.get(0)
    if fn is not None:
        return fn
    if sys.platform != "win32":
        raise OSError("WSARecvMsg exists only on Windows")
    ws2 = ctypes.WinDLL("ws2_32", use_last_error=True)
    guid = (ctypes.c_ubyte * 16).from_buffer_copy(WSAID_WSARECVMSG.bytes_le)
    pointer = ctypes.c_void_p()
    got = ctypes.c_ulong()
    ret = ws2.WSAIoctl(
        ctypes.c_size_t(sock.fileno()),
        ctypes.c_ulong(SIO_GET_EXTENSION_FUNCTION_POINTER),
        ctypes.byref(guid),
        ctypes.c_ulong(16),
        ctypes.byref(pointer),
        ctypes.c_ulong(ctypes.sizeof(pointer)),
        ctypes.byref(got),
        None,
        None,
    )
    if ret != 0:
        raise OSError(ctypes.get_last_error(), "WSAIoctl(WSAID_WSARECVMSG) failed")
    prototype = ctypes.WINFUNCTYPE(
        ctypes.c_int,
        ctypes.c_size_t,
        ctypes.POINTER(_WsaMsg),
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.c_void_p,
        ctypes.c_void_p,
        use_last_error=True,
    )
    fn = prototype(pointer.value or 0)
    _recvmsg[0] = fn
    return fn


def parse_sockaddr(raw: bytes) -> tuple[str, int] | tuple[str, int, int, int]:
    """A Windows SOCKADDR_IN (family 2) or SOCKADDR_IN6 (family 23) as the socket module gives it."""
    family = struct.unpack_from("<H", raw)[0]
    if family == 2:
        port, addr = struct.unpack_from("!H4s", raw, 2)
        return (socket.inet_ntop(socket.AF_INET, addr), port)
    port, flowinfo, addr = struct.unpack_from("!HI16s", raw, 2)
    scope = struct.unpack_from("<I", raw, 24)[0]
    return (socket.inet_ntop(socket.AF_INET6, addr), port, flowinfo, scope)


def destination(control: bytes, family: int) -> str | None:
    """The destination address from an IP_PKTINFO / IPV6_PKTINFO control message, if present."""
    offset = 0
    while offset + _CMSG_DATA <= len(control):
        length, level, kind = struct.unpack_from("<Qii", control, offset)
        if length < _CMSG_DATA:
            break
        data = control[offset + _CMSG_DATA : offset + length]
        if family == socket.AF_INET and level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 4:
            return socket.inet_ntop(socket.AF_INET, data[:4])
        if family == socket.AF_INET6 and level == 41 and kind == IPV6_PKTINFO and len(data) >= 16:
            return socket.inet_ntop(socket.AF_INET6, data[:16])
        offset += (length + 7) & ~7
    return None


def recv_with_destination(
    sock: socket.socket, bufsize: int, family: int, flags: int = 0
) -> tuple[bytes, tuple[str, int] | tuple[str, int, int, int], bool, str | None]:
    """One datagram: (payload, sender, truncated, destination address). Raises BlockingIOError when
    nothing is queued. A too-long datagram keeps its sender and its first ``bufsize`` bytes.
    ``flags`` go in as WSAMSG.dwFlags (MSG_PEEK 0x2 is accepted there, per WSARecvMsg's docs)."""
    fn = _function(sock)
    data = ctypes.create_string_buffer(bufsize)
    name = ctypes.create_string_buffer(128)
    control = ctypes.create_string_buffer(256)
    buf = _WsaBuf(bufsize, ctypes.addressof(data))
    msg = _WsaMsg(
        ctypes.addressof(name), 128, ctypes.pointer(buf), 1, _WsaBuf(256, ctypes.addressof(control)), flags
    )
    got = ctypes.c_ulong()
    if fn(ctypes.c_size_t(sock.fileno()), ctypes.byref(msg), ctypes.byref(got), None, None) != 0:  # type: ignore[operator]
        err = _last_error()
        if err == WSAEWOULDBLOCK:
            raise BlockingIOError(err, "no datagram queued")
        if err != 10040:  # WSAEMSGSIZE: truncated, but payload and sender are there
            raise OSError(err, f"WSARecvMsg failed (WinError {err})")
        msg.flags |= MSG_TRUNC
    sender = parse_sockaddr(name.raw[: msg.namelen])
    dst = destination(control.raw[: msg.control.len], family)
    return data.raw[: got.value], sender, bool(msg.flags & MSG_TRUNC), dst
