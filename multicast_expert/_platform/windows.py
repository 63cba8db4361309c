"""Windows: option numbers from ws2ipdef.h; struct layouts from the Winsock documentation."""

from __future__ import annotations

import ctypes
import socket
import sys

from . import _structs as st
from ._base import OsMulticast

WSAEMSGSIZE = 10040


class WindowsMulticast(OsMulticast):
    """Windows: receive sockets bind to the interface address; loopback acts on the receiver."""

    name = "Windows"
    IP_ADD_SOURCE_MEMBERSHIP = 15
    IP_DROP_SOURCE_MEMBERSHIP = 16
    IP_BLOCK_SOURCE = 17
    IP_UNBLOCK_SOURCE = 18
    SOURCE_BEFORE_IFACE = True
    RX_BIND_GROUP = False
    LOOP_ON_RECEIVER = True

    @property
    def link_family(self) -> int:
        return -1000  # netifaces' AF_LINK on Windows

    def iface_index(self, name: str) -> int:
        # netifaces names adapters by GUID; GetAdapterIndex wants the \DEVICE\TCPIP_ prefix.
        if sys.platform != "win32":
            raise OSError(f"GetAdapterIndex({name!r}) exists only on Windows")
        windll = ctypes.WinDLL
        get_adapter_index = windll("iphlpapi").GetAdapterIndex
        index = ctypes.c_ulong()
        ret = get_adapter_index(ctypes.c_wchar_p("\\DEVICE\\TCPIP_" + name), ctypes.byref(index))
        if ret != 0:
            raise OSError(ret, f"GetAdapterIndex({name!r}) failed")
        return int(index.value)

    def tx_loopback(self, iface_is_loopback: bool, external_loopback: bool) -> bool:
        return True  # the receiving socket decides on Windows

    def set_multicast_if(self, sock: socket.socket, family: int, iface_ip: str, ifindex: int) -> None:
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, st.in_addr(iface_ip))
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)

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
