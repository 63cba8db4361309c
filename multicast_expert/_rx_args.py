"""McastRxSocket's constructor arguments turned into checked values: sources, interfaces, timeout.

Layering rule: validation and interface lookup only; no sockets are opened here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from . import _platform
from ._errors import MulticastExpertError, MulticastValueError
from ._sockbase import resolve_iface
from ._validate import (
    MulticastAddress,
    check_bool,
    check_timeout,
    dedupe,
    family_name,
    normalize_ip_list,
    normalize_source_ip,
)
from .interfaces import IfaceInfo, IfaceSpecifier, listenable_interfaces

#: "Not given" for ``timeout`` (None already means "block").
UNSET: float = -1.0


def parse_sources(source_ips: Iterable[MulticastAddress] | None, family: int) -> tuple[str, ...]:
    """Validated, de-duplicated sources; empty (any-source) for None or an empty list."""
    if source_ips is None:
        return ()
    items = normalize_ip_list(source_ips, "source_ips", allow_empty=True)
    if not items:
        return ()
    _platform.OPS.check_ssm(family)
    return tuple(dedupe(normalize_source_ip(s, family) for s in items))


def normalize_iface_list(ifaces: Iterable[IfaceSpecifier] | IfaceSpecifier) -> list[IfaceSpecifier]:
    """One interface specifier or an iterable of them, as a non-empty list."""
    if isinstance(ifaces, (str, IfaceInfo, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return [ifaces]
    specs = list(ifaces)
    if not specs:
        raise MulticastValueError("ifaces is empty; give at least one interface")
    return specs


def pick_interfaces(
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


def timeout_from(blocking: object, timeout: object) -> float | None:
    """Combine 1.2.0's ``blocking`` and 1.6.0's ``timeout`` (and 1.6.0's 7th positional timeout)."""
    if blocking is not None and not isinstance(blocking, bool):
        if timeout is not UNSET or not isinstance(blocking, (int, float)):
            check_bool(blocking, "blocking")  # raises: blocking="no" is not False
        timeout, blocking = blocking, None  # 1.6.0 order: the 7th argument is the timeout
    if timeout is UNSET:
        return None if blocking in (None, True) else 0.0
    if blocking is False:
        check_timeout(timeout)
        return 0.0
    return check_timeout(timeout)


def from_1_6_positions(
    seventh: object,
    timeout: object,
    more: tuple[object, ...],
    loopback: bool,
    iface: IfaceSpecifier | None,
    ifaces: Iterable[IfaceSpecifier] | None,
) -> tuple[Any, Any, Any, Any, Any]:
    """Arguments 8 to 11 follow 1.6.0: (blocking, enable_external_loopback, iface_ip, iface_ips);
    the 7th is then 1.6.0's timeout."""
    if len(more) > 4:
        raise TypeError(f"McastRxSocket() takes at most 11 positional arguments ({7 + len(more)} given)")
    if timeout is not UNSET:
        raise TypeError("McastRxSocket() got timeout both as the 7th positional argument (1.6.0) and by name")
    given = [*more, None, None, None][:4]
    if len(more) > 1:
        loopback = given[1]  # type: ignore[assignment]
    if given[2] is not None:
        if iface is not None:
            raise TypeError("McastRxSocket() got iface_ip both positionally (1.6.0) and as iface")
        iface = given[2]  # type: ignore[assignment]
    if given[3] is not None:
        if ifaces is not None:
            raise TypeError("McastRxSocket() got iface_ips both positionally (1.6.0) and as ifaces")
        ifaces = given[3]  # type: ignore[assignment]
    return given[0], seventh, loopback, iface, ifaces
