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
from ._table import V4, V6, Opt, OsTable


def _table() -> dict[tuple[str, int], Opt]:
    wanted: dict[tuple[str, int], tuple[str, str, st.Shape]] = {
        ("reuseaddr", V4): ("SOL_SOCKET", "SO_REUSEADDR", st.INT),
        ("reuseaddr", V6): ("SOL_SOCKET", "SO_REUSEADDR", st.INT),
        ("rcvbuf", V4): ("SOL_SOCKET", "SO_RCVBUF", st.INT),
        ("rcvbuf", V6): ("SOL_SOCKET", "SO_RCVBUF", st.INT),
        ("multicast_if", V4): ("IPPROTO_IP", "IP_MULTICAST_IF", st.IN_ADDR_IFACE),
        ("multicast_if", V6): ("IPPROTO_IPV6", "IPV6_MULTICAST_IF", st.IFINDEX),
        ("multicast_ttl", V4): ("IPPROTO_IP", "IP_MULTICAST_TTL", st.INT),
        ("multicast_ttl", V6): ("IPPROTO_IPV6", "IPV6_MULTICAST_HOPS", st.INT),
        ("multicast_loop", V4): ("IPPROTO_IP", "IP_MULTICAST_LOOP", st.INT),
        ("multicast_loop", V6): ("IPPROTO_IPV6", "IPV6_MULTICAST_LOOP", st.INT),
        ("join", V4): ("IPPROTO_IP", "IP_ADD_MEMBERSHIP", st.IP_MREQ),
        ("join", V6): ("IPPROTO_IPV6", "IPV6_JOIN_GROUP", st.IPV6_MREQ),
    }
    table: dict[tuple[str, int], Opt] = {}
    for key, (level, name, shape) in wanted.items():
        lv, num = getattr(socket, level, None), getattr(socket, name, None)
        if isinstance(lv, int) and isinstance(num, int):
            table[key] = Opt(lv, num, shape)
    return table


class GenericMulticast(OsTable):
    """An OS this library has no table for: standard options only, from this Python's socket module."""

    OPTIONS: ClassVar[dict[tuple[str, int], Opt]] = _table()

    def __init__(self, platform: str = sys.platform) -> None:
        self.name = f"this OS (sys.platform={platform!r}, which multicast_expert has no table for)"
