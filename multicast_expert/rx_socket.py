"""McastRxSocket: receives multicast groups on chosen interfaces.

Design: one OS socket per (group, interface) (more when a group has more sources than the OS lets
one socket hold). Each is bound to its group's address and tied to its interface, so the kernel
itself keeps out unicast, other groups and other interfaces, and the group and arrival interface
of every datagram are known from the socket it came in on.

Composition: the socket class holds one :class:`~._membership.Membership` (the only owner of
groups, sources, blocked senders, OS sockets and interfaces; its operations are transactions) and
one :class:`~._engine.ReceiveEngine` (waiting and reading, told of sockets only by the
membership's changes). This module validates arguments, words errors, builds read functions.
"""

from __future__ import annotations

import abc
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from . import _fork_locks, _platform, _rx_hot, _rx_read
from ._compat import rx as _compat
from ._compat.names import (  # 1.2.0 exported these from this module
    LOCALHOST_IPV4,
    LOCALHOST_IPV6,
    PacketAndSenderAddress,
    get_default_gateway_iface_ip,
    get_interface_ips,
    is_mac,
    is_windows,
    validate_mcast_ip,
)
from ._compat.values import LegacyIfaceInfo
from ._describe import describe, endpoint, some
from ._engine import Mode, ReceiveEngine
from ._errors import EngineClosedError, MulticastExpertError, MulticastValueError, SocketClosedError
from ._follow import InterfaceFollower
from ._lifecycle import OpenCloseContext, apply_sockopt
from ._membership import Membership, RxSettings
from ._packet import DEFAULT_RX_BUFSIZE, McastPacket
from ._platform import METADATA, Concern
from ._rx_args import default_set, parse_sources, pick_interfaces
from ._unit import Unit
from ._validate import (
    IPv4Or6Address,
    MulticastAddress,
    check_bool,
    check_bufsize,
    check_family,
    check_flags,
    check_int_range,
    check_port,
    check_timeout,
    family_name,
    normalize_mcast_ip,
    normalize_mcast_ips,
    normalize_source_ip,
)
from .interfaces import IfaceInfo, IfaceSpecifier, resolve_iface

_MAX_BUF = 2**31
_CLOSED = Mode.CLOSED
_UNSET = _compat.UNSET
#: The families, and the types they come as, that the constructor accepts without calling check_family.
_FAMILIES = frozenset({int(socket.AF_INET), int(socket.AF_INET6)})
_INTS = (int, socket.AddressFamily)
_log = logging.getLogger("multicast_expert.rx")
_new = tuple.__new__  # (a NamedTuple's own __new__ is a Python call)


class BaseMcastRxSocket(abc.ABC):  # noqa: B024 (it has no abstract methods: a name, not an interface)
    """1.6.0's common base class of :class:`McastRxSocket` and :class:`AsyncMcastRxSocket`, kept
    for its name: both are registered as its subclasses, so ``isinstance`` and annotations that
    use it hold. It adds nothing; subclass :class:`McastRxSocket` itself."""


