"""The per-OS layer's data: option tables keyed by :class:`Concern`, the policies that are not
socket options, the capability set, and the advice an OS error gets.

Layering rule: this package may import ``_errors`` and ``_validate`` only. It knows the operating
system; nothing above it does. Jobs are split three ways, each an object chosen once per OS in
``_platform/__init__``: :class:`OsOptions` (this module: numbers, tables, socket setup, error
advice), ``DatagramIO`` (``_io``: reading, batch I/O, the poller) and ``Host`` (``_host``: interface
details, routes, limits and counters for ``interfaces`` and the CLI).

Each OS's ``OPTIONS`` maps ``(Concern, family)`` to an :class:`Opt`: the ``(level, option number,
struct shape)`` triple to ``setsockopt``. The capability rule: an OS lacking a concern that a caller
asked for by name (source-specific joins, source blocking) is refused when the socket is built or
the call is made, with ``MulticastExpertError("... is not supported on <OS>")``; only the
per-datagram metadata concerns (``METADATA``) are optional, their packet fields staying None.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping
from typing import ClassVar, NamedTuple

from .._errors import MulticastExpertError, MulticastOSError
from . import _structs as st
from ._kinds import Action, Concern
from ._structs import Shape, Target

V4, V6 = int(socket.AF_INET), int(socket.AF_INET6)

#: Per-datagram metadata: (TTL or hop limit, TOS or traffic class, receive time in epoch seconds).
Meta = tuple[int | None, int | None, float | None]
#: A socket address as the socket module gives it.
Address = tuple[str, int] | tuple[str, int, int, int]
#: One OS table: ``(concern, family) -> option``.
Table = dict[tuple[Concern, int], "Opt"]
#: The arguments of one ``setsockopt`` call: ``(level, option name, value)``.
SetOpt = tuple[int, int, int | bytes]


class Opt(NamedTuple):
    """One socket option: ``setsockopt(level, name, shape(target))``."""

    level: int
    name: int
    shape: Shape


def both(concern: Concern, opt: Opt) -> Table:
    """A table entry that is the same for IPv4 and IPv6 sockets (SOL_SOCKET options)."""
    return {(concern, V4): opt, (concern, V6): opt}


def multicast_basics(
    ip: tuple[int, int, int, int, int],
    ipv6: tuple[int, int, int, int, int],
    *,
    if4: Shape,
    join4: Shape,
) -> Table:
    """The standard options of both families from their numbers, each given as
    ``(level, MULTICAST_IF, MULTICAST_TTL or _HOPS, MULTICAST_LOOP, ADD_MEMBERSHIP or JOIN_GROUP)``.
    IPv4 takes the interface and join structs the OS wants; IPv6 always takes an index and ipv6_mreq."""
    table: Table = {}
    for family, (level, mif, ttl, loop, join), if_shape, join_shape in (
        (V4, ip, if4, join4),
        (V6, ipv6, st.IFINDEX, st.IPV6_MREQ),
    ):
        table[(Concern.MULTICAST_IF, family)] = Opt(level, mif, if_shape)
        table[(Concern.MULTICAST_TTL, family)] = Opt(level, ttl, st.INT)
        table[(Concern.MULTICAST_LOOP, family)] = Opt(level, loop, st.INT)
        table[(Concern.JOIN, family)] = Opt(level, join, join_shape)
    return table


def source_options(
    ip: tuple[int, int, int, int], ipv6: tuple[int, int, int, int], *, shape4: Shape, shape6: Shape
) -> Table:
    """The per-source options of both families from their numbers, each given as
    ``(level, join-source, block-source, unblock-source)``, with each family's struct shape."""
    table: Table = {}
    for family, (level, join, block, unblock), shape in ((V4, ip, shape4), (V6, ipv6, shape6)):
        table[(Concern.JOIN_SOURCE, family)] = Opt(level, join, shape)
        table[(Concern.BLOCK_SOURCE, family)] = Opt(level, block, shape)
        table[(Concern.UNBLOCK_SOURCE, family)] = Opt(level, unblock, shape)
    return table


