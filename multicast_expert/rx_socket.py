"""McastRxSocket: receives multicast groups on chosen interfaces.

Design: one OS socket per (group, interface) (more when a group has more sources than the OS lets
one socket hold). Each is bound to its group's address and tied to its interface, so the kernel
itself keeps out unicast, other groups and other interfaces, and the group and arrival interface
of every datagram are known from the socket it came in on. An epoll (or selectors) poller watches
them all; ready sockets are served round-robin so no group starves. With a single OS socket,
receives go straight to it.
"""

from __future__ import annotations

import collections
import ipaddress
import socket
import time
import warnings
from collections.abc import Callable, Iterable
from typing import NamedTuple, TypeVar

from ._common import OpenCloseContext, apply_sockopt, dedupe, explained, resolve_iface
from ._common import iface_ip as bind_ip
from ._platform import OPS, Poller, make_poller
from .interfaces import IfaceInfo, IfaceSpecifier, listenable_interfaces
from .utils import (
    IPv4Or6Address,
    MulticastAddress,
    MulticastExpertError,
    MulticastValueError,
    check_family,
    check_int_range,
    check_port,
    check_timeout,
    family_name,
    normalize_ip_list,
    normalize_mcast_ip,
    normalize_source_ip,
)

_UNSET: float = -1.0


_T = TypeVar("_T")

#: Longest single sleep of a blocking multi-socket receive (see McastRxSocket._wait_unit).
_WAKE_INTERVAL = 0.25


class McastPacket(NamedTuple):
    """One received datagram with where it came from and how it arrived."""

    payload: bytes
    #: The sender's address, as recvfrom() returns it.
    src: IPv4Or6Address
    #: The multicast group the datagram was sent to.
    group: str
    #: Index of the interface it arrived on.
    iface_index: int
    #: True if the datagram was longer than the buffer and was cut short.
    truncated: bool


def _with_payload(got: tuple[bytes, IPv4Or6Address]) -> tuple[bytes, tuple[bytes, IPv4Or6Address]]:
    return got[0], got


def _parse_sources(source_ips: Iterable[MulticastAddress] | None, family: int) -> tuple[str, ...]:
    """Validated, de-duplicated sources; empty for any-source. Checks the OS can do SSM."""
    if source_ips is None:
        return ()
    OPS.check_ssm(family)
    return tuple(
        dedupe([normalize_source_ip(s, family) for s in normalize_ip_list(source_ips, "source_ips")])
    )


class _Unit(NamedTuple):
    """One OS socket: a group (with some of its sources) on one interface."""

    sock: socket.socket
    group: str
    iface: IfaceInfo
    sources: tuple[str, ...]


