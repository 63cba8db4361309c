"""Errors, address validation and default-gateway helpers (the 1.2.0 ``utils`` module)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .interfaces import IfaceInfo

#: An address as Python's socket module reports it: ``(ip, port)`` for IPv4,
#: ``(ip, port, flowinfo, scope_id)`` for IPv6.
IPv4Or6Address = tuple[str, int] | tuple[str, int, int, int]

#: What a multicast group may be given as: a string or an ``ipaddress`` object.
MulticastAddress = str | ipaddress.IPv4Address | ipaddress.IPv6Address

LOCALHOST_IPV4 = "127.0.0.1"
LOCALHOST_IPV6 = "::1"

_FAMILY_NAMES: dict[int, str] = {int(socket.AF_INET): "AF_INET", int(socket.AF_INET6): "AF_INET6"}


class MulticastExpertError(RuntimeError):
    """Raised for every multicast-specific problem this library detects."""


class MulticastValueError(MulticastExpertError, ValueError):
    """A bad argument value. Catchable as either MulticastExpertError or ValueError."""


def check_family(addr_family: object) -> int:
    """Return ``addr_family`` if it is AF_INET or AF_INET6, else raise ValueError naming it."""
    if isinstance(addr_family, bool) or not isinstance(addr_family, int):
        raise TypeError(f"addr_family must be socket.AF_INET or socket.AF_INET6, not {addr_family!r}")
    if addr_family not in _FAMILY_NAMES:
        raise MulticastValueError(
            f"addr_family {addr_family!r} is not supported; use socket.AF_INET or socket.AF_INET6"
        )
    return addr_family


def family_name(addr_family: int) -> str:
    """``'AF_INET'`` or ``'AF_INET6'``."""
    return _FAMILY_NAMES.get(addr_family, str(addr_family))


def parse_ip(ip: object, what: str = "address") -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse a string or ipaddress object into an ipaddress object, with a clear error."""
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ip
    if not isinstance(ip, str):
        raise TypeError(f"{what} must be a str or an ipaddress address, not {type(ip).__name__} {ip!r}")
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        raise MulticastValueError(
            f"{what} {ip!r} is not a valid IPv4 or IPv6 address (e.g. '239.1.2.3' or 'ff15::1')"
        ) from None


def _check_ip_family(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, addr_family: int, what: str) -> None:
    if addr_family == socket.AF_INET and ip.version != 4:
        raise MulticastValueError(f"{what} {ip} is IPv6 but this is an AF_INET socket!")
    if addr_family == socket.AF_INET6 and ip.version != 6:
        raise MulticastValueError(f"{what} {ip} is IPv4 but this is an AF_INET6 socket!")


def normalize_mcast_ip(mcast_ip: object, addr_family: int) -> str:
    """Validate a multicast group for a family and return its canonical string form."""
    try:
        return _normalized_groups[(mcast_ip, addr_family)]
    except (KeyError, TypeError):
        pass
    group = _normalize_mcast_ip(mcast_ip, addr_family)
    if len(_normalized_groups) < 65536:
        _normalized_groups[(mcast_ip, addr_family)] = group
    return group


_normalized_groups: dict[tuple[object, int], str] = {}


def _normalize_mcast_ip(mcast_ip: object, addr_family: int) -> str:
    ip = parse_ip(mcast_ip, "mcast_ip")
    _check_ip_family(ip, addr_family, "mcast_ip")
    if not ip.is_multicast:
        raise MulticastValueError(f"mcast_ip {ip} is not a multicast address!")
    return str(ip)


def normalize_source_ip(source_ip: object, addr_family: int) -> str:
    """Validate a unicast source address for source-specific multicast."""
    ip = parse_ip(source_ip, "source_ip")
    _check_ip_family(ip, addr_family, "source_ip")
    if ip.is_multicast or ip.is_unspecified:
        raise MulticastValueError(
            f"source_ip {ip} is not a unicast address; a source must be a sender's own address"
        )
    return str(ip)


def normalize_ip_list(values: object, what: str) -> list[object]:
    """Accept one address or an iterable of them (not a bare str iterated by character)."""
    if isinstance(values, (str, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return [values]
    if not isinstance(values, Iterable) or isinstance(values, (bytes, bytearray)):
        raise TypeError(f"{what} must be a list of addresses, not {type(values).__name__} {values!r}")
    items = list(values)
    if not items:
        raise MulticastValueError(f"{what} is empty; give at least one address")
    return items


def validate_mcast_ip(mcast_ip: MulticastAddress, addr_family: int) -> None:
    """Raise MulticastExpertError unless ``mcast_ip`` is a multicast group of ``addr_family``.

    Raises:
        MulticastExpertError: not a multicast address, wrong family, or malformed (the last two
            are also ValueErrors).
        TypeError: ``mcast_ip`` is not a string or ipaddress object.
    """
    normalize_mcast_ip(mcast_ip, check_family(addr_family))


def check_port(port: object, what: str = "port") -> int:
    """Return a valid UDP port number, or raise naming the bad value."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{what} must be an int in 0..65535, not {type(port).__name__} {port!r}")
    if not 0 <= port <= 65535:
        raise MulticastValueError(f"{what} {port} is out of range; valid ports are 0..65535")
    return port


def check_int_range(value: object, what: str, low: int, high: int) -> int:
    """Return an int in [low, high] or raise naming the value and range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int in {low}..{high}, not {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise MulticastValueError(f"{what} {value} is out of range; valid values are {low}..{high}")
    return value


#: Longest finite timeout accepted (seconds): epoll and poll count in int milliseconds.
MAX_TIMEOUT = 2_000_000


def check_timeout(timeout: object) -> float | None:
    """Validate a socket timeout: None (block), 0 (non-blocking) or a positive number of seconds."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(
            f"timeout must be None or a number of seconds, not {type(timeout).__name__} {timeout!r}"
        )
    if not 0 <= timeout <= MAX_TIMEOUT:
        raise MulticastValueError(
            f"timeout {timeout!r} is invalid; use None to block, 0 for non-blocking, or seconds "
            f"from 0 to {MAX_TIMEOUT}"
        )
    return float(timeout)


def get_interface_ips(include_ipv4: bool = True, include_ipv6: bool = True) -> list[str]:
    """Every IP address on this machine's interfaces (loopback included), as strings.

    IPv6 link-local addresses carry their ``%interface`` scope, as the OS reports them.
    """
    from .interfaces import cached_interfaces, rescan_interfaces

    rescan_interfaces()
    ips: list[str] = []
    for iface in cached_interfaces():
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

    For IPv6 a global address is preferred over a link-local one.
    """
    from .interfaces import get_default_gateway_iface

    iface = get_default_gateway_iface(addr_family, ifaces=ifaces)
    if iface is None:
        return None
    if addr_family == socket.AF_INET:
        return str(iface.ip4_addrs[0].ip) if iface.ip4_addrs else None
    v6 = iface.ip6_strings()
    return v6[0] if v6 else None


__all__ = [
    "LOCALHOST_IPV4",
    "LOCALHOST_IPV6",
    "IPv4Or6Address",
    "MulticastAddress",
    "MulticastExpertError",
    "get_default_gateway_iface_ip",
    "get_default_gateway_iface_ip_v4",
    "get_default_gateway_iface_ip_v6",
    "get_interface_ips",
    "validate_mcast_ip",
]
