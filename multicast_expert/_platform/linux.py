"""Linux: option numbers from the kernel's UAPI headers <linux/in.h>, <linux/in6.h>,
<asm-generic/socket.h>, <linux/rtnetlink.h>, <linux/sockios.h>, <linux/if.h>; policies measured on
Linux 6.x and proven live by the test suite. Three classes, one per job: options, I/O, host."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, TypeVar

from . import _mmsg, _sendmmsg
from . import _structs as st
from ._host import Host
from ._io import DatagramIO, Raw
from ._kinds import Action, Concern
from ._options import V4, V6, Address, Meta, Opt, OsOptions, Table, both, multicast_basics, source_options
from ._poller import EpollPoller, EventfdWaker, Poller
from ._posix import fd_limits, posix_fd_room

if sys.platform != "win32":  # (every OS imports this module; only Linux uses it)
    import fcntl

# <asm-generic/socket.h>
SOL_SOCKET = 1
SO_REUSEADDR = 2
SO_RCVBUF = 8
SO_BINDTODEVICE = 25
# <linux/in.h>
IPPROTO_IP = 0
IP_MULTICAST_IF = 32
IP_MULTICAST_TTL = 33
IP_MULTICAST_LOOP = 34
IP_ADD_MEMBERSHIP = 35
IP_UNBLOCK_SOURCE = 37
IP_BLOCK_SOURCE = 38
IP_ADD_SOURCE_MEMBERSHIP = 39
IP_MULTICAST_ALL = 49
MCAST_BLOCK_SOURCE = 43
MCAST_UNBLOCK_SOURCE = 44
MCAST_JOIN_SOURCE_GROUP = 46
# <linux/in6.h>
IPPROTO_IPV6 = 41
IPV6_MULTICAST_IF = 17
IPV6_MULTICAST_HOPS = 18
IPV6_MULTICAST_LOOP = 19
IPV6_ADD_MEMBERSHIP = 20
IPV6_MULTICAST_ALL = 29
# Per-datagram metadata: options (<linux/in.h>, <linux/in6.h>, <asm-generic/socket.h>) and the
# control messages they produce
IP_TOS = 1
IP_TTL = 2
IP_RECVTTL = 12
IP_RECVTOS = 13
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
IPV6_RECVTCLASS = 66
IPV6_TCLASS = 67
SO_TIMESTAMPNS = 35  # also the control message type (SCM_TIMESTAMPNS): struct timespec
# <linux/rtnetlink.h>: multicast groups of NETLINK_ROUTE notifications
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTM_DELLINK = 17  # message type: a link went away
RTM_GETLINK = 18  # message type: a request for links (<linux/rtnetlink.h>)
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300  # nlmsghdr flags: a request; every entry (<linux/netlink.h>)

_P = TypeVar("_P", bound=tuple[object, ...])
# <linux/sockios.h>, <linux/if.h>
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFF_RUNNING = 0x40  # operationally up: carrier present (ip link shows NO-CARRIER without it)
IFF_MULTICAST = 0x1000
# <linux/if_addr.h>: IPv6 address flags, as /proc/net/if_inet6 prints them (fifth column, hex)
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
_UNUSABLE_SOURCE = IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE
#: A global-scope group (RFC 4291 "ff0e::", scope 14) to ask the kernel's source choice for: the
#: widest scope, so it answers with a global address where the interface has a usable one.
_PROBE_GROUP = "ff0e::1"


class LinuxMulticast(OsOptions):
    """Linux: one socket per (group, interface), bound to the group and tied to the device."""

    name = "Linux"
    OPTIONS: ClassVar[Table] = {
        **both(Concern.REUSEADDR, Opt(SOL_SOCKET, SO_REUSEADDR, st.INT)),
        # No SO_REUSEPORT: Linux would spread a group's datagrams over the sockets sharing a port
        # instead of giving each socket a copy (SO_REUSEADDR does the latter).
        **both(Concern.RCVBUF, Opt(SOL_SOCKET, SO_RCVBUF, st.INT)),
        # Without a device binding a socket also gets its group arriving on other interfaces
        # whenever another socket on the host joined it there (IPv6 even with IPV6_MULTICAST_ALL=0).
        **both(Concern.BIND_DEVICE, Opt(SOL_SOCKET, SO_BINDTODEVICE, st.IFNAME)),
        (Concern.RECV_TTL, V4): Opt(IPPROTO_IP, IP_RECVTTL, st.INT),
        (Concern.RECV_TTL, V6): Opt(IPPROTO_IPV6, IPV6_RECVHOPLIMIT, st.INT),
        (Concern.RECV_TOS, V4): Opt(IPPROTO_IP, IP_RECVTOS, st.INT),
        (Concern.RECV_TOS, V6): Opt(IPPROTO_IPV6, IPV6_RECVTCLASS, st.INT),
        **both(Concern.TIMESTAMPS, Opt(SOL_SOCKET, SO_TIMESTAMPNS, st.INT)),
        (Concern.MULTICAST_ALL, V4): Opt(IPPROTO_IP, IP_MULTICAST_ALL, st.INT),
        (Concern.MULTICAST_ALL, V6): Opt(IPPROTO_IPV6, IPV6_MULTICAST_ALL, st.INT),
        **multicast_basics(
            (IPPROTO_IP, IP_MULTICAST_IF, IP_MULTICAST_TTL, IP_MULTICAST_LOOP, IP_ADD_MEMBERSHIP),
            (IPPROTO_IPV6, IPV6_MULTICAST_IF, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_LOOP, IPV6_ADD_MEMBERSHIP),
            # ip_mreqn with the index picks the right interface even when addresses are shared.
            if4=st.IP_MREQN_IFACE,
            join4=st.IP_MREQN,
        ),
        # RFC 3678's MCAST_* options name the interface by index for IPv4 too: IP_ADD_SOURCE_MEMBERSHIP
        # names it by address, which picks the wrong one when two interfaces share an address.
        **source_options(
            (IPPROTO_IP, MCAST_JOIN_SOURCE_GROUP, MCAST_BLOCK_SOURCE, MCAST_UNBLOCK_SOURCE),
            (IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, MCAST_BLOCK_SOURCE, MCAST_UNBLOCK_SOURCE),
            shape4=st.GROUP_SOURCE_REQ4,
            shape6=st.GROUP_SOURCE_REQ6,
        ),
    }
    #: Defaults of net.ipv4.igmp_max_msf and net.ipv6.mld_max_msf.
    SOURCES_PER_SOCKET: ClassVar[dict[int, int]] = {V4: 10, V6: 64}
    #: The sysctl behind ENOBUFS/ENOMEM, by what was refused (and the error, where it tells):
    #: net/ipv4/igmp.c refuses a membership past igmp_max_memberships and a source past
    #: igmp_max_msf with ENOBUFS (their socket-memory failures too); net/ipv6/mcast.c refuses a
    #: source past mld_max_msf with ENOBUFS, and a membership's socket memory (sock_kmalloc,
    #: bounded by optmem_max) with ENOMEM.
    LIMIT_HINTS: ClassVar[dict[tuple[Action, int] | tuple[Action, int, int], str]] = {
        (Action.OPEN_RX, V4): "net.ipv4.igmp_max_memberships",
        (Action.OPEN_RX, V6): "net.core.optmem_max",
        **{(a, V4): "net.ipv4.igmp_max_msf" for a in (Action.JOIN_SOURCE, Action.BLOCK_SOURCE)},
        **{(a, V6): "net.ipv6.mld_max_msf" for a in (Action.JOIN_SOURCE, Action.BLOCK_SOURCE)},
        **{(a, V6, errno.ENOMEM): "net.core.optmem_max" for a in (Action.JOIN_SOURCE, Action.BLOCK_SOURCE)},
    }

    def fd_limits(self) -> tuple[int, int] | None:
        return fd_limits()


class LinuxIO(DatagramIO):
    """Linux I/O: recvmmsg/sendmmsg (ctypes), metadata control messages, epoll with an eventfd."""

    DONTWAIT = 0x40  # MSG_DONTWAIT, <bits/socket.h>
    recv_share = staticmethod(_mmsg.recv_share)

    def poller(self, fds: Iterable[int]) -> Poller:
        return EpollPoller(fds, EventfdWaker())

    def decode_meta(self, anc: list[tuple[int, int, bytes]], family: int) -> Meta:
        ttl = tos = None
        stamp = None
        for level, kind, data in anc:
            if level == IPPROTO_IP and kind == IP_TTL and len(data) >= 4:
                ttl = int.from_bytes(data[:4], sys.byteorder)
            elif level == IPPROTO_IP and kind == IP_TOS and data:
                tos = data[0]
            elif level == IPPROTO_IPV6 and kind == IPV6_HOPLIMIT and len(data) >= 4:
                ttl = int.from_bytes(data[:4], sys.byteorder)
            elif level == IPPROTO_IPV6 and kind == IPV6_TCLASS and len(data) >= 4:
                tos = int.from_bytes(data[:4], sys.byteorder)
            elif level == SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack_from("=qq", data)
                stamp = sec + nsec / 1e9
        return ttl, tos, stamp

    def recv_many(
        self, sock: socket.socket, count: int, size: int, meta: bool, unit: Any = None
    ) -> list[Raw] | None:
        return _mmsg.recv_many(sock, count, size, meta, unit)

    def send_many(
        self,
        sock: socket.socket,
        family: int,
        datagrams: Sequence[tuple[bytes, Address]],
    ) -> int | None:
        return _sendmmsg.send_many(sock, family, datagrams)

    def send_known(
        self,
        sock: socket.socket,
        family: int,
        datagrams: Sequence[tuple[bytes, Address]],
        known: dict[object, object],
    ) -> int | None:
        return _sendmmsg.send_known(sock, family, datagrams, known)


class LinuxHost(Host):
    """Linux host details: rtnetlink notifications, /proc and /sys, SIOCGIFFLAGS, RLIMIT_NOFILE."""

    def preferred_source(self, family: int, ifindex: int, ifname: str) -> str | None:
        # IPv4 has no deprecated or tentative addresses: the interface's first address is right.
        if family != V6 or sys.platform != "linux":
            return None
        usable = _usable_ipv6(ifindex)
        if not usable:
            return None
        chosen = _kernel_source(ifindex)  # RFC 6724 selection, as the kernel does it
        if chosen is not None and chosen in usable:
            return chosen
        return usable[0]

    def interface_watch(self) -> socket.socket | None:
        if sys.platform != "linux":
            return None
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
        try:
            sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        except OSError:
            sock.close()
            raise
        return sock

    def poke_watch(self, watch: socket.socket) -> None:
        # A dump request (struct nlmsghdr, then struct rtgenmsg {u8 family; 3 pad}: <linux/netlink.h>,
        # <linux/rtnetlink.h>): the kernel answers with every link, which drain_watch reads as a change.
        request = struct.pack("=IHHII4x", 20, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        watch.sendto(request, (0, 0))  # (to the kernel: port id 0)

    def drain_watch(self, watch: socket.socket) -> set[int] | None:
        # struct nlmsghdr {u32 len; u16 type; u16 flags; u32 seq; u32 pid} (<linux/netlink.h>), then
        # for link messages struct ifinfomsg {u8 family; u8 pad; u16 type; i32 index; ...}
        # (<linux/rtnetlink.h>); messages are 4-byte aligned (NLMSG_ALIGNTO).
        gone: set[int] = set()
        while True:
            try:
                data = watch.recv(65536)
            except BlockingIOError:
                return gone
            except OSError:  # ENOBUFS: notifications overflowed and were lost
                return None
            if not data:
                return gone
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16:
                    break
                if kind == RTM_DELLINK and offset + 24 <= len(data):
                    gone.add(struct.unpack_from("=i", data, offset + 20)[0])
                offset += (length + 3) & ~3

    ensure_fd_room = staticmethod(posix_fd_room)  # (no method frame in front of it)

    def fd_limits(self) -> tuple[int, int] | None:
        return fd_limits()

    def iface_flags(self, name: str) -> dict[str, bool] | None:
        # SIOCGIFFLAGS asks the caller's own network namespace (/sys/class/net may show another).
        ifreq = struct.pack("16sH14x", name.encode()[:15], 0)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                if sys.platform != "win32":  # (fcntl: POSIX only)
                    ifreq = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq)
        except OSError:
            return None
        flags = struct.unpack_from("16sH", ifreq)[1]
        return {
            "up": bool(flags & IFF_UP),
            "running": bool(flags & IFF_RUNNING),
            "multicast": bool(flags & IFF_MULTICAST),
        }

    def default_route_iface_name(self, family: int) -> str | None:
        # /proc is cheaper than netlink and shows device-only default routes too.
        try:
            if family == V4:
                for line in Path("/proc/thread-self/net/route").read_text().splitlines()[1:]:
                    f = line.split()
                    if len(f) > 7 and f[1] == "00000000" and f[7] == "00000000" and int(f[3], 16) & 1:
                        return f[0]
            else:
                for line in Path("/proc/thread-self/net/ipv6_route").read_text().splitlines():
                    f = line.split()
                    flags = int(f[8], 16)
                    if f[0] == "0" * 32 and f[1] == "00" and flags & 1 and not flags & 0x200 and f[9] != "lo":
                        return f[9]
        except OSError:
            return super().default_route_iface_name(family)
        return None

    def read_setting(self, name: str) -> str | None:
        # sysctl(8)'s spelling: dots separate the levels, and a '/' in a level stands for a dot
        # of its own (an interface named eth0.7 is net.ipv4.conf.eth0/7.rp_filter).
        path = "/".join(level.replace("/", ".") for level in name.split("."))
        try:
            return Path("/proc/sys/" + path).read_text().strip()
        except OSError:
            return None

    def socket_drops(self, socks: Sequence[socket.socket]) -> int | None:
        # /proc/net/udp{,6}: the last column is the socket's drop counter (the one SO_RXQ_OVFL
        # reports), matched to our sockets by inode.
        inodes = set()
        for s in socks:
            try:
                inodes.add(str(os.fstat(s.fileno()).st_ino))
            except OSError:
                continue
        total = 0
        try:
            for table in ("udp", "udp6"):
                for line in Path(f"/proc/thread-self/net/{table}").read_text().splitlines()[1:]:
                    f = line.split()
                    if len(f) > 12 and f[9] in inodes:
                        total += int(f[-1])
        except (OSError, ValueError):
            return None
        return total

    def memberships(self) -> list[tuple[str, str]] | None:
        found: list[tuple[str, str]] = []
        try:
            igmp = Path("/proc/thread-self/net/igmp").read_text().splitlines()[1:]
            igmp6 = Path("/proc/thread-self/net/igmp6").read_text().splitlines()
        except OSError:
            return None
        dev = ""
        for line in igmp:
            f = line.split()
            if line[:1].isdigit():
                dev = f[1].rstrip(":")
            elif f:
                found.append((dev, str(ipaddress.IPv4Address(int(f[0], 16).to_bytes(4, "little")))))
        for line in igmp6:
            f = line.split()
            if len(f) >= 3:
                found.append((f[1], str(ipaddress.IPv6Address(bytes.fromhex(f[2])))))
        return found


def _kernel_source(ifindex: int) -> str | None:
    """The source the kernel picks for a global-scope group sent out of ``ifindex`` (a connected
    UDP socket's own address; connect() sends nothing), without any ``%scope``."""
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        try:
            s.setsockopt(IPPROTO_IPV6, IPV6_MULTICAST_IF, ifindex)
            s.connect((_PROBE_GROUP, 9, 0, ifindex))
        except OSError:
            return None
        return str(s.getsockname()[0]).split("%", 1)[0]


def _usable_ipv6(ifindex: int) -> list[str]:
    """The interface's IPv6 addresses that may be a source, global ones first (/proc/net/if_inet6:
    address, ifindex, prefix length, scope, flags, name; all hex but the name)."""
    try:
        lines = Path("/proc/thread-self/net/if_inet6").read_text().splitlines()
    except OSError:
        return []
    found: list[tuple[bool, str]] = []
    for line in lines:
        f = line.split()
        if len(f) >= 6 and int(f[1], 16) == ifindex and not int(f[4], 16) & _UNUSABLE_SOURCE:
            addr = ipaddress.IPv6Address(bytes.fromhex(f[0]))
            found.append((addr.is_link_local, str(addr)))
    return [a for _, a in sorted(found, key=lambda x: x[0])]


class AcceleratedLinuxIO(LinuxIO):
    """Linux I/O through the optional C accelerator (``multicast_expert._speedups``): the same
    results as :class:`LinuxIO`, each read or batch in one C call on the raw descriptor."""

    def __init__(self, speedups: ModuleType) -> None:
        self._sp = speedups
        self.recv_unit = speedups.recv_unit
        self.poll_read = speedups.epoll_recv
        self.recv_share = speedups.recv_share
        self.recv_poll_share = speedups.recv_poll_share
        self.rx_hot = speedups.RxHot
        self.tx_hot = speedups.TxHot

    def recvfrom(self, sock: socket.socket, bufsize: int, flags: int, group: str) -> tuple[bytes, Address]:
        got: tuple[bytes, Address] = self._sp.recv_from(sock, bufsize, flags)
        return got

    def recv_packet(self, sock: socket.socket, bufsize: int, group: str) -> tuple[bytes, Address, bool]:
        got: tuple[bytes, Address, bool] = self._sp.recv_packet(sock, bufsize)
        return got

    def recv_packets(
        self, sock: socket.socket, count: int, size: int, group: str, ifindex: int, packet: type[_P]
    ) -> list[_P] | None:
        got: list[_P] = self._sp.recv_batch(sock, count, size, group, ifindex, packet)
        return got

    def send_many(
        self, sock: socket.socket, family: int, datagrams: Sequence[tuple[bytes, Address]]
    ) -> int | None:
        return self.send_known(sock, family, datagrams, None)

    def send_known(
        self,
        sock: socket.socket,
        family: int,
        datagrams: Sequence[tuple[bytes, Address]],
        known: dict[object, object] | None,
    ) -> int | None:
        # (known None: send_many, every pair checked by the caller; C send_batch treats it as absent)
        try:
            sent: int | None = self._sp.send_batch(sock, family, datagrams, known)
        except OSError as exc:
            done = getattr(exc, "sent", 0)
            if done:  # some went out: report them; the next call meets the error (as sendmmsg does)
                return int(done)
            raise
        return sent
