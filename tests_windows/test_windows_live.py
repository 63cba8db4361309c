"""The Windows code paths, run for real as Windows CPython under Wine (see scripts/check-windows).

Wine maps Winsock onto Linux sockets, so these show that the option numbers, structs, interface
names and system calls the library uses on Windows are accepted and work end to end; Windows' own
delivery rules are covered by the recorded-call tests of the main suite. Receive sockets bind to
the interface address on Windows; under Wine every such socket sees every group (Linux's rules),
so these tests also show the destination filter (WSARecvMsg + IP_PKTINFO) at work: each datagram
is reported once, with the group it was sent to, and unicast to the port is never returned.
"""

from __future__ import annotations

import asyncio
import ctypes
import socket
import sys
import time

import pytest

import multicast_expert as me
from multicast_expert import _platform

V4 = socket.AF_INET
PORTS = iter(range(41000, 42000))
#: The lane's link (scripts/check-windows): its address; it also holds the default route.
HOST_IP = "198.18.200.1"


def the_iface() -> me.IfaceInfo:
    (iface,) = [i for i in me.scan_interfaces() if any(str(a.ip) == HOST_IP for a in i.ip4_addrs)]
    return iface


def test_the_windows_table_is_in_use() -> None:
    assert sys.platform == "win32" and _platform.OPS.name == "Windows"


def test_interfaces_by_guid_ip_and_iface_info() -> None:
    iface = the_iface()
    assert iface.machine_name.startswith("{") and iface.machine_name.endswith("}")  # a GUID
    assert iface.index > 0
    assert me.find_interfaces([iface.machine_name]) == [iface]
    assert me.find_interfaces([HOST_IP]) == [iface]
    assert me.find_interfaces([iface]) == [iface]
    assert me.get_default_gateway_iface(V4) == iface
    assert me.get_default_gateway_iface_ip_v4() == HOST_IP


@pytest.mark.parametrize("explicit", [True, False])
def test_send_and_receive(explicit: bool) -> None:
    port, groups = next(PORTS), ["239.210.0.1", "239.210.0.2"]
    iface = the_iface() if explicit else None  # None: the default interfaces
    with (
        me.McastRxSocket(V4, groups, port, iface=iface, timeout=2, enable_external_loopback=True) as rx,
        me.McastTxSocket(V4, groups, iface=iface, enable_external_loopback=True) as tx,
    ):
        tx.sendto(b"to two", (groups[1], port))
        p = rx.recv_packet()
        assert p is not None and p.payload == b"to two" and p.group == groups[1]
        assert p.iface_index == the_iface().index and p.src[0] == HOST_IP
        assert rx.recv_packet() is None  # reported once, not once per socket
        with socket.socket(V4, socket.SOCK_DGRAM) as u:  # unicast to the interface address and port
            u.sendto(b"unicast", (HOST_IP, port))
        assert rx.recvfrom() is None


def test_source_specific_and_block_unblock() -> None:
    port, group = next(PORTS), "232.210.0.1"
    iface = the_iface()
    with (
        me.McastRxSocket(
            V4, [group], port, source_ips=[HOST_IP], iface=iface, timeout=0.5, enable_external_loopback=True
        ) as listed,
        me.McastTxSocket(V4, [group], iface=iface, enable_external_loopback=True) as tx,
    ):
        tx.sendto(b"ssm", (group, port))
        assert listed.recv() == b"ssm"
        assert listed.recv() is None
    group = "239.210.1.1"
    with (
        me.McastRxSocket(V4, [group], port, iface=iface, timeout=0.5, enable_external_loopback=True) as rx,
        me.McastTxSocket(V4, [group], iface=iface, enable_external_loopback=True) as tx,
    ):
        rx.block_source(group, HOST_IP)
        tx.sendto(b"blocked", (group, port))
        assert rx.recv() is None
        rx.unblock_source(group, HOST_IP)
        tx.sendto(b"unblocked", (group, port))
        assert rx.recv() == b"unblocked"


