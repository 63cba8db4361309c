"""Windows: option numbers from ws2def.h, winsock2.h and ws2ipdef.h (Windows SDK; checked against
mingw-w64 and Microsoft's "IPPROTO_IP / IPPROTO_IPV6 socket options" pages)."""

from __future__ import annotations

import ctypes
import socket
import sys
import uuid
from collections.abc import Iterable
from typing import ClassVar

from .._errors import MulticastOSError
from . import _structs as st
from . import _winmsg
from ._host import Host
from ._io import DROPPED, DatagramIO, Dropped
from ._kinds import Action, Concern
from ._options import V4, V6, Address, Meta, Opt, OsOptions, Table, both, multicast_basics, source_options
from ._poller import Poller, Waker, WsaPoller

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
# ws2ipdef.h, RFC 3678 options at level IPPROTO_IPV6
MCAST_BLOCK_SOURCE = 43
MCAST_UNBLOCK_SOURCE = 44
MCAST_JOIN_SOURCE_GROUP = 45
# winerror.h
WSAEACCES = 10013
WSAEINVAL = 10022
WSAEMSGSIZE = 10040
WSAENETUNREACH = 10051


class WindowsMulticast(OsOptions):
    """Windows: receive sockets bind to the interface address; loopback acts on the receiver."""

    name = "Windows"
    OPTIONS: ClassVar[Table] = {
        **both(Concern.REUSEADDR, Opt(SOL_SOCKET, SO_REUSEADDR, st.INT)),
        **both(Concern.RCVBUF, Opt(SOL_SOCKET, SO_RCVBUF, st.INT)),
        **multicast_basics(
            (IPPROTO_IP, IP_MULTICAST_IF, IP_MULTICAST_TTL, IP_MULTICAST_LOOP, IP_ADD_MEMBERSHIP),
            (IPPROTO_IPV6, IPV6_MULTICAST_IF, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_LOOP, IPV6_ADD_MEMBERSHIP),
            if4=st.IN_ADDR_IFACE,
            join4=st.IP_MREQ,
        ),
        **source_options(
            (IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, IP_BLOCK_SOURCE, IP_UNBLOCK_SOURCE),
            (IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, MCAST_BLOCK_SOURCE, MCAST_UNBLOCK_SOURCE),
            shape4=st.IP_MREQ_SOURCE_GSI,
            shape6=st.GROUP_SOURCE_REQ6_WINDOWS,
        ),
        (Concern.PKTINFO, V4): Opt(IPPROTO_IP, _winmsg.IP_PKTINFO, st.INT),
        (Concern.PKTINFO, V6): Opt(IPPROTO_IPV6, _winmsg.IPV6_PKTINFO, st.INT),
    }
    RX_BIND_GROUP = False
    LOOP_ON_RECEIVER = True
    FILTER_BY_DESTINATION = True
    #: WSAEINVAL (winerror.h): what a disconnected adapter answers a join with.
    SKIPPABLE_EXTRA = frozenset({WSAEINVAL})

    def harmless_send_error(self, exc: OSError, iface_is_loopback: bool) -> bool:
        # WSAENETUNREACH on the loopback interface when no socket listens there: nothing is wrong.
        return iface_is_loopback and getattr(exc, "winerror", None) == WSAENETUNREACH

    def explain_oserror(
        self, exc: OSError, action: Action, family: int, where: str
    ) -> MulticastOSError | None:
        if getattr(exc, "winerror", None) == WSAEACCES:
            return MulticastOSError(
                exc.errno,
                f"{where} failed: access denied (WinError 10013): another program holds this port "
                "with SO_EXCLUSIVEADDRUSE, or a security policy forbids it; pick another port or stop "
                "that program",
            )
        return super().explain_oserror(exc, action, family, where)

    def tx_loopback(self, iface_is_loopback: bool, external_loopback: bool) -> bool:
        return True  # the receiving socket decides on Windows


class WindowsIO(DatagramIO):
    """Windows I/O: WSARecvMsg with IP_PKTINFO (the destination tells a group's datagrams from
    unicast to the interface address and port, which Windows also delivers to a socket bound
    there); non-blocking sockets (Winsock has no MSG_DONTWAIT); WSAPoll."""

    DONTWAIT = 0
    UNFILTERED = False

    @staticmethod
    def watch_copy(fd: int) -> int:
        """A socket handle, not a C runtime descriptor: watched as it is (os.dup takes only the latter)."""
        return fd

    @staticmethod
    def unwatch_copy(fd: int) -> None:
        """Nothing to let go of (see :meth:`watch_copy`)."""

    def _read(
        self, sock: socket.socket, bufsize: int, flags: int, group: str
    ) -> tuple[bytes, Address, bool] | Dropped:
        family = socket.AF_INET6 if sock.family == socket.AF_INET6 else socket.AF_INET
        data, src, truncated, dst = _winmsg.recv_with_destination(sock, bufsize, family, flags)
        if dst is not None and dst != group.split("%", maxsplit=1)[0]:
            return DROPPED  # sent to another address (unicast to the port): never delivered
        return data, src, truncated

    def recvfrom(
        self, sock: socket.socket, bufsize: int, flags: int, group: str
    ) -> tuple[bytes, Address] | Dropped:
        got = self._read(sock, bufsize, flags, group)
        if isinstance(got, Dropped):
            if flags:  # a peek left the foreign datagram queued: take it off
                self._read(sock, bufsize, 0, group)
            return got
        return got[0], got[1]

    def recv_packet(
        self, sock: socket.socket, bufsize: int, group: str
    ) -> tuple[bytes, Address, bool] | Dropped:
        return self._read(sock, bufsize, 0, group)

    def recv_packet_meta(
        self, sock: socket.socket, bufsize: int, family: int, group: str
    ) -> tuple[bytes, Address, bool, Meta] | Dropped:
        got = self._read(sock, bufsize, 0, group)
        if isinstance(got, Dropped):
            return got
        return got[0], got[1], got[2], (None, None, None)  # Windows has no TTL/TOS/time messages here

    def poller(self, fds: Iterable[int]) -> Poller:
        return WsaPoller(fds, Waker())


class WindowsHost(Host):
    """Windows host details: adapter GUIDs to indexes (iphlpapi)."""

    def iface_index(self, name: str) -> int:
        # netifaces names adapters by GUID: GUID -> LUID -> index (netioapi.h) works for IPv6-only
        # adapters too; GetAdapterIndex (IPv4 only) is the fallback.
        if sys.platform != "win32":
            raise OSError(f"interface index lookups by GUID exist only on Windows ({name!r})")
        iphlpapi = ctypes.WinDLL("iphlpapi")
        index = ctypes.c_ulong()
        try:
            guid = (ctypes.c_ubyte * 16).from_buffer_copy(uuid.UUID(name).bytes_le)
        except ValueError:
            guid = None
        if guid is not None:
            luid = ctypes.c_uint64()
            if iphlpapi.ConvertInterfaceGuidToLuid(ctypes.byref(guid), ctypes.byref(luid)) == 0 and (
                iphlpapi.ConvertInterfaceLuidToIndex(ctypes.byref(luid), ctypes.byref(index)) == 0
            ):
                return int(index.value)
        ret = iphlpapi.GetAdapterIndex(ctypes.c_wchar_p("\\DEVICE\\TCPIP_" + name), ctypes.byref(index))
        if ret != 0:
            raise OSError(ret, f"no interface index for {name!r} (GetAdapterIndex error {ret})")
        return int(index.value)