def family_label(family: int) -> str:
    """``'IPv4'`` or ``'IPv6'``."""
    return "IPv4" if family == V4 else "IPv6"


class RxPlan(NamedTuple):
    """How one receive socket for one group on one interface is set up, as ready ``setsockopt``
    arguments (see :meth:`OsOptions.rx_plan`), in the order they are applied."""

    #: SO_REUSEADDR (and SO_REUSEPORT where the OS wants it).
    before: tuple[SetOpt, ...]
    #: The device binding (SO_BINDTODEVICE), where the OS has one.
    device: SetOpt | None
    #: Applied when there is no device binding or it is refused: IP(V6)_MULTICAST_ALL off.
    undevice: SetOpt | None
    #: Receiver-side loop and destination information, where the OS wants them.
    after: tuple[SetOpt, ...]
    #: The address to bind().
    address: Address
    #: The any-source join; None where the OS has no such option (joining then raises).
    join: SetOpt | None
    #: What the options were built from (kept by the socket for its later per-source options).
    target: Target


class TxPlan(NamedTuple):
    """How one sending socket is set up, as ready ``setsockopt`` arguments around its bind()."""

    #: SO_REUSEADDR, when a source port is given.
    before: tuple[SetOpt, ...]
    #: The interface address (and source port) to bind().
    address: Address
    #: Multicast interface, TTL or hop limit, loop.
    after: tuple[SetOpt, ...]


#: Plans already built: (OS options, family, group, port, ifindex, ifname, interface IP, loop) -> plan.
_rx_plans: dict[tuple[object, ...], RxPlan] = {}
#: (OS options, family, interface IP, ifindex, ifname, ttl, loop, source port) -> plan.
_tx_plans: dict[tuple[object, ...], TxPlan] = {}


#: Errors that mean "this interface can't join now" (gone, no address, refused, out of buffers).
#: On the default interface set such an interface is skipped; a named one fails the call.
_SKIPPABLE = frozenset({errno.ENODEV, errno.ENXIO, errno.EADDRNOTAVAIL, errno.EINVAL, errno.ENOBUFS})


