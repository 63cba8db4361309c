"""The per-OS multicast layer's shared part: option tables and the generic setters that use them.

Layering rule: this package may import ``_errors`` and ``_validate`` only. It knows the operating
system; nothing above it does. The socket classes call the methods of :class:`OsTable` and never
look at ``sys.platform`` themselves.

Each OS is a subclass whose ``OPTIONS`` maps ``(concern, family)`` to an :class:`Opt`: the
``(level, option number, struct shape)`` triple to ``setsockopt``. A concern missing from an OS's
table raises ``MulticastExpertError("... is not supported on <OS>")``. Policies that are not
socket options (what to bind to, which side honours multicast loopback) are class attributes.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

import netifaces

from .._errors import MulticastExpertError, MulticastOSError
from . import _structs as st
from ._structs import Shape, Target

V4, V6 = int(socket.AF_INET), int(socket.AF_INET6)
_CONCERN_NAMES = {
    "join": "joining a group",
    "join_source": "source-specific multicast",
    "block_source": "source blocking",
    "unblock_source": "source unblocking",
    "bind_device": "tying a socket to an interface",
    "multicast_all": "IP_MULTICAST_ALL",
    "reuseport": "SO_REUSEPORT",
}


#: Per-datagram metadata: (TTL or hop limit, TOS or traffic class, receive time in epoch seconds).
Meta = tuple[int | None, int | None, float | None]
#: A socket address as the socket module gives it.
Address = tuple[str, int] | tuple[str, int, int, int]


class Opt(NamedTuple):
    """One socket option: ``setsockopt(level, name, shape(target))``."""

    level: int
    name: int
    shape: Shape


def both(concern: str, opt: Opt) -> dict[tuple[str, int], Opt]:
    """A table entry that is the same for IPv4 and IPv6 sockets (SOL_SOCKET options)."""
    return {(concern, V4): opt, (concern, V6): opt}


def multicast_basics(
    ip: tuple[int, int, int, int, int],
    ipv6: tuple[int, int, int, int, int],
    *,
    if4: Shape,
    join4: Shape,
) -> dict[tuple[str, int], Opt]:
    """The standard options of both families from their numbers, each given as
    ``(level, MULTICAST_IF, MULTICAST_TTL or _HOPS, MULTICAST_LOOP, ADD_MEMBERSHIP or JOIN_GROUP)``.
    IPv4 takes the interface and join structs the OS wants; IPv6 always takes an index and ipv6_mreq."""
    table: dict[tuple[str, int], Opt] = {}
    for family, (level, mif, ttl, loop, join), if_shape, join_shape in (
        (V4, ip, if4, join4),
        (V6, ipv6, st.IFINDEX, st.IPV6_MREQ),
    ):
        table[("multicast_if", family)] = Opt(level, mif, if_shape)
        table[("multicast_ttl", family)] = Opt(level, ttl, st.INT)
        table[("multicast_loop", family)] = Opt(level, loop, st.INT)
        table[("join", family)] = Opt(level, join, join_shape)
    return table


def source_options(
    ip: tuple[int, int, int, int], ipv6: tuple[int, int, int, int], *, shape4: Shape, shape6: Shape
) -> dict[tuple[str, int], Opt]:
    """The per-source options of both families from their numbers, each given as
    ``(level, join-source, block-source, unblock-source)``, with each family's struct shape."""
    table: dict[tuple[str, int], Opt] = {}
    for family, (level, join, block, unblock), shape in ((V4, ip, shape4), (V6, ipv6, shape6)):
        table[("join_source", family)] = Opt(level, join, shape)
        table[("block_source", family)] = Opt(level, block, shape)
        table[("unblock_source", family)] = Opt(level, unblock, shape)
    return table


def family_label(family: int) -> str:
    """``'IPv4'`` or ``'IPv6'``."""
    return "IPv4" if family == V4 else "IPv6"


