"""Compatibility module: the names multicast_expert 1.2.0 (and 1.6.0) defined in ``utils``.

Nothing inside the package imports it; new code imports from ``multicast_expert`` directly.
"""

from __future__ import annotations

import sys

from ._errors import MulticastExpertError
from ._validate import (
    LOCALHOST_IPV4,
    LOCALHOST_IPV6,
    IPv4Or6Address,
    MulticastAddress,
    check_family,
    normalize_mcast_ip,
)
from .interfaces import (
    get_default_gateway_iface_ip,
    get_default_gateway_iface_ip_v4,
    get_default_gateway_iface_ip_v6,
    get_interface_ips,
    ip_interface_to_ip_string,
)

#: True on Windows (1.2.0).
is_windows = sys.platform == "win32"
#: True on macOS (1.2.0).
is_mac = sys.platform == "darwin"


def validate_mcast_ip(mcast_ip: MulticastAddress, addr_family: int) -> None:
    """Raise MulticastExpertError unless ``mcast_ip`` is a multicast group of ``addr_family``.

    Raises:
        MulticastExpertError: not a multicast address, wrong family, or malformed (the last two
            are also ValueErrors).
        TypeError: ``mcast_ip`` is not a string or ipaddress object.
    """
    normalize_mcast_ip(mcast_ip, check_family(addr_family))


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
    "ip_interface_to_ip_string",
    "is_mac",
    "is_windows",
    "validate_mcast_ip",
]