class OsOptions:
    """One operating system's multicast options and policies (see the module docstring)."""

    #: How errors name this OS.
    name: str = "unknown OS"
    #: (concern, family) -> option.
    OPTIONS: ClassVar[Mapping[tuple[Concern, int], Opt]] = {}
    #: Bind receive sockets to the group address (True) or to the interface address (False).
    RX_BIND_GROUP: ClassVar[bool] = True
    #: IP_MULTICAST_LOOP is honoured by the receiving socket (Windows) rather than the sender.
    LOOP_ON_RECEIVER: ClassVar[bool] = False
    #: Receive sockets read each datagram's destination and drop what was not sent to their group
    #: (Windows, where a socket bound to the interface address also gets unicast to its port).
    FILTER_BY_DESTINATION: ClassVar[bool] = False
    #: Sources per group one OS socket may hold, by family; missing: no known limit.
    SOURCES_PER_SOCKET: ClassVar[Mapping[int, int]] = {}
    #: Sysctl (or setting) to name when a per-socket limit is hit, by (action, family).
    LIMIT_HINTS: ClassVar[Mapping[tuple[Action, int] | tuple[Action, int, int], str]] = {}
    #: OS error numbers (beyond the POSIX ones) meaning an interface can't join now.
    SKIPPABLE_EXTRA: ClassVar[frozenset[int]] = frozenset()

    # ---- capabilities and the generic setter ----------------------------------------------------
    def supports(self, concern: Concern, family: int) -> bool:
        """Whether this OS has the option for ``concern``."""
        return (concern, family) in self.OPTIONS

    def capabilities(self, family: int) -> frozenset[Concern]:
        """Every concern this OS offers for ``family``."""
        return frozenset(c for c, f in self.OPTIONS if f == family)

    def unsupported(self, concern: Concern, family: int) -> MulticastExpertError:
        """The error for a concern this OS does not offer."""
        return MulticastExpertError(f"{family_label(family)} {concern.value} is not supported on {self.name}")

    def require(self, concern: Concern, family: int) -> None:
        """Raise :meth:`unsupported` unless this OS offers ``concern`` (the constructors' check)."""
        if (concern, family) not in self.OPTIONS:
            raise self.unsupported(concern, family)

    def set(self, sock: socket.socket, concern: Concern, family: int, target: Target) -> None:
        """Apply one concern's option to ``sock``; raises if this OS has no such option."""
        opt = self.OPTIONS.get((concern, family))
        if opt is None:
            raise self.unsupported(concern, family)
        sock.setsockopt(opt.level, opt.name, opt.shape(target))

    def sources_per_socket(self, family: int) -> int | None:
        """How many sources of one group a single OS socket may hold, if limited."""
        return self.SOURCES_PER_SOCKET.get(family)

    def sockaddr(self, family: int, ip: str, port: int, ifindex: int) -> Address:
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

    def tx_plan(self, family: int, t: Target, ttl: int, loop: bool, source_port: int) -> TxPlan:
        """Every option of a sending socket on ``t``'s interface: SO_REUSEADDR (with a source port),
        bind() to the interface address, multicast interface, TTL or hop limit, loop (see
        :meth:`prepare_tx`)."""
        opt = self._opt
        before = (opt(Concern.REUSEADDR, family, t._replace(value=1)),) if source_port else ()
        address = self.sockaddr(family, t.iface_ip, source_port, t.ifindex)
        after = (
            opt(Concern.MULTICAST_IF, family, t),
            opt(Concern.MULTICAST_TTL, family, t._replace(value=ttl)),
            opt(Concern.MULTICAST_LOOP, family, t._replace(value=int(loop))),
        )
        return TxPlan(before, address, after)

    def cached_tx_plan(
        self, family: int, ip: str, ifindex: int, ifname: str, ttl: int, loop: bool, source_port: int
    ) -> TxPlan:
        """:meth:`tx_plan`, built once per distinct set of arguments (as :meth:`cached_rx_plan`)."""
        key = (self, family, ip, ifindex, ifname, ttl, loop, source_port)
        plan = _tx_plans.get(key)
        if plan is None:
            t = Target(iface_ip=ip, ifindex=ifindex, ifname=ifname)
            plan = self.tx_plan(family, t, ttl, loop, source_port)
            if len(_tx_plans) >= 1024:
                _tx_plans.clear()
            _tx_plans[key] = plan
        return plan

    @staticmethod
    def prepare_tx(sock: socket.socket, plan: TxPlan) -> None:
        """Apply a plan to a new sending socket: reuse, bind, multicast interface, TTL, loop."""
        for level, name, value in plan.before:
            sock.setsockopt(level, name, value)
        sock.bind(plan.address)
        for level, name, value in plan.after:
            sock.setsockopt(level, name, value)

    # ---- receive ------------------------------------------------------------------------------
    def _opt(self, concern: Concern, family: int, t: Target) -> SetOpt:
        opt = self.OPTIONS.get((concern, family))
        if opt is None:
            raise self.unsupported(concern, family)
        return (opt.level, opt.name, opt.shape(t))

    def rx_plan(self, family: int, t: Target, port: int, loop: bool, *, join: bool = True) -> RxPlan:
        """Every option of a receive socket for ``t.group`` on ``t``'s interface, up to and
        including bind(), and (``join``) its any-source join (see :meth:`configure_rx`)."""
        supports, opt = self.supports, self._opt
        on = t._replace(value=1)
        before = [opt(Concern.REUSEADDR, family, on)]
        if supports(Concern.REUSEPORT, family):
            before.append(opt(Concern.REUSEPORT, family, on))
        device = opt(Concern.BIND_DEVICE, family, t) if supports(Concern.BIND_DEVICE, family) else None
        # Without a device binding, at least stop receiving groups joined by other sockets
        # (a socket bound to its group and tied to its interface needs no more).
        undevice = (
            opt(Concern.MULTICAST_ALL, family, t._replace(value=0))
            if supports(Concern.MULTICAST_ALL, family)
            else None
        )
        after = []
        if self.LOOP_ON_RECEIVER:
            after.append(opt(Concern.MULTICAST_LOOP, family, t._replace(value=int(loop))))
        if self.FILTER_BY_DESTINATION:
            after.append(opt(Concern.PKTINFO, family, on))
        address = self.sockaddr(family, t.group if self.RX_BIND_GROUP else t.iface_ip, port, t.ifindex)
        joins = opt(Concern.JOIN, family, t) if join and supports(Concern.JOIN, family) else None
        return RxPlan(tuple(before), device, undevice, tuple(after), address, joins, t)

    def cached_rx_plan(
        self, family: int, group: str, port: int, ifindex: int, ifname: str, ip: str, loop: bool
    ) -> RxPlan:
        """:meth:`rx_plan`, built once per distinct set of arguments (a plan is a pure function
        of them and of this OS's tables)."""
        key = (self, family, group, port, ifindex, ifname, ip, loop)
        plan = _rx_plans.get(key)
        if plan is None:
            t = Target(group=group, iface_ip=ip, ifindex=ifindex, ifname=ifname)
            plan = self.rx_plan(family, t, port, loop)
            if len(_rx_plans) >= 4096:  # (a program cycling through many groups: stay bounded)
                _rx_plans.clear()
            _rx_plans[key] = plan
        return plan

    def prepare_rx(self, sock: socket.socket, plan: RxPlan) -> None:
        """Apply a plan's options to a new receive socket, up to and including bind()."""
        for level, name, value in plan.before:
            sock.setsockopt(level, name, value)
        device, undevice = plan.device, plan.undevice
        if device is not None:
            try:
                sock.setsockopt(*device)
                undevice = None  # (tied to the device: nothing more needed)
            except PermissionError:  # Linux before 5.7 without CAP_NET_RAW
                pass
        if undevice is not None:
            sock.setsockopt(*undevice)
        for level, name, value in plan.after:
            sock.setsockopt(level, name, value)
        sock.bind(plan.address)

    def configure_rx(self, sock: socket.socket, family: int, t: Target, port: int, loop: bool) -> None:
        """Set up a receive socket for one group on one interface, up to and including bind()."""
        self.prepare_rx(sock, self.rx_plan(family, t, port, loop, join=False))

    # ---- errors -------------------------------------------------------------------------------
    def interface_cannot_join(self, exc: OSError) -> bool:
        """Whether ``exc`` means "this interface can't join now" (skipped on the default set)."""
        return exc.errno in _SKIPPABLE or getattr(exc, "winerror", None) in self.SKIPPABLE_EXTRA

    def fd_limits(self) -> tuple[int, int] | None:
        """``(soft, hard)`` descriptor limits for the EMFILE advice, or None where the OS has none."""
        return None

    def explain_oserror(
        self, exc: OSError, action: Action, family: int, where: str
    ) -> MulticastOSError | None:
        """A known OSError as an error that says what to do (keeping errno); None if not understood.

        ``action`` picks the advice; ``where`` starts the message ("Joining 239.1.2.3 on eth0").
        """
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
        elif code in (errno.ENOBUFS, errno.ENOMEM) and (
            hint := self.LIMIT_HINTS.get((action, family, code)) or self.LIMIT_HINTS.get((action, family))
        ):
            why = (
                f"a {self.name} per-socket multicast limit was reached ({exc.strerror}); "
                f"raise the sysctl {hint} (sysctl -w {hint}=N)"
            )
        elif code == errno.ENETUNREACH and action is Action.SEND:
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
        return MulticastOSError(code, f"{where} failed: {why}")
