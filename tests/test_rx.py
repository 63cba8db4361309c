"""Receiving, live in private namespaces: groups, interfaces, isolation, sources, fairness,
live membership, timeouts."""

from __future__ import annotations

import ipaddress
import resource
import select
import socket
import threading
import zlib

import pytest
from helpers import V4, V6, Net, drain, open_fds, send_from_peer, sender

import multicast_expert as me
from multicast_expert import testing


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
        testing.enter_new_netns_on_this_thread()
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


def test_both_iface_ip_and_iface_ips(net: Net) -> None:
    with pytest.raises(me.MulticastExpertError, match="Both iface_ips and iface_ip may not be specified"):
        me.McastRxSocket(V4, ["239.8.0.1"], 1, iface_ip="127.0.0.1", iface_ips=["127.0.0.1"])


def test_source_limit_failure_leaves_nothing_open(net: Net, port: int) -> None:
    """Past the per-socket source limit (lowered here to 3), the error names the sysctl; no fd leaks."""
    sources = [f"198.18.1.{i}" for i in range(10, 14)]
    testing.sysctl("net.ipv4.igmp_max_msf", 3)
    try:
        before = open_fds()
        rx = me.McastRxSocket(V4, ["232.9.0.1", "232.9.0.2"], port, iface=net.a.host_if, source_ips=sources)
        with pytest.raises(me.MulticastExpertError, match=r"net\.ipv4\.igmp_max_msf"):
            rx.open()
        assert open_fds() == before
        assert not rx.is_opened
    finally:
        testing.sysctl("net.ipv4.igmp_max_msf", 10)


def test_fd_exhaustion_halfway_leaves_nothing_open(net: Net, port: int) -> None:

    groups = [f"239.10.0.{i}" for i in range(1, 60)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = open_fds()
    resource.setrlimit(resource.RLIMIT_NOFILE, (before + 20, hard))
    try:
        rx = me.McastRxSocket(V4, groups, port, iface=net.a.host_if, raise_fd_limit=False)
        with pytest.raises(me.MulticastExpertError, match="too many open files"):
            rx.open()
        assert open_fds() == before
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("family", [V4, V6])
def test_two_thousand_groups_on_one_socket(net: Net, port: int, family: int) -> None:
    if family == V4:
        groups = [f"239.{100 + i // 250}.{i % 250}.1" for i in range(2000)]
    else:
        groups = [f"ff15::a:{i:x}" for i in range(2000)]
    before = open_fds()
    with me.McastRxSocket(family, groups, port, iface=net.a.host_if, timeout=1.0) as rx:
        assert len(rx.filenos()) == 2000
        assert max(rx.filenos()) > 1024  # past select()'s ceiling, still fine

        def send_all() -> None:
            ip = net.a.peer_ip4 if family == V4 else net.a.peer_ip6
            with sender(family, ip, socket.if_nametoindex(net.a.peer_if)) as s:
                for g in groups:
                    s.sendto(g.encode(), (g, port))

        net.a.run(send_all)
        got = drain(rx)
    assert open_fds() == before
    assert len(got) == 2000
    assert all(p.payload.decode() == p.group for p in got)  # each datagram tagged with its own group
    assert {p.group for p in got} == set(groups)


def test_fairness_between_two_busy_groups(net: Net, port: int) -> None:
    ga, gb = "239.40.0.1", "239.40.0.2"
    with me.McastRxSocket(V4, [ga, gb], port, iface=net.a.host_if, timeout=0.5) as rx:

        def interleaved() -> None:
            with sender(V4, net.a.peer_ip4, 0) as s:
                for i in range(60):
                    s.sendto(b"a%d" % i, (ga, port))
                    s.sendto(b"b%d" % i, (gb, port))

        net.a.run(interleaved)
        first = [rx.recv_packet() for _ in range(60)]
        rest = drain(rx)
    groups = [p.group for p in first if p is not None]
    assert len(groups) == 60
    share_a = groups.count(ga) / 60
    assert 0.4 <= share_a <= 0.6, share_a
    assert len(rest) == 60  # nothing lost, just ordered fairly
    # within a group, order is preserved
    a_seq = [int(p.payload[1:]) for p in [*first, *rest] if p is not None and p.group == ga]
    assert a_seq == list(range(60))


@pytest.mark.parametrize("family", [V4, V6])
def test_interface_isolation_despite_other_socket_on_other_interface(
    net: Net, port: int, family: int
) -> None:
    group = "239.41.0.1" if family == V4 else "ff15::41:1"
    # Another socket on this host joins the same group on interface b (a plain, careless socket).
    other = socket.socket(family, socket.SOCK_DGRAM)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == V4:
        other.bind(("", port))
        mreq = socket.inet_aton(group) + socket.inet_aton(net.b.host_ip4)
        other.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    else:
        other.bind(("::", port))
        mreq6 = socket.inet_pton(V6, group) + socket.if_nametoindex(net.b.host_if).to_bytes(4, "little")
        other.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq6)
    with other, me.McastRxSocket(family, [group], port, iface=net.a.host_if, timeout=0.3) as rx:
        send_from_peer(net.b, family, group, port, [b"from b"] * 3)
        send_from_peer(net.a, family, group, port, [b"from a"])
        got = drain(rx)
        other.settimeout(0.5)
        assert other.recv(100) == b"from b"  # the traffic on b really arrived on this host
    assert [p.payload for p in got] == [b"from a"]
    assert {p.iface_index for p in got} == {socket.if_nametoindex(net.a.host_if)}


