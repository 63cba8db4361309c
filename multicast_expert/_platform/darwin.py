"""macOS: option numbers from the xnu sources, bsd/netinet/in.h, bsd/netinet6/in6.h and
bsd/sys/socket.h (checked against golang.org/x/net's zsys_darwin.go). Options, I/O and host classes."""

from __future__ import annotations

from typing import ClassVar

from . import _structs as st
from ._host import Host
from ._io import DatagramIO
from ._kinds import Concern
from ._options import V4, V6, Opt, OsOptions, Table, both, multicast_basics, source_options
from ._posix import fd_limits, posix_fd_room

# bsd/sys/socket.h
SOL_SOCKET = 0xFFFF
SO_REUSEADDR = 0x0004
SO_RCVBUF = 0x1002
SO_REUSEPORT = 0x0200
# bsd/netinet/in.h
IPPROTO_IP = 0
IP_MULTICAST_IF = 9
IP_MULTICAST_TTL = 10
IP_MULTICAST_LOOP = 11
IP_ADD_MEMBERSHIP = 12
IP_BOUND_IF = 25
IP_ADD_SOURCE_MEMBERSHIP = 70
IP_BLOCK_SOURCE = 72
IP_UNBLOCK_SOURCE = 73
# bsd/netinet6/in6.h
IPPROTO_IPV6 = 41
IPV6_MULTICAST_IF = 9
IPV6_MULTICAST_HOPS = 10
IPV6_MULTICAST_LOOP = 11
IPV6_JOIN_GROUP = 12
IPV6_BOUND_IF = 125
# bsd/netinet/in.h, RFC 3678 options (used at level IPPROTO_IPV6 for IPv6 groups)
MCAST_JOIN_SOURCE_GROUP = 82
MCAST_BLOCK_SOURCE = 84
MCAST_UNBLOCK_SOURCE = 85


class DarwinMulticast(OsOptions):
    """macOS: shared ports need SO_REUSEPORT; loopback on only for the loopback interface."""

    name = "macOS"
    OPTIONS: ClassVar[Table] = {
        **both(Concern.REUSEADDR, Opt(SOL_SOCKET, SO_REUSEADDR, st.INT)),
        **both(Concern.REUSEPORT, Opt(SOL_SOCKET, SO_REUSEPORT, st.INT)),
        **both(Concern.RCVBUF, Opt(SOL_SOCKET, SO_RCVBUF, st.INT)),
        (Concern.BIND_DEVICE, V4): Opt(IPPROTO_IP, IP_BOUND_IF, st.IFINDEX),
        (Concern.BIND_DEVICE, V6): Opt(IPPROTO_IPV6, IPV6_BOUND_IF, st.IFINDEX),
        **multicast_basics(
            (IPPROTO_IP, IP_MULTICAST_IF, IP_MULTICAST_TTL, IP_MULTICAST_LOOP, IP_ADD_MEMBERSHIP),
            (IPPROTO_IPV6, IPV6_MULTICAST_IF, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_LOOP, IPV6_JOIN_GROUP),
            if4=st.IN_ADDR_IFACE,
            join4=st.IP_MREQ,
        ),
        **source_options(
            (IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, IP_BLOCK_SOURCE, IP_UNBLOCK_SOURCE),
            (IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, MCAST_BLOCK_SOURCE, MCAST_UNBLOCK_SOURCE),
            shape4=st.IP_MREQ_SOURCE_GSI,
            shape6=st.GROUP_SOURCE_REQ6_DARWIN,
        ),
    }

    def tx_loopback(self, iface_is_loopback: bool, external_loopback: bool) -> bool:
        return iface_is_loopback or external_loopback

    def fd_limits(self) -> tuple[int, int] | None:
        return fd_limits()


class DarwinIO(DatagramIO):
    """macOS I/O: recvmsg with MSG_DONTWAIT; selectors (kqueue) with a socket-pair waker."""

    DONTWAIT = 0x80  # MSG_DONTWAIT, bsd/sys/socket.h


class DarwinHost(Host):
    """macOS host details: netifaces plus RLIMIT_NOFILE."""

    def ensure_fd_room(
        self, needed: int, *, force: bool = False, cached: bool = False
    ) -> tuple[int, int] | None:
        return posix_fd_room(needed, force=force, cached=cached)  # macOS's default soft limit is only 256

    def fd_limits(self) -> tuple[int, int] | None:
        return fd_limits()
