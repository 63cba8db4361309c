"""Compatibility module: the names multicast_expert 1.2.0 (and 1.6.0) defined in ``utils``.

Nothing inside the package imports it; new code imports from ``multicast_expert`` directly.
"""

from __future__ import annotations

from ._errors import MulticastExpertError
from ._platform import is_mac, is_windows
from ._validate import (
    LOCALHOST_IPV4,
    LOCALHOST_IPV6,
    IPv4Or6Address,
    MulticastAddress,
    validate_mcast_ip,
)
from .interfaces import (
    get_default_gateway_iface_ip,
    get_default_gateway_iface_ip_v4,
    get_default_gateway_iface_ip_v6,
    get_interface_ips,
    ip_interface_to_ip_string,
)

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