def test_recv_packet_fields_and_truncation(net: Net, port: int) -> None:
    with me.McastRxSocket(V6, ["ff12::42"], port, iface=net.b.host_if, timeout=1) as rx:
        send_from_peer(net.b, V6, "ff12::42", port, [bytes(range(100))])
        p = rx.recv_packet(bufsize=10)
        assert p is not None
        assert p.payload == bytes(range(10))
        assert p.truncated
        assert p.group == "ff12::42"
        assert p.iface_index == socket.if_nametoindex(net.b.host_if)
        assert p.src[0] == net.b.peer_ip6 and len(p.src) == 4
        with pytest.raises(AttributeError):
            p.group = "ff12::43"  # type: ignore[misc]
        send_from_peer(net.b, V6, "ff12::42", port, [b"short"])
        q = rx.recv_packet()
        assert q is not None and q.payload == b"short" and not q.truncated
        rx.settimeout(0)
        assert rx.recv_packet() is None


def test_live_join_leave_block_unblock(net: Net, port: int) -> None:
    g1, g2 = "239.43.0.1", "239.43.0.2"
    good, bad = net.a.peer_ip4, "198.18.1.3"
    before = open_fds()
    with me.McastRxSocket(V4, [g1], port, iface=net.a.host_if, timeout=0.3) as rx:
        send_from_peer(net.a, V4, g2, port, [b"early"])
        assert drain(rx) == []
        rx.join_group(g2)
        send_from_peer(net.a, V4, g2, port, [b"joined"])
        assert [p.payload for p in drain(rx)] == [b"joined"]
        with pytest.raises(me.MulticastExpertError, match="already joined"):
            rx.join_group(g2)
        rx.block_source(g2, bad)
        send_from_peer(net.a, V4, g2, port, [b"blocked"], src_ip=bad)
        send_from_peer(net.a, V4, g2, port, [b"allowed"], src_ip=good)
        assert [p.payload for p in drain(rx)] == [b"allowed"]
        with pytest.raises(me.MulticastExpertError, match="already blocked"):
            rx.block_source(g2, bad)
        rx.unblock_source(g2, bad)
        send_from_peer(net.a, V4, g2, port, [b"unblocked"], src_ip=bad)
        assert [p.payload for p in drain(rx)] == [b"unblocked"]
        with pytest.raises(me.MulticastExpertError, match="not blocked"):
            rx.unblock_source(g2, bad)
        rx.leave_group(g2)
        send_from_peer(net.a, V4, g2, port, [b"left"])
        send_from_peer(net.a, V4, g1, port, [b"still"])
        assert [p.payload for p in drain(rx)] == [b"still"]
        with pytest.raises(me.MulticastExpertError, match="not joined"):
            rx.leave_group(g2)
        rx.join_group("232.43.0.3", source_ips=[good])  # live source-specific join
        send_from_peer(net.a, V4, "232.43.0.3", port, [b"ssm-bad"], src_ip=bad)
        send_from_peer(net.a, V4, "232.43.0.3", port, [b"ssm-good"], src_ip=good)
        assert [p.payload for p in drain(rx)] == [b"ssm-good"]
        with pytest.raises(me.MulticastExpertError, match="source-specific"):
            rx.block_source("232.43.0.3", bad)
        assert rx.mcast_ips == [g1, "232.43.0.3"]
        assert rx.sources_by_group == {"232.43.0.3": [good]}
        assert rx.source_ips is None  # as constructed: any-source
    assert open_fds() == before
    with pytest.raises(me.MulticastExpertError, match="closed"):
        rx.join_group(g2)


