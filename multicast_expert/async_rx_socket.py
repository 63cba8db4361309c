"""Compatibility module: multicast_expert 1.6.0's ``async_rx_socket`` names.

Nothing inside the package imports it; new code imports from ``multicast_expert``.
"""

from __future__ import annotations

from .aio import AsyncMcastRxSocket
from .rx_socket import DEFAULT_RX_BUFSIZE, BaseMcastRxSocket, PacketAndSenderAddress

__all__ = ["DEFAULT_RX_BUFSIZE", "AsyncMcastRxSocket", "BaseMcastRxSocket", "PacketAndSenderAddress"]
