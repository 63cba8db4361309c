"""Interface discovery and lookup: specifiers, default gateway, caching and rescans."""

from __future__ import annotations

import ipaddress

import netifaces
import pytest
from helpers import V4, V6, Net

import multicast_expert as me
from multicast_expert import _platform, interfaces, testing

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
    # 1.6.0: an IP held by two interfaces yields both; each interface once, first-seen order.
    assert me.find_interfaces(["198.18.50.1"], FAKE) == [eth0, eth1]
    assert me.find_interfaces(["eth1", "198.18.50.1"], FAKE) == [eth1, eth0]
    assert me.find_interfaces(["eth0"], FAKE) == [eth0]
    assert me.find_interfaces(["2001:db8:50::1"], FAKE) == [eth0]
    assert me.find_interfaces([ipaddress.IPv6Address("2001:db8:50::1")], FAKE) == [eth0]
    assert me.find_interfaces(["fe80::1%eth0", "fe80::1"], FAKE) == [
        eth0
    ]  # one entry per interface, as 1.6.0
    assert me.find_interfaces([ipaddress.IPv4Address("127.0.0.1"), lo], FAKE) == [lo]
    assert me.find_interfaces(["eth1"], FAKE) == [eth1]


def test_find_interfaces_errors() -> None:
    with pytest.raises(me.MulticastExpertError, match="does not appear to be a valid interface name or IP"):
        me.find_interfaces(["wlan9"], FAKE)
    with pytest.raises(
        me.MulticastExpertError, match=r"No matches found for interface IP address 198\.18\.99\.1"
    ):
        me.find_interfaces(["198.18.99.1"], FAKE)
    # Where one interface is needed (a socket), a shared IP is an error naming both candidates.
    with pytest.raises(me.MulticastExpertError, match="ambiguous") as ei:
        interfaces.find_interface("198.18.50.1", FAKE)
    assert "eth0" in str(ei.value) and "eth1" in str(ei.value)
    with pytest.raises(TypeError, match="interface"):
        me.find_interfaces([42], FAKE)  # type: ignore[list-item]


def test_default_gateway_with_given_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_platform.HOST, "default_route_iface_name", lambda family: "eth0")
    assert me.get_default_gateway_iface(V4, ifaces=FAKE) == FAKE[1]
    assert me.get_default_gateway_iface_ip_v4(ifaces=FAKE) == "198.18.50.1"
    assert me.get_default_gateway_iface_ip_v6(ifaces=FAKE) == "2001:db8:50::1"  # global before link-local
    monkeypatch.setattr(_platform.HOST, "default_route_iface_name", lambda family: None)
    assert me.get_default_gateway_iface(V6, ifaces=FAKE) is None


# ---- interface lookups against the live namespace --------------------------------------------------
def test_lookups_do_not_rescan_but_find_new_addresses(
    own_peer: testing.Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_if, host_ip4, extra = own_peer.host_if, own_peer.host_ip4, f"198.18.{own_peer.n}.77"
    scans: list[int] = []
    real = netifaces.interfaces

    def counting() -> list[str]:
        scans.append(1)
        return real()

    monkeypatch.setattr(netifaces, "interfaces", counting)
    me.find_interfaces([host_if])
    scans.clear()
    for _ in range(50):
        with me.McastTxSocket(V4, ["239.60.0.1"], iface=host_if):
            pass
        me.McastRxSocket(V4, ["239.60.0.1"], 1234, iface_ip=host_ip4)
    assert scans == []
    testing.ip("addr", "add", f"{extra}/24", "dev", host_if)
    try:
        assert me.find_interfaces([extra])[0].machine_name == host_if  # rescan on a miss
        assert scans == [1]
    finally:
        testing.ip("addr", "del", f"{extra}/24", "dev", host_if)
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


def test_unknown_interface_ip(net: Net) -> None:
    for make in (
        lambda: me.McastTxSocket(V4, ["239.8.0.1"], "198.19.99.99"),
        lambda: me.McastRxSocket(V4, ["239.8.0.1"], 1234, iface_ip="198.19.99.99"),
    ):
        with pytest.raises(
            me.MulticastExpertError, match="does not seem to correspond to a valid interface"
        ) as ei:
            make()
        assert net.a.host_ip4 in str(ei.value)  # lists the valid IPs


def test_get_interface_ips(net: Net) -> None:
    ips = me.get_interface_ips()
    assert {"127.0.0.1", "::1", net.a.host_ip4, net.a.host_ip6, net.b.host_ip4} <= set(ips)
    assert net.a.host_ip6 not in me.get_interface_ips(include_ipv6=False)
    assert "127.0.0.1" not in me.get_interface_ips(include_ipv4=False)
