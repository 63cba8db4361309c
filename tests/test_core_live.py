"""The 1.2.0 contract, run for real over lo and veth links in private namespaces."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable

import pytest
from conftest import Net, drain, open_fds, send_from_peer, sender

import multicast_expert as me
from multicast_expert import _netns, os_multicast

V4, V6 = socket.AF_INET, socket.AF_INET6


@pytest.mark.parametrize(
    ("family", "lo_ip", "group"),
    [(V4, me.LOCALHOST_IPV4, "239.1.1.1"), (V6, me.LOCALHOST_IPV6, "ff15::1:1"), (V6, "::1", "ff11::7")],
)
def test_loopback_round_trip(net: Net, port: int, family: int, lo_ip: str, group: str) -> None:
    with me.McastRxSocket(family, [group], port, iface_ip=lo_ip, blocking=True) as rx:
        rx.settimeout(2)
        with me.McastTxSocket(family, [group], lo_ip) as tx:
            tx.sendto(b"hello", (group, port))
            got = rx.recvfrom()
            assert got is not None
            assert got[0] == b"hello"
            assert got[1][:2] == tx.getsockname()[:2]
            assert len(got[1]) == (2 if family == V4 else 4)


@pytest.mark.parametrize(
    ("family", "groups"),
    [(V4, ["239.2.0.1", "239.2.0.2"]), (V6, ["ff15::2:1", "ff02::2:2", "ff12::2:3"])],
)
def test_every_group_on_every_interface(net: Net, port: int, family: int, groups: list[str]) -> None:
    peers = [net.a, net.b]
    iface_ips = [p.host_ip4 if family == V4 else p.host_ip6 for p in peers]
    with me.McastRxSocket(family, groups, port, iface_ips=iface_ips, timeout=0.5) as rx:
        for peer in peers:
            for g in groups:
                send_from_peer(peer, family, g, port, [f"{peer.n}|{g}".encode()])
        got = drain(rx)
    seen = {(p.payload.decode(), p.group, p.iface_index) for p in got}
    expected = {(f"{peer.n}|{g}", g, socket.if_nametoindex(peer.host_if)) for peer in peers for g in groups}
    assert seen == expected
    for p in got:  # the sender address is the real sender's
        n = int(p.payload.split(b"|")[0])
        assert p.src[0] == (peers[n - 1].peer_ip4 if family == V4 else peers[n - 1].peer_ip6)


def test_ipv6_interface_with_several_addresses_and_duplicate_group(net: Net, port: int) -> None:
    iface = me.find_interfaces([net.a.host_if])[0]
    assert len(iface.ip6_addrs) >= 2  # global and link-local
    link_local = next(str(a.ip) for a in iface.ip6_addrs if a.ip.is_link_local)
    with me.McastRxSocket(V6, ["ff02::3:1", "ff02::3:1"], port, iface_ip=link_local, timeout=0.5) as rx:
        assert rx.mcast_ips == ["ff02::3:1"]
        send_from_peer(net.a, V6, "ff02::3:1", port, [b"once"])
        got = drain(rx)
    assert [p.payload for p in got] == [b"once"]


@pytest.mark.parametrize("family", [V4, V6])
def test_unicast_to_the_port_is_never_returned(net: Net, port: int, family: int) -> None:
    group = "239.3.0.1" if family == V4 else "ff15::3:1"
    host_ip = net.a.host_ip4 if family == V4 else net.a.host_ip6
    with me.McastRxSocket(family, [group], port, iface=net.a.host_if, timeout=0.3) as rx:
        send_from_peer(net.a, family, host_ip, port, [b"unicast"])  # unicast to our address
        lo = me.LOCALHOST_IPV4 if family == V4 else me.LOCALHOST_IPV6
        with socket.socket(family, socket.SOCK_DGRAM) as u:
            u.sendto(b"unicast-local", (lo, port))
        send_from_peer(net.a, family, group, port, [b"multicast"])
        got = drain(rx)
    assert [p.payload for p in got] == [b"multicast"]


@pytest.mark.parametrize("family", [V4, V6])
def test_two_sockets_same_port_get_only_their_group(net: Net, port: int, family: int) -> None:
    ga, gb = ("239.4.0.1", "239.4.0.2") if family == V4 else ("ff15::4:1", "ff15::4:2")
    with (
        me.McastRxSocket(family, [ga], port, iface=net.a.host_if, timeout=0.3) as rxa,
        me.McastRxSocket(family, [gb], port, iface=net.a.host_if, timeout=0.3) as rxb,
    ):
        send_from_peer(net.a, family, ga, port, [b"A"] * 3)
        send_from_peer(net.a, family, gb, port, [b"B"] * 3)
        assert [p.payload for p in drain(rxa)] == [b"A"] * 3
        assert [p.payload for p in drain(rxb)] == [b"B"] * 3


@pytest.mark.parametrize("family", [V4, V6])
def test_source_specific_only_listed_source(net: Net, port: int, family: int) -> None:
    group = "232.1.0.1" if family == V4 else "ff35::1:1"
    good, bad = ("198.18.1.2", "198.18.1.3") if family == V4 else ("2001:db8:1::2", "2001:db8:1::3")
    with me.McastRxSocket(family, [group], port, iface=net.a.host_if, source_ips=[good], timeout=0.3) as rx:
        send_from_peer(net.a, family, group, port, [b"bad"] * 3, src_ip=bad)
        send_from_peer(net.a, family, group, port, [b"good"] * 3, src_ip=good)
        got = drain(rx)
    assert [p.payload for p in got] == [b"good"] * 3
    assert {p.src[0] for p in got} == {good}


def test_default_interface_tx_uses_default_route(net: Net, port: int) -> None:
    assert me.get_default_gateway_iface_ip_v4() == net.a.host_ip4
    assert me.get_default_gateway_iface_ip_v6() == net.a.host_ip6
    assert me.get_default_gateway_iface_ip(V4) == net.a.host_ip4
    received: list[bytes] = []

    def listen_in_peer() -> Callable[[], None]:
        rx = me.McastRxSocket(V4, ["239.5.0.1"], port, iface=net.a.peer_if, timeout=2)
        rx.open()

        def finish() -> None:
            got = rx.recv()
            received.append(got or b"")
            rx.close()

        return finish

    finish = net.a.run(listen_in_peer)
    with me.McastTxSocket(V4, ["239.5.0.1"]) as tx:
        assert tx.network_interface.machine_name == net.a.host_if
        tx.sendto(b"via default", ("239.5.0.1", port))
    net.a.run(finish)
    assert received == [b"via default"]


def test_no_default_gateway_is_a_clear_error(net: Net) -> None:
    _netns.ip("route", "del", "default")
    try:
        assert me.get_default_gateway_iface_ip_v4() is None
        with pytest.raises(me.MulticastExpertError, match="unable to determine the default gateway"):
            me.McastTxSocket(V4, ["239.5.0.2"])
    finally:
        _netns.ip("route", "add", "default", "via", net.a.peer_ip4, "dev", net.a.host_if)


def test_default_rx_listens_on_every_non_loopback_interface(net: Net, port: int) -> None:
    with me.McastRxSocket(V4, ["239.6.0.1"], port, timeout=0.5) as rx:
        names = {i.machine_name for i in rx.network_interfaces}
        assert names == {net.a.host_if, net.b.host_if}
        assert sorted(rx.iface_ips) == sorted([net.a.host_ip4, net.b.host_ip4])
        send_from_peer(net.b, V4, "239.6.0.1", port, [b"b"])
        assert rx.recv() == b"b"


def test_no_listenable_interfaces(net: Net) -> None:
    """In a namespace holding only lo, the default Rx socket has nothing to listen on."""
    result: list[BaseException] = []

    def body() -> None:
        assert _netns._libc().unshare(_netns.CLONE_NEWNET) == 0
        me.scan_interfaces()
        try:
            me.McastRxSocket(V4, ["239.6.0.2"], 1234)
        except me.MulticastExpertError as exc:
            result.append(exc)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    me.interfaces.rescan_interfaces()
    assert len(result) == 1
    assert "Unable to discover any listenable interfaces" in str(result[0])


def test_open_close_contract(net: Net, port: int) -> None:
    rx = me.McastRxSocket(V4, ["239.7.0.1"], port, iface_ip="127.0.0.1", blocking=False)
    tx = me.McastTxSocket(V4, ["239.7.0.1"], "127.0.0.1")
    for s in (rx, tx):
        s.open()
        with pytest.raises(me.MulticastExpertError, match="already open"):
            s.open()
        s.close()
        with pytest.raises(me.MulticastExpertError, match="already closed"):
            s.close()
    with rx, tx:  # a closed socket can be opened again
        assert rx.recvfrom() is None  # non-blocking, nothing waiting
        assert rx.recv() is None
        tx.sendto(b"again", ("239.7.0.1", port))
        readable, _, _ = select.select(rx.filenos(), [], [], 2)
        assert readable
        assert rx.recvfrom() == (b"again", tx.getsockname())
        assert isinstance(tx.fileno(), int) and tx.fileno() >= 0


def test_settimeout_semantics(net: Net, port: int) -> None:
    with me.McastRxSocket(V4, ["239.7.0.2", "239.7.0.3"], port, iface_ip="127.0.0.1") as rx:
        rx.settimeout(0)
        assert rx.recvfrom() is None
        rx.settimeout(0.05)
        assert rx.recvfrom() is None
        with me.McastTxSocket(V4, ["239.7.0.3"], "127.0.0.1") as tx:
            rx.settimeout(None)
            tx.sendto(b"x", ("239.7.0.3", port))
            assert rx.recv() == b"x"


def test_sendto_wrong_group(net: Net) -> None:
    with (
        me.McastTxSocket(V4, ["239.8.0.1"], "127.0.0.1") as tx,
        pytest.raises(me.MulticastExpertError, match="was not one of the addresses given"),
    ):
        tx.sendto(b"x", ("239.8.0.2", 1234))


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


def test_both_iface_ip_and_iface_ips(net: Net) -> None:
    with pytest.raises(me.MulticastExpertError, match="Both iface_ips and iface_ip may not be specified"):
        me.McastRxSocket(V4, ["239.8.0.1"], 1, iface_ip="127.0.0.1", iface_ips=["127.0.0.1"])


def test_source_limit_failure_leaves_nothing_open(net: Net, port: int) -> None:
    """Past the per-socket source limit (lowered here to 3), the error names the sysctl; no fd leaks."""
    sources = [f"198.18.1.{i}" for i in range(10, 14)]
    _netns.sysctl("net.ipv4.igmp_max_msf", 3)
    try:
        before = open_fds()
        rx = me.McastRxSocket(V4, ["232.9.0.1", "232.9.0.2"], port, iface=net.a.host_if, source_ips=sources)
        with pytest.raises(me.MulticastExpertError, match=r"net\.ipv4\.igmp_max_msf"):
            rx.open()
        assert open_fds() == before
        assert not rx.is_opened
    finally:
        _netns.sysctl("net.ipv4.igmp_max_msf", 10)


def test_fd_exhaustion_halfway_leaves_nothing_open(net: Net, port: int) -> None:
    import resource

    groups = [f"239.10.0.{i}" for i in range(1, 60)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = open_fds()
    resource.setrlimit(resource.RLIMIT_NOFILE, (before + 20, hard))
    try:
        rx = me.McastRxSocket(V4, groups, port, iface=net.a.host_if)
        with pytest.raises(me.MulticastExpertError, match="too many open files"):
            rx.open()
        assert open_fds() == before
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_legacy_os_multicast_helpers_live(net: Net, port: int) -> None:
    info = os_multicast.get_iface_info(net.a.host_ip4)
    assert info == os_multicast.IfaceInfo(net.a.host_ip4, net.a.host_if, socket.if_nametoindex(net.a.host_if))
    assert os_multicast.iface_ip_to_name(net.b.host_ip4) == net.b.host_if
    with pytest.raises(KeyError):
        os_multicast.iface_ip_to_name("198.19.0.77")
    # Drive a bare socket with the 1.2.0 helpers, then receive over veth.
    with socket.socket(V4, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("239.11.0.1", port))
        os_multicast.add_memberships(s, ["239.11.0.1"], info, V4)
        s.settimeout(2)
        send_from_peer(net.a, V4, "239.11.0.1", port, [b"legacy"])
        assert s.recv(100) == b"legacy"
    with socket.socket(V4, socket.SOCK_DGRAM) as s:
        os_multicast.set_multicast_if(s, ["239.11.0.1"], info, V4)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF) == int.from_bytes(
            socket.inet_aton(net.a.host_ip4), "little"
        )


def test_get_interface_ips(net: Net) -> None:
    ips = me.get_interface_ips()
    assert {"127.0.0.1", "::1", net.a.host_ip4, net.a.host_ip6, net.b.host_ip4} <= set(ips)
    assert net.a.host_ip6 not in me.get_interface_ips(include_ipv6=False)
    assert "127.0.0.1" not in me.get_interface_ips(include_ipv4=False)


def test_plain_sender_helper_reaches_lo(net: Net, port: int) -> None:
    """The bare-socket sender used by other tests works (so their negative results mean something)."""
    with me.McastRxSocket(V4, ["239.12.0.1"], port, iface_ip="127.0.0.1", timeout=2) as rx:
        with sender(V4, "127.0.0.1", 1) as s:
            s.sendto(b"bare", ("239.12.0.1", port))
        assert rx.recv() == b"bare"
