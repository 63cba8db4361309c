"""Linux: option numbers from <linux/in.h> and <linux/in6.h>; policies measured on Linux 6.x."""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
from pathlib import Path
from typing import ClassVar

from ..utils import MulticastExpertError
from . import _structs as st
from ._base import OsMulticast

SO_BINDTODEVICE = 25  # <asm-generic/socket.h>
SIOCGIFFLAGS = 0x8913  # <linux/sockios.h>
IFF_UP = 0x1  # <linux/if.h>
IFF_MULTICAST = 0x1000


class LinuxMulticast(OsMulticast):
    """Linux: one socket per (group, interface), bound to the group and tied to the device."""

    name = "Linux"
    IP_ADD_SOURCE_MEMBERSHIP = 39
    IP_DROP_SOURCE_MEMBERSHIP = 40
    IP_UNBLOCK_SOURCE = 37
    IP_BLOCK_SOURCE = 38
    MCAST_BLOCK_SOURCE = 43
    MCAST_UNBLOCK_SOURCE = 44
    MCAST_JOIN_SOURCE_GROUP = 46
    MCAST_LEAVE_SOURCE_GROUP = 47
    IP_MULTICAST_ALL = 49
    IPV6_MULTICAST_ALL = 29
    SOURCE_BEFORE_IFACE = False
    #: Defaults of net.ipv4.igmp_max_msf and net.ipv6.mld_max_msf.
    IPV4_SOURCES_PER_SOCKET = 10
    IPV6_SOURCES_PER_SOCKET = 64

    _SYSCTL_HINTS: ClassVar[dict[str, str]] = {
        "join4": "net.ipv4.igmp_max_memberships",
        "join6": "net.core.optmem_max",
        "source4": "net.ipv4.igmp_max_msf",
        "source6": "net.ipv6.mld_max_msf",
    }

    def ipv4_join_struct(self, group: str, iface_ip: str, ifindex: int) -> bytes:
        return st.ip_mreqn(group, iface_ip, ifindex)

    def set_multicast_if(self, sock: socket.socket, family: int, iface_ip: str, ifindex: int) -> None:
        if family == socket.AF_INET:
            # ip_mreqn with the index picks the right interface even when addresses are shared.
            sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, st.ip_mreqn("0.0.0.0", iface_ip, ifindex)
            )
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)

    def bind_to_iface(self, sock: socket.socket, family: int, iface_name: str, ifindex: int) -> bool:
        # Without this a socket also gets its group arriving on other interfaces whenever any
        # other socket on the host joined it there (IPv6 even with IPV6_MULTICAST_ALL=0).
        # Kernels before 5.7 need CAP_NET_RAW for it; IPv4 then stays isolated by IP_MULTICAST_ALL=0.
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, iface_name.encode())
        except PermissionError:
            return False
        return True

    def iface_flags(self, name: str) -> dict[str, bool] | None:
        # SIOCGIFFLAGS asks the caller's own network namespace (/sys/class/net may show another).
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                ifreq = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("16sH14x", name.encode()[:15], 0))
        except OSError:
            return None
        flags = struct.unpack_from("16sH", ifreq)[1]
        return {"up": bool(flags & IFF_UP), "multicast": bool(flags & IFF_MULTICAST)}

    def default_route_iface_name(self, family: int) -> str | None:
        # /proc is cheaper than netlink and shows device-only default routes too.
        try:
            if family == socket.AF_INET:
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

    def explain_oserror(self, exc: OSError, action: str, family: int) -> MulticastExpertError | None:
        if exc.errno in (errno.ENOBUFS, errno.ENOMEM):
            v = "4" if family == socket.AF_INET else "6"
            key = ("source" if "source" in action else "join") + v
            return MulticastExpertError(
                f"{action} failed: a Linux per-socket multicast limit was reached ({exc.strerror}); "
                f"raise the sysctl {self._SYSCTL_HINTS[key]} (sysctl -w {self._SYSCTL_HINTS[key]}=N)"
            )
        return super().explain_oserror(exc, action, family)
