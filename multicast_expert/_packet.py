"""What a receive returns: :class:`McastPacket`, and 1.6.0's names for the plain form."""

from __future__ import annotations

from typing import NamedTuple

from ._validate import IPv4Or6Address


class McastPacket(NamedTuple):
    """One received datagram with where it came from and how it arrived."""

    payload: bytes
    #: The sender's address, as recvfrom() returns it.
    src: IPv4Or6Address
    #: The multicast group the datagram was sent to.
    group: str
    #: Index of the interface it arrived on.
    iface_index: int
    #: True if the datagram was longer than the buffer and was cut short.
    truncated: bool
    #: IPv4 TTL / IPv6 hop limit it arrived with (``recv_ttl=True``; None otherwise or unsupported).
    ttl: int | None = None
    #: IPv4 TOS / IPv6 traffic class (``recv_tos=True``; None otherwise or unsupported).
    tos: int | None = None
    #: Kernel receive time, seconds since the epoch (``timestamps=True``; None otherwise).
    timestamp: float | None = None


#: 1.6.0: the receive size its asyncio socket used.
DEFAULT_RX_BUFSIZE = 4096
#: 1.6.0: what ``recvfrom()`` returns, ``(payload, sender address)``.
PacketAndSenderAddress = tuple[bytes, IPv4Or6Address]


__all__ = ["DEFAULT_RX_BUFSIZE", "McastPacket", "PacketAndSenderAddress"]
