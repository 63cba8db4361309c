"""McastRxSocket: receives multicast groups on chosen interfaces.

Design: one OS socket per (group, interface) (more when a group has more sources than the OS lets
one socket hold). Each is bound to its group's address and tied to its interface, so the kernel
itself keeps out unicast, other groups and other interfaces, and the group and arrival interface
of every datagram are known from the socket it came in on. The receive engine (``_engine``)
watches them all and serves ready sockets round-robin, so no group starves another.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

from . import _platform
from ._engine import EngineClosedError, Mode, ReceiveEngine
from ._errors import MulticastExpertError, MulticastValueError
from ._membership import GroupSpec, Unit, open_units
from ._packet import DEFAULT_RX_BUFSIZE, McastPacket, PacketAndSenderAddress
from ._platform import is_mac, is_windows
from ._rx_args import UNSET, from_1_6_positions, parse_sources, pick_interfaces, timeout_from
from ._rx_batch import batch_reader
from ._rx_ifaces import InterfaceSet
from ._rx_live import LiveMembership
from ._sockbase import OpenCloseContext, apply_sockopt
from ._sockbase import iface_ip as primary_ip
from ._validate import (
    LOCALHOST_IPV4,
    LOCALHOST_IPV6,
    IPv4Or6Address,
    MulticastAddress,
    check_bool,
    check_bufsize,
    check_family,
    check_int_range,
    check_port,
    check_timeout,
    dedupe,
    normalize_ip_list,
    normalize_mcast_ip,
    validate_mcast_ip,
)
from .interfaces import IfaceInfo, IfaceSpecifier, get_default_gateway_iface_ip, get_interface_ips

_MAX_BUF = 2**31


class McastRxSocket(LiveMembership, InterfaceSet, OpenCloseContext):
    """A socket that receives UDP multicast from a set of groups on a set of interfaces.

    Use it as a context manager (``with McastRxSocket(...) as rx:``) or call open() and close().

    Args:
        addr_family: ``socket.AF_INET`` or ``socket.AF_INET6``.
        mcast_ips: groups to receive (strings or ipaddress objects); may be empty, to join later.
        port: UDP port, 1..65535.
        iface_ip: one interface to listen on (IP, name or IfaceInfo).
        iface_ips: several interfaces. With neither, every non-loopback interface with an address
            of ``addr_family``.
        source_ips: if given and not empty, receive only from these senders (source-specific
            multicast).
        blocking: legacy form of ``timeout``: False means ``timeout=0``. A number here is taken
            as the timeout, as multicast_expert 1.6 ordered its arguments.
        iface, ifaces: newer spellings of ``iface_ip`` / ``iface_ips``.
        timeout: None blocks, 0 never waits, a number of seconds waits that long.
        rcvbuf: SO_RCVBUF for every OS socket, in bytes; see :attr:`granted_rcvbuf`.
        enable_external_loopback: receive this host's own multicasts on non-loopback interfaces
            (matters on Windows; on Linux and macOS the sender decides).
        follow_interfaces: on the default interface set, join every group on interfaces that
            appear (or gain an address) while the socket is open, and drop those that go
            (rtnetlink notifications on Linux, a rescan at most once a second elsewhere); applied
            by whichever receive is waiting, or by the next one.
        raise_fd_limit: raise the soft RLIMIT_NOFILE (up to the hard limit, with a warning) when
            the sockets needed would not fit under it.
        recv_ttl, recv_tos, timestamps: fill McastPacket's ``ttl`` (TTL / hop limit), ``tos`` (TOS /
            traffic class) and ``timestamp`` (kernel receive time) in recv_packet and recv_batch,
            where the OS supports it (Linux); they stay None otherwise.

    Raises:
        MulticastExpertError: bad groups, sources or interfaces (with what would be valid),
            "Both iface_ips and iface_ip may not be specified", or "Unable to discover any
            listenable interfaces".
        TypeError, ValueError: arguments of the wrong type or out of range.
    """

    def __init__(
        self,
        addr_family: int,
        mcast_ips: Iterable[MulticastAddress],
        port: int,
        iface_ip: IfaceSpecifier | None = None,
        iface_ips: Iterable[IfaceSpecifier] | None = None,
        source_ips: Iterable[MulticastAddress] | None = None,
        blocking: bool | float | None = True,
        *more_1_6_args: object,
        iface: IfaceSpecifier | None = None,
        ifaces: Iterable[IfaceSpecifier] | None = None,
        timeout: float | None = UNSET,
        rcvbuf: int | None = None,
        enable_external_loopback: bool = False,
        follow_interfaces: bool = False,
        raise_fd_limit: bool = True,
        recv_ttl: bool = False,
        recv_tos: bool = False,
        timestamps: bool = False,
    ) -> None:
        if (
            more_1_6_args
        ):  # 1.6.0's order: ..., timeout, blocking, enable_external_loopback, iface_ip, iface_ips
            blocking, timeout, enable_external_loopback, iface, ifaces = from_1_6_positions(
                blocking, timeout, more_1_6_args, enable_external_loopback, iface, ifaces
            )
        family = check_family(addr_family)
        self.addr_family: int = family
        self.port: int = check_port(port, allow_zero=False)
        items = normalize_ip_list(mcast_ips, "mcast_ips", allow_empty=True)
        groups = dedupe(normalize_mcast_ip(ip, family) for ip in items)
        sources = parse_sources(source_ips, family)
        self._groups: dict[str, tuple[str, ...]] = dict.fromkeys(groups, sources)
        self._source_ips = sources or None
        self._blocked: dict[str, set[str]] = {}
        self.rcvbuf: int | None = None if rcvbuf is None else check_int_range(rcvbuf, "rcvbuf", 1, 2**31 - 1)
        self.enable_external_loopback: bool = check_bool(enable_external_loopback, "enable_external_loopback")
        self._engine: ReceiveEngine[Unit] = ReceiveEngine(timeout_from(blocking, timeout))
        self._named = any(x is not None for x in (iface_ip, iface_ips, iface, ifaces))
        self._follow = check_bool(follow_interfaces, "follow_interfaces")
        if self._follow and self._named:
            raise MulticastValueError(
                "follow_interfaces applies to the default interface set; leave iface_ip/iface_ips/"
                "iface/ifaces unset to follow interfaces as they come and go"
            )
        self._raise_fd_limit = check_bool(raise_fd_limit, "raise_fd_limit")
        self._watch: socket.socket | None = None
        #: Interfaces of the default set left out because they could not join: name -> reason.
        self.skipped_interfaces: dict[str, str] = {}
        self._spec = GroupSpec(
            family,
            self.port,
            [(i, primary_ip(i, family)) for i in pick_interfaces(family, iface_ip, iface_ips, iface, ifaces)],
            self.enable_external_loopback,
            self.rcvbuf,
            tuple(
                concern
                for concern, wanted in (
                    ("recv_ttl", recv_ttl),
                    ("recv_tos", recv_tos),
                    ("timestamps", timestamps),
                )
                if check_bool(wanted, concern)
            ),
        )
        self._units: dict[str, list[Unit]] = {}

    # ---- properties ----------------------------------------------------------------------------
    @property
    def network_interfaces(self) -> list[IfaceInfo]:
        """The interfaces this socket listens on."""
        return list(self._ifaces)

    @property
    def iface_infos(self) -> list[IfaceInfo]:
        """1.6.0's name for :attr:`network_interfaces`."""
        return list(self._ifaces)

    @property
    def mcast_ips(self) -> list[str]:
        """The groups currently joined."""
        return list(self._groups)

    @property
    def source_ips(self) -> list[str] | None:
        """The sources given to the constructor (as in 1.2.0), or None for any-source."""
        return list(self._source_ips) if self._source_ips is not None else None

    @property
    def is_source_specific(self) -> bool:
        """Whether the socket was opened for source-specific multicast (1.6.0)."""
        return self._source_ips is not None

    @property
    def sources_by_group(self) -> dict[str, list[str]]:
        """Sources of each source-specific group now joined (live joins included)."""
        return {g: list(s) for g, s in self._groups.items() if s}

    @property
    def iface_ips(self) -> list[str]:
        """Address of each interface listened on."""
        return [ip for _, ip in self._spec.ifaces]

    @property
    def granted_rcvbuf(self) -> int | None:
        """The SO_RCVBUF the OS granted when ``rcvbuf`` was given (None otherwise)."""
        return self._spec.granted_rcvbuf

    @property
    def is_opened(self) -> bool:
        """Whether the socket is open."""
        return self._engine.mode is not Mode.CLOSED

    @property
    def sockets(self) -> list[socket.socket]:
        """The underlying OS sockets (non-blocking; waiting is the engine's job)."""
        return [u.sock for u in self._engine.by_fd.values()]

    @property
    def timeout(self) -> float | None:
        """The current timeout (None: blocking; 0: non-blocking). Assignable, as in 1.2.0 and 1.6.0."""
        return self._engine.timeout

    @timeout.setter
    def timeout(self, timeout: float | None) -> None:
        self._engine.timeout = check_timeout(timeout)

    @property
    def blocking(self) -> bool:
        """False when the timeout is 0."""
        return self._engine.timeout != 0

    # ---- open / close ------------------------------------------------------------------------
    def open(self) -> None:
        """Create the OS sockets and join every group on every interface.

        Raises:
            MulticastExpertError: already open, or a join failed (the message names the limit or
                setting at fault). Nothing stays open after a failure.
        """
        engine = self._engine
        if engine.mode is not Mode.CLOSED:
            raise MulticastExpertError("Attempt to open an McastRxSocket that is already open!")
        engine.open()
        try:
            try:
                self._open_interfaces()
            except OSError as exc:
                # Out of descriptors although the request looked small: count, raise, retry once.
                if exc.errno != errno.EMFILE or not self._make_fd_room(
                    self._sockets_needed(len(self._ifaces)), force=True
                ):
                    raise
                self._close_all()
                engine.open()
                self._open_interfaces()
        except BaseException:
            self._close_all()
            raise

    def _add_group(self, group: str, sources: tuple[str, ...]) -> None:
        self._make_fd_room(self._sockets_needed(len(self._ifaces), [sources]))
        units = open_units(self._spec, group, sources, sorted(self._blocked.get(group, ())))
        self._units[group] = units
        self._engine.add(units)

    def _close_all(self) -> None:
        self._stop_watch()
        self._engine.close()
        self._units.clear()

    def close(self) -> None:
        """Close every OS socket (leaving every group) and wake every receive waiting in any thread.

        Raises:
            MulticastExpertError: already closed.
        """
        if self._engine.mode is Mode.CLOSED:
            raise MulticastExpertError("Attempt to close an McastRxSocket that is already closed!")
        self._close_all()

    # ---- receiving --------------------------------------------------------------------------
    def _closed(self, what: str) -> MulticastExpertError:
        return MulticastExpertError(f"{what} on a closed McastRxSocket; open it first")

    def recvfrom(self, bufsize: int = 4096, flags: int = 0) -> tuple[bytes, IPv4Or6Address] | None:
        """Receive one datagram: ``(payload, sender address)``, or None on timeout.

        IPv4 addresses are ``(ip, port)``, IPv6 ``(ip, port, flowinfo, scope_id)``.

        Raises:
            MulticastExpertError: the socket is closed (also when closed by another thread while
                this call waits).
            ValueError, TypeError: a bufsize outside 1..2**31-1.
        """
        if type(bufsize) is not int or not 0 < bufsize < _MAX_BUF:
            check_bufsize(bufsize)
        ops = _platform.OPS
        if ops.FILTER_BY_DESTINATION:  # Windows: only datagrams sent to the socket's group

            def read(u: Unit) -> tuple[bytes, IPv4Or6Address]:
                data, src, _ = ops.recv_packet(u.sock, bufsize, u.group)
                return data, src

        else:

            def read(u: Unit) -> tuple[bytes, IPv4Or6Address]:
                got: tuple[bytes, IPv4Or6Address] = u.sock.recvfrom(bufsize, flags)
                return got

        try:
            return self._engine.receive(read)
        except EngineClosedError:
            raise self._closed("recvfrom()") from None

    def recv(self, bufsize: int = 4096, flags: int = 0) -> bytes | None:
        """Receive one datagram's payload, or None on timeout (see :meth:`recvfrom`)."""
        got = self.recvfrom(bufsize, flags)
        return None if got is None else got[0]

    def recv_packet(self, bufsize: int = 65535) -> McastPacket | None:
        """Receive one datagram with its group and arrival interface, or None on timeout.

        Raises:
            MulticastExpertError: the socket is closed.
            ValueError, TypeError: a bufsize outside 1..2**31-1.
        """
        if type(bufsize) is not int or not 0 < bufsize < _MAX_BUF:
            check_bufsize(bufsize)
        if self._spec.meta:
            return self._receive_with_meta(bufsize)
        recv_packet = _platform.OPS.recv_packet
        new = tuple.__new__  # skips the NamedTuple's Python-level __new__ on the hot path

        def read(u: Unit) -> McastPacket:
            data, src, truncated = recv_packet(u.sock, bufsize, u.group)
            return new(McastPacket, (data, src, u.group, u.iface.index, truncated, None, None, None))

        try:
            return self._engine.receive(read)
        except EngineClosedError:
            raise self._closed("recv_packet()") from None

    def _receive_with_meta(self, bufsize: int) -> McastPacket | None:
        ops, family = _platform.OPS, self.addr_family

        def read(u: Unit) -> McastPacket:
            data, src, truncated, (ttl, tos, stamp) = ops.recv_packet_meta(u.sock, bufsize, family)
            return McastPacket(data, src, u.group, u.iface.index, truncated, ttl, tos, stamp)

        try:
            return self._engine.receive(read)
        except EngineClosedError:
            raise self._closed("recv_packet()") from None

    def recv_batch(self, max_packets: int = 64, bufsize: int = 65535) -> list[McastPacket]:
        """Receive up to ``max_packets`` datagrams at once.

        Waits by the timeout rules for the first datagram, then returns what is already queued, up
        to ``max_packets``, without waiting more; an empty list on timeout. Fair across groups
        (each ready socket gets an equal share per round); each group's datagrams come in arrival
        order. On Linux one ``recvmmsg`` system call reads many datagrams of a socket.

        Raises:
            MulticastExpertError: the socket is closed.
            ValueError, TypeError: ``max_packets`` outside 1..1024 or ``bufsize`` outside 1..2**31-1.
        """
        check_int_range(max_packets, "max_packets", 1, 1024)
        check_bufsize(bufsize)
        try:
            return self._engine.receive_batch(
                batch_reader(self.addr_family, bool(self._spec.meta), bufsize), max_packets
            )
        except EngineClosedError:
            raise self._closed("recv_batch()") from None

    def filenos(self) -> list[int]:
        """File descriptors of every OS socket (for select()); empty when closed."""
        return list(self._engine.by_fd)

    def fileno(self) -> int:
        """One descriptor that is readable whenever any group has data (the poller's); -1 if closed.

        Usable with select() and event loops even when the socket spans thousands of groups.
        """
        return self._engine.fileno()

    def settimeout(self, timeout: float | None) -> None:
        """None blocks, 0 never waits, a positive number waits that many seconds."""
        self.timeout = timeout

    def setsockopt(self, level: int, opt: int, value: int | bytes) -> None:
        """Set a socket option on every underlying OS socket."""
        apply_sockopt(self.sockets, level, opt, value)


__all__ = [
    "DEFAULT_RX_BUFSIZE",
    "LOCALHOST_IPV4",
    "LOCALHOST_IPV6",
    "IPv4Or6Address",
    "McastPacket",
    "McastRxSocket",
    "MulticastExpertError",
    "PacketAndSenderAddress",
    "get_default_gateway_iface_ip",
    "get_interface_ips",
    "is_mac",
    "is_windows",
    "validate_mcast_ip",
]
