"""Features of later multicast_expert releases (1.3-1.6), asyncio, and cheap interface lookups."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import netifaces
import pytest
from conftest import Net, open_fds, send_from_peer

import multicast_expert as me
from multicast_expert import _netns, _platform, interfaces

V4, V6 = socket.AF_INET, socket.AF_INET6

FAKE = [
    me.IfaceInfo(
        "lo", 1, None, (ipaddress.IPv4Interface("127.0.0.1/8"),), (ipaddress.IPv6Interface("::1/128"),)
    ),
    me.IfaceInfo(
        "eth0",
        2,
        "02:00:00:00:00:02",
        (ipaddress.IPv4Interface("198.18.50.1/24"),),
        (ipaddress.IPv6Interface("2001:db8:50::1/64"), ipaddress.IPv6Interface("fe80::1%eth0/64")),
    ),
    me.IfaceInfo("eth1", 3, None, (ipaddress.IPv4Interface("198.18.50.1/24"),), ()),  # same IP as eth0
]


# ---- interface table (pure lookups over a faked table) -------------------------------------------
def test_iface_info_methods() -> None:
    lo, eth0, eth1 = FAKE
    assert lo.is_localhost() and not eth0.is_localhost()
    assert eth0.ip_addrs(V4) == (ipaddress.IPv4Interface("198.18.50.1/24"),)
    assert len(eth0.ip_addrs(V6)) == 2
    assert eth1.ip_addrs(V6) == ()
    with pytest.raises(ValueError, match="addr_family"):
        eth0.ip_addrs(12345)
    with pytest.raises(AttributeError):
        eth0.index = 9  # type: ignore[misc]


def test_find_interfaces_by_every_specifier() -> None:
    lo, eth0, eth1 = FAKE
    assert me.find_interfaces(["eth0"], FAKE) == [eth0]
    assert me.find_interfaces(["2001:db8:50::1"], FAKE) == [eth0]
    assert me.find_interfaces([ipaddress.IPv6Address("2001:db8:50::1")], FAKE) == [eth0]
    assert me.find_interfaces(["fe80::1%eth0", "fe80::1"], FAKE) == [eth0, eth0]
    assert me.find_interfaces([ipaddress.IPv4Address("127.0.0.1"), lo], FAKE) == [lo, lo]
    assert me.find_interfaces(["eth1"], FAKE) == [eth1]


def test_find_interfaces_errors() -> None:
    with pytest.raises(me.MulticastExpertError, match="does not appear to be a valid interface name or IP"):
        me.find_interfaces(["wlan9"], FAKE)
    with pytest.raises(me.MulticastExpertError, match="ambiguous") as ei:
        me.find_interfaces(["198.18.50.1"], FAKE)
    assert "eth0" in str(ei.value) and "eth1" in str(ei.value)
    with pytest.raises(TypeError, match="interface"):
        me.find_interfaces([42], FAKE)  # type: ignore[list-item]


def test_default_gateway_with_given_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_platform.OPS, "default_route_iface_name", lambda family: "eth0")
    assert me.get_default_gateway_iface(V4, ifaces=FAKE) == FAKE[1]
    assert me.get_default_gateway_iface_ip_v4(ifaces=FAKE) == "198.18.50.1"
    assert me.get_default_gateway_iface_ip_v6(ifaces=FAKE) == "2001:db8:50::1"  # global before link-local
    monkeypatch.setattr(_platform.OPS, "default_route_iface_name", lambda family: None)
    assert me.get_default_gateway_iface(V6, ifaces=FAKE) is None


# ---- interface lookups against the live namespace --------------------------------------------------
def test_lookups_do_not_rescan_but_find_new_addresses(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[int] = []
    real = netifaces.interfaces

    def counting() -> list[str]:
        scans.append(1)
        return real()

    monkeypatch.setattr(netifaces, "interfaces", counting)
    me.find_interfaces([net.a.host_if])
    scans.clear()
    for _ in range(50):
        with me.McastTxSocket(V4, ["239.60.0.1"], iface=net.a.host_if):
            pass
        me.McastRxSocket(V4, ["239.60.0.1"], 1234, iface_ip=net.a.host_ip4)
    assert scans == []
    _netns.ip("addr", "add", "198.18.1.77/24", "dev", net.a.host_if)
    try:
        assert me.find_interfaces(["198.18.1.77"])[0].machine_name == net.a.host_if  # rescan on a miss
        assert scans == [1]
    finally:
        _netns.ip("addr", "del", "198.18.1.77/24", "dev", net.a.host_if)
        interfaces.rescan_interfaces()


def test_passing_iface_info_skips_scanning(net: Net, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    info = me.find_interfaces([net.a.host_if])[0]

    def no_scan() -> list[str]:
        raise AssertionError("scanned")

    monkeypatch.setattr(netifaces, "interfaces", no_scan)
    with (
        me.McastRxSocket(V4, ["239.60.0.2"], port, iface=info, timeout=1) as rx,
        me.McastTxSocket(V4, ["239.60.0.2"], iface=info, enable_external_loopback=True) as tx,
    ):
        assert rx.network_interfaces == [info] and tx.network_interface == info
        tx.sendto(b"x", ("239.60.0.2", port))
        assert rx.recv() == b"x"


# ---- socket options of later releases --------------------------------------------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_external_loopback_over_veth(net: Net, port: int, family: int) -> None:
    group = "239.61.0.1" if family == V4 else "ff15::61"
    with me.McastRxSocket(
        family, [group], port, ifaces=[net.a.host_if], timeout=0.3, enable_external_loopback=True
    ) as rx:
        with me.McastTxSocket(family, [group], iface=net.a.host_if) as quiet:
            quiet.sendto(b"not looped", (group, port))
        assert rx.recv() is None  # default: own multicasts on a real interface are not looped back
        with me.McastTxSocket(family, [group], iface=net.a.host_if, enable_external_loopback=True) as loud:
            loud.sendto(b"looped", (group, port))
        assert rx.recv() == b"looped"


def test_source_port_and_setsockopt(net: Net, port: int) -> None:
    with me.McastTxSocket(V4, [ipaddress.IPv4Address("239.62.0.1")], iface="lo", source_port=port + 1) as tx:
        assert tx.getsockname() == ("127.0.0.1", port + 1)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 7)
        assert tx._sock is not None
        assert tx._sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 7
        with me.McastRxSocket(V4, ["239.62.0.1", "239.62.0.2"], port, iface="lo", timeout=1) as rx:
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 50000)
            assert {s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) for s in rx.sockets} == {100000}
            tx.sendto(b"fixed port", ("239.62.0.1", port))
            assert rx.recvfrom() == (b"fixed port", ("127.0.0.1", port + 1))
    with pytest.raises(me.MulticastExpertError, match="open"):
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 7)


def test_ipaddress_objects_accepted(net: Net, port: int) -> None:
    g = ipaddress.IPv4Address("232.63.0.1")
    src = ipaddress.IPv4Address(net.a.peer_ip4)
    with me.McastRxSocket(
        V4, [g], port, iface=ipaddress.IPv4Address(net.a.host_ip4), source_ips=[src], timeout=1
    ) as rx:
        assert rx.mcast_ips == ["232.63.0.1"]
        send_from_peer(net.a, V4, str(g), port, [b"obj"])
        got = rx.recvfrom()
        assert got is not None and got[0] == b"obj" and isinstance(got[1][0], str)


def test_timeout_keyword(net: Net, port: int) -> None:
    rx = me.McastRxSocket(V4, ["239.64.0.1"], port, iface="lo", timeout=0.05)
    assert rx.timeout == 0.05 and rx.blocking
    assert me.McastRxSocket(V4, ["239.64.0.1"], port, iface="lo", blocking=False).timeout == 0
    with rx:
        assert rx.recvfrom() is None


# ---- asyncio --------------------------------------------------------------------------------------
def test_async_round_trip_many_sockets_one_loop(net: Net, port: int) -> None:
    async def main() -> None:
        async with (
            me.AsyncMcastRxSocket(V4, ["239.65.0.1", "239.65.0.2"], port, iface="lo") as rx1,
            me.AsyncMcastRxSocket(V6, ["ff15::65"], port, iface="lo") as rx2,
            me.AsyncMcastTxSocket(V4, ["239.65.0.1", "239.65.0.2"], iface="lo") as tx4,
            me.AsyncMcastTxSocket(V6, ["ff15::65"], iface="lo") as tx6,
        ):
            waits: list[asyncio.Task[Any]] = [
                asyncio.create_task(rx1.recv_packet()),
                asyncio.create_task(rx2.recvfrom()),
            ]
            await asyncio.sleep(0.05)
            assert not any(t.done() for t in waits)  # waiting, not returning None
            await tx4.sendto(b"four", ("239.65.0.2", port))
            await tx6.sendto(b"six", ("ff15::65", port))
            await asyncio.wait_for(asyncio.wait(waits), 2)
            p = waits[0].result()
            data, addr = waits[1].result()
            assert p.payload == b"four" and p.group == "239.65.0.2"
            assert data == b"six" and addr[0] == "::1"

    asyncio.run(main())


def test_async_cancel_loses_nothing(net: Net, port: int) -> None:
    async def main() -> None:
        async with (
            me.AsyncMcastRxSocket(V4, ["239.66.0.1"], port, iface="lo") as rx,
            me.AsyncMcastTxSocket(V4, ["239.66.0.1"], iface="lo") as tx,
        ):
            for _ in range(5):
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(rx.recv(), 0.01)
            await tx.sendto(b"kept", ("239.66.0.1", port))
            task = asyncio.create_task(rx.recv())
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await asyncio.wait_for(rx.recv(), 2) == b"kept"
            # two tasks waiting on one socket both get served
            t1, t2 = asyncio.create_task(rx.recv()), asyncio.create_task(rx.recv())
            await asyncio.sleep(0.01)
            await tx.sendto(b"1", ("239.66.0.1", port))
            await tx.sendto(b"2", ("239.66.0.1", port))
            assert sorted(await asyncio.wait_for(asyncio.gather(t1, t2), 2)) == [b"1", b"2"]

    before = open_fds()
    asyncio.run(main())
    assert open_fds() == before


def test_async_close_wakes_waiters(net: Net, port: int) -> None:
    async def main() -> None:
        rx = me.AsyncMcastRxSocket(V4, ["239.67.0.1"], port, iface="lo")
        rx.open()
        task = asyncio.create_task(rx.recv())
        await asyncio.sleep(0.01)
        rx.close()
        with pytest.raises(me.MulticastExpertError, match="closed"):
            await asyncio.wait_for(task, 2)

    asyncio.run(main())
