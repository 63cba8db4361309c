"""Network interface discovery: scan once, look up cheaply, rescan on a miss; default-gateway helpers.

Layering rule: imports ``_errors``, ``_validate`` and the per-OS layer only; the socket classes
build on it.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import cast

import netifaces

from . import _fork_locks, _platform
from ._compat.values import AddrList
from ._errors import MulticastExpertError, MulticastValueError, UnknownFamilyError
from ._validate import LOCALHOST_IPV4, LOCALHOST_IPV6, check_family, family_name


@dataclasses.dataclass(frozen=True)
class IfaceInfo:
    """One network interface of this machine.

    ``machine_name`` is the OS's name for it (``eth0`` on Linux, a GUID on Windows) and ``index``
    its interface index. Addresses carry their prefix length; IPv6 link-local ones keep their
    ``%interface`` scope.
    """

    machine_name: str
    index: int
    link_layer_address: str | None
    ip4_addrs: Sequence[ipaddress.IPv4Interface]
    ip6_addrs: Sequence[ipaddress.IPv6Interface]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ip4_addrs", AddrList(self.ip4_addrs))
        object.__setattr__(self, "ip6_addrs", AddrList(self.ip6_addrs))

    def is_localhost(self) -> bool:
        """True for the loopback interface."""
        return bool(self._derived["localhost"])

    @functools.cached_property
    def _derived(self) -> dict[object, object]:
        """Values computed once per (immutable) interface record."""
        v6 = [
            f"{str(a.ip).split('%')[0]}%{self.machine_name}" if a.ip.is_link_local else str(a.ip)
            for a in sorted(self.ip6_addrs, key=lambda a: a.ip.is_link_local)
        ]
        return {
            "localhost": any(a.ip.is_loopback for a in self.ip4_addrs)
            or any(a.ip.is_loopback for a in self.ip6_addrs),
            "ip6": v6,
            socket.AF_INET: str(self.ip4_addrs[0].ip) if self.ip4_addrs else None,
            socket.AF_INET6: v6[0] if v6 else None,
        }

    def ip_addrs(self, family: int) -> Sequence[ipaddress.IPv4Interface] | Sequence[ipaddress.IPv6Interface]:
        """The addresses of one family (``socket.AF_INET`` or ``socket.AF_INET6``).

        Raises:
            KeyError: (also a MulticastExpertError) any other family, as 1.6.0 raised.
        """
        if family == socket.AF_INET:
            return self.ip4_addrs
        if family == socket.AF_INET6:
            return self.ip6_addrs
        raise UnknownFamilyError(f"addr_family {family!r} is not supported; use socket.AF_INET or AF_INET6")

    def ip6_strings(self) -> list[str]:
        """IPv6 addresses as strings, global ones first."""
        return list(cast(list[str], self._derived["ip6"]))

    def primary_ip(self, family: int) -> str | None:
        """The address to bind to for ``family``: the first IPv4 one, a global IPv6 one first."""
        ip = self._derived.get(family)
        return ip if isinstance(ip, str) else None

    def has_ip(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether this interface holds ``ip`` (an IPv6 scope on ``ip``, if any, must match)."""
        if ip.version == 4:
            return any(a.ip == ip for a in self.ip4_addrs)
        assert isinstance(ip, ipaddress.IPv6Address)
        bare = ipaddress.IPv6Address(str(ip).split("%")[0])
        for a in self.ip6_addrs:
            if ipaddress.IPv6Address(str(a.ip).split("%")[0]) == bare and ip.scope_id in (
                None,
                self.machine_name,
                str(self.index),
            ):
                return True
        return False

    def __str__(self) -> str:
        addrs = [str(a.ip) for a in self.ip4_addrs] + self.ip6_strings()
        return f"{self.machine_name} (index {self.index}; {', '.join(addrs) or 'no addresses'})"


def iface_name_to_index(iface_name: str) -> int:
    """The OS interface index of an interface name (a GUID on Windows).

    Scanning looks indexes up through this module-level name, so code that patches it sees the effect.
    """
    return _platform.HOST.iface_index(iface_name)


