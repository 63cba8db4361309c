"""multicast_expert: IP multicast sockets that do the right thing on Linux, macOS and Windows.

Layers, each importing only those before it: ``_errors`` -> ``_validate`` -> ``_platform`` (per-OS
tables) -> ``interfaces`` -> ``_engine`` / ``_sockbase`` / ``_membership`` -> ``rx_socket``,
``tx_socket`` -> ``aio`` -> ``cli``. ``utils`` and ``os_multicast`` are 1.2.0 compatibility
modules; ``testing`` builds private test networks (imported on first use, as
``multicast_expert.testing``). The library logs to ``logging.getLogger("multicast_expert")``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import os_multicast as os_multicast
from . import rx_socket as rx_socket
from . import tx_socket as tx_socket
from . import utils as utils
from ._accel import ACCELERATED as ACCELERATED
from ._errors import MulticastExpertError as MulticastExpertError
from ._errors import MulticastOSError as MulticastOSError
from ._errors import MulticastPortError as MulticastPortError
from ._errors import MulticastSendError as MulticastSendError
from ._errors import MulticastValueError as MulticastValueError
from ._errors import SocketClosedError as SocketClosedError
from ._validate import LOCALHOST_IPV4 as LOCALHOST_IPV4
from ._validate import LOCALHOST_IPV6 as LOCALHOST_IPV6
from ._validate import IPv4Or6Address as IPv4Or6Address
from ._validate import MulticastAddress as MulticastAddress
from ._validate import validate_mcast_ip as validate_mcast_ip
from .aio import AsyncMcastRxSocket as AsyncMcastRxSocket
from .aio import AsyncMcastTxSocket as AsyncMcastTxSocket
from .interfaces import IfaceInfo as IfaceInfo
from .interfaces import IfaceSpecifier as IfaceSpecifier
from .interfaces import find_interfaces as find_interfaces
from .interfaces import get_default_gateway_iface as get_default_gateway_iface
from .interfaces import get_default_gateway_iface_ip as get_default_gateway_iface_ip
from .interfaces import get_default_gateway_iface_ip_v4 as get_default_gateway_iface_ip_v4
from .interfaces import get_default_gateway_iface_ip_v6 as get_default_gateway_iface_ip_v6
from .interfaces import get_interface_ips as get_interface_ips
from .interfaces import scan_interfaces as scan_interfaces
from .rx_socket import McastPacket as McastPacket
from .rx_socket import McastRxSocket as McastRxSocket
from .tx_socket import McastTxSocket as McastTxSocket

__version__ = "2.0.0"

__all__ = [
    "ACCELERATED",
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
    "MulticastOSError",
    "MulticastPortError",
    "MulticastSendError",
    "MulticastValueError",
    "SocketClosedError",
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

if TYPE_CHECKING:
    from . import testing as testing
else:

    def __getattr__(name: str) -> object:
        """``multicast_expert.testing`` after a plain ``import multicast_expert``, imported on first
        use (it is for tests only, so ordinary programs never load it)."""
        if name == "testing":
            return importlib.import_module(".testing", __name__)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
