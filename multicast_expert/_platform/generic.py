"""Any other OS: a deliberately conservative table.

Only the standard options that this Python's own ``socket`` module defines (so their numbers are
this OS's) are used: any-source joins, the multicast interface, TTL and loopback. Source-specific
multicast, source blocking and tying a socket to an interface report "not supported".
"""

from __future__ import annotations

import socket
import sys
from typing import ClassVar

from . import _structs as st
from ._kinds import Concern
from ._options import V4, V6, Opt, OsOptions, Table


def _table() -> Table:
    wanted: dict[tuple[Concern, int], tuple[str, str, st.Shape]] = {
        (Concern.REUSEADDR, V4): ("SOL_SOCKET", "SO_REUSEADDR", st.INT),
        (Concern.REUSEADDR, V6): ("SOL_SOCKET", "SO_REUSEADDR", st.INT),
        (Concern.RCVBUF, V4): ("SOL_SOCKET", "SO_RCVBUF", st.INT),
        (Concern.RCVBUF, V6): ("SOL_SOCKET", "SO_RCVBUF", st.INT),
        (Concern.MULTICAST_IF, V4): ("IPPROTO_IP", "IP_MULTICAST_IF", st.IN_ADDR_IFACE),
        (Concern.MULTICAST_IF, V6): ("IPPROTO_IPV6", "IPV6_MULTICAST_IF", st.IFINDEX),
        (Concern.MULTICAST_TTL, V4): ("IPPROTO_IP", "IP_MULTICAST_TTL", st.INT),
        (Concern.MULTICAST_TTL, V6): ("IPPROTO_IPV6", "IPV6_MULTICAST_HOPS", st.INT),
        (Concern.MULTICAST_LOOP, V4): ("IPPROTO_IP", "IP_MULTICAST_LOOP", st.INT),
        (Concern.MULTICAST_LOOP, V6): ("IPPROTO_IPV6", "IPV6_MULTICAST_LOOP", st.INT),
        (Concern.JOIN, V4): ("IPPROTO_IP", "IP_ADD_MEMBERSHIP", st.IP_MREQ),
        (Concern.JOIN, V6): ("IPPROTO_IPV6", "IPV6_JOIN_GROUP", st.IPV6_MREQ),
    }
    table: Table = {}
    for key, (level, name, shape) in wanted.items():
        lv, num = getattr(socket, level, None), getattr(socket, name, None)
        if isinstance(lv, int) and isinstance(num, int):
            table[key] = Opt(lv, num, shape)
    return table


class GenericMulticast(OsOptions):
    """An OS this library has no table for: standard options only, from this Python's socket module."""

    OPTIONS: ClassVar[Table] = _table()

    def __init__(self, platform: str = sys.platform) -> None:
        self.name = f"this OS (sys.platform={platform!r}, which multicast_expert has no table for)"
