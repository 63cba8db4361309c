"""What McastTxSocket is given, checked and resolved: the interfaces to send on (one record each,
with the address datagrams leave from), their OS sockets opened, and the destinations and
payloads of a batch.

Layering: imports ``_errors``, ``_validate``, ``_platform`` and ``interfaces``; only
``tx_socket`` imports it.
"""

from __future__ import annotations

import contextlib
import inspect
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence

from . import _platform
from ._compat.tx import BOTH_IFACES
from ._errors import (
    MulticastExpertError,
    MulticastFamilyError,
    MulticastOSError,
    MulticastPortError,
    MulticastRangeError,
    MulticastValueError,
    SocketClosedError,
)
from ._platform import Action
from ._rx_args import normalize_iface_list
from ._validate import IPv4Or6Address, check_int_range, check_port, family_name, normalize_mcast_ip
from .interfaces import (
    IfaceInfo,
    IfaceSpecifier,
    address_of,
    check_netns,
    get_default_gateway_iface,
    iface_exists,
    rescan_interfaces,
    resolve_iface,
)
from .interfaces import iface_ip as primary_ip

MAX_PORT = 65535
_MAX_U32 = 2**32 - 1  # IPv6 flowinfo and scope id: uint32_t in sockaddr_in6 (RFC 3493)
#: The flow label is 20 bits (RFC 6437); CPython's sendto refuses a larger flowinfo (OverflowError).
_MAX_FLOWINFO = 2**20 - 1
Batch = list[tuple[bytes, IPv4Or6Address]]
#: Send side: DEBUG one line per OS socket opened (interface, source address, TTL).
_log = logging.getLogger("multicast_expert.tx")


class Out:
    """One interface a socket sends on: the interface, the address datagrams leave from, and the
    OS socket (while open)."""

    __slots__ = ("iface", "ip", "sock")

    def __init__(self, iface: IfaceInfo, ip: str) -> None:
        self.iface = iface
        self.ip = ip
        self.sock: socket.socket | None = None

    @property
    def name(self) -> str:
        """The interface's OS name."""
        return self.iface.machine_name


# ---- interfaces ---------------------------------------------------------------------------------
def interface_specs(
    family: int,
    spec: IfaceSpecifier | None,
    iface: IfaceSpecifier | None,
    ifaces: Iterable[IfaceSpecifier] | None,
) -> list[IfaceSpecifier]:
    """The interfaces a constructor call names: ``iface_ip``/``iface``, ``ifaces``, or the default."""
    if iface is not None and spec is not None:
        raise MulticastValueError(BOTH_IFACES)
    spec = iface if iface is not None else spec
    if ifaces is not None:
        if spec is not None:
            raise MulticastValueError("Give either iface/iface_ip (one interface) or ifaces (several)")
        return normalize_iface_list(ifaces)
    if spec is not None:
        return [spec]
    default = get_default_gateway_iface(family)
    if default is None:
        raise MulticastExpertError(
            "iface_ip not specified but unable to determine the default gateway on this "
            "machine; pass iface_ip (an interface IP or name)"
        )
    return [default]


def records(specs: Sequence[IfaceSpecifier], family: int) -> list[Out]:
    """One record per distinct interface, in the order given, with the address it sends from."""
    outs: list[Out] = []
    for spec in specs:
        info = resolve_iface(spec, family)
        if all(info.index != o.iface.index for o in outs):
            outs.append(Out(info, source_address(spec, info, family)))
    return outs


def looked_up_again(specs: Sequence[IfaceSpecifier], family: int, outs: list[Out]) -> list[Out] | None:
    """After an open failed: the interfaces ``specs`` name (names for those given by name, record
    or default) looked up in a fresh scan, when that finds another index or address than ``outs``
    has (the interface re-created, its address changed); else None (the error stands)."""
    try:
        rescan_interfaces()
        fresh = records(specs, family)
    except (MulticastExpertError, OSError):
        return None
    return None if [(o.iface, o.ip) for o in fresh] == [(o.iface, o.ip) for o in outs] else fresh


