"""Names that multicast_expert 1.2.0 exported from its socket modules (``rx_socket``,
``tx_socket``), gathered here so those modules re-export them from one place."""

from __future__ import annotations

from .._packet import PacketAndSenderAddress
from .._platform import is_mac, is_windows
from .._validate import LOCALHOST_IPV4, LOCALHOST_IPV6, IPv4Or6Address, validate_mcast_ip
from ..interfaces import get_default_gateway_iface_ip, get_interface_ips

__all__ = [
    "LOCALHOST_IPV4",
    "LOCALHOST_IPV6",
    "IPv4Or6Address",
    "PacketAndSenderAddress",
    "get_default_gateway_iface_ip",
    "get_interface_ips",
    "is_mac",
    "is_windows",
    "validate_mcast_ip",
]
