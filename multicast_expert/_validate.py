"""Argument validation and the address types every layer shares.

Layering rule: this module is a leaf above ``_errors``. It knows nothing of sockets' OS options,
interfaces or the socket classes; it only turns user input into checked, canonical values or
raises an error that names the bad value and what would be valid.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from itertools import repeat

from ._errors import MulticastFamilyError, MulticastPortError, MulticastValueError

#: An address as Python's socket module reports it: ``(ip, port)`` for IPv4,
#: ``(ip, port, flowinfo, scope_id)`` for IPv6.
IPv4Or6Address = tuple[str, int] | tuple[str, int, int, int]

#: What a multicast group may be given as: a string or an ``ipaddress`` object.
MulticastAddress = str | ipaddress.IPv4Address | ipaddress.IPv6Address

LOCALHOST_IPV4 = "127.0.0.1"
LOCALHOST_IPV6 = "::1"

#: Longest finite timeout accepted (seconds): epoll and poll count in int milliseconds.
MAX_TIMEOUT = 2_000_000

_FAMILY_NAMES: dict[int, str] = {int(socket.AF_INET): "AF_INET", int(socket.AF_INET6): "AF_INET6"}
_IP_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)


def check_flags(flags: object) -> int:
    """recvfrom(2) flags as a plain int (``socket.MSG_PEEK`` is an IntFlag); TypeError otherwise."""
    if not isinstance(flags, int) or isinstance(flags, bool):
        raise TypeError(f"flags must be an int (socket.MSG_* values), not {flags!r}")
    return int(flags)


def check_family(addr_family: object) -> int:
    """Return ``addr_family`` if it is AF_INET or AF_INET6, else raise naming it."""
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


def check_bool(value: object, what: str) -> bool:
    """Return ``value`` if it is a bool (or 0/1), else raise TypeError: "no" is not False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{what} must be True or False, not {type(value).__name__} {value!r}")


def parse_ip(ip: object, what: str = "address") -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse a string or ipaddress object into an ipaddress object, with a clear error.

    The message starts with ``ipaddress``'s own text ("... does not appear to be an IPv4 or IPv6
    address"), which 1.2.0 raised and users match on.
    """
    if isinstance(ip, _IP_TYPES):
        return ip
    if not isinstance(ip, str):
        raise TypeError(f"{what} must be a str or an ipaddress address, not {type(ip).__name__} {ip!r}")
    try:
        return ipaddress.ip_address(ip)
    except ValueError as exc:
        raise MulticastValueError(
            f"{exc}: {what} {ip!r} is not a valid IPv4 or IPv6 address (e.g. '239.1.2.3' or 'ff15::1')"
        ) from None


def _check_ip_family(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, addr_family: int, what: str) -> None:
    if addr_family == socket.AF_INET and ip.version != 4:
        raise MulticastFamilyError(f"{what} {ip} is IPv6 but this is an AF_INET socket!")
    if addr_family == socket.AF_INET6 and ip.version != 6:
        raise MulticastFamilyError(f"{what} {ip} is IPv4 but this is an AF_INET6 socket!")


_normalized_groups: dict[tuple[object, int], str] = {}


def normalize_mcast_ip(mcast_ip: object, addr_family: int) -> str:
    """Validate a multicast group for a family and return its canonical string form."""
    try:
        return _normalized_groups[(mcast_ip, addr_family)]
    except (KeyError, TypeError):
        pass
    ip = parse_ip(mcast_ip, "mcast_ip")
    _check_ip_family(ip, addr_family, "mcast_ip")
    if not ip.is_multicast:
        raise MulticastValueError(f"mcast_ip {ip} is not a multicast address!")
    group = str(ip)
    if len(_normalized_groups) < 65536:
        _normalized_groups[(mcast_ip, addr_family)] = group
    return group


def normalize_mcast_ips(mcast_ips: object, addr_family: int) -> list[str]:
    """:func:`normalize_ip_list` then :func:`normalize_mcast_ip` of each (an empty list allowed);
    repeats are kept. Groups already seen cost one dictionary lookup each."""
    kind = type(mcast_ips)
    if kind is list or kind is tuple:
        groups: list[object] = mcast_ips  # type: ignore[assignment]  # (a cast() would be a call)
        seen = _normalized_groups
        try:
            if len(groups) == 1:
                return [seen[(groups[0], addr_family)]]
            return list(map(seen.__getitem__, zip(groups, repeat(addr_family))))  # (no frame per group)
        except (KeyError, TypeError):  # (new, or unhashable: checked below, with its error)
            pass
    return [
        normalize_mcast_ip(ip, addr_family)
        for ip in normalize_ip_list(mcast_ips, "mcast_ips", allow_empty=True)
    ]


def validate_mcast_ip(mcast_ip: MulticastAddress, addr_family: int) -> None:
    """Raise MulticastExpertError unless ``mcast_ip`` is a multicast group of ``addr_family``.

    Raises:
        MulticastExpertError: not a multicast address, wrong family, or malformed (the last two
            are also ValueErrors).
        TypeError: ``mcast_ip`` is not a string or ipaddress object.
    """
    normalize_mcast_ip(mcast_ip, check_family(addr_family))


def normalize_source_ip(source_ip: object, addr_family: int) -> str:
    """Validate a unicast source address for source-specific multicast."""
    ip = parse_ip(source_ip, "source_ip")
    _check_ip_family(ip, addr_family, "source_ip")
    if ip.is_multicast or ip.is_unspecified:
        raise MulticastValueError(
            f"source_ip {ip} is not a unicast address; a source must be a sender's own address"
        )
    return str(ip)


def normalize_ip_list(values: object, what: str, *, allow_empty: bool = False) -> list[object]:
    """Accept one address or an iterable of them (not a bare str iterated by character)."""
    if isinstance(values, (str, *_IP_TYPES)):
        return [values]
    if not isinstance(values, Iterable) or isinstance(values, (bytes, bytearray)):
        raise TypeError(f"{what} must be a list of addresses, not {type(values).__name__} {values!r}")
    items = list(values)
    if not items and not allow_empty:
        raise MulticastValueError(f"{what} is empty; give at least one address")
    return items


def check_port(port: object, what: str = "port", *, allow_zero: bool = True) -> int:
    """Return a valid UDP port number, or raise naming the bad value."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{what} must be an int in 0..65535, not {type(port).__name__} {port!r}")
    if not 0 <= port <= 65535:
        raise MulticastPortError(f"{what} {port} is out of range; valid ports are 0..65535")
    if port == 0 and not allow_zero:
        raise MulticastValueError(
            f"{what} 0 would give each group and interface its own random port; "
            "choose the port senders send to (1..65535)"
        )
    return port


def check_int_range(
    value: object, what: str, low: int, high: int, error: type[MulticastValueError] = MulticastValueError
) -> int:
    """Return an int in [low, high] or raise naming the value and range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int in {low}..{high}, not {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise error(f"{what} {value} is out of range; valid values are {low}..{high}")
    return value


def check_bufsize(bufsize: object) -> int:
    """A receive buffer size: 1..2**31-1 bytes (0 would silently swallow a datagram)."""
    return check_int_range(bufsize, "bufsize", 1, 2**31 - 1)


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


def dedupe(items: Iterable[str]) -> list[str]:
    """Drop repeats, keeping the first occurrence's order."""
    return list(dict.fromkeys(items))
