"""C struct builders for multicast socket options, grouped by shape rather than by OS.

Every builder returns the exact bytes handed to ``setsockopt``. Layouts:

- ``in_addr``: 4 bytes, network order.
- ``ip_mreq`` (BSD, Windows): ``{in_addr imr_multiaddr; in_addr imr_interface;}``, 8 bytes.
- ``ip_mreqn`` (Linux): ``{in_addr imr_multiaddr; in_addr imr_address; int imr_ifindex;}``, 12 bytes.
- ``ip_mreq_source``: three ``in_addr``; Linux orders them (group, interface, source), Windows and
  macOS (group, source, interface).
- ``ipv6_mreq``: ``{in6_addr ipv6mr_multiaddr; unsigned int ipv6mr_interface;}``, 20 bytes.
- ``group_req`` / ``group_source_req`` (RFC 3678, Linux x86_64): a 4-byte interface index padded
  to 8, then one or two 128-byte ``sockaddr_storage``: 136 and 264 bytes.
"""

from __future__ import annotations

import socket
import struct

SOCKADDR_STORAGE_SIZE = 128


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


def ip_mreq_source(group: str, iface_ip: str, source: str, *, source_before_iface: bool) -> bytes:
    """``struct ip_mreq_source`` in the field order the OS uses."""
    if source_before_iface:
        return struct.pack("=4s4s4s", in_addr(group), in_addr(source), in_addr(iface_ip))
    return struct.pack("=4s4s4s", in_addr(group), in_addr(iface_ip), in_addr(source))


def ipv6_mreq(group: str, ifindex: int) -> bytes:
    """``struct ipv6_mreq``: group, interface index."""
    return struct.pack("=16sI", in6_addr(group), ifindex)


def sockaddr_storage(family: int, ip: str) -> bytes:
    """A ``sockaddr_in`` or ``sockaddr_in6`` (port 0) zero-padded to ``sockaddr_storage``."""
    if family == socket.AF_INET:
        raw = struct.pack("=HH4s8x", family, 0, in_addr(ip))
    else:
        raw = struct.pack("=HHI16sI", family, 0, 0, in6_addr(ip), 0)
    return raw.ljust(SOCKADDR_STORAGE_SIZE, b"\0")


def group_req(family: int, ifindex: int, group: str) -> bytes:
    """``struct group_req``: interface index (padded to 8 bytes), group."""
    return struct.pack("=I4x", ifindex) + sockaddr_storage(family, group)


def group_source_req(family: int, ifindex: int, group: str, source: str) -> bytes:
    """``struct group_source_req``: interface index (padded to 8 bytes), group, source."""
    return group_req(family, ifindex, group) + sockaddr_storage(family, source)
