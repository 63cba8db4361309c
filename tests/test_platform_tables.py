"""Windows and macOS paths, checked on any host by recording every socket call and its bytes.

The socket classes are run unchanged with the per-OS table swapped (in one place, ``_platform.OPS``)
and ``socket.socket`` replaced by a recorder, so these tests also show that the classes themselves
have no platform branches. Option numbers are each OS's own, from its headers.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import ipaddress
import socket
import struct
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from helpers import V4, V6

import multicast_expert as me
from multicast_expert import _platform
from multicast_expert._platform import _mmsg, _sendmmsg, darwin, linux, windows

IPPROTO_IP, IPPROTO_IPV6, SOL_SOCKET = socket.IPPROTO_IP, socket.IPPROTO_IPV6, socket.SOL_SOCKET


class Recorder:
    """Stands in for socket.socket; logs calls into a shared list."""

    log: ClassVar[list[tuple[Any, ...]]] = []
    _next_fd = 1000

    def __init__(self, family: int, kind: int, proto: int = 0, fileno: int | None = None) -> None:
        self.family, self.type, self.proto = family, kind, proto
        if fileno is not None:  # the library's reader object on an existing descriptor
            self._fd = fileno
            return
        Recorder._next_fd += 1
        self._fd = Recorder._next_fd
        self.log.append(("socket", family, kind))

    def gettimeout(self) -> float | None:
        return None

    def detach(self) -> int:
        return self._fd

    def setsockopt(self, level: int, opt: int, value: Any) -> None:
        self.log.append(("setsockopt", level, opt, value))

    def bind(self, addr: Any) -> None:
        self.log.append(("bind", addr))

    def setblocking(self, flag: bool) -> None:
        pass

    def settimeout(self, t: Any) -> None:
        pass

    def fileno(self) -> int:
        return self._fd

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        self.log.append(("close",))


ETH = me.IfaceInfo(
    "eth7",
    7,
    "02:00:00:00:00:07",
    (ipaddress.IPv4Interface("198.18.7.1/24"),),
    (ipaddress.IPv6Interface("2001:db8:7::1/64"),),
)


@pytest.fixture
def record(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    Recorder.log = []

    def use(ops: _platform.OsTable) -> list[tuple[Any, ...]]:
        monkeypatch.setattr(_platform, "OPS", ops)  # the one place the socket classes read it
        monkeypatch.setattr(socket, "socket", Recorder)
        return Recorder.log

    yield use


def calls(log: list[tuple[Any, ...]], kind: str) -> list[tuple[Any, ...]]:
    return [c for c in log if c[0] == kind]


def test_platform_chosen_from_sys_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    assert type(_platform.select_os("win32")) is windows.WindowsMulticast
    assert type(_platform.select_os("darwin")) is darwin.DarwinMulticast
    assert type(_platform.select_os("linux")) is linux.LinuxMulticast

    monkeypatch.setattr(sys, "platform", "win32")
    reloaded = importlib.reload(_platform)
    try:
        assert reloaded.OPS.name == "Windows"
    finally:
        monkeypatch.undo()
        importlib.reload(_platform)


def test_windows_rx_ipv4_binds_interface_and_uses_ip_mreq(record: Any) -> None:
    log = record(windows.WindowsMulticast())
    with me.McastRxSocket(V4, ["239.1.2.3"], 5000, iface=ETH):
        pass
    assert calls(log, "bind") == [("bind", ("198.18.7.1", 5000))]
    sets = calls(log, "setsockopt")
    # Windows' own numbers (winsock2.h, ws2ipdef.h), not the host's socket module's.
    assert ("setsockopt", 0xFFFF, 4, 1) in sets  # SOL_SOCKET, SO_REUSEADDR
    assert ("setsockopt", IPPROTO_IP, 11, 0) in sets  # IP_MULTICAST_LOOP: receiver-side loop
    join = [c for c in sets if c[2] == 12]  # IP_ADD_MEMBERSHIP
    assert join == [("setsockopt", IPPROTO_IP, 12, bytes([239, 1, 2, 3, 198, 18, 7, 1]))]
    assert ("setsockopt", IPPROTO_IP, 19, 1) in sets  # IP_PKTINFO: each datagram's destination


def test_windows_ssm_ipv4_struct_order_and_option(record: Any) -> None:
    log = record(windows.WindowsMulticast())
    with me.McastRxSocket(V4, ["232.1.1.1"], 5000, iface=ETH, source_ips=["198.18.7.9"]):
        pass
    ssm = [c for c in calls(log, "setsockopt") if c[2] == 15]
    # ip_mreq_source on Windows: imr_multiaddr, imr_sourceaddr, imr_interface
    assert ssm == [("setsockopt", IPPROTO_IP, 15, bytes([232, 1, 1, 1, 198, 18, 7, 9, 198, 18, 7, 1]))]


def _v6(ip: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, ip)


def test_windows_ipv6_source_specific_and_blocking(record: Any) -> None:
    """GROUP_SOURCE_REQ on Windows x64 (ws2ipdef.h): ULONG interface + 4 pad, then two 128-byte
    SOCKADDR_STORAGE holding SOCKADDR_IN6 with family 23 (little endian); 264 bytes."""
    log = record(windows.WindowsMulticast())
    with me.McastRxSocket(V6, ["ff35::1"], 5000, iface=ETH, source_ips=["2001:db8:7::9"]):
        pass
    with me.McastRxSocket(V6, ["ff15::2"], 5000, iface=ETH) as rx:
        rx.block_source("ff15::2", "2001:db8:7::8")
        rx.unblock_source("ff15::2", "2001:db8:7::8")
    sets = calls(log, "setsockopt")
    joins = [c for c in sets if c[1] == IPPROTO_IPV6 and c[2] == 45]  # MCAST_JOIN_SOURCE_GROUP
    blocks = [c for c in sets if c[1] == IPPROTO_IPV6 and c[2] == 43]  # MCAST_BLOCK_SOURCE
    unblocks = [c for c in sets if c[1] == IPPROTO_IPV6 and c[2] == 44]  # MCAST_UNBLOCK_SOURCE
    assert len(joins) == len(blocks) == len(unblocks) == 1
    raw = joins[0][3]
    assert len(raw) == 264
    assert raw[:8] == struct.pack("<I", 7) + bytes(4)
    assert raw[8:36] == struct.pack("<HHI", 23, 0, 0) + _v6("ff35::1") + struct.pack("<I", 0)
    assert raw[36:136] == bytes(100)
    assert raw[136:164] == struct.pack("<HHI", 23, 0, 0) + _v6("2001:db8:7::9") + bytes(4)
    assert raw[164:] == bytes(100)
    assert blocks[0][3][136:164] == struct.pack("<HHI", 23, 0, 0) + _v6("2001:db8:7::8") + bytes(4)


def test_macos_ipv6_source_specific_and_blocking(record: Any) -> None:
    """struct group_source_req on macOS (#pragma pack(4)): u32 interface, group at 4, source at
    132; BSD sockaddr_in6 starts with its length (28) and family (30); 260 bytes."""
    log = record(darwin.DarwinMulticast())
    with me.McastRxSocket(V6, ["ff35::1"], 5000, iface=ETH, source_ips=["2001:db8:7::9"]):
        pass
    with me.McastRxSocket(V6, ["ff15::2"], 5000, iface=ETH) as rx:
        rx.block_source("ff15::2", "2001:db8:7::8")
        rx.unblock_source("ff15::2", "2001:db8:7::8")
    sets = calls(log, "setsockopt")
    joins = [c for c in sets if c[1] == IPPROTO_IPV6 and c[2] == 82]  # MCAST_JOIN_SOURCE_GROUP
    blocks = [c for c in sets if c[1] == IPPROTO_IPV6 and c[2] == 84]  # MCAST_BLOCK_SOURCE
    unblocks = [c for c in sets if c[1] == IPPROTO_IPV6 and c[2] == 85]  # MCAST_UNBLOCK_SOURCE
    assert len(joins) == len(blocks) == len(unblocks) == 1
    raw = joins[0][3]
    assert len(raw) == 260
    assert raw[:4] == struct.pack("=I", 7)
    assert raw[4:32] == bytes([28, 30, 0, 0, 0, 0, 0, 0]) + _v6("ff35::1") + bytes(4)
    assert raw[32:132] == bytes(100)
    assert raw[132:160] == bytes([28, 30, 0, 0, 0, 0, 0, 0]) + _v6("2001:db8:7::9") + bytes(4)
    assert raw[160:] == bytes(100)
    assert blocks[0][3][132:160] == bytes([28, 30, 0, 0, 0, 0, 0, 0]) + _v6("2001:db8:7::8") + bytes(4)


def test_windows_tx_ipv4_and_ipv6(record: Any) -> None:
    log = record(windows.WindowsMulticast())
    with me.McastTxSocket(V4, ["239.1.2.3"], ETH, ttl=5):
        pass
    assert calls(log, "bind") == [("bind", ("198.18.7.1", 0))]
    assert calls(log, "setsockopt") == [  # IP_MULTICAST_IF 9, _TTL 10, _LOOP 11 (ws2ipdef.h)
        ("setsockopt", IPPROTO_IP, 9, bytes([198, 18, 7, 1])),
        ("setsockopt", IPPROTO_IP, 10, 5),
        ("setsockopt", IPPROTO_IP, 11, 1),
    ]
    log.clear()
    with me.McastTxSocket(V6, ["ff15::1"], ETH):
        pass
    assert calls(log, "bind") == [("bind", ("2001:db8:7::1", 0, 0, 7))]
    assert calls(log, "setsockopt")[0] == ("setsockopt", IPPROTO_IPV6, 9, 7)  # IPV6_MULTICAST_IF


def test_windows_rx_ipv6(record: Any) -> None:
    log = record(windows.WindowsMulticast())
    with me.McastRxSocket(V6, ["ff15::5"], 5001, iface=ETH, enable_external_loopback=True):
        pass
    assert calls(log, "bind") == [("bind", ("2001:db8:7::1", 5001, 0, 7))]
    sets = calls(log, "setsockopt")
    assert ("setsockopt", IPPROTO_IPV6, 11, 1) in sets  # IPV6_MULTICAST_LOOP
    assert ("setsockopt", IPPROTO_IPV6, 19, 1) in sets  # IPV6_PKTINFO
    mreq = socket.inet_pton(V6, "ff15::5") + struct.pack("<I", 7)
    assert ("setsockopt", IPPROTO_IPV6, 12, mreq) in sets  # IPV6_ADD_MEMBERSHIP


def test_macos_rx_ipv4(record: Any) -> None:
    log = record(darwin.DarwinMulticast())
    with me.McastRxSocket(V4, ["239.9.9.9"], 6000, iface=ETH, source_ips=["198.18.7.2"]):
        pass
    assert calls(log, "bind") == [("bind", ("239.9.9.9", 6000))]
    sets = calls(log, "setsockopt")
    assert sets[:3] == [  # SOL_SOCKET 0xffff, SO_REUSEADDR 4, SO_REUSEPORT 0x200, IP_BOUND_IF 25
        ("setsockopt", 0xFFFF, 4, 1),
        ("setsockopt", 0xFFFF, 0x200, 1),
        ("setsockopt", IPPROTO_IP, 25, 7),
    ]
    # IP_ADD_SOURCE_MEMBERSHIP is 70 on macOS; ip_mreq_source is (group, source, interface)
    assert sets[3] == ("setsockopt", IPPROTO_IP, 70, bytes([239, 9, 9, 9, 198, 18, 7, 2, 198, 18, 7, 1]))


def test_macos_tx_loopback_only_on_loopback_interface(record: Any) -> None:
    log = record(darwin.DarwinMulticast())
    lo = me.IfaceInfo("lo0", 1, None, (ipaddress.IPv4Interface("127.0.0.1/8"),), ())
    with me.McastTxSocket(V4, ["239.1.1.1"], lo):
        pass
    assert ("setsockopt", IPPROTO_IP, 11, 1) in log  # IP_MULTICAST_LOOP on macOS
    log.clear()
    with me.McastTxSocket(V4, ["239.1.1.1"], ETH):
        pass
    assert ("setsockopt", IPPROTO_IP, 11, 0) in log
    assert ("setsockopt", IPPROTO_IP, 9, bytes([198, 18, 7, 1])) in log  # IP_MULTICAST_IF


def test_linux_calls_recorded(record: Any) -> None:
    log = record(linux.LinuxMulticast())
    with me.McastRxSocket(V6, ["ff02::1:3"], 7000, iface=ETH, source_ips=["2001:db8:7::2"]):
        pass
    assert calls(log, "bind") == [("bind", ("ff02::1:3", 7000, 0, 7))]
    sets = calls(log, "setsockopt")
    assert ("setsockopt", SOL_SOCKET, linux.SO_BINDTODEVICE, b"eth7") in sets
    assert not [c for c in sets if c[2] == 29]  # tied to the device: IPV6_MULTICAST_ALL not needed
    gsr = [c for c in sets if c[2] == 46]
    assert len(gsr) == 1
    raw = gsr[0][3]
    assert len(raw) == 264
    assert raw[:8] == struct.pack("=I4x", 7)
    assert raw[8:12] == struct.pack("=HH", V6, 0)
    assert raw[16:32] == socket.inet_pton(V6, "ff02::1:3")
    assert raw[136:140] == struct.pack("=HH", V6, 0)
    assert raw[144:160] == socket.inet_pton(V6, "2001:db8:7::2")
    assert raw[160:] == b"\0" * (264 - 160)


def test_linux_ipv4_structs(record: Any) -> None:
    log = record(linux.LinuxMulticast())
    with me.McastTxSocket(V4, ["239.1.1.1"], ETH):
        pass
    mreqn = bytes([0, 0, 0, 0, 198, 18, 7, 1]) + struct.pack("=i", 7)
    assert ("setsockopt", IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn) in log
    assert ("setsockopt", IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0) in log
    log.clear()
    with me.McastRxSocket(V4, ["232.0.0.9"], 7000, iface=ETH, source_ips=["198.18.7.2"]):
        pass

    # <linux/in.h> MCAST_JOIN_SOURCE_GROUP = 46 with RFC 3678 group_source_req: the interface by
    # index (so a shared address can't pick the wrong one), 4 pad bytes, then two sockaddr_storage.
    def sin(a: bytes) -> bytes:
        return (struct.pack("=H", socket.AF_INET) + bytes(2) + a).ljust(128, b"\0")

    req = struct.pack("=I4x", 7) + sin(bytes([232, 0, 0, 9])) + sin(bytes([198, 18, 7, 2]))
    assert len(req) == 264
    assert ("setsockopt", IPPROTO_IP, 46, req) in log
    assert not [c for c in log if c[0] == "setsockopt" and c[2] == 49]  # device-bound: not needed


def test_linux_without_device_binding_turns_multicast_all_off(
    record: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where SO_BINDTODEVICE is refused (kernels before 5.7 without CAP_NET_RAW)."""
    log = record(linux.LinuxMulticast())

    def refuse(self: Recorder, level: int, opt: int, value: Any) -> None:
        if opt == linux.SO_BINDTODEVICE:
            raise PermissionError(1, "Operation not permitted")
        self.log.append(("setsockopt", level, opt, value))

    monkeypatch.setattr(Recorder, "setsockopt", refuse)
    with me.McastRxSocket(V4, ["239.0.0.9"], 7000, iface=ETH):
        pass
    with me.McastRxSocket(V6, ["ff15::9"], 7000, iface=ETH):
        pass
    assert ("setsockopt", IPPROTO_IP, 49, 0) in log  # IP_MULTICAST_ALL off
    assert ("setsockopt", IPPROTO_IPV6, 29, 0) in log  # IPV6_MULTICAST_ALL off


def test_linux_spreads_sources_over_sockets(record: Any) -> None:
    log = record(linux.LinuxMulticast())
    sources = [f"198.18.7.{i}" for i in range(10, 35)]  # 25 sources, 10 per socket
    with me.McastRxSocket(V4, ["232.0.0.10"], 7000, iface=ETH, source_ips=sources) as rx:
        assert len(rx.filenos()) == 3
    assert len(calls(log, "socket")) == 3
    assert len([c for c in log if c[0] == "setsockopt" and c[1] == IPPROTO_IP and c[2] == 46]) == 25
    assert len(calls(log, "close")) == 3


def test_mmsghdr_layout_matches_the_c_struct() -> None:
    """recvmmsg/sendmmsg results are read with struct; its layout must equal ctypes' (glibc)."""
    assert _mmsg._HDR.size == ctypes.sizeof(_mmsg._Mmsghdr) == 64
    assert (_mmsg._OFF_NAMELEN, _mmsg._OFF_CONTROLLEN, _mmsg._OFF_FLAGS, _mmsg._OFF_LEN) == (8, 40, 48, 56)
    v4 = _sendmmsg.sockaddr(socket.AF_INET, "239.1.2.3", 5000)
    assert len(v4) == 16 and _mmsg.parse_sockaddr(v4) == ("239.1.2.3", 5000)
    v6 = _sendmmsg.sockaddr(socket.AF_INET6, "ff02::1", 5000, 7)
    assert len(v6) == 28 and _mmsg.parse_sockaddr(v6) == ("ff02::1", 5000, 0, 7)


def _winerror(code: int, errno_value: int) -> OSError:
    exc = OSError(errno_value, f"WinError {code}")
    exc.winerror = code  # type: ignore[attr-defined]  # what Windows Python sets
    return exc


def test_windows_send_errors(record: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    record(windows.WindowsMulticast())
    failure: list[OSError] = []

    def sendto(self: Recorder, data: bytes, address: Any) -> int:
        raise failure[0]

    monkeypatch.setattr(Recorder, "sendto", sendto, raising=False)
    lo = me.IfaceInfo("{lo}", 1, None, (ipaddress.IPv4Interface("127.0.0.1/8"),), ())
    failure.append(_winerror(10051, errno.ENETUNREACH))
    with me.McastTxSocket(V4, ["239.1.1.1"], lo) as tx:
        tx.sendto(b"x", ("239.1.1.1", 5000))  # nobody listening on loopback: harmless on Windows
    with me.McastTxSocket(V4, ["239.1.1.1"], ETH) as tx, pytest.raises(OSError, match="no route"):
        tx.sendto(b"x", ("239.1.1.1", 5000))  # the same error elsewhere is real
    failure[0] = _winerror(10013, errno.EACCES)
    with (
        me.McastTxSocket(V4, ["239.1.1.1"], ETH) as tx,
        pytest.raises(me.MulticastOSError, match="SO_EXCLUSIVEADDRUSE"),
    ):
        tx.sendto(b"x", ("239.1.1.1", 5000))


def test_macos_ipv6_rx_and_tx(record: Any) -> None:
    """bsd/netinet6/in6.h: IPV6_BOUND_IF 125, IPV6_JOIN_GROUP 12, IPV6_MULTICAST_IF 9, _HOPS 10, _LOOP 11."""
    log = record(darwin.DarwinMulticast())
    with me.McastRxSocket(V6, ["ff15::9"], 6001, iface=ETH):
        pass
    assert calls(log, "bind") == [("bind", ("ff15::9", 6001, 0, 7))]
    sets = calls(log, "setsockopt")
    assert ("setsockopt", IPPROTO_IPV6, 125, 7) in sets
    assert ("setsockopt", IPPROTO_IPV6, 12, _v6("ff15::9") + struct.pack("=I", 7)) in sets
    log.clear()
    with me.McastTxSocket(V6, ["ff15::9"], ETH, ttl=3):
        pass
    assert calls(log, "setsockopt") == [
        ("setsockopt", IPPROTO_IPV6, 9, 7),
        ("setsockopt", IPPROTO_IPV6, 10, 3),
        ("setsockopt", IPPROTO_IPV6, 11, 0),
    ]
