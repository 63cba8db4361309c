"""Compatibility module: the 1.2.0 ``os_multicast`` helpers, kept for programs that call them.

Nothing inside the package imports it. The helpers delegate to the per-OS layer
(``multicast_expert._platform``), so they use the same option numbers and struct layouts as the
socket classes.
"""

from __future__ import annotations

import ipaddress
import socket

from . import _platform
from ._compat.values import LegacyIfaceInfo
from ._errors import MulticastExpertError, UnknownInterfaceError
from ._platform import Concern, _structs, is_mac, is_windows
from ._platform._structs import Target
from ._validate import MulticastAddress, normalize_mcast_ip, normalize_source_ip
from .interfaces import find_interface, iface_name_to_index

#: 1.2.0's interface record (the class is ``LegacyIfaceInfo``, kept apart from
#: :class:`multicast_expert.IfaceInfo` so the package has one class of that name).
IfaceInfo = LegacyIfaceInfo


def iface_ip_to_name(iface_ip: str) -> str:
    """The name of the interface holding ``iface_ip``.

    Raises:
        UnknownInterfaceError: (a MulticastExpertError and KeyError) no interface holds it.
    """
    try:
        ipaddress.ip_address(iface_ip)
        return find_interface(iface_ip).machine_name
    except (MulticastExpertError, ValueError, TypeError) as exc:
        raise UnknownInterfaceError(
            f"Could not find network address with local IP {iface_ip!r}: {exc}"
        ) from None


def get_iface_info(iface_ip: str) -> IfaceInfo:
    """An :class:`IfaceInfo` for the interface holding ``iface_ip``."""
    name = iface_ip_to_name(iface_ip)
    return IfaceInfo(iface_ip, name, iface_name_to_index(name))


def make_ip_mreqn_struct(mcast_addr: str, iface_info: IfaceInfo) -> bytes:
    """A Linux ``ip_mreqn`` (group, interface address, interface index): 12 bytes."""
    return _structs.ip_mreqn(mcast_addr, iface_info.iface_ip, iface_info.iface_idx)


def make_ipv6_mreq_struct(mcast_ip: str, iface_info: IfaceInfo) -> bytes:
    """An ``ipv6_mreq`` (group, interface index): 20 bytes."""
    return _structs.ipv6_mreq(mcast_ip, iface_info.iface_idx)


def set_multicast_if(
    mcast_socket: socket.socket, mcast_ips: list[str], iface_info: IfaceInfo, addr_family: int
) -> None:
    """Set IP_MULTICAST_IF / IPV6_MULTICAST_IF so multicast leaves by ``iface_info``."""
    _platform.OPS.set(mcast_socket, Concern.MULTICAST_IF, addr_family, _target(iface_info))


def add_memberships(
    mcast_socket: socket.socket, mcast_ips: list[MulticastAddress], iface_info: IfaceInfo, addr_family: int
) -> None:
    """Join each group (any source) on the interface."""
    for ip in mcast_ips:
        group = normalize_mcast_ip(ip, addr_family)
        _platform.OPS.set(mcast_socket, Concern.JOIN, addr_family, _target(iface_info, group))


def add_source_specific_memberships(
    mcast_socket: socket.socket,
    mcast_ips: list[MulticastAddress],
    source_ips: list[MulticastAddress],
    iface_info: IfaceInfo,
) -> None:
    """Join each (group, source) pair on the interface (the family follows the interface IP)."""
    family = socket.AF_INET6 if ":" in iface_info.iface_ip else socket.AF_INET
    ops = _platform.OPS
    ops.require(Concern.JOIN_SOURCE, family)
    for ip in mcast_ips:
        group = normalize_mcast_ip(ip, family)
        for src in source_ips:
            source = normalize_source_ip(src, family)
            ops.set(
                mcast_socket, Concern.JOIN_SOURCE, family, _target(iface_info, group)._replace(source=source)
            )


def _target(iface_info: IfaceInfo, group: str = "") -> Target:
    return Target(
        group=group, iface_ip=iface_info.iface_ip, ifindex=iface_info.iface_idx, ifname=iface_info.iface_name
    )


__all__ = [
    "IfaceInfo",
    "add_memberships",
    "add_source_specific_memberships",
    "get_iface_info",
    "iface_ip_to_name",
    "iface_name_to_index",
    "is_mac",
    "is_windows",
    "make_ip_mreqn_struct",
    "make_ipv6_mreq_struct",
    "set_multicast_if",
]