def before_open(
    netns: int | None, specs: Sequence[IfaceSpecifier], family: int, outs: list[Out]
) -> list[Out] | None:
    """Before an open: raises if the calling thread is in another network namespace than the
    socket's (``netns``); the interfaces looked up again (:func:`looked_up_again`) when one has
    another index under its name now (re-created: its old index may be another interface's);
    else None."""
    check_netns(netns, "open()")
    return looked_up_again(specs, family, outs) if renamed_index(outs) else None


def renamed_index(outs: list[Out]) -> bool:
    """Whether an interface of ``outs`` has another index under its name now (re-created)."""
    for o in outs:
        try:
            if _platform.HOST.iface_index(o.iface.machine_name) != o.iface.index:
                return True
        except OSError:  # (gone: the open fails and says so)
            pass
    return False


def source_address(spec: IfaceSpecifier, iface: IfaceInfo, family: int) -> str:
    """The address datagrams leave from: the one given, if an address was given (an interface may
    hold several); else the one the OS would pick (never a deprecated or tentative one); else the
    interface's primary address."""
    given = _given_address(spec, iface, family)
    if given is not None:
        return given
    chosen = _platform.HOST.preferred_source(family, iface.index, iface.machine_name)
    if chosen is not None and iface.has_ip(ipaddress.ip_address(chosen)):
        return _scoped(ipaddress.ip_address(chosen), iface)
    return primary_ip(iface, family)


def _scoped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, iface: IfaceInfo) -> str:
    """An address as a socket binds to it: an IPv6 link-local one with its ``%interface``."""
    if ip.version == 6 and ip.is_link_local and "%" not in str(ip):
        return f"{ip}%{iface.machine_name}"
    return str(ip)