class OsTable:
    """One operating system's multicast behaviour: a table of options plus a few policies."""

    #: How errors name this OS.
    name: str = "unknown OS"
    #: (concern, family) -> option. Concerns: reuseaddr, reuseport, rcvbuf, bind_device,
    #: multicast_all, multicast_if, multicast_ttl, multicast_loop, join, join_source,
    #: block_source, unblock_source.
    OPTIONS: ClassVar[Mapping[tuple[str, int], Opt]] = {}
    #: Bind receive sockets to the group address (True) or to the interface address (False).
    RX_BIND_GROUP: ClassVar[bool] = True
    #: IP_MULTICAST_LOOP is honoured by the receiving socket (Windows) rather than the sender.
    LOOP_ON_RECEIVER: ClassVar[bool] = False
    #: Receive sockets read each datagram's destination and drop what was not sent to their group
    #: (Windows, where a socket bound to the interface address also gets unicast to its port).
    FILTER_BY_DESTINATION: ClassVar[bool] = False
    #: Sources per group one OS socket may hold, by family; missing: no known limit.
    SOURCES_PER_SOCKET: ClassVar[Mapping[int, int]] = {}
    #: Sysctl (or setting) to name when a per-socket limit is hit, by (concern, family).
    LIMIT_HINTS: ClassVar[Mapping[tuple[str, int], str]] = {}

    # ---- the generic setters ------------------------------------------------------------------
    def supports(self, concern: str, family: int) -> bool:
        """Whether this OS has the option for ``concern``."""
        return (concern, family) in self.OPTIONS

    def unsupported(self, concern: str, family: int) -> MulticastExpertError:
        """The error for a concern this OS does not offer."""
        what = _CONCERN_NAMES.get(concern, concern)
        return MulticastExpertError(f"{family_label(family)} {what} is not supported on {self.name}")

    def set(self, sock: socket.socket, concern: str, family: int, target: Target) -> None:
        """Apply one concern's option to ``sock``; raises if this OS has no such option."""
        opt = self.OPTIONS.get((concern, family))
        if opt is None:
            raise self.unsupported(concern, family)
        sock.setsockopt(opt.level, opt.name, opt.shape(target))

    def check_ssm(self, family: int) -> None:
        """Raise if this OS cannot do source-specific multicast for ``family``."""
        if not self.supports("join_source", family):
            raise self.unsupported("join_source", family)

    def sources_per_socket(self, family: int) -> int | None:
        """How many sources of one group a single OS socket may hold, if limited."""
        return self.SOURCES_PER_SOCKET.get(family)

    # ---- interfaces -----------------------------------------------------------------------------
    @property
    def link_family(self) -> int:
        """The netifaces key of link-layer (MAC) addresses."""
        return int(netifaces.AF_LINK)

    def iface_index(self, name: str) -> int:
        """The OS interface index of an interface name."""
        return socket.if_nametoindex(name)

    def default_route_iface_name(self, family: int) -> str | None:
        """Name of the interface holding the default route of ``family``, or None."""
        try:
            default = netifaces.gateways().get("default")
        except OSError:  # no routing table readable: no default gateway
            return None
        entry = default.get(family) if isinstance(default, dict) else None
        return str(entry[1]) if isinstance(entry, tuple) and len(entry) > 1 else None

    def interface_watch(self) -> socket.socket | None:
        """A non-blocking socket readable whenever interfaces or addresses change, or None where the
        OS has none (callers then rescan periodically). Its data only signals; drain and discard it."""
        return None

    def ensure_fd_room(self, needed: int, *, force: bool = False) -> tuple[int, int] | None:
        """Make room for ``needed`` more descriptors by raising the soft limit towards the hard one
        (``force``: count even when the request looks small, as after an EMFILE).

        Returns ``(old, new)`` soft limits if it raised it, None if nothing was needed or possible.
        """
        return None

    def fd_limits(self) -> tuple[int, int] | None:
        """``(soft, hard)`` limits on open descriptors, or None where the OS has none."""
        return None

    def iface_flags(self, name: str) -> dict[str, bool] | None:
        """``{"up", "running" (carrier), "multicast"}`` flags of an interface, or None where unknown."""
        return None

    def sockaddr(
        self, family: int, ip: str, port: int, ifindex: int
    ) -> tuple[str, int] | tuple[str, int, int, int]:
        """The address tuple for bind(): IPv6 gets the interface index as scope id."""
        if family == V4:
            return (ip, port)
        return (ip.split("%", 1)[0], port, 0, ifindex)

    # ---- transmit -----------------------------------------------------------------------------
    def harmless_send_error(self, exc: OSError, iface_is_loopback: bool) -> bool:
        """Whether a send error means nothing went wrong (the datagram is simply not looped back)."""
        return False

    def tx_loopback(self, iface_is_loopback: bool, external_loopback: bool) -> bool:
        """IP_MULTICAST_LOOP for a sending socket."""
        return external_loopback

    def configure_tx(
        self, sock: socket.socket, family: int, t: Target, ttl: int, loop: bool, source_port: int
    ) -> None:
        """Set up a sending socket: reuse, bind to the interface address, multicast interface, TTL, loop."""
        if source_port:
            self.set(sock, "reuseaddr", family, t._replace(value=1))
        sock.bind(self.sockaddr(family, t.iface_ip, source_port, t.ifindex))
        self.set(sock, "multicast_if", family, t)
        self.set(sock, "multicast_ttl", family, t._replace(value=ttl))
        self.set(sock, "multicast_loop", family, t._replace(value=int(loop)))

    # ---- receive ------------------------------------------------------------------------------
    def bind_to_iface(self, sock: socket.socket, family: int, t: Target) -> bool:
        """Tie a receive socket to one interface, where the OS can; True if it did."""
        if not self.supports("bind_device", family):
            return False
        try:
            self.set(sock, "bind_device", family, t)
        except PermissionError:  # Linux before 5.7 without CAP_NET_RAW
            return False
        return True

    def configure_rx(self, sock: socket.socket, family: int, t: Target, port: int, loop: bool) -> None:
        """Set up a receive socket for one group on one interface, up to and including bind()."""
        self.set(sock, "reuseaddr", family, t._replace(value=1))
        if self.supports("reuseport", family):
            self.set(sock, "reuseport", family, t._replace(value=1))
        if not self.bind_to_iface(sock, family, t) and self.supports("multicast_all", family):
            # Without a device binding, at least stop receiving groups joined by other sockets
            # (a socket bound to its group and tied to its interface needs no more).
            self.set(sock, "multicast_all", family, t._replace(value=0))
        if self.LOOP_ON_RECEIVER:
            self.set(sock, "multicast_loop", family, t._replace(value=int(loop)))
        if self.FILTER_BY_DESTINATION:
            self.set(sock, "pktinfo", family, t._replace(value=1))
        sock.bind(self.sockaddr(family, t.group if self.RX_BIND_GROUP else t.iface_ip, port, t.ifindex))

    def recv_packet(
        self, sock: socket.socket, bufsize: int, group: str | None = None
    ) -> tuple[bytes, tuple[str, int] | tuple[str, int, int, int], bool]:
        """Receive one datagram: (payload, sender, truncated). Where FILTER_BY_DESTINATION, one not
        sent to ``group`` is dropped (BlockingIOError, as if nothing had been queued)."""
        if sys.platform == "win32":  # Python has no recvmsg there; the Windows table overrides this
            raise OSError("recvmsg does not exist on Windows")
        data, _anc, msg_flags, addr = sock.recvmsg(bufsize)
        return data, addr, bool(msg_flags & _MSG_TRUNC)

    def recv_packet_meta(
        self, sock: socket.socket, bufsize: int, family: int
    ) -> tuple[bytes, Address, bool, Meta]:
        """Receive one datagram with its metadata: (payload, sender, truncated, (ttl, tos, time))."""
        if sys.platform == "win32":
            raise OSError("recvmsg does not exist on Windows")
        data, anc, msg_flags, addr = sock.recvmsg(bufsize, 256)
        return data, addr, bool(msg_flags & _MSG_TRUNC), self.decode_meta(anc, family)

    def decode_meta(self, anc: list[tuple[int, int, bytes]], family: int) -> Meta:
        """(ttl, tos, timestamp) from ancillary data; None for what is absent or unknown here."""
        return (None, None, None)

    def recv_many(
        self, sock: socket.socket, count: int, size: int, meta: bool
    ) -> list[tuple[bytes, Address, bool, list[tuple[int, int, bytes]]]] | None:
        """Up to ``count`` queued datagrams in one system call, or None where the OS has no such
        call (the caller then reads one at a time)."""
        return None

    def send_many(
        self, sock: socket.socket, family: int, datagrams: Sequence[tuple[bytes, Address]]
    ) -> int | None:
        """Send datagrams in as few system calls as possible; None where the OS has no such call."""
        return None

    # ---- diagnostics (used by the CLI's doctor) ------------------------------------------------
    def read_setting(self, name: str) -> str | None:
        """A kernel setting (sysctl) by dotted name, or None where unknown."""
        return None

    def socket_drops(self, socks: Sequence[socket.socket]) -> int | None:
        """Datagrams the kernel dropped on these sockets (buffer full), or None where unknown."""
        return None

    def memberships(self) -> list[tuple[str, str]] | None:
        """``(interface, group)`` for every group joined on this host, or None where unknown."""
        return None

    # ---- errors -------------------------------------------------------------------------------
    def explain_oserror(self, exc: OSError, action: str, family: int) -> MulticastOSError | None:
        """A known OSError as an error that says what to do (keeping errno); None if not understood."""
        code = exc.errno
        if code == errno.EMFILE:
            limits = self.fd_limits()
            now = f" (soft limit {limits[0]}, hard limit {limits[1]})" if limits else ""
            why = (
                f"this process has too many open files ({exc.strerror}){now}. Each group on each "
                "interface uses one socket; raise the hard limit (ulimit -Hn, or LimitNOFILE= for a "
                "systemd service) and the soft one (ulimit -n, RLIMIT_NOFILE)"
            )
        elif code == errno.EADDRINUSE:
            why = "the address is in use by a socket that did not set SO_REUSEADDR"
        elif code in (errno.ENODEV, errno.ENXIO):
            why = f"the interface no longer exists ({exc.strerror})"
        elif code in (errno.ENOBUFS, errno.ENOMEM) and self.LIMIT_HINTS:
            hint = self.LIMIT_HINTS[("join_source" if "source" in action else "join", family)]
            why = (
                f"a {self.name} per-socket multicast limit was reached ({exc.strerror}); "
                f"raise the sysctl {hint} (sysctl -w {hint}=N)"
            )
        elif code == errno.ENETUNREACH and action.startswith("Sending"):
            route = (
                "ip -6 route add table local local ff00::/8 dev lo"
                if family == V6
                else "ip route add 224.0.0.0/4 dev lo"
            )
            why = (
                f"no route for this group on this interface ({exc.strerror}). Over loopback add one: "
                f"{route}. Otherwise the interface is down, gone, or no longer has the address this "
                "socket was opened with; reopen the socket once the interface is back"
            )
        elif code in (errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            why = (
                f"({exc.strerror}) the interface is down, gone, or no longer has the address this "
                "socket was opened with; reopen the socket once the interface is back"
            )
        else:
            return None
        return MulticastOSError(code, f"{action} failed: {why}")

    # ---- transmit source address --------------------------------------------------------------
    def preferred_source(self, family: int, ifindex: int, ifname: str) -> str | None:
        """The address the OS would send ``family`` multicast from on an interface (never a
        deprecated or tentative one), or None where unknown: the caller uses the primary address."""
        return None


_MSG_TRUNC = int(getattr(socket, "MSG_TRUNC", 0x20))  # a plain int: IntFlag's & costs ~0.7 us
