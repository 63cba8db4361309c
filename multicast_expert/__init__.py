"""multicast_expert: IP multicast sockets that do the right thing on Linux, macOS and Windows."""

from __future__ import annotations

from . import os_multicast as os_multicast
from . import rx_socket as rx_socket
from . import tx_socket as tx_socket
from . import utils as utils
from .aio import AsyncMcastRxSocket as AsyncMcastRxSocket
from .aio import AsyncMcastTxSocket as AsyncMcastTxSocket
from .interfaces import IfaceInfo as IfaceInfo
from .interfaces import IfaceSpecifier as IfaceSpecifier
from .interfaces import find_interfaces as find_interfaces
from .interfaces import get_default_gateway_iface as get_default_gateway_iface
from .interfaces import scan_interfaces as scan_interfaces
from .rx_socket import McastPacket as McastPacket
from .rx_socket import McastRxSocket as McastRxSocket
from .tx_socket import McastTxSocket as McastTxSocket
from .utils import LOCALHOST_IPV4 as LOCALHOST_IPV4
from .utils import LOCALHOST_IPV6 as LOCALHOST_IPV6
from .utils import IPv4Or6Address as IPv4Or6Address
from .utils import MulticastAddress as MulticastAddress
from .utils import MulticastExpertError as MulticastExpertError
from .utils import get_default_gateway_iface_ip as get_default_gateway_iface_ip
from .utils import get_default_gateway_iface_ip_v4 as get_default_gateway_iface_ip_v4
from .utils import get_default_gateway_iface_ip_v6 as get_default_gateway_iface_ip_v6
from .utils import get_interface_ips as get_interface_ips
from .utils import validate_mcast_ip as validate_mcast_ip

__version__ = "2.0.0"

__all__ = [
    "LOCALHOST_IPV4",
    "LOCALHOST_IPV6",
    "AsyncMcastRxSocket",
    "AsyncMcastTxSocket",
    "IPv4Or6Address",
    "IfaceInfo",
    "IfaceSpecifier",
    "McastPacket",
    "McastRxSocket",
    "McastTxSocket",
    "MulticastAddress",
    "MulticastExpertError",
    "find_interfaces",
    "get_default_gateway_iface",
    "get_default_gateway_iface_ip",
    "get_default_gateway_iface_ip_v4",
    "get_default_gateway_iface_ip_v6",
    "get_interface_ips",
    "os_multicast",
    "rx_socket",
    "scan_interfaces",
    "tx_socket",
    "utils",
    "validate_mcast_ip",
]
