"""C struct builders for multicast socket options, grouped by shape rather than by OS.

Every shape takes a :class:`Target` (what the option is about) and returns the exact value handed
to ``setsockopt``: an int, or the struct's bytes. Layouts (x86_64 / arm64; sources named per shape):

- ``in_addr``: 4 bytes, network order (<netinet/in.h>).
- ``ip_mreq`` (BSD, Windows): ``{in_addr imr_multiaddr; in_addr imr_interface;}``, 8 bytes
  (xnu bsd/netinet/in.h; Windows ws2ipdef.h).
- ``ip_mreqn`` (Linux): ``{in_addr imr_multiaddr; in_addr imr_address; int imr_ifindex;}``, 12 bytes
  (<linux/in.h>).
- ``ip_mreq_source``: three ``in_addr``; Linux orders them (group, interface, source) (<linux/in.h>),
  Windows and macOS (group, source, interface) (ws2ipdef.h; xnu bsd/netinet/in.h).
- ``ipv6_mreq``: ``{in6_addr ipv6mr_multiaddr; unsigned int ipv6mr_interface;}``, 20 bytes (RFC 3493).
- ``group_source_req`` (RFC 3678; Linux <linux/in.h>, Windows ws2ipdef.h, x64): a 4-byte interface
  index padded to 8, then two 128-byte ``sockaddr_storage``: 264 bytes.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import NamedTuple

SOCKADDR_STORAGE_SIZE = 128


class Target(NamedTuple):
    """What one option is about: the fields every shape picks from."""

    group: str = ""
    iface_ip: str = ""
    ifindex: int = 0
    source: str = ""
    ifname: str = ""
    value: int = 0


#: A shape: builds the setsockopt value from a Target.
Shape = Callable[[Target], int | bytes]


def in_addr(ip: str) -> bytes:
    """``struct in_addr`` for an IPv4 address string."""
    return socket.inet_pton(socket.AF_INET, ip)


def in6_addr(ip: str) -> bytes:
    """``struct in6_addr`` for an IPv6 address string (any ``%scope`` suffix dropped)."""
    return socket.inet_pton(socket.AF_INET6, ip.split("%", 1)[0])


def ip_mreq(group: str, iface_ip: str) -> bytes:
    """``struct ip_mreq``: group, interface address."""
    return struct.pack("=4s4s", in_addr(group), in_addr(iface_ip))


def ip_mreqn(group: str, iface_ip: str, ifindex: int) -> bytes:
    """Linux ``struct ip_mreqn``: group, interface address, interface index."""
    return struct.pack("=4s4si", in_addr(group), in_addr(iface_ip), ifindex)


def ipv6_mreq(group: str, ifindex: int) -> bytes:
    """``struct ipv6_mreq``: group, interface index."""
    return struct.pack("=16sI", in6_addr(group), ifindex)


def sockaddr_storage(family: int, ip: str) -> bytes:
    """A ``sockaddr_in`` or ``sockaddr_in6`` (port 0) zero-padded to ``sockaddr_storage``.

    Family numbers are the host's (AF_INET6 is 10 on Linux, 23 on Windows).
    """
    if family == socket.AF_INET:
        raw = struct.pack("=HH4s8x", family, 0, in_addr(ip))
    else:
        raw = struct.pack("=HHI16sI", family, 0, 0, in6_addr(ip), 0)
    return raw.ljust(SOCKADDR_STORAGE_SIZE, b"\0")


#: Linux's ``__kernel_sockaddr_storage`` is aligned as a pointer (``_K_SS_ALIGNSIZE``,
#: include/uapi/linux/socket.h), so in ``group_req`` / ``group_source_req`` (include/uapi/linux/in.h)
#: the u32 interface index is padded to 8 bytes in a 64-bit process and not at all in a 32-bit one.
SS_ALIGN = struct.calcsize("P")


def group_req(family: int, ifindex: int, group: str) -> bytes:
    """Linux ``struct group_req``: interface index (padded to :data:`SS_ALIGN`), group."""
    return struct.pack("=I", ifindex) + bytes(SS_ALIGN - 4) + sockaddr_storage(family, group)


def group_source_req(family: int, ifindex: int, group: str, source: str) -> bytes:
    """Linux ``struct group_source_req``: interface index (padded to :data:`SS_ALIGN`), group, source."""
    return group_req(family, ifindex, group) + sockaddr_storage(family, source)


# ---- shapes ------------------------------------------------------------------------------------
def INT(t: Target) -> int:  # noqa: N802 (shape names read as the C types they build)
    """A plain ``int`` option value."""
    return t.value


def IFINDEX(t: Target) -> int:  # noqa: N802
    """The interface index as an ``int`` (IPV6_MULTICAST_IF, IP_BOUND_IF)."""
    return t.ifindex


def IFNAME(t: Target) -> bytes:  # noqa: N802
    """The interface name as bytes (Linux SO_BINDTODEVICE)."""
    return t.ifname.encode()


def IN_ADDR_IFACE(t: Target) -> bytes:  # noqa: N802
    """The interface address as an ``in_addr`` (BSD/Windows IP_MULTICAST_IF)."""
    return in_addr(t.iface_ip)


def IP_MREQ(t: Target) -> bytes:  # noqa: N802
    """``ip_mreq`` (group, interface address)."""
    return ip_mreq(t.group, t.iface_ip)


def IP_MREQN(t: Target) -> bytes:  # noqa: N802
    """Linux ``ip_mreqn`` (group, interface address, index)."""
    return ip_mreqn(t.group, t.iface_ip, t.ifindex)


def IP_MREQN_IFACE(t: Target) -> bytes:  # noqa: N802
    """Linux ``ip_mreqn`` naming only the interface (IP_MULTICAST_IF: exact even for shared addresses)."""
    return ip_mreqn("0.0.0.0", t.iface_ip, t.ifindex)


def IP_MREQ_SOURCE_GSI(t: Target) -> bytes:  # noqa: N802
    """``ip_mreq_source`` in (group, source, interface) order: Windows, macOS."""
    return struct.pack("=4s4s4s", in_addr(t.group), in_addr(t.source), in_addr(t.iface_ip))


def IP_MREQ_SOURCE_GIS(t: Target) -> bytes:  # noqa: N802
    """``ip_mreq_source`` in (group, interface, source) order: Linux."""
    return struct.pack("=4s4s4s", in_addr(t.group), in_addr(t.iface_ip), in_addr(t.source))


def IPV6_MREQ(t: Target) -> bytes:  # noqa: N802
    """``ipv6_mreq`` (group, interface index)."""
    return ipv6_mreq(t.group, t.ifindex)


def GROUP_SOURCE_REQ4(t: Target) -> bytes:  # noqa: N802
    """RFC 3678 ``group_source_req`` for IPv4 (Linux layout): the interface by index, so an
    address shared by two interfaces still picks the right one."""
    return group_source_req(socket.AF_INET, t.ifindex, t.group, t.source)


def GROUP_SOURCE_REQ6(t: Target) -> bytes:  # noqa: N802
    """RFC 3678 ``group_source_req`` for IPv6 (Linux layout; Windows has its own below)."""
    return group_source_req(socket.AF_INET6, t.ifindex, t.group, t.source)


# ---- RFC 3678 group_source_req in the other systems' layouts ----------------------------------
def _sockaddr_in6_windows(ip: str) -> bytes:
    """Windows ``SOCKADDR_IN6`` (ws2ipdef.h): u16 family AF_INET6=23, port, flowinfo, address,
    scope id, zero-padded to a 128-byte SOCKADDR_STORAGE."""
    return struct.pack("<HHI16sI", 23, 0, 0, in6_addr(ip), 0).ljust(SOCKADDR_STORAGE_SIZE, b"\0")


def _sockaddr_in6_bsd(ip: str) -> bytes:
    """BSD ``struct sockaddr_in6`` (xnu bsd/netinet6/in6.h): u8 length 28, u8 family AF_INET6=30,
    port, flowinfo, address, scope id, zero-padded to a 128-byte sockaddr_storage."""
    return struct.pack("=BBHI16sI", 28, 30, 0, 0, in6_addr(ip), 0).ljust(SOCKADDR_STORAGE_SIZE, b"\0")


def GROUP_SOURCE_REQ6_WINDOWS(t: Target) -> bytes:  # noqa: N802
    """Windows x64 ``GROUP_SOURCE_REQ`` (ws2ipdef.h): ULONG interface, 4 pad bytes, group at 8,
    source at 136; 264 bytes."""
    return struct.pack("<I4x", t.ifindex) + _sockaddr_in6_windows(t.group) + _sockaddr_in6_windows(t.source)


def GROUP_SOURCE_REQ6_DARWIN(t: Target) -> bytes:  # noqa: N802
    """macOS ``struct group_source_req`` (xnu bsd/netinet/in.h, #pragma pack(4)): u32 interface,
    group at 4, source at 132; 260 bytes."""
    return struct.pack("=I", t.ifindex) + _sockaddr_in6_bsd(t.group) + _sockaddr_in6_bsd(t.source)
