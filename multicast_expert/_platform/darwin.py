"""macOS: option numbers from <netinet/in.h> and <netinet6/in6.h> of the macOS SDK."""

from __future__ import annotations

import socket

from ._base import OsMulticast

IP_BOUND_IF = 25
IPV6_BOUND_IF = 125


class DarwinMulticast(OsMulticast):
    """macOS: shared ports need SO_REUSEPORT; loopback on only for the loopback interface."""

    name = "macOS"
    IP_ADD_SOURCE_MEMBERSHIP = 70
    IP_DROP_SOURCE_MEMBERSHIP = 71
    IP_BLOCK_SOURCE = 72
    IP_UNBLOCK_SOURCE = 73
    SOURCE_BEFORE_IFACE = True
    RX_REUSEPORT = True

    def tx_loopback(self, iface_is_loopback: bool, external_loopback: bool) -> bool:
        return iface_is_loopback or external_loopback

    def bind_to_iface(self, sock: socket.socket, family: int, iface_name: str, ifindex: int) -> bool:
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_BOUND_IF, ifindex)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_BOUND_IF, ifindex)
        return True
