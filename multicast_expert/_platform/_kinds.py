"""The closed vocabularies of the per-OS layer: what an option is for (:class:`Concern`) and what
the library was doing when the OS refused (:class:`Action`, which picks the error advice).

Layering rule: a leaf of ``_platform``; enums only.
"""

from __future__ import annotations

import enum


class Concern(enum.Enum):
    """What a socket option is for. Each OS's table maps ``(Concern, family)`` to its option; the
    value is how errors name the concern ("... is not supported on <OS>")."""

    REUSEADDR = "SO_REUSEADDR"
    REUSEPORT = "SO_REUSEPORT"
    RCVBUF = "setting the receive buffer size"
    BIND_DEVICE = "tying a socket to an interface"
    MULTICAST_ALL = "IP_MULTICAST_ALL"
    MULTICAST_IF = "choosing the sending interface"
    MULTICAST_TTL = "setting the multicast TTL / hop limit"
    MULTICAST_LOOP = "multicast loopback"
    JOIN = "joining a group"
    JOIN_SOURCE = "source-specific multicast"
    BLOCK_SOURCE = "source blocking"
    UNBLOCK_SOURCE = "source unblocking"
    RECV_TTL = "receiving each datagram's TTL / hop limit"
    RECV_TOS = "receiving each datagram's TOS / traffic class"
    TIMESTAMPS = "kernel receive timestamps"
    PKTINFO = "reading each datagram's destination address"


#: The per-datagram metadata concerns (McastRxSocket's recv_ttl, recv_tos, timestamps). Where an OS
#: lacks one, the packet field stays None: the one documented exception to "refused at construction".
METADATA = (Concern.RECV_TTL, Concern.RECV_TOS, Concern.TIMESTAMPS)


class Action(enum.Enum):
    """What the library was doing when an OS call failed; chooses the advice in the error."""

    OPEN_RX = "open_rx"  # creating, configuring and joining a receive socket (any-source)
    JOIN_SOURCE = "join_source"  # the same with sources (source-specific multicast)
    BLOCK_SOURCE = "block_source"
    UNBLOCK_SOURCE = "unblock_source"
    OPEN_TX = "open_tx"
    SEND = "send"
    WAIT = "wait"  # setting up a receive's wait: the poller, its wake-up descriptor, a loop's watch
