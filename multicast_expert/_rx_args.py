"""Constructor arguments turned into checked values: sources and interfaces.

Layering rule: validation and interface lookup only; no sockets are opened here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from . import _platform
from ._errors import MulticastExpertError, MulticastValueError
from ._platform import Concern
from ._validate import (
    MulticastAddress,
    dedupe,
    family_name,
    normalize_ip_list,
    normalize_source_ip,
)
from .interfaces import IfaceInfo, IfaceSpecifier, listenable_interfaces, rescan_interfaces, resolve_iface


def parse_sources(source_ips: Iterable[MulticastAddress] | None, family: int) -> tuple[str, ...]:
    """Validated, de-duplicated sources; empty (any-source) for None or an empty list."""
    if source_ips is None:
        return ()
    items = normalize_ip_list(source_ips, "source_ips", allow_empty=True)
    if not items:
        return ()
    _platform.OPS.require(Concern.JOIN_SOURCE, family)
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
    if iface_ips is None and ifaces is None:  # (the common cases: one interface, or the default set)
        single = iface if iface_ip is None else iface_ip if iface is None else None
        if single is not None:
            return [resolve_iface(single, family)]
        if iface_ip is None:  # (and iface is None: nothing named)
            return default_set(family)
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
        return default_set(family)
    chosen: dict[int, IfaceInfo] = {}
    for spec in specs:
        info = resolve_iface(spec, family)
        chosen.setdefault(info.index, info)
    return list(chosen.values())


def default_set(family: int, *, rescan: bool = False) -> list[IfaceInfo]:
    """Every non-loopback interface with an address of ``family`` (a fresh list; ``rescan``: as
    the machine has them now, else as last scanned)."""
    if rescan:
        rescan_interfaces()
    found = listenable_interfaces(family)
    if not found:
        raise MulticastExpertError(
            f"Unable to discover any listenable interfaces: no non-loopback interface has an "
            f"{family_name(family)} address. Pass iface_ip (e.g. the loopback address) to choose one"
        )
    return found
