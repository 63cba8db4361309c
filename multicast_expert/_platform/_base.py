"""The per-OS multicast layer: everything that differs between Linux, macOS and Windows.

Each OS is one subclass of :class:`OsMulticast` whose class attributes are a table of option
numbers and policies (see ``linux.py``, ``darwin.py``, ``windows.py``). The socket classes call only
the methods below and never look at the platform themselves. A feature an OS lacks is ``None`` in
its table, and using it raises a MulticastExpertError naming the OS.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import ClassVar

import netifaces

from ..utils import MulticastExpertError
from . import _structs as st

IPPROTO_IPV6 = socket.IPPROTO_IPV6


class OsMulticast:
    """Base table and behaviour, shared by every OS; subclasses override data and a few methods."""

    name: ClassVar[str] = "unknown OS"

    # --- option numbers (level IPPROTO_IP unless noted) ---------------------------------------
    IP_ADD_SOURCE_MEMBERSHIP: ClassVar[int | None] = None
    IP_DROP_SOURCE_MEMBERSHIP: ClassVar[int | None] = None
    IP_BLOCK_SOURCE: ClassVar[int | None] = None
    IP_UNBLOCK_SOURCE: ClassVar[int | None] = None
    #: Protocol-independent RFC 3678 options, at level IPPROTO_IPV6 for IPv6 groups.
    MCAST_JOIN_SOURCE_GROUP: ClassVar[int | None] = None
    MCAST_LEAVE_SOURCE_GROUP: ClassVar[int | None] = None
    MCAST_BLOCK_SOURCE: ClassVar[int | None] = None
    MCAST_UNBLOCK_SOURCE: ClassVar[int | None] = None
    #: Linux: stop a socket receiving groups it did not join itself.
    IP_MULTICAST_ALL: ClassVar[int | None] = None
    IPV6_MULTICAST_ALL: ClassVar[int | None] = None

    # --- policies -------------------------------------------------------------------------------
    #: ip_mreq_source field order: True for (group, source, interface).
    SOURCE_BEFORE_IFACE: ClassVar[bool] = True
    #: Bind receive sockets to the group address (True) or to the interface address (False).
    RX_BIND_GROUP: ClassVar[bool] = True
    #: Set SO_REUSEPORT as well as SO_REUSEADDR on receive sockets.
    RX_REUSEPORT: ClassVar[bool] = False
    #: IP_MULTICAST_LOOP is honoured by the receiving socket (Windows) rather than the sender.
    LOOP_ON_RECEIVER: ClassVar[bool] = False
    #: Sources per group one OS socket may hold (Linux sysctls); None: no known limit.
    IPV4_SOURCES_PER_SOCKET: ClassVar[int | None] = None
    IPV6_SOURCES_PER_SOCKET: ClassVar[int | None] = None

    # --- interfaces -------------------------------------------------------------------------------
    @property
    def link_family(self) -> int:
        """The netifaces key of link-layer (MAC) addresses."""
        return int(netifaces.AF_LINK)

    def iface_index(self, name: str) -> int:
        """The OS interface index of an interface name."""
        return socket.if_nametoindex(name)

    def default_route_iface_name(self, family: int) -> str | None:
        """Name of the interface holding the default route of ``family``, or None."""
        default = netifaces.gateways().get("default")
        entry = default.get(family) if isinstance(default, dict) else None
        return str(entry[1]) if isinstance(entry, tuple) and len(entry) > 1 else None

    def iface_flags(self, name: str) -> dict[str, bool] | None:
        """``{"up": ..., "multicast": ...}`` for an interface, or None where unknown."""
        return None

    # --- building blocks ----------------------------------------------------------------------
    def unsupported(self, what: str) -> MulticastExpertError:
        """The error for a feature this OS does not offer."""
        return MulticastExpertError(f"{what} is not supported on {self.name}")

    def sockaddr(
        self, family: int, ip: str, port: int, ifindex: int
    ) -> tuple[str, int] | tuple[str, int, int, int]:
        """The address tuple for bind(): IPv6 gets the interface index as scope id."""
        if family == socket.AF_INET:
            return (ip, port)
        return (ip.split("%", 1)[0], port, 0, ifindex)

    # --- transmit ---------------------------------------------------------------------------
    def tx_loopback(self, iface_is_loopback: bool, external_loopback: bool) -> bool:
        """IP_MULTICAST_LOOP for a sending socket."""
        return external_loopback

    def set_multicast_if(self, sock: socket.socket, family: int, iface_ip: str, ifindex: int) -> None:
        """Choose the interface outgoing multicast leaves by."""
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, st.in_addr(iface_ip))
        else:
            sock.setsockopt(IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)

    def configure_tx(
        self,
        sock: socket.socket,
        family: int,
        iface_ip: str,
        ifindex: int,
        ttl: int,
        loop: bool,
        source_port: int,
    ) -> None:
        """Set up a sending socket: reuse, bind to the interface, multicast interface, TTL, loop."""
        if source_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(self.sockaddr(family, iface_ip, source_port, ifindex))
        self.set_multicast_if(sock, family, iface_ip, ifindex)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(loop))
        else:
            sock.setsockopt(IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
            sock.setsockopt(IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, int(loop))

    # --- receive ----------------------------------------------------------------------------
    def bind_to_iface(self, sock: socket.socket, family: int, iface_name: str, ifindex: int) -> bool:
        """Tie a receive socket to one interface, where the OS can; True if it did."""
        return False

    def configure_rx(
        self,
        sock: socket.socket,
        family: int,
        group: str,
        iface_name: str,
        iface_ip: str,
        ifindex: int,
        port: int,
        loop: bool,
    ) -> None:
        """Set up a receive socket for one group on one interface, up to and including bind()."""
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.RX_REUSEPORT:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if not self.bind_to_iface(sock, family, iface_name, ifindex):
            # Without a device binding, at least stop receiving groups joined by other sockets
            # (a socket bound to its group and tied to its interface needs no more).
            if family == socket.AF_INET and self.IP_MULTICAST_ALL is not None:
                sock.setsockopt(socket.IPPROTO_IP, self.IP_MULTICAST_ALL, 0)
            if family == socket.AF_INET6 and self.IPV6_MULTICAST_ALL is not None:
                sock.setsockopt(IPPROTO_IPV6, self.IPV6_MULTICAST_ALL, 0)
        if self.LOOP_ON_RECEIVER:
            level, opt = (
                (socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP)
                if family == socket.AF_INET
                else (IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP)
            )
            sock.setsockopt(level, opt, int(loop))
        sock.bind(self.sockaddr(family, group if self.RX_BIND_GROUP else iface_ip, port, ifindex))

    def ipv4_join_struct(self, group: str, iface_ip: str, ifindex: int) -> bytes:
        """The struct IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP take."""
        return st.ip_mreq(group, iface_ip)

    def join(self, sock: socket.socket, family: int, group: str, iface_ip: str, ifindex: int) -> None:
        """Join an any-source group on one interface."""
        if family == socket.AF_INET:
            sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, self.ipv4_join_struct(group, iface_ip, ifindex)
            )
        else:
            sock.setsockopt(IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, st.ipv6_mreq(group, ifindex))

    def leave(self, sock: socket.socket, family: int, group: str, iface_ip: str, ifindex: int) -> None:
        """Leave an any-source group on one interface."""
        if family == socket.AF_INET:
            sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, self.ipv4_join_struct(group, iface_ip, ifindex)
            )
        else:
            sock.setsockopt(IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, st.ipv6_mreq(group, ifindex))

    #: Source operations: (IPv4 option attribute, IPv6 option attribute, what it is called).
    _SOURCE_OPS: ClassVar[dict[str, tuple[str, str, str]]] = {
        "join": ("IP_ADD_SOURCE_MEMBERSHIP", "MCAST_JOIN_SOURCE_GROUP", "source-specific multicast"),
        "block": ("IP_BLOCK_SOURCE", "MCAST_BLOCK_SOURCE", "source blocking"),
        "unblock": ("IP_UNBLOCK_SOURCE", "MCAST_UNBLOCK_SOURCE", "source unblocking"),
    }

    def source_op(
        self,
        kind: str,
        sock: socket.socket,
        family: int,
        group: str,
        source: str,
        iface_ip: str,
        ifindex: int,
    ) -> None:
        """Apply a per-source operation on one interface.

        ``kind`` is ``"join"`` (source-specific join), ``"block"`` or ``"unblock"`` (a sender on
        an any-source group). Raises MulticastExpertError naming the OS where it has no such option.
        """
        v4_name, v6_name, what = self._SOURCE_OPS[kind]
        if family == socket.AF_INET:
            opt: int | None = getattr(self, v4_name)
            if opt is None:
                raise self.unsupported(f"IPv4 {what}")
            req = st.ip_mreq_source(group, iface_ip, source, source_before_iface=self.SOURCE_BEFORE_IFACE)
            sock.setsockopt(socket.IPPROTO_IP, opt, req)
        else:
            opt = getattr(self, v6_name)
            if opt is None:
                raise self.unsupported(f"IPv6 {what}")
            sock.setsockopt(IPPROTO_IPV6, opt, st.group_source_req(family, ifindex, group, source))

    def check_ssm(self, family: int) -> None:
        """Raise if this OS cannot do source-specific multicast for ``family``."""
        opt = self.IP_ADD_SOURCE_MEMBERSHIP if family == socket.AF_INET else self.MCAST_JOIN_SOURCE_GROUP
        if opt is None:
            raise self.unsupported(
                f"{'IPv4' if family == socket.AF_INET else 'IPv6'} source-specific multicast"
            )

    def sources_per_socket(self, family: int) -> int | None:
        """How many sources of one group a single OS socket may hold, if limited."""
        return self.IPV4_SOURCES_PER_SOCKET if family == socket.AF_INET else self.IPV6_SOURCES_PER_SOCKET

    def recv_packet(
        self, sock: socket.socket, bufsize: int
    ) -> tuple[bytes, tuple[str, int] | tuple[str, int, int, int], bool]:
        """Receive one datagram: (payload, sender, truncated)."""
        data, _anc, msg_flags, addr = sock.recvmsg(bufsize)
        return data, addr, bool(msg_flags & socket.MSG_TRUNC)

    # --- errors ------------------------------------------------------------------------------
    def explain_oserror(self, exc: OSError, action: str, family: int) -> MulticastExpertError | None:
        """Turn a known OSError into an error that says what to do; None if not understood."""
        code = exc.errno
        if code == errno.EMFILE:
            return MulticastExpertError(
                f"{action} failed: this process has too many open files ({exc.strerror}). Each group "
                "on each interface uses one socket; raise the limit (ulimit -n, RLIMIT_NOFILE)"
            )
        if code == errno.EADDRINUSE:
            return MulticastExpertError(
                f"{action} failed: the address is in use by a socket that did not set SO_REUSEADDR"
            )
        if code in (errno.ENODEV, errno.ENXIO):
            return MulticastExpertError(f"{action} failed: the interface no longer exists ({exc.strerror})")
        if code in (errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            return MulticastExpertError(
                f"{action} failed ({exc.strerror}): the interface is down, gone, or no longer has the "
                "address this socket was opened with; reopen the socket once the interface is back"
            )
        return None


class Poller:
    """Readiness of many sockets at once, via the selectors module (any OS).

    ``poll(timeout)`` returns ``[(fd, events), ...]``; None waits forever, 0 does not wait.
    """

    poll: Callable[[float | None], list[tuple[int, int]]]

    def __init__(self) -> None:
        import selectors

        sel = self._sel = selectors.DefaultSelector()
        self._events = selectors.EVENT_READ
        self.poll = lambda timeout: [(key.fd, ev) for key, ev in sel.select(timeout)]

    def register(self, fd: int) -> None:
        self._sel.register(fd, self._events)

    def unregister(self, fd: int) -> None:
        self._sel.unregister(fd)

    def fileno(self) -> int:
        """A descriptor readable when any registered one is, or -1 where the OS has none."""
        fileno = getattr(self._sel, "fileno", None)
        return int(fileno()) if fileno is not None else -1

    def close(self) -> None:
        self._sel.close()


class EpollPoller(Poller):
    """Poller straight on epoll: ``poll`` is epoll's own method, no Python layer in between."""

    def __init__(self) -> None:
        import select

        self._ep = select.epoll()
        self._in = select.EPOLLIN
        self.poll = self._ep.poll

    def register(self, fd: int) -> None:
        self._ep.register(fd, self._in)

    def unregister(self, fd: int) -> None:
        self._ep.unregister(fd)

    def fileno(self) -> int:
        return self._ep.fileno()

    def close(self) -> None:
        self._ep.close()


def make_poller() -> Poller:
    """An epoll-backed poller where the OS has epoll (no 1,024-descriptor ceiling), else selectors."""
    import select

    return EpollPoller() if hasattr(select, "epoll") else Poller()