def test_ipv6_block_source(net: Net, port: int) -> None:
    g = "ff15::44"
    with me.McastRxSocket(V6, [g], port, iface=net.a.host_if, timeout=0.3) as rx:
        rx.block_source(g, "2001:db8:1::3")
        send_from_peer(net.a, V6, g, port, [b"bad"], src_ip="2001:db8:1::3")
        send_from_peer(net.a, V6, g, port, [b"good"], src_ip="2001:db8:1::2")
        assert [p.payload for p in drain(rx)] == [b"good"]


@pytest.mark.parametrize(("family", "count"), [(V4, 25), (V6, 70)])
def test_more_sources_than_one_socket_holds(net: Net, port: int, family: int, count: int) -> None:
    """Linux allows 10 IPv4 / 64 IPv6 sources per group per socket; the library spreads them."""
    if family == V4:
        sources = ["198.18.1.2"] + [f"198.18.1.{i}" for i in range(100, 100 + count - 1)]
        group, bad = "232.45.0.1", "198.18.1.3"
    else:
        sources = ["2001:db8:1::2"] + [f"2001:db8:1::{i:x}" for i in range(0x100, 0x100 + count - 1)]
        group, bad = "ff35::45", "2001:db8:1::3"
    with me.McastRxSocket(family, [group], port, iface=net.a.host_if, source_ips=sources, timeout=0.3) as rx:
        assert len(rx.filenos()) == 3 if family == V4 else 2
        send_from_peer(net.a, family, group, port, [b"listed"], src_ip=sources[0])
        send_from_peer(net.a, family, group, port, [b"unlisted"], src_ip=bad)
        assert [p.payload for p in drain(rx)] == [b"listed"]


def test_rcvbuf_reports_what_the_os_granted(net: Net, port: int) -> None:
    with me.McastRxSocket(V4, ["239.46.0.1"], port, iface_ip="127.0.0.1", rcvbuf=65536) as rx:
        assert rx.granted_rcvbuf is not None and rx.granted_rcvbuf >= 65536
        for s in rx.sockets:
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == rx.granted_rcvbuf
    # net.core.rmem_max is global (read-only inside a namespace): ask for far more than it allows.
    with open("/proc/sys/net/core/rmem_max") as f:
        rmem_max = int(f.read())
    rx = me.McastRxSocket(V4, ["239.46.0.1"], port, iface_ip="127.0.0.1", rcvbuf=rmem_max * 4)
    with pytest.warns(RuntimeWarning, match=r"net\.core\.rmem_max"), rx:
        assert rx.granted_rcvbuf is not None and rx.granted_rcvbuf < rmem_max * 4


def test_flood_drops_are_not_fatal(net: Net, port: int) -> None:
    """100,000 datagrams sent faster than they are read: nothing raises, what arrives is intact."""
    groups = ["239.47.0.1", "239.47.0.2"]
    total = 100_000
    with me.McastRxSocket(V4, groups, port, iface=net.a.host_if, timeout=0.5, rcvbuf=32768) as rx:
        done = threading.Event()

        def flood() -> None:
            with sender(V4, net.a.peer_ip4, 0) as s:
                for i in range(total):
                    g = groups[i % 2]
                    body = b"%s|%d|" % (g.encode(), i)
                    s.sendto(body + zlib.crc32(body).to_bytes(4, "big"), (g, port))
            done.set()

        t = threading.Thread(target=lambda: net.a.run(flood))
        t.start()
        received = 0
        while True:
            p = rx.recv_packet()
            if p is None and done.is_set():
                break
            if p is None:
                continue
            body, crc = p.payload[:-4], p.payload[-4:]
            assert zlib.crc32(body).to_bytes(4, "big") == crc
            assert body.split(b"|")[0].decode() == p.group
            received += 1
        t.join()
    assert 0 < received <= total


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