def ip_interface_to_ip_string(ip: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> str:
    """An ``IPv4Interface`` / ``IPv6Interface`` as its address string (an IPv6 scope kept)."""
    return str(ip).split("/", 1)[0]  # str(ip.ip) would drop an IPv6 scope ("%eth0")


#: What names an interface: its IP (str or ipaddress object), its name, or an IfaceInfo.
IfaceSpecifier = str | ipaddress.IPv4Address | ipaddress.IPv6Address | IfaceInfo

_lock = threading.Lock()
# Taken before every fork, after the sockets' locks (a socket's refresh rescans while it holds its
# own): a child forked while another thread installs a scan would inherit it held, never rescan.
_fork_locks.register_innermost(_lock)
_cache: tuple[IfaceInfo, ...] | None = None


def _prefix(netmask: str | None, default: int) -> int:
    if not netmask:
        return default
    if "/" in netmask:
        return int(netmask.rsplit("/", 1)[1])
    try:
        return ipaddress.ip_network(f"0.0.0.0/{netmask}").prefixlen
    except ValueError:
        return default


_unindexed: set[str] = set()


def _read_interface(name: str) -> IfaceInfo | None:
    try:
        addrs: dict[int, list[dict[str, str]]] = netifaces.ifaddresses(name)
    except (ValueError, OSError):
        return None  # the interface vanished between listing and reading it
    try:
        index = iface_name_to_index(name)
    except (ValueError, OSError) as exc:
        if name in netifaces.interfaces() and name not in _unindexed:  # still there: say why
            _unindexed.add(name)
            warnings.warn(
                f"interface {name} left out: its index could not be read ({exc})",
                RuntimeWarning,
                stacklevel=2,
            )
        return None
    ip4 = [
        ipaddress.IPv4Interface(f"{a['addr']}/{_prefix(a.get('netmask'), 32)}")
        for a in addrs.get(netifaces.AF_INET, [])
        if "addr" in a
    ]
    ip6 = []
    for a in addrs.get(netifaces.AF_INET6, []):
        if "addr" not in a:
            continue
        ip = a["addr"]
        if "%" not in ip and ipaddress.IPv6Address(ip).is_link_local:
            ip = f"{ip}%{name}"
        ip6.append(ipaddress.IPv6Interface(f"{ip}/{_prefix(a.get('netmask'), 128)}"))
    link = addrs.get(_platform.HOST.link_family, [{}])
    mac = link[0].get("addr") if link else None
    return IfaceInfo(name, index, mac or None, tuple(ip4), tuple(ip6))


#: When the scan in :data:`_cache` began (its age counts from then). A reader takes it before
#: the cache, and a rescan sets it after the cache: a fresh time never goes with an older list.
_cache_time = 0.0
#: Lookups, resolve_iface's results and listenable_interfaces' (by family): each remembered with
#: the scan it was found in, and used only while that scan is the one in use (a reader racing a
#: rescan may file an answer in the new scan's dictionary: its scan is not the new one).
_lookups: dict[object, tuple[Sequence[IfaceInfo], list[IfaceInfo]]] = {}
_resolved: dict[tuple[object, int], tuple[Sequence[IfaceInfo], IfaceInfo]] = {}
_listenable: dict[int, tuple[tuple[IfaceInfo, ...], list[IfaceInfo]]] = {}
#: The interface list used when a socket names no interface is at most this old (seconds).
DEFAULT_IFACES_MAX_AGE = 1.0
#: The scan a lookup by name or IP uses is at most this old (seconds): an address that moved to
#: another interface, or a name re-created, is found where it is now. (A lookup that finds
#: nothing rescans at once.)
LOOKUP_MAX_AGE = 1.0


#: Per thread: ``home``, the scan token (:data:`_token`, new at every scan) for which the thread
#: was found in the process's network namespace, so later lookups in the same scan need no check.
#: A thread found elsewhere (``testing.Peer.run``'s, and the threads it starts) is checked at
#: every lookup and scans afresh; a thread that moves after a lookup calls
#: :func:`namespace_changed`.
_thread = threading.local()
_token = object()


def _away_now() -> bool:
    """Whether the calling thread is in another network namespace than the process's main thread
    (Linux: a thread can enter one, as ``testing.Peer.run``'s does, and the threads it starts are
    in it too). The process's cache describes the main thread's namespace only."""
    try:
        return os.readlink("/proc/thread-self/ns/net") != os.readlink("/proc/self/ns/net")
    except OSError:  # (no /proc: no per-thread namespaces to tell apart)
        return False


def _away() -> bool:
    """:func:`_away_now`, looked at once per thread and scan while the answer is no (a thread
    that changes namespace between lookups calls :func:`namespace_changed`, as the testing
    helpers do)."""
    if getattr(_thread, "home", None) is _token:
        return False
    away = _away_now()
    if not away:
        _thread.home = _token
    return away


#: The main thread's network namespace (its inode), looked up on first need after each
#: :func:`namespace_changed`: a thread found in it has its identity without a system call.
_home_netns: int | None = None


def _netns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:  # (no /proc: no namespaces to tell apart)
        return None


def thread_netns() -> int | None:
    """The calling thread's network namespace, as a socket made by it records it (its inode;
    None where there is no /proc to tell)."""
    global _home_netns
    if _away():
        return _netns_inode("/proc/thread-self/ns/net")
    home = _home_netns
    if home is None:
        home = _home_netns = _netns_inode("/proc/self/ns/net")
    return home


def check_netns(netns: int | None, what: str) -> None:
    """Raise MulticastExpertError when the calling thread is not in the network namespace
    ``netns`` (a socket's, from :func:`thread_netns` when it was made): interfaces looked up and
    OS sockets made from here would be another host's."""
    if netns == _home_netns and getattr(_thread, "home", None) is _token:
        return  # (the common case, without a system call)
    if thread_netns() != netns:
        raise MulticastExpertError(
            f"{what} from a thread in another network namespace than the socket's (the one it was "
            "made in): the interfaces and OS sockets there are another host's. Call it from a thread "
            "in the socket's namespace"
        )


def namespace_changed() -> tuple[IfaceInfo, ...]:
    """Tell the library that the calling thread has just entered another network namespace (or
    come back): what it found out about the thread's namespace is forgotten, and the interfaces
    are rescanned (into the process's cache when the thread is the main one). The testing
    helpers that move a thread call it; code that calls setns(2) itself should too."""
    global _home_netns
    _thread.home, _home_netns = None, None
    return rescan_interfaces()


def rescan_interfaces() -> tuple[IfaceInfo, ...]:
    """Scan the machine's interfaces now and refresh the cache."""
    global _cache, _cache_time, _lookups, _resolved, _listenable, _token
    began = time.monotonic()
    found = tuple(i for i in map(_read_interface, netifaces.interfaces()) if i is not None)
    if _away_now():
        return found  # (another namespace's: not cached)
    with _lock:
        if _cache is not None and began < _cache_time:
            return found  # (a scan that began later is in already: this older one must not replace it)
        _cache = found
        _cache_time = began  # (the cache's age counts from when its scan began)
        _lookups = {}
        _resolved = {}
        _listenable = {}
        _token = object()
    return found


def cached_interfaces(max_age: float | None = None) -> tuple[IfaceInfo, ...]:
    """The interfaces as last scanned; rescans if never scanned or older than ``max_age`` seconds."""
    stamp = _cache_time  # (before the cache: see _cache_time)
    cache = _cache
    if cache is None or (max_age is not None and time.monotonic() - stamp > max_age):
        return rescan_interfaces()
    return rescan_interfaces() if _away() else cache


def iface_exists(iface: IfaceInfo) -> bool:
    """Whether the machine still has ``iface`` (rescanned now): its index under its name."""
    return any(i.index == iface.index and i.machine_name == iface.machine_name for i in rescan_interfaces())


def scan_interfaces() -> list[IfaceInfo]:
    """Scan and return every network interface of this machine."""
    return list(rescan_interfaces())


def _match(spec: IfaceSpecifier, ifaces: Sequence[IfaceInfo]) -> list[IfaceInfo]:
    if isinstance(spec, IfaceInfo):
        return [spec]
    if isinstance(spec, str):
        by_name = [i for i in ifaces if i.machine_name == spec]
        if by_name:
            return by_name
        try:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(spec)
        except ValueError:
            return []
    elif isinstance(spec, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        ip = address_of(spec)
    elif isinstance(spec, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        ip = spec
    else:
        raise TypeError(
            "an interface must be given as an IP (str or ipaddress object), a name, or an "
            f"IfaceInfo, not {type(spec).__name__} {spec!r}"
        )
    return [i for i in ifaces if i.has_ip(ip)]


def address_of(
    record: ipaddress.IPv4Interface | ipaddress.IPv6Interface,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address of an interface's address record (``IfaceInfo.ip4_addrs[0]``, an
    ``IPv4Interface``), without its network and with its IPv6 scope (``.ip`` drops the scope)."""
    return ipaddress.ip_address(str(record).partition("/")[0])


def _unknown(spec: IfaceSpecifier, ifaces: Sequence[IfaceInfo]) -> MulticastExpertError:
    names = [i.machine_name for i in ifaces]
    ips = [str(a.ip) for i in ifaces for a in i.ip4_addrs] + [s for i in ifaces for s in i.ip6_strings()]
    valid = f"Valid interface names: {names}; valid interface IPs: {ips}"
    if isinstance(spec, (ipaddress.IPv4Address, ipaddress.IPv6Address)) or _is_ip(spec):
        return MulticastValueError(
            f"No matches found for interface IP address {spec!s} (it does not seem to correspond to a "
            f"valid interface on this machine). {valid}"
        )
    return MulticastValueError(
        f"Interface {spec!s} does not appear to be a valid interface name or IP "
        f"(it does not seem to correspond to a valid interface on this machine). {valid}"
    )


def _is_ip(spec: object) -> bool:
    try:
        ipaddress.ip_address(spec)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def _lookup(
    spec: IfaceSpecifier, ifaces: Sequence[IfaceInfo] | None
) -> tuple[list[IfaceInfo], Sequence[IfaceInfo]]:
    """Every interface ``spec`` names (several when an IP is shared), and the scan (or table)
    the answer came from; raises if none."""
    table = cached_interfaces(LOOKUP_MAX_AGE) if ifaces is None else ifaces
    cacheable = ifaces is None and isinstance(spec, (str, ipaddress.IPv4Address, ipaddress.IPv6Address))
    cacheable = cacheable and not _away()
    lookups = _lookups
    hit = lookups.get(spec) if cacheable else None
    found = hit[1] if hit is not None and hit[0] is table else None
    if found is None:
        found = _match(spec, table)
        if cacheable and found:
            lookups[spec] = (table, found)  # (with its scan: see _lookups)
    if not found and ifaces is None and not isinstance(spec, IfaceInfo):
        table = rescan_interfaces()  # the interface or address may be new since the last scan
        found = _match(spec, table)
    if not found:
        raise _unknown(spec, table)
    return found, table


def find_interface(spec: IfaceSpecifier, ifaces: Sequence[IfaceInfo] | None = None) -> IfaceInfo:
    """Resolve one specifier to exactly one interface (what a socket needs).

    Raises:
        MulticastExpertError: no interface matches, or an IP is shared by several (named).
    """
    return _only(spec, _lookup(spec, ifaces)[0])


def _only(spec: IfaceSpecifier, found: list[IfaceInfo]) -> IfaceInfo:
    if len(found) > 1:
        raise MulticastValueError(
            f"Interface IP {spec!s} is ambiguous: it is held by "
            f"{', '.join(i.machine_name for i in found)}; name the interface (or pass its IfaceInfo)"
        )
    return found[0]


def find_interfaces(
    specifiers: Iterable[IfaceSpecifier], ifaces: Sequence[IfaceInfo] | None = None
) -> list[IfaceInfo]:
    """Resolve interface specifiers (IP, name, ipaddress object or IfaceInfo) to IfaceInfos.

    As in 1.6.0: an IP yields *every* interface that holds it, and the result has each interface
    once, in first-seen order. ``ifaces`` is the table to search; by default the cached scan of
    this machine, rescanned once when a specifier is not found in it.

    Raises:
        MulticastExpertError: an IP held by no interface ("No matches found for interface IP
            address"), or a string that is neither a name nor an IP ("does not appear to be a
            valid interface name or IP").
        TypeError: a specifier of the wrong type.
    """
    if isinstance(specifiers, (str, IfaceInfo, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        specifiers = [specifiers]
    found: dict[int, IfaceInfo] = {}  # one entry per interface, first-seen order (as 1.6.0)
    for s in specifiers:
        for info in _lookup(s, ifaces)[0]:
            found.setdefault(info.index, info)
    return list(found.values())


def get_default_gateway_iface(
    addr_family: int, *, ifaces: Sequence[IfaceInfo] | None = None
) -> IfaceInfo | None:
    """The interface holding the default route for ``addr_family``, or None if there is none."""
    name = _platform.HOST.default_route_iface_name(check_family(addr_family))
    if name is None:
        return None
    try:
        return find_interface(name, ifaces)
    except MulticastExpertError:
        return None


def listenable_interfaces(addr_family: int) -> list[IfaceInfo]:
    """Every non-loopback interface with an address of ``addr_family`` (scan at most 1 s old)."""
    scan = cached_interfaces(DEFAULT_IFACES_MAX_AGE)
    known = _listenable
    hit = known.get(addr_family)
    if hit is not None and hit[0] is scan:
        return list(hit[1])
    found = [i for i in scan if not i.is_localhost() and i.ip_addrs(addr_family)]
    known[addr_family] = (scan, found)  # (remembered with the scan it came from)
    return list(found)


def get_interface_ips(include_ipv4: bool = True, include_ipv6: bool = True) -> list[str]:
    """Every IP address on this machine's interfaces (loopback included), as strings.

    IPv6 link-local addresses carry their ``%interface`` scope, as the OS reports them.
    """
    ips: list[str] = []
    for iface in rescan_interfaces():
        if include_ipv4:
            ips.extend(str(a.ip) for a in iface.ip4_addrs)
        if include_ipv6:
            ips.extend(iface.ip6_strings())
    return ips


def get_default_gateway_iface_ip_v6(*, ifaces: Sequence[IfaceInfo] | None = None) -> str | None:
    """IPv6 address of the interface that holds the IPv6 default route, or None."""
    return get_default_gateway_iface_ip(socket.AF_INET6, ifaces=ifaces)


def get_default_gateway_iface_ip_v4(*, ifaces: Sequence[IfaceInfo] | None = None) -> str | None:
    """IPv4 address of the interface that holds the IPv4 default route, or None."""
    return get_default_gateway_iface_ip(socket.AF_INET, ifaces=ifaces)


def get_default_gateway_iface_ip(
    addr_family: int, *, ifaces: Sequence[IfaceInfo] | None = None
) -> str | None:
    """Address (of ``addr_family``) of the interface holding the default route, or None.

    For IPv6 a global address is preferred over a link-local one. A family other than AF_INET
    or AF_INET6 has no default gateway: None, as in 1.2.0.
    """
    if addr_family not in (socket.AF_INET, socket.AF_INET6):
        return None
    iface = get_default_gateway_iface(addr_family, ifaces=ifaces)
    return None if iface is None else iface.primary_ip(addr_family)


__all__ = [
    "LOCALHOST_IPV4",
    "LOCALHOST_IPV6",
    "IfaceInfo",
    "IfaceSpecifier",
    "find_interfaces",
    "get_default_gateway_iface",
    "get_default_gateway_iface_ip",
    "get_default_gateway_iface_ip_v4",
    "get_default_gateway_iface_ip_v6",
    "get_interface_ips",
    "iface_name_to_index",
    "ip_interface_to_ip_string",
    "scan_interfaces",
]


def resolve_iface(spec: IfaceSpecifier, family: int) -> IfaceInfo:
    """Look up one interface and check it has an address of ``family`` (a name or IP found in the
    current scan is remembered until the next one, as :func:`find_interface` remembers it)."""
    cacheable = isinstance(spec, (str, ipaddress.IPv4Address, ipaddress.IPv6Address))
    cacheable = cacheable and not _away()
    if cacheable:  # (a hit of the scan in use, while it is young enough: cached_interfaces' test)
        stamp = _cache_time  # (before the cache: see _cache_time)
        cache = _cache
        hit = _resolved.get((spec, family))
        if hit is not None and hit[0] is cache and time.monotonic() - stamp <= LOOKUP_MAX_AGE:
            return hit[1]
    found, table = _lookup(spec, None)
    iface = _only(spec, found)
    if not iface.ip_addrs(family):
        raise MulticastValueError(
            f"Interface {iface} has no {family_name(family)} address, so it cannot carry "
            f"{family_name(family)} multicast; pick an interface that does"
        )
    if cacheable:
        _resolved[(spec, family)] = (table, iface)  # (with its scan: see _lookups)
    return iface


def iface_ip(iface: IfaceInfo, family: int) -> str:
    """The address a socket on ``iface`` binds to (the interface's primary address)."""
    ip = iface.primary_ip(family)
    if ip is None:  # resolve_iface rules this out
        raise MulticastExpertError(f"Interface {iface} has no {family_name(family)} address")
    return ip
