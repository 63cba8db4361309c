"""Windows: option numbers from ws2def.h, winsock2.h and ws2ipdef.h (Windows SDK; checked against
mingw-w64 and Microsoft's "IPPROTO_IP / IPPROTO_IPV6 socket options" pages)."""

from __future__ import annotations

import ctypes
import socket
import sys
from typing import ClassVar

from . import _structs as st
from ._table import V4, Opt, OsTable, both, multicast_basics

# winsock2.h
SOL_SOCKET = 0xFFFF
SO_REUSEADDR = 0x0004
SO_RCVBUF = 0x1002
# ws2ipdef.h
IPPROTO_IP = 0
IP_MULTICAST_IF = 9
IP_MULTICAST_TTL = 10
IP_MULTICAST_LOOP = 11
IP_ADD_MEMBERSHIP = 12
IP_ADD_SOURCE_MEMBERSHIP = 15
IP_BLOCK_SOURCE = 17
IP_UNBLOCK_SOURCE = 18
IPPROTO_IPV6 = 41
IPV6_MULTICAST_IF = 9
IPV6_MULTICAST_HOPS = 10
IPV6_MULTICAST_LOOP = 11
IPV6_ADD_MEMBERSHIP = 12
# winerror.h
WSAEMSGSIZE = 10040


class WindowsMulticast(OsTable):
    """Windows: receive sockets bind to the interface address; loopback acts on the receiver."""

    name = "Windows"
    OPTIONS: ClassVar[dict[tuple[str, int], Opt]] = {
        **both("reuseaddr", Opt(SOL_SOCKET, SO_REUSEADDR, st.INT)),
        **both("rcvbuf", Opt(SOL_SOCKET, SO_RCVBUF, st.INT)),
        **multicast_basics(
            (IPPROTO_IP, IP_MULTICAST_IF, IP_MULTICAST_TTL, IP_MULTICAST_LOOP, IP_ADD_MEMBERSHIP),
            (IPPROTO_IPV6, IPV6_MULTICAST_IF, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_LOOP, IPV6_ADD_MEMBERSHIP),
            if4=st.IN_ADDR_IFACE,
            join4=st.IP_MREQ,
        ),
        ("join_source", V4): Opt(IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, st.IP_MREQ_SOURCE_GSI),
        ("block_source", V4): Opt(IPPROTO_IP, IP_BLOCK_SOURCE, st.IP_MREQ_SOURCE_GSI),
        ("unblock_source", V4): Opt(IPPROTO_IP, IP_UNBLOCK_SOURCE, st.IP_MREQ_SOURCE_GSI),
    }
    RX_BIND_GROUP = False
    LOOP_ON_RECEIVER = True

    @property
    def link_family(self) -> int:
        return -1000  # netifaces' AF_LINK on Windows

    def iface_index(self, name: str) -> int:
        # netifaces names adapters by GUID; GetAdapterIndex wants the \DEVICE\TCPIP_ prefix.
        if sys.platform != "win32":
            raise OSError(f"GetAdapterIndex({name!r}) exists only on Windows")
        get_adapter_index = ctypes.WinDLL("iphlpapi").GetAdapterIndex
        index = ctypes.c_ulong()
        ret = get_adapter_index(ctypes.c_wchar_p("\\DEVICE\\TCPIP_" + name), ctypes.byref(index))
        if ret != 0:
            raise OSError(ret, f"GetAdapterIndex({name!r}) failed")
        return int(index.value)

    def tx_loopback(self, iface_is_loopback: bool, external_loopback: bool) -> bool:
        return True  # the receiving socket decides on Windows

    def recv_packet(
        self, sock: socket.socket, bufsize: int
    ) -> tuple[bytes, tuple[str, int] | tuple[str, int, int, int], bool]:
        # Winsock has no recvmsg() in Python; a too-small buffer fails with WSAEMSGSIZE.
        try:
            data, addr = sock.recvfrom(bufsize)
        except OSError as exc:
            if getattr(exc, "winerror", None) != WSAEMSGSIZE:
                raise
            return b"", ("", 0), True
        return data, addr, False