class McastRxSocket(OpenCloseContext):
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
        timeout: float | _compat.Unset | None = _compat.UNSET,
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
            blocking, timeout, enable_external_loopback, iface, ifaces = _compat.from_1_6_positions(
                blocking, timeout, more_1_6_args, enable_external_loopback, iface, ifaces
            )
        # Each check is made inline for the common values (the same test, no call) and by its
        # checker otherwise, in the same order, so every error is the one the checker raises.
        family = (
            addr_family
            if type(addr_family) in _INTS and addr_family in _FAMILIES
            else check_family(addr_family)
        )
        self.addr_family: int = family
        self.port: int = (
            port if type(port) is int and 0 < port <= 65535 else check_port(port, allow_zero=False)
        )
        groups = normalize_mcast_ips(mcast_ips, family)
        sources = () if source_ips is None else parse_sources(source_ips, family)
        self._source_ips = sources or None
        self.rcvbuf: int | None = None if rcvbuf is None else check_int_range(rcvbuf, "rcvbuf", 1, 2**31 - 1)
        plain = (
            enable_external_loopback is False
            and follow_interfaces is False
            and recv_ttl is False
            and recv_tos is False
            and timestamps is False
            and raise_fd_limit is True
        )
        self.enable_external_loopback: bool = (
            False if plain else check_bool(enable_external_loopback, "enable_external_loopback")
        )
        self._timeout = (
            None if blocking is True and timeout is _UNSET else _compat.timeout_from(blocking, timeout)
        )
        named = iface_ip is not None or iface_ips is not None or iface is not None or ifaces is not None
        self._follow = False if plain else check_bool(follow_interfaces, "follow_interfaces")
        if self._follow and named:
            raise MulticastValueError(
                "follow_interfaces applies to the default interface set; leave iface_ip/iface_ips/"
                "iface/ifaces unset to follow interfaces as they come and go"
            )
        meta: tuple[Concern, ...] = ()
        if not plain:
            wanted = (("recv_ttl", recv_ttl), ("recv_tos", recv_tos), ("timestamps", timestamps))
            meta = tuple(c for c, (name, on) in zip(METADATA, wanted, strict=True) if check_bool(on, name))
        self._meta = bool(meta)
        self._engine: ReceiveEngine[Unit] = ReceiveEngine()
        self._members = Membership(
            _new(RxSettings, (family, self.port, self.enable_external_loopback, self.rcvbuf, meta)),
            dict.fromkeys(groups, sources),
            [resolve_iface(iface_ip, family)]  # (one interface by its 1.2.0 name: the common case)
            if iface_ip is not None and iface_ips is None and iface is None and ifaces is None
            else pick_interfaces(family, iface_ip, iface_ips, iface, ifaces),
            named=named,
            raise_fd_limit=True if plain else check_bool(raise_fd_limit, "raise_fd_limit"),
            apply=self._engine.apply,
        )
        self._follower = InterfaceFollower(self._engine, self._members) if self._follow else None
        #: Read functions already built, by (kind, bufsize, flags): a receive reuses them.
        self._readers: dict[tuple[int, int, int], _rx_read.Readers[Any]] = {}
        #: The same for recvfrom without flags, by bufsize (no key tuple per call on the hot path).
        self._plain_readers: dict[int, _rx_read.Readers[Any]] = {}
        self._open_lock = threading.RLock()  # (re-entrant: a fork from a warning raised in open())
        _fork_locks.register(self)
        #: The C receive methods in use (see _install_hot), else None.
        self._hot: Any = None

    def __repr__(self) -> str:
        """``<McastRxSocket AF_INET 239.1.2.3:5000 on eth0 open>`` (long lists abbreviated)."""
        members = getattr(self, "_members", None)
        if members is None:  # (a constructor that raised)
            return object.__repr__(self)
        return describe(
            type(self).__name__,
            family_name(self.addr_family),
            endpoint(list(members.groups), self.port),
            "on " + some([i.machine_name for i in members.ifaces], "no interface"),
            is_open=self._is_open(),
        )

    # ---- properties ----------------------------------------------------------------------------
    @property
    def network_interfaces(self) -> list[IfaceInfo]:
        """The interfaces this socket listens on."""
        return list(self._members.ifaces)

    @property
    def iface_infos(self) -> dict[str, LegacyIfaceInfo]:
        """1.2.0's records of the interfaces listened on, by interface IP (each with an address of
        the family now): ``iface_ip``, ``iface_name``, ``iface_idx``. See :attr:`network_interfaces`."""
        members, family = self._members, self.addr_family
        ips = ((i, i.primary_ip(family)) for i in members.ifaces if i.machine_name not in members.absent)
        return {ip: LegacyIfaceInfo(ip, i.machine_name, i.index) for i, ip in ips if ip is not None}

    @property
    def iface_ips(self) -> list[str]:
        """Address of each interface listened on that has one of the family now."""
        return self._members.iface_ips()

    @property
    def skipped_interfaces(self) -> dict[str, str]:
        """Interfaces of the default set left out because they could not join: name -> reason."""
        return dict(self._members.skipped)

    @property
    def mcast_ips(self) -> list[str]:
        """The groups currently joined."""
        return list(self._members.groups)

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
        return {g: list(s) for g, s in self._members.groups.items() if s}

    @property
    def granted_rcvbuf(self) -> int | None:
        """The SO_RCVBUF the OS granted when ``rcvbuf`` was given (None otherwise)."""
        return self._members.granted_rcvbuf

    @property
    def is_opened(self) -> bool:
        """Whether the socket is open."""
        return self._engine.mode is not Mode.CLOSED

    def _is_open(self) -> bool:
        return self._engine.mode is not Mode.CLOSED

    def _locks(self) -> list[Any]:
        """Every lock of the socket, in the order threads take them (see _fork_locks)."""
        hot_lock = getattr(self._hot, "_lock", None)  # (the pure-Python fast methods')
        locks = [self._open_lock, self._members.lock, self._engine._lock, hot_lock]
        return [lock for lock in locks if lock is not None]

    @property
    def sockets(self) -> list[socket.socket]:
        """The underlying OS sockets. On Linux and macOS they are blocking, as in 1.2.0 (the library
        reads them with MSG_DONTWAIT); on Windows, which has no such flag, they are non-blocking."""
        return [u.sock for u in self._members.all_units()]

    @property
    def timeout(self) -> float | None:
        """The current timeout (None: blocking; 0: non-blocking). Assignable, as in 1.2.0 and 1.6.0."""
        return self._timeout

    @timeout.setter
    def timeout(self, timeout: float | None) -> None:
        self._timeout = check_timeout(timeout)
        hot = self._hot
        if hot is not None:
            hot.set_timeout(self._timeout)

    @property
    def blocking(self) -> bool:
        """False when the timeout is 0."""
        return self._timeout != 0

    # ---- open / close ------------------------------------------------------------------------
    def open(self) -> None:
        """Create the OS sockets and join every group on every interface.

        Raises:
            MulticastExpertError: already open, or a join failed (the message names the limit or
                setting at fault). Nothing stays open after a failure.
        """
        with self._open_lock:
            engine = self._engine
            if engine.mode is not _CLOSED:
                raise MulticastExpertError("Attempt to open an McastRxSocket that is already open!")
            engine.open()
            if self._readers:  # (built afresh from the OS layer in use now)
                self._readers.clear()
                self._plain_readers.clear()
            _rx_hot.install(self, _RX_METHODS)
            try:
                if self._follower is not None:  # the default set as it is now, watched from before
                    self._follower.start()
                    self._members.reset_ifaces(default_set(self.addr_family, rescan=True))
                self._members.open()
            except BaseException:
                self._close_all()
                raise

    def _close_all(self) -> None:
        if self._follower is not None:
            self._follower.stop()
        self._members.close(self._engine.close)

    def close(self) -> None:
        """Close every OS socket (leaving every group) and wake every receive waiting in any thread.

        Raises:
            MulticastExpertError: already closed.
        """
        with self._open_lock:
            if self._engine.mode is _CLOSED:
                raise MulticastExpertError("Attempt to close an McastRxSocket that is already closed!")
            if self._follower is not None:  # (the body of _close_all, inline)
                self._follower.stop()
            self._members.close(self._engine.close)

    # ---- live membership ---------------------------------------------------------------------
    def _need_open(self, what: str) -> None:
        if self._engine.mode is Mode.CLOSED:
            raise _closed(what)

    def join_group(
        self, mcast_ip: MulticastAddress, source_ips: Iterable[MulticastAddress] | None = None
    ) -> None:
        """Start receiving another group (source-specific if ``source_ips``) on every interface.

        A receive already waiting in another thread receives the new group too. All or nothing; on
        the default interface set, an interface that vanished meanwhile is dropped, not an error.

        Raises:
            MulticastExpertError: the socket is closed, the group is already joined or invalid,
                or the join failed.
        """
        self._need_open("join_group()")
        family = self.addr_family
        group, sources = normalize_mcast_ip(mcast_ip, family), parse_sources(source_ips, family)
        self._change("join_group()", self._members.join, group, sources)

    def leave_group(self, mcast_ip: MulticastAddress) -> None:
        """Stop receiving a group on every interface (also for a receive already waiting).

        Raises:
            MulticastExpertError: the socket is closed, or the group is not joined by it.
        """
        self._need_open("leave_group()")
        self._change("leave_group()", self._members.leave, normalize_mcast_ip(mcast_ip, self.addr_family))

    def block_source(self, mcast_ip: MulticastAddress, source_ip: MulticastAddress) -> None:
        """Stop receiving one sender on an any-source group (all interfaces; all or nothing).

        Raises:
            MulticastExpertError: closed, group not joined or source-specific, source already
                blocked, or the OS refused (then nothing was blocked anywhere).
        """
        self._need_open("block_source()")
        _platform.OPS.require(Concern.BLOCK_SOURCE, self.addr_family)
        family = self.addr_family
        group, source = normalize_mcast_ip(mcast_ip, family), normalize_source_ip(source_ip, family)
        self._change("block_source()", self._members.block, group, source)

    def unblock_source(self, mcast_ip: MulticastAddress, source_ip: MulticastAddress) -> None:
        """Undo block_source() (all or nothing).

        Raises:
            MulticastExpertError: closed, group not joined, or the source is not blocked.
        """
        self._need_open("unblock_source()")
        family = self.addr_family
        group, source = normalize_mcast_ip(mcast_ip, family), normalize_source_ip(source_ip, family)
        self._change("unblock_source()", self._members.unblock, group, source)

    # ---- following interfaces ----------------------------------------------------------------
    def refresh_interfaces(self) -> None:
        """Rescan the machine's interfaces now and apply the result.

        On the default interface set, every group is joined on interfaces that appeared (or gained
        an address of the family) and left on interfaces that are gone. Named interfaces stay the
        same ones, found by name; one that is gone stays named, to be joined when it is back.
        Either way, an interface whose memberships the OS lost is joined again.

        Raises:
            MulticastExpertError: the socket is closed.
            MulticastOSError: a named interface is gone (ENODEV; the rest applied), or a join failed.
        """
        self._need_open("refresh_interfaces()")
        self._change("refresh_interfaces()", self._members.refresh)

    def _change(self, what: str, change: Callable[..., None], *args: Any) -> None:
        """A membership transaction; closed meanwhile (close() or an unfinished open()): raises."""
        try:
            change(*args)
        except EngineClosedError:
            raise _closed(what) from None

    # ---- receiving --------------------------------------------------------------------------
    def recvfrom(self, bufsize: int = 4096, flags: int = 0) -> tuple[bytes, IPv4Or6Address] | None:
        """Receive one datagram: ``(payload, sender address)``, or None on timeout.

        IPv4 addresses are ``(ip, port)``, IPv6 ``(ip, port, flowinfo, scope_id)``. ``flags`` are
        recvfrom(2)'s; with ``socket.MSG_PEEK`` the datagram stays queued and the next receive
        returns it again.

        Raises:
            MulticastExpertError: the socket is closed (also when closed by another thread while
                this call waits).
            ValueError, TypeError: a bufsize outside 1..2**31-1.
        """
        if flags.__class__ is not int or flags:
            return self._recvfrom(bufsize, flags, self._timeout)
        # (the body of _recvfrom for flags 0, inline: one call less on the hot path)
        if bufsize.__class__ is not int or not 0 < bufsize < _MAX_BUF:
            check_bufsize(bufsize)
        readers = self._plain_readers.get(bufsize)
        if readers is None:
            readers = self._remember((0, bufsize, 0), _rx_read.datagram_readers(bufsize, 0))
        try:
            return self._engine.receive(readers[0], self._timeout, False, readers[1])
        except EngineClosedError:
            raise _closed("recvfrom()") from None

    def _recvfrom(
        self, bufsize: int, flags: int, timeout: float | None
    ) -> tuple[bytes, IPv4Or6Address] | None:
        if bufsize.__class__ is not int or not 0 < bufsize < _MAX_BUF:
            check_bufsize(bufsize)
        if flags.__class__ is not int:
            flags = check_flags(flags)
        readers = self._readers.get((0, bufsize, flags))
        if readers is None:
            readers = self._remember((0, bufsize, flags), _rx_read.datagram_readers(bufsize, flags))
        try:
            return self._engine.receive(readers[0], timeout, bool(flags & _MSG_PEEK), readers[1])
        except EngineClosedError:
            raise _closed("recvfrom()") from None

    def _remember(self, key: tuple[int, int, int], readers: _rx_read.Readers[Any]) -> _rx_read.Readers[Any]:
        if len(self._readers) >= 16:  # (a program cycling through buffer sizes: stay bounded)
            self._readers.clear()
            self._plain_readers.clear()
        self._readers[key] = readers
        if key[0] == 0 and key[2] == 0:  # recvfrom without flags: also by bufsize alone
            self._plain_readers[key[1]] = readers
        return readers

    def recv(self, bufsize: int = 4096, flags: int = 0) -> bytes | None:
        """Receive one datagram's payload, or None on timeout (see :meth:`recvfrom`)."""
        got = self._recvfrom(bufsize, flags, self._timeout)
        return None if got is None else got[0]

    def recv_packet(self, bufsize: int = 65535) -> McastPacket | None:
        """Receive one datagram with its group and arrival interface, or None on timeout.

        Raises:
            MulticastExpertError: the socket is closed.
            ValueError, TypeError: a bufsize outside 1..2**31-1.
        """
        # (while open the hot methods serve the common calls: this one is for the rest)
        return self._recv_packet(bufsize, self._timeout)

    def _recv_packet(self, bufsize: int, timeout: float | None) -> McastPacket | None:
        if bufsize.__class__ is not int or not 0 < bufsize < _MAX_BUF:
            check_bufsize(bufsize)
        readers = self._readers.get((1, bufsize, 0))
        if readers is None:
            readers = self._remember(
                (1, bufsize, 0), _rx_read.packet_readers(bufsize, self.addr_family, self._meta)
            )
        try:
            return self._engine.receive(readers[0], timeout, False, readers[1])
        except EngineClosedError:
            raise _closed("recv_packet()") from None

    def recv_batch(self, max_packets: int = 64, bufsize: int = 65535) -> list[McastPacket]:
        """Receive up to ``max_packets`` datagrams at once.

        Waits by the timeout rules for the first datagram, then returns every datagram already
        queued, up to ``max_packets``, without waiting more; an empty list on timeout. Fair across
        groups: the ready sockets share ``max_packets`` equally, and the remainder goes to a
        different group each call. Each group's datagrams come in arrival order. On Linux one
        ``recvmmsg`` system call reads many datagrams of a socket, into per-thread buffers of at
        most 4 MiB whatever ``max_packets`` is.

        Raises:
            MulticastExpertError: the socket is closed.
            ValueError, TypeError: ``max_packets`` outside 1..1024 or ``bufsize`` outside 1..2**31-1.
        """
        return self._recv_batch(max_packets, bufsize, self._timeout)

    def _recv_batch(self, max_packets: int, bufsize: int, timeout: float | None) -> list[McastPacket]:
        if type(max_packets) is not int or not 0 < max_packets <= 1024:
            check_int_range(max_packets, "max_packets", 1, 1024)
        if type(bufsize) is not int or not 0 < bufsize < _MAX_BUF:
            check_bufsize(bufsize)
        readers = self._readers.get((2, bufsize, 0))
        if readers is None:  # (kept with the other readers; a batch has three functions)
            made: Any = _rx_read.batch_readers(bufsize, self.addr_family, self._meta)
            readers = self._remember((2, bufsize, 0), made)
        read_many, read_share, poll_share = cast("_rx_read.BatchReaders", readers)
        try:
            return self._engine.receive_batch(read_many, max_packets, timeout, read_share, poll_share)
        except EngineClosedError:
            raise _closed("recv_batch()") from None

    # ---- descriptors and options ---------------------------------------------------------------
    def filenos(self) -> list[int]:
        """File descriptors of every OS socket (for select()); empty when closed."""
        return [u.fd for u in self._members.all_units()]

    def fileno(self) -> int:
        """One descriptor that is readable whenever any group has data; -1 if closed.

        On Linux and macOS it is the poller's (epoll / kqueue), usable with select() and event loops
        even when the socket spans thousands of groups. Windows has no such descriptor: there it is
        the OS socket's when the socket has exactly one, else -1; use :meth:`filenos` there.
        """
        return self._engine.fileno()

    def settimeout(self, timeout: float | None) -> None:
        """None blocks, 0 never waits, a positive number waits that many seconds."""
        self.timeout = timeout

    def setsockopt(self, level: int, opt: int, value: int | bytes) -> None:
        """Set a socket option on every underlying OS socket.

        Raises:
            SocketClosedError: the socket is closed.
        """
        self._need_open("setsockopt()")
        apply_sockopt(self.sockets, level, opt, value)


_MSG_PEEK = int(socket.MSG_PEEK)
#: The class's receive methods as defined (a patch of the class leaves these as they are).
_RX_METHODS = {"recvfrom": McastRxSocket.recvfrom, "recv_packet": McastRxSocket.recv_packet}


def _closed(what: str) -> SocketClosedError:
    return SocketClosedError(f"{what} on a closed McastRxSocket; open it first")


BaseMcastRxSocket.register(McastRxSocket)

__all__ = [
    "DEFAULT_RX_BUFSIZE",
    "LOCALHOST_IPV4",
    "LOCALHOST_IPV6",
    "BaseMcastRxSocket",
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