class McastRxSocket(OpenCloseContext):
    """A socket that receives UDP multicast from a set of groups on a set of interfaces.

    Use it as a context manager (``with McastRxSocket(...) as rx:``) or call open() and close().

    Args:
        addr_family: ``socket.AF_INET`` or ``socket.AF_INET6``.
        mcast_ips: groups to receive (strings or ipaddress objects).
        port: UDP port, 0..65535.
        iface_ip: one interface to listen on (IP, name or IfaceInfo).
        iface_ips: several interfaces. With neither, every non-loopback interface with an address
            of ``addr_family``.
        source_ips: if given, receive only from these senders (source-specific multicast).
        blocking: legacy form of ``timeout``: False means ``timeout=0``.
        iface, ifaces: newer spellings of ``iface_ip`` / ``iface_ips``.
        timeout: None blocks, 0 never waits, a number of seconds waits that long.
        rcvbuf: SO_RCVBUF for every OS socket, in bytes; see :attr:`granted_rcvbuf`.
        enable_external_loopback: receive this host's own multicasts on non-loopback interfaces
            (matters on Windows; on Linux and macOS the sender decides).

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
        blocking: bool = True,
        *,
        iface: IfaceSpecifier | None = None,
        ifaces: Iterable[IfaceSpecifier] | None = None,
        timeout: float | None = _UNSET,
        rcvbuf: int | None = None,
        enable_external_loopback: bool = False,
    ) -> None:
        family = self.addr_family = check_family(addr_family)
        self.port = check_port(port)
        groups = dedupe([normalize_mcast_ip(ip, family) for ip in normalize_ip_list(mcast_ips, "mcast_ips")])
        sources = _parse_sources(source_ips, family)
        self._groups: dict[str, tuple[str, ...]] = {g: sources for g in groups}
        self._source_ips = sources if source_ips is not None else None
        self._blocked: dict[str, set[str]] = {}
        self.rcvbuf = None if rcvbuf is None else check_int_range(rcvbuf, "rcvbuf", 1, 2**31 - 1)
        self.granted_rcvbuf: int | None = None
        self.enable_external_loopback = bool(enable_external_loopback)
        self._ifaces = self._pick_interfaces(family, iface_ip, iface_ips, iface, ifaces)
        if timeout is _UNSET:
            timeout = None if blocking else 0.0
        self._timeout = check_timeout(timeout)
        self._units: dict[str, list[_Unit]] = {}
        self._by_fd: dict[int, _Unit] = {}
        self._ready: collections.deque[_Unit] = collections.deque()
        self._poller: Poller | None = None
        self._poll: Callable[[float | None], list[tuple[int, int]]] | None = None
        self._single: socket.socket | None = None
        self._open = False
        self._iface_ips = [(i, bind_ip(i, family)) for i in self._ifaces]

    @staticmethod
    def _pick_interfaces(
        family: int,
        iface_ip: IfaceSpecifier | None,
        iface_ips: Iterable[IfaceSpecifier] | None,
        iface: IfaceSpecifier | None,
        ifaces: Iterable[IfaceSpecifier] | None,
    ) -> list[IfaceInfo]:
        given = [x for x in (iface_ip, iface_ips, iface, ifaces) if x is not None]
        if len(given) > 1:
            raise MulticastValueError(
                "Both iface_ips and iface_ip may not be specified at the same time! "
                "Give only one of iface_ip, iface_ips, iface, ifaces"
            )
        if iface_ip is not None or iface is not None:
            specs: list[IfaceSpecifier] = [iface_ip if iface_ip is not None else iface]  # type: ignore[list-item]
        elif given:
            one = isinstance(given[0], (str, IfaceInfo, ipaddress.IPv4Address, ipaddress.IPv6Address))
            specs = [given[0]] if one else list(given[0])  # type: ignore[list-item,arg-type]
            if not specs:
                raise MulticastValueError("iface_ips is empty; give at least one interface, or None for all")
        else:
            found = listenable_interfaces(family)
            if not found:
                raise MulticastExpertError(
                    f"Unable to discover any listenable interfaces: no non-loopback interface has an "
                    f"{family_name(family)} address. Pass iface_ip (e.g. the loopback address) to choose one"
                )
            return found
        chosen: dict[int, IfaceInfo] = {}
        for spec in specs:
            info = resolve_iface(spec, family)
            chosen.setdefault(info.index, info)
        return list(chosen.values())

    # ---- properties ----------------------------------------------------------------------------
    @property
    def network_interfaces(self) -> list[IfaceInfo]:
        """The interfaces this socket listens on."""
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
    def sources_by_group(self) -> dict[str, list[str]]:
        """Sources of each source-specific group now joined (live joins included)."""
        return {g: list(s) for g, s in self._groups.items() if s}

    @property
    def iface_ips(self) -> list[str]:
        """Address of each interface listened on."""
        return [bind_ip(i, self.addr_family) for i in self._ifaces]

    @property
    def is_opened(self) -> bool:
        """Whether the socket is open."""
        return self._open

    @property
    def sockets(self) -> list[socket.socket]:
        """The underlying OS sockets."""
        return [u.sock for u in self._by_fd.values()]

    @property
    def timeout(self) -> float | None:
        """The current timeout (None: blocking; 0: non-blocking)."""
        return self._timeout

    @property
    def blocking(self) -> bool:
        """False when the timeout is 0."""
        return self._timeout != 0

    # ---- open / close ------------------------------------------------------------------------
    def _open_units(self, group: str, sources: tuple[str, ...]) -> list[_Unit]:
        """Open the OS sockets for one group on every interface; all or nothing."""
        family = self.addr_family
        per = OPS.sources_per_socket(family) if sources else None
        chunks = [sources[i : i + per] for i in range(0, len(sources), per)] if per else [sources]
        blocked = self._blocked.get(group, ())
        units: list[_Unit] = []
        iface: IfaceInfo | None = None
        chunk: tuple[str, ...] = ()
        try:
            for iface, ip in self._iface_ips:
                loop = self.enable_external_loopback or iface.is_localhost()
                for chunk in chunks:
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                    units.append(_Unit(sock, group, iface, chunk))
                    OPS.configure_rx(
                        sock, family, group, iface.machine_name, ip, iface.index, self.port, loop
                    )
                    if chunk:
                        for src in chunk:
                            OPS.source_op("join", sock, family, group, src, ip, iface.index)
                    else:
                        OPS.join(sock, family, group, ip, iface.index)
                    for src in blocked:
                        OPS.source_op("block", sock, family, group, src, ip, iface.index)
                    if self.rcvbuf is not None:
                        self._set_rcvbuf(sock, self.rcvbuf)
        except BaseException as exc:
            for u in units:
                u.sock.close()
            if not isinstance(exc, OSError):
                raise
            name = iface.machine_name if iface is not None else "?"
            where = f"Joining {group} on {name}" + (" with sources" if chunk else "")
            better = OPS.explain_oserror(exc, where, family)
            if better is not None:
                raise better from exc
            raise
        return units

    def _set_rcvbuf(self, sock: socket.socket, size: int) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if self.granted_rcvbuf is None and granted < size:
            warnings.warn(
                f"rcvbuf: asked for {size} bytes, the OS granted {granted} (raise the sysctl "
                "net.core.rmem_max to allow more)",
                RuntimeWarning,
                stacklevel=5,
            )
        self.granted_rcvbuf = granted

    def _add_units(self, group: str, units: list[_Unit]) -> None:
        self._units[group] = units
        by_fd = self._by_fd
        for u in units:
            by_fd[u.sock.fileno()] = u
            if self._poller is not None:
                self._poller.register(u.sock.fileno())
        if len(by_fd) == 1:
            self._single = units[0].sock
            if self._timeout is not None:  # a new socket already blocks
                self._single.settimeout(self._timeout)
            return
        if self._single is not None:
            self._single.setblocking(False)
            self._single = None
        for u in units:
            u.sock.setblocking(False)

    def _drop_units(self, group: str) -> None:
        units = self._units.pop(group, [])
        if self._ready:
            dead = {id(u) for u in units}
            self._ready = collections.deque(u for u in self._ready if id(u) not in dead)
        for u in units:
            if u.sock is self._single:
                self._single = None
            fd = u.sock.fileno()
            del self._by_fd[fd]
            if self._poller is not None:
                self._poller.unregister(fd)
            u.sock.close()
        if len(self._by_fd) == 1 and self._single is None:
            (last,) = self._by_fd.values()
            self._single = last.sock
            self._single.settimeout(self._timeout)

    def _get_poller(self) -> Poller:
        """The poller over every OS socket, made on first need."""
        if self._poller is None:
            poller = make_poller()
            for fd in self._by_fd:
                poller.register(fd)
            self._poller = poller
            self._poll = poller.poll
        return self._poller

    def open(self) -> None:
        """Create the OS sockets and join every group on every interface.

        Raises:
            MulticastExpertError: already open, or a join failed (the message names the limit or
                setting at fault). Nothing stays open after a failure.
        """
        if self._open:
            raise MulticastExpertError("Attempt to open an McastRxSocket that is already open!")
        self._open = True
        try:
            for group, sources in self._groups.items():
                self._add_units(group, self._open_units(group, sources))
        except BaseException:
            self._close_all()
            raise

    def _close_all(self) -> None:
        self._open = False
        self._ready.clear()
        single = self._single
        if single is not None and self._timeout != 0:
            # Wake a thread blocked in recvfrom() on the one socket; it then reports the close.
            # (Waits over several sockets notice within _WAKE_INTERVAL.)
            try:  # noqa: SIM105 (cheaper than contextlib.suppress on every close)
                single.shutdown(socket.SHUT_RDWR)  # UDP says ENOTCONN but still wakes the reader
            except OSError:
                pass
        for group in list(self._units):
            self._drop_units(group)
        if self._poller is not None:
            self._poller.close()
        self._poller = None
        self._poll = None

    def close(self) -> None:
        """Close every OS socket (leaving every group). Raises if already closed."""
        if not self._open:
            raise MulticastExpertError("Attempt to close an McastRxSocket that is already closed!")
        self._close_all()

    # ---- receiving --------------------------------------------------------------------------
    def _closed(self, what: str) -> MulticastExpertError:
        return MulticastExpertError(f"{what} on a closed McastRxSocket; open it first")

    def _wait_unit(self, what: str) -> _Unit | None:
        """Wait for readiness; queue every ready socket once (round-robin); return the first.

        None on timeout. Each poll round serves each ready socket one datagram, so no group
        starves another. A blocking wait polls in slices of ``_WAKE_INTERVAL`` so that a close()
        from another thread is noticed even though closing an epoll set wakes nobody.
        """
        poll = self._get_poller().poll if self._open else None
        by_fd = self._by_fd
        timeout = self._timeout
        deadline = None if not timeout else time.monotonic() + timeout
        while True:
            if poll is None or not self._open:
                raise self._closed(what)
            try:
                events = poll(_WAKE_INTERVAL if timeout is None else timeout)
            except (ValueError, OSError):
                if not self._open:
                    raise self._closed(what) from None
                raise
            if len(events) == 1:
                unit = by_fd.get(events[0][0])
                if unit is not None:
                    return unit
            elif events:
                ready = self._ready
                ready.extend(by_fd[fd] for fd, _ in events if fd in by_fd)
                if ready:
                    return ready.popleft()
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    return None
            elif timeout == 0:
                return None

    def recvfrom(self, bufsize: int = 4096, flags: int = 0) -> tuple[bytes, IPv4Or6Address] | None:
        """Receive one datagram: ``(payload, sender address)``, or None on timeout.

        IPv4 addresses are ``(ip, port)``, IPv6 ``(ip, port, flowinfo, scope_id)``.

        Raises:
            MulticastExpertError: the socket is closed.
        """
        single = self._single
        if single is not None:
            try:
                data: tuple[bytes, IPv4Or6Address] = single.recvfrom(bufsize, flags)
            except (TimeoutError, BlockingIOError, InterruptedError):
                return None
            except OSError:
                if not self._open:
                    raise self._closed("recvfrom()") from None
                raise
            if not data[0] and not self._open:
                raise self._closed("recvfrom()")  # woken by close() in another thread
            return data
        # Fast path: blocking, nothing queued, exactly one socket ready.
        poll = self._poll
        if poll is not None and not self._ready and self._timeout is None:
            events = poll(_WAKE_INTERVAL)
            if len(events) == 1:
                unit = self._by_fd.get(events[0][0])
                if unit is not None:
                    try:
                        data = unit.sock.recvfrom(bufsize, flags)
                    except (BlockingIOError, InterruptedError):
                        pass  # another thread took it first
                    except OSError:
                        if not self._open:
                            raise self._closed("recvfrom()") from None
                        raise
                    else:
                        if data[0] or self._open:
                            return data
                        raise self._closed("recvfrom()")
            elif events:
                by_fd = self._by_fd
                self._ready.extend(by_fd[fd] for fd, _ in events if fd in by_fd)
        return self._receive_queued(lambda u: _with_payload(u.sock.recvfrom(bufsize, flags)), "recvfrom()")

    def _receive_queued(self, read: Callable[[_Unit], tuple[bytes, _T]], what: str) -> _T | None:
        """Receive over several sockets: queued ready sockets first, then wait (round-robin).

        ``read`` takes one datagram from a unit's socket and returns (payload, result).
        """
        ready = self._ready
        while True:
            unit = ready.popleft() if ready else self._wait_unit(what)
            if unit is None:
                return None
            try:
                payload, result = read(unit)
            except (BlockingIOError, InterruptedError):
                continue  # another thread took it first
            except OSError:
                if not self._open:
                    raise self._closed(what) from None
                raise
            if not payload and not self._open:
                raise self._closed(what)  # woken by close() in another thread
            return result

    def recv(self, bufsize: int = 4096, flags: int = 0) -> bytes | None:
        """Receive one datagram's payload, or None on timeout."""
        got = self.recvfrom(bufsize, flags)
        return None if got is None else got[0]

    def recv_packet(self, bufsize: int = 65535) -> McastPacket | None:
        """Receive one datagram with its group and arrival interface, or None on timeout.

        Raises:
            MulticastExpertError: the socket is closed.
        """
        bufsize = check_int_range(bufsize, "bufsize", 1, 2**31 - 1)
        single = self._single
        if single is not None:
            try:
                data, src, truncated = OPS.recv_packet(single, bufsize)
                unit = self._by_fd[single.fileno()]
            except (TimeoutError, BlockingIOError, InterruptedError):
                return None
            except (OSError, KeyError):
                if not self._open:
                    raise self._closed("recv_packet()") from None
                raise
            if not data and not self._open:
                raise self._closed("recv_packet()")
            return McastPacket(data, src, unit.group, unit.iface.index, truncated)

        def read(u: _Unit) -> tuple[bytes, McastPacket]:
            data, src, truncated = OPS.recv_packet(u.sock, bufsize)
            return data, McastPacket(data, src, u.group, u.iface.index, truncated)

        return self._receive_queued(read, "recv_packet()")

    def filenos(self) -> list[int]:
        """File descriptors of every OS socket (for select()); empty when closed."""
        return list(self._by_fd)

    def fileno(self) -> int:
        """One descriptor that is readable whenever any group has data (the poller's); -1 if closed.

        Usable with select() and event loops even when the socket spans thousands of groups.
        """
        return self._get_poller().fileno() if self._open else -1

    def settimeout(self, timeout: float | None) -> None:
        """None blocks, 0 never waits, a positive number waits that many seconds."""
        self._timeout = check_timeout(timeout)
        if self._single is not None:
            self._single.settimeout(self._timeout)

    def setsockopt(self, level: int, opt: int, value: int | bytes) -> None:
        """Set a socket option on every underlying OS socket."""
        apply_sockopt(self.sockets, level, opt, value)

    # ---- live membership -------------------------------------------------------------------
    def _need_open(self, what: str) -> None:
        if not self._open:
            raise self._closed(what)

    def join_group(
        self, mcast_ip: MulticastAddress, source_ips: Iterable[MulticastAddress] | None = None
    ) -> None:
        """Start receiving another group (source-specific if ``source_ips``) on every interface.

        Raises:
            MulticastExpertError: the group is already joined, is invalid, or the join failed.
        """
        self._need_open("join_group()")
        family = self.addr_family
        group = normalize_mcast_ip(mcast_ip, family)
        if group in self._groups:
            raise MulticastValueError(f"Group {group} is already joined by this socket")
        sources = _parse_sources(source_ips, family)
        units = self._open_units(group, sources)
        self._groups[group] = sources
        self._add_units(group, units)

    def leave_group(self, mcast_ip: MulticastAddress) -> None:
        """Stop receiving a group on every interface.

        Raises:
            MulticastExpertError: the group is not joined by this socket.
        """
        self._need_open("leave_group()")
        group = self._joined(mcast_ip)
        self._drop_units(group)
        del self._groups[group]
        self._blocked.pop(group, None)

    def _joined(self, mcast_ip: MulticastAddress) -> str:
        group = normalize_mcast_ip(mcast_ip, self.addr_family)
        if group not in self._groups:
            raise MulticastValueError(
                f"Group {group} is not joined by this socket; joined groups: {list(self._groups)}"
            )
        return group

    def _any_source_group(self, mcast_ip: MulticastAddress, source_ip: MulticastAddress) -> tuple[str, str]:
        group = self._joined(mcast_ip)
        if self._groups[group]:
            raise MulticastValueError(
                f"Group {group} is source-specific; blocking applies to any-source groups only"
            )
        return group, normalize_source_ip(source_ip, self.addr_family)

    def block_source(self, mcast_ip: MulticastAddress, source_ip: MulticastAddress) -> None:
        """Stop receiving one sender on an any-source group (all interfaces)."""
        self._need_open("block_source()")
        group, source = self._any_source_group(mcast_ip, source_ip)
        blocked = self._blocked.setdefault(group, set())
        if source in blocked:
            raise MulticastValueError(f"Source {source} is already blocked on {group}")
        self._each_unit(group, source, "block", "Blocking source")
        blocked.add(source)

    def unblock_source(self, mcast_ip: MulticastAddress, source_ip: MulticastAddress) -> None:
        """Undo block_source()."""
        self._need_open("unblock_source()")
        group, source = self._any_source_group(mcast_ip, source_ip)
        if source not in self._blocked.get(group, set()):
            raise MulticastValueError(f"Source {source} is not blocked on {group}")
        self._each_unit(group, source, "unblock", "Unblocking source")
        self._blocked[group].discard(source)

    def _each_unit(self, group: str, source: str, kind: str, action: str) -> None:
        family = self.addr_family
        for u in self._units[group]:
            with explained(f"{action} {source} on {group}", family):
                OPS.source_op(kind, u.sock, family, group, source, bind_ip(u.iface, family), u.iface.index)


__all__ = ["McastPacket", "McastRxSocket"]