def _given_address(spec: IfaceSpecifier, iface: IfaceInfo, family: int) -> str | None:
    """The address ``spec`` names, if it is an address (not a name or an IfaceInfo)."""
    if isinstance(spec, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        spec = address_of(spec)  # (an IfaceInfo's own address record)
    if isinstance(spec, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = spec
    elif isinstance(spec, str) and spec != iface.machine_name:
        try:
            ip = ipaddress.ip_address(spec)
        except ValueError:
            return None
    else:
        return None
    if (ip.version == 4) != (family == socket.AF_INET):
        raise MulticastFamilyError(
            f"iface_ip {ip} is IPv{ip.version} but this is an {family_name(family)} socket! "
            f"Give an IPv{6 if ip.version == 4 else 4} address of {iface.machine_name}, or its name"
        )
    return _scoped(ip, iface)


# ---- destinations and payloads ------------------------------------------------------------------
def port_error(port: object) -> MulticastPortError:
    """The error for a port the OS refused as out of range (as sendto's OverflowError)."""
    return MulticastPortError(f"port {port!r} is out of range; valid ports are 0..{MAX_PORT}")


def overflow_error(exc: OverflowError, address: object) -> OverflowError:
    """What an OverflowError of a send means: a port out of range (:func:`port_error`), or, when
    the port is a valid one, the OS's own error as it is (an IPv6 flowinfo above 2**20-1)."""
    port = address[1] if isinstance(address, tuple) and len(address) > 1 else None
    if type(port) is int and 0 <= port <= MAX_PORT:
        return exc
    return port_error(port)


def check_batch(
    datagrams: Iterable[tuple[bytes, IPv4Or6Address]],
    family: int,
    allowed: frozenset[str],
    known: dict[object, object] | None = None,
    ifaces: Sequence[IfaceInfo] = (),
) -> Batch:
    """Every ``(payload, address)`` pair checked as sendto checks it, before anything is sent
    (an IPv6 scope id against ``ifaces``, the interfaces sent on: see :func:`check_scope`).

    ``known``: the ``(group, port)`` destinations already found valid for ``allowed`` (each a
    plain tuple of a str and an int; the values are the platform's, see DatagramIO.send_known);
    pairs to those are checked with one lookup (equal addresses whose port is not an int are
    still refused), and the valid ones of a batch that needed the full check are added (up to
    KNOWN_MAX).
    """
    items = datagrams if type(datagrams) is list else list(datagrams)
    good: dict[object, object] = known if known is not None else {}
    try:  # the common case first, in one tight pass: bytes to a known (group, port)
        for item in items:
            if type(item) is not tuple:
                break
            data, addr = item
            if not (type(data) is bytes and type(addr) is tuple and addr in good and type(addr[1]) is int):
                break
        else:
            return items
    except (TypeError, ValueError):  # an item that is not a pair: reported below
        pass
    remember = good if known is not None else None
    return [_checked_pair(item, family, allowed, remember, ifaces) for item in items]


#: Most destinations a socket remembers as valid (see check_batch).
KNOWN_MAX = 4096


def _checked_pair(
    item: object,
    family: int,
    allowed: frozenset[str],
    known: dict[object, object] | None,
    ifaces: Sequence[IfaceInfo],
) -> tuple[bytes, IPv4Or6Address]:
    """One ``(payload, address)`` pair checked in full, or the error naming what is wrong."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"send_batch takes (payload, (group, port)) pairs, not {item!r:.80}")
    data, addr = item
    if (
        type(addr) is tuple
        and len(addr) == 2
        and type(addr[0]) is str
        and addr[0] in allowed
        and type(addr[1]) is int
        and 0 <= addr[1] <= MAX_PORT
    ):
        if known is not None and len(known) < KNOWN_MAX:
            known.setdefault(addr, None)
        return (data if type(data) is bytes else _payload(data), addr)
    payload = data if type(data) is bytes else _payload(data)
    return (payload, check_destination(addr, family, allowed, ifaces))


def check_destination(
    address: object, family: int, allowed: frozenset[str], ifaces: Sequence[IfaceInfo] = ()
) -> IPv4Or6Address:
    """A destination checked in full: its shape, group and port (and IPv6 flowinfo, and scope id
    against ``ifaces``, the interfaces sent on: see :func:`check_scope`)."""
    v6 = family == socket.AF_INET6
    if not isinstance(address, tuple) or len(address) not in ((2, 4) if v6 else (2,)):
        shapes = "(group, port) or (group, port, flowinfo, scope_id)" if v6 else "(group, port)"
        raise TypeError(f"address must be a {shapes} tuple, not {address!r}")
    try:
        group = normalize_mcast_ip(address[0], family)
    except (MulticastExpertError, TypeError):
        group = str(address[0])
    if group not in allowed:
        raise MulticastExpertError(
            f"The given destination address ({address[0]}) was not one of the addresses given "
            f"for this McastTxSocket to transmit to! Allowed: {sorted(allowed)}"
        )
    check_port(address[1])
    for what, value in zip(("flowinfo", "scope_id"), address[2:], strict=False):
        if what == "flowinfo" and type(value) is int and value > _MAX_FLOWINFO:  # (as the OS refuses it)
            raise MulticastRangeError(f"flowinfo must be 0-{_MAX_FLOWINFO}, not {value}")
        check_int_range(value, what, 0, _MAX_U32)
    checked: IPv4Or6Address = (group, *address[1:])
    if len(checked) == 4:
        check_scope(checked, ifaces)
    return checked


def check_scope(address: IPv4Or6Address, ifaces: Sequence[IfaceInfo]) -> None:
    """An IPv6 destination's scope id picks the interface the kernel sends on, over the socket's
    own: 0 (the socket's own interface) or the index of every interface sent on; else refused."""
    if len(address) == 4 and address[3] and any(i.index != address[3] for i in ifaces):
        names = [f"{i.machine_name} (index {i.index})" for i in ifaces]
        raise MulticastValueError(
            f"The scope id {address[3]} of {address!r} names another interface than the ones this "
            f"McastTxSocket sends on ({', '.join(names)}); pass scope id 0 (each interface's own), "
            "or iface= to send on one of them"
        )


def open_os_socket(
    out: Out, family: int, ttl: int, external: bool, source_port: int
) -> tuple[socket.socket, int, str]:
    """One configured OS socket sending from ``out``'s interface and address (``external``: the
    socket's enable_external_loopback), kept as ``out.sock``; returns it with the interface's
    index and the address, as the replies take them."""
    ops, iface = _platform.OPS, out.iface
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)  # (looked up now: tests swap it)
    except OSError as exc:  # (EMFILE: the advice names ulimit -n)
        better = _platform.translate_oserror(exc, Action.OPEN_TX, family, f"Opening a send socket on {iface}")
        if better is exc:
            raise
        raise better from exc
    try:
        loop = ops.tx_loopback(iface.is_localhost(), external)
        ops.prepare_tx(
            sock, ops.cached_tx_plan(family, out.ip, iface.index, iface.machine_name, ttl, loop, source_port)
        )
    except OSError as exc:  # (the error's wording is built only when there is one)
        sock.close()
        where = f"Opening a multicast send socket on {iface}"
        if not iface_exists(iface):  # (the OS says only what failed first: EADDRNOTAVAIL)
            why = f"the interface no longer exists ({exc.strerror})"
            raise MulticastOSError(exc.errno, f"{where} failed: {why}") from exc
        better = _platform.translate_oserror(exc, Action.OPEN_TX, family, where)
        if better is exc:
            raise
        raise better from exc
    except BaseException:
        sock.close()
        raise
    if _log.isEnabledFor(logging.DEBUG):
        what = "opened fd %d: sending from %s on %s (index %d), ttl %d"
        _log.debug(what, sock.fileno(), out.ip, iface.machine_name, iface.index, ttl)
    out.sock = sock
    return sock, iface.index, out.ip


def _payload(data: object) -> bytes:
    """A bytes-like payload as bytes, or TypeError naming what was given."""
    try:
        return memoryview(data).tobytes()  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"a payload must be bytes-like (bytes, bytearray, memoryview), not {data!r:.60}"
        ) from None


def payload_and_address(
    data: bytes | None, address: IPv4Or6Address | None, tx_bytes: bytes | None
) -> tuple[bytes, IPv4Or6Address]:
    """sendto's arguments as 1.2.0 (``bytes``) or 1.6.0 (``tx_bytes``) named the payload."""
    if tx_bytes is not None:
        if data is not None:
            raise TypeError("sendto() got the payload twice: as bytes and as tx_bytes (1.6.0's name)")
        data = tx_bytes
    if data is None:
        raise TypeError("sendto() needs bytes, the payload (bytes-like), not None")
    if address is None:
        raise TypeError("sendto() needs address = (group, port), not None")
    return data, address


def signature_1_2(sendto: Callable[..., None]) -> inspect.Signature:
    """``sendto``'s signature as shown: 1.2.0's ``(bytes, address)`` with no defaults, and the
    keyword ``iface`` (the defaults and ``tx_bytes``, 1.6.0's name, only let 1.6.0's calls in)."""
    sig = inspect.signature(sendto)
    return sig.replace(
        parameters=[
            p.replace(default=inspect.Parameter.empty) if p.name in ("bytes", "address") else p
            for p in sig.parameters.values()
            if p.name != "tx_bytes"
        ]
    )


def tx_closed(what: str) -> SocketClosedError:
    """The error for ``what`` on a closed send socket."""
    return SocketClosedError(f"{what} on a closed McastTxSocket; open it first")


def open_sock(out: Out, what: str = "send_batch()") -> socket.socket:
    """The interface's OS socket; closed by another thread since the caller looked: raises."""
    sock = out.sock
    if sock is None:
        raise tx_closed(what)
    return sock


@contextlib.contextmanager
def closed_meanwhile(current: Callable[[], object], what: str, sock: object) -> Iterator[None]:
    """An OS error of a socket another thread closed meanwhile as SocketClosedError: ``sock``, the
    first interface's when the call began, is no longer ``current()`` (closed, perhaps reopened)."""
    try:
        yield
    except OSError:
        if current() is not sock:
            raise tx_closed(what) from None
        raise