def test_live_join_and_leave() -> None:
    port = next(PORTS)
    iface = the_iface()
    with (
        me.McastRxSocket(
            V4, ["239.210.2.1"], port, iface=iface, timeout=0.5, enable_external_loopback=True
        ) as rx,
        me.McastTxSocket(
            V4, ["239.210.2.1", "239.210.2.2"], iface=iface, enable_external_loopback=True
        ) as tx,
    ):
        rx.join_group("239.210.2.2")
        tx.sendto(b"joined", ("239.210.2.2", port))
        assert rx.recv() == b"joined"
        rx.leave_group("239.210.2.2")
        tx.sendto(b"left", ("239.210.2.2", port))
        assert rx.recv() is None


def test_two_thousand_groups_on_one_socket() -> None:
    """More sockets than select() takes on Windows (512): the poller is WSAPoll."""
    port = next(PORTS)
    groups = [f"239.211.{i // 250}.{i % 250 + 1}" for i in range(2000)]
    iface = the_iface()
    with (
        me.McastRxSocket(V4, groups, port, iface=iface, timeout=2, enable_external_loopback=True) as rx,
        me.McastTxSocket(V4, groups, iface=iface, enable_external_loopback=True) as tx,
    ):
        picked = [groups[0], groups[999], groups[-1]]
        for g in picked:
            tx.sendto(g.encode(), (g, port))
        got: list[str] = []
        for _ in picked:
            p = rx.recv_packet()
            assert p is not None, f"only {got} arrived"
            assert p.payload.decode() == p.group
            got.append(p.group)
        assert sorted(got) == sorted(picked)


def test_asyncio_on_the_default_event_loop() -> None:
    port = next(PORTS)
    groups = ["239.212.0.1", "239.212.0.2", "239.212.0.3"]
    iface = the_iface()

    async def main() -> list[str]:
        assert type(asyncio.get_running_loop()).__name__ == "ProactorEventLoop"
        async with (
            me.AsyncMcastRxSocket(
                V4, groups, port, iface=iface, timeout=3, enable_external_loopback=True
            ) as rx,
            me.AsyncMcastTxSocket(V4, groups, iface=iface, enable_external_loopback=True) as tx,
        ):
            waiting = asyncio.ensure_future(rx.recv_packet())
            await asyncio.sleep(0.1)
            for g in groups:
                await tx.sendto(g.encode(), (g, port))
            got = [(await waiting).group]
            got += [(await rx.recv_packet()).group for _ in groups[1:]]
            return sorted(got)

    assert asyncio.run(main()) == groups


def test_bad_input_and_use_after_close() -> None:
    with pytest.raises(me.MulticastExpertError, match="not a multicast address"):
        me.McastRxSocket(V4, ["198.18.0.1"], 5000, iface=the_iface())
    with pytest.raises(me.MulticastExpertError, match="does not appear to be a valid interface"):
        me.McastTxSocket(V4, ["239.1.1.1"], iface="{no-such-guid}")
    rx = me.McastRxSocket(V4, ["239.213.0.1"], next(PORTS), iface=the_iface())
    with pytest.raises(me.MulticastExpertError, match="closed"):
        rx.recv()
    rx.open()
    rx.close()
    with pytest.raises(me.MulticastExpertError, match="already closed"):
        rx.close()


def test_no_handles_leak_over_open_close_cycles() -> None:
    kernel32 = ctypes.WinDLL("kernel32")
    count = ctypes.c_ulong()

    def handles() -> int:
        assert kernel32.GetProcessHandleCount(kernel32.GetCurrentProcess(), ctypes.byref(count))
        return count.value

    iface, port = the_iface(), next(PORTS)
    for _ in range(3):  # warm up (lazy imports, caches)
        with me.McastRxSocket(V4, ["239.214.0.1", "239.214.0.2"], port, iface=iface, timeout=0) as rx:
            rx.recv()
    before = handles()
    for _ in range(50):
        with me.McastRxSocket(V4, ["239.214.0.1", "239.214.0.2"], port, iface=iface, timeout=0) as rx:
            rx.recv()
        with me.McastTxSocket(V4, ["239.214.0.1"], iface=iface):
            pass
    time.sleep(0.1)
    assert handles() <= before + 2
