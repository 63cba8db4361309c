"""Sending, the hard cases (live, in private namespaces): batches to many groups, a down interface
among several, batches that fail midway, bad ports in batches, asyncio on several interfaces,
the IPv6 source address, the 1.6.0 positional form and the per-interface send records."""

from __future__ import annotations

import asyncio
import errno
import socket
import subprocess
import threading
import time

import pytest
from helpers import V4, V6, Net, drain, open_fds

import multicast_expert as me
from multicast_expert import _platform, interfaces, testing


def listen_in(peer: testing.Peer, family: int, group: str, port: int) -> socket.socket:
    """A bare socket inside ``peer``, joined to ``group`` on its veth end (short timeout)."""

    def make() -> socket.socket:
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        index = socket.if_nametoindex(peer.peer_if)
        if family == V4:
            s.bind((group, port))
            mreqn = socket.inet_aton(group) + bytes(4) + index.to_bytes(4, "little")
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        else:
            s.bind((group, port, 0, index))
            mreq = socket.inet_pton(V6, group) + index.to_bytes(4, "little")
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        s.settimeout(0.3)
        return s

    return peer.run(make)


def received(s: socket.socket) -> list[tuple[bytes, str]]:
    """Every datagram queued on a bare socket: (payload, sender address)."""
    got: list[tuple[bytes, str]] = []
    while True:
        try:
            data, src = s.recvfrom(65535)
        except TimeoutError:
            return got
        got.append((data, src[0]))


# ---- 1. a batch's destinations never get mixed up ---------------------------------------------
def test_one_batch_to_300_groups_reaches_each_group(net: Net, port: int) -> None:
    groups = [f"239.171.{i // 200}.{i % 200 + 1}" for i in range(300)]
    with (
        me.McastRxSocket(V4, groups, port, iface="lo", timeout=0.3) as rx,
        me.McastTxSocket(V4, groups, iface="lo") as tx,
    ):
        assert tx.send_batch([(g.encode(), (g, port)) for g in groups]) == 300
        got = drain(rx, 400)
    assert sorted(p.payload.decode() for p in got) == sorted(groups)
    assert [p for p in got if p.payload.decode() != p.group] == []


def test_small_batches_over_600_rotating_groups_stay_on_their_groups(net: Net, port: int) -> None:
    heartbeat = "ff15::aaaa"
    groups = [f"ff15::1:{i:x}" for i in range(600)]
    wrong: list[me.McastPacket] = []
    counts: list[int] = []

    def send_and_check(tx: me.McastTxSocket, rx: me.McastRxSocket) -> None:
        for n in range(60):
            batch = [(f"hb{n}".encode(), (heartbeat, port))]
            batch += [(g.encode(), (g, port)) for g in groups[n * 10 : n * 10 + 10]]
            assert tx.send_batch(batch) == 11
            if n % 10 == 9:  # read as we go: each socket's queue stays short
                got = drain(rx, 1000)
                wrong.extend(
                    p for p in got if p.group != (heartbeat if p.payload[:2] == b"hb" else p.payload.decode())
                )
                counts.append(len(got))

    with (
        me.McastRxSocket(V6, [heartbeat, *groups], port, iface="lo", timeout=0.3) as rx,
        me.McastTxSocket(V6, [heartbeat, *groups], iface="lo") as tx,
    ):
        # On a fresh thread: whatever earlier tests left in this thread's send buffers plays no part.
        t = threading.Thread(target=send_and_check, args=(tx, rx))
        t.start()
        t.join()
    assert wrong == []
    assert counts == [110] * 6


# ---- 2. several interfaces, one of them down ----------------------------------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_redundant_sending_goes_out_on_the_healthy_interface(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    group = "239.172.0.1" if family == V4 else "ff15::172"
    down, up = own_peer.host_if, net.b.host_if
    rx = listen_in(net.b, family, group, port)
    with rx, me.McastTxSocket(family, [group], ifaces=[down, up]) as tx:
        testing.ip("link", "set", down, "down")
        with pytest.raises(me.MulticastSendError) as caught:
            tx.sendto(b"one", (group, port))
        err = caught.value
        assert isinstance(err, OSError) and isinstance(err, me.MulticastExpertError)
        assert err.errno == errno.ENETUNREACH
        assert set(err.failures) == {down} and err.failures[down].errno == errno.ENETUNREACH
        assert err.sent_on == [up] and err.sent_by_iface == {down: 0, up: 1} and err.sent == 0
        assert down in str(err) and up in str(err)
        with pytest.raises(me.MulticastSendError) as caught:
            tx.send_batch([(b"two", (group, port)), (b"three", (group, port))])
        assert caught.value.sent_by_iface == {down: 0, up: 2} and caught.value.sent_on == [up]
        assert [d for d, _ in received(rx)] == [b"one", b"two", b"three"]


# ---- 3. a batch that fails midway says how far it got -------------------------------------------
@pytest.mark.parametrize("sendmmsg", [True, False])
def test_batch_failing_midway_reports_how_many_went_out(
    net: Net, port: int, sendmmsg: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not sendmmsg:  # the one-at-a-time path other systems take
        monkeypatch.setattr(_platform.IO, "send_many", lambda *_: None)
    group = "239.173.0.1"
    batch = [
        (b"a", (group, port)),
        (b"b", (group, port)),
        (bytes(70000), (group, port)),
        (b"d", (group, port)),
    ]
    with (
        me.McastRxSocket(V4, [group], port, iface="lo", timeout=0.3) as rx,
        me.McastTxSocket(V4, [group], iface="lo") as tx,
    ):
        with pytest.raises(me.MulticastSendError) as caught:
            tx.send_batch(batch)
        assert caught.value.errno == errno.EMSGSIZE
        assert caught.value.sent == 2 and caught.value.sent_by_iface == {"lo": 2}
        assert "lo" in str(caught.value)
        assert [p.payload for p in drain(rx)] == [b"a", b"b"]


def test_batch_failing_midway_on_several_interfaces_counts_each(net: Net, port: int) -> None:
    group = "239.173.0.2"
    a, b = net.a.host_if, net.b.host_if
    batch = [(b"a", (group, port)), (bytes(70000), (group, port))]
    with me.McastTxSocket(V4, [group], ifaces=[a, b]) as tx, pytest.raises(me.MulticastSendError) as caught:
        tx.send_batch(batch)
    assert caught.value.sent_by_iface == {a: 1, b: 1} and set(caught.value.failures) == {a, b}
    assert caught.value.sent == 1 and caught.value.sent_on == []


# ---- 4. bad ports in a batch: the same error as sendto, nothing sent ---------------------------
@pytest.mark.parametrize("bad", [70000, -1])
def test_batch_bad_port_is_a_port_error_and_sends_nothing(net: Net, port: int, bad: int) -> None:
    group = "239.174.0.1"
    with (
        me.McastRxSocket(V4, [group], port, iface="lo", timeout=0.2) as rx,
        me.McastTxSocket(V4, [group], iface="lo") as tx,
    ):
        with pytest.raises(OverflowError, match=f"{bad}.*0..65535") as by_sendto:
            tx.sendto(b"x", (group, bad))
        with pytest.raises(OverflowError, match=f"{bad}.*0..65535") as by_batch:
            tx.send_batch([(b"first", (group, port)), (b"x", (group, bad))])
        assert type(by_batch.value) is type(by_sendto.value)  # MulticastPortError
        assert isinstance(by_batch.value, me.MulticastValueError)
        with pytest.raises(TypeError, match="bytes"):
            tx.send_batch([(b"first", (group, port)), ("text", (group, port))])  # type: ignore[list-item]
        with pytest.raises(TypeError, match=r"\(group, port\)"):
            tx.send_batch([(b"first", (group, port)), (b"x", [group, port])])  # type: ignore[list-item]
        assert drain(rx) == []


# ---- 5. asyncio on several interfaces -----------------------------------------------------------
def slow_link(peer: testing.Peer) -> None:
    """Rate-limit the host end of ``peer``'s veth (tbf), so a small send buffer fills."""
    subprocess.run(
        [
            "tc",
            "qdisc",
            "add",
            "dev",
            peer.host_if,
            "root",
            "tbf",
            "rate",
            "200kbit",
            "burst",
            "1600",
            "limit",
            "200000",
        ],
        check=True,
    )


async def ticking(stop: asyncio.Event, gaps: list[float]) -> None:
    """Record how long the loop takes to come back to this task."""
    while not stop.is_set():
        t = time.monotonic()
        await asyncio.sleep(0.002)
        gaps.append(time.monotonic() - t)


@pytest.mark.parametrize("how", ["sendto", "send_batch"])
def test_async_several_interfaces_never_block_the_loop_nor_send_twice(
    net: Net, own_peer: testing.Peer, port: int, how: str
) -> None:
    group = "239.175.0.1"
    fast, slow = net.b, own_peer
    slow_link(slow)
    rx_fast, rx_slow = listen_in(fast, V4, group, port), listen_in(slow, V4, group, port)
    payloads = [b"%03d" % i + bytes(300) for i in range(80)]

    async def main() -> float:
        stop, gaps = asyncio.Event(), list[float]()
        ticker = asyncio.create_task(ticking(stop, gaps))
        async with me.AsyncMcastTxSocket(V4, [group], ifaces=[fast.host_if, slow.host_if]) as tx:
            assert [s.getblocking() for s in tx.sync_socket.sockets] == [False, False]
            for s in tx.sync_socket.sockets:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel's minimum
            start = time.monotonic()
            if how == "sendto":
                for p in payloads:
                    await tx.sendto(p, (group, port))
            else:
                assert await tx.send_batch([(p, (group, port)) for p in payloads]) == len(payloads)
            took = time.monotonic() - start
            await asyncio.sleep(0.5)  # the slow link drains
        stop.set()
        await ticker
        assert max(gaps) < 0.25, f"the event loop stalled for {max(gaps):.2f} s"
        return took

    with rx_fast, rx_slow:
        took = asyncio.run(main())
        assert took > 0.1  # the slow link really made it wait
        assert [d for d, _ in received(rx_fast)] == payloads
        assert [d for d, _ in received(rx_slow)] == payloads


def test_async_send_batch_on_one_interface(net: Net, port: int) -> None:
    group = "239.175.0.2"

    async def main() -> list[bytes]:
        with me.McastRxSocket(V4, [group], port, iface="lo", timeout=0.3) as rx:
            async with me.AsyncMcastTxSocket(V4, [group], iface="lo") as tx:
                assert await tx.send_batch([(b"%d" % i, (group, port)) for i in range(5)]) == 5
            return [p.payload for p in drain(rx)]

    assert asyncio.run(main()) == [b"0", b"1", b"2", b"3", b"4"]


# ---- 6. the IPv6 source address ----------------------------------------------------------------
def newer_address(peer: testing.Peer, suffix: str, *flags: str) -> str:
    """Add a newer IPv6 address to ``peer``'s host end (listed first by the kernel)."""
    addr = peer.host_ip6.replace("::1", f"::{suffix}")
    testing.ip("-6", "addr", "add", f"{addr}/64", "dev", peer.host_if, *flags)
    interfaces.rescan_interfaces()
    assert str(interfaces.find_interface(peer.host_if).ip6_addrs[0].ip) == addr  # what used to be picked
    return addr


@pytest.mark.parametrize("kind", ["deprecated", "tentative"])
def test_ipv6_source_is_never_deprecated_or_tentative(
    net: Net, own_peer: testing.Peer, port: int, kind: str
) -> None:
    if kind == "deprecated":
        bad = newer_address(own_peer, "9", "preferred_lft", "0", "nodad")
    else:  # duplicate address detection keeps it tentative for 60 s
        testing.sysctl(f"net.ipv6.conf.{own_peer.host_if}.accept_dad", "1")
        testing.sysctl(f"net.ipv6.conf.{own_peer.host_if}.dad_transmits", "60")
        bad = newer_address(own_peer, "7")
        assert "tentative" in testing.ip("-6", "addr", "show", "dev", own_peer.host_if)
    group = "ff15::176"
    rx = listen_in(own_peer, V6, group, port)
    with rx, me.McastTxSocket(V6, [group], iface=own_peer.host_if) as tx:
        assert tx.iface_ip == own_peer.host_ip6 != bad
        assert tx.getsockname()[0] == own_peer.host_ip6
        tx.sendto(b"from a good address", (group, port))
        assert received(rx) == [(b"from a good address", own_peer.host_ip6)]
    tx = me.McastTxSocket(V6, [group], iface=bad)  # an address named outright is used as given
    assert tx.iface_ip == bad
    if kind == "deprecated":
        with tx:
            assert tx.getsockname()[0] == bad
    else:  # the kernel will not bind to it before duplicate address detection ends
        with pytest.raises(me.MulticastOSError, match="Cannot assign requested address"), tx:
            pass


def test_preferred_source_is_the_kernels_choice(net: Net) -> None:
    ops = _platform.HOST
    a = net.a
    index = socket.if_nametoindex(a.host_if)
    assert ops.preferred_source(V6, index, a.host_if) == a.host_ip6
    assert ops.preferred_source(V4, index, a.host_if) is None  # IPv4: the interface's first address
    assert _platform.Host().preferred_source(V6, index, a.host_if) is None


# ---- 7. the 1.6.0 and 1.2.0 positional forms ----------------------------------------------------
def test_1_6_0_positional_form(net: Net) -> None:
    g = ["239.177.0.1"]
    tx = me.McastTxSocket(V4, g, None, 3, True, "lo")  # 1.6.0: (family, ips, iface, ttl, loopback, iface_ip)
    assert (tx.network_interface.machine_name, tx.ttl, tx.enable_external_loopback) == ("lo", 3, True)
    tx = me.McastTxSocket(V4, g, "lo", 2, False, None)
    assert (tx.network_interface.machine_name, tx.ttl) == ("lo", 2)
    with pytest.raises(me.MulticastExpertError, match="iface and iface_ip may not both be specified"):
        me.McastTxSocket(V4, g, "lo", 1, False, "lo")
    with pytest.raises(TypeError, match="at most 6 positional"):
        me.McastTxSocket(V4, g, "lo", 1, False, None, 7)  # type: ignore[arg-type]
    tx = me.McastTxSocket(V4, g, "127.0.0.1", 4)  # 1.2.0: (family, ips, iface_ip, ttl)
    assert (tx.iface_ip, tx.ttl) == ("127.0.0.1", 4)
    with tx:
        assert tx.getsockname()[0] == "127.0.0.1"


# ---- 8. one record per interface ----------------------------------------------------------------
def test_per_interface_records_and_public_blocking_switch(net: Net) -> None:
    a, b = net.a, net.b
    before = open_fds()
    tx = me.McastTxSocket(V4, ["239.178.0.1"], ifaces=[a.host_if, b.host_if, a.host_if])
    assert [i.machine_name for i in tx.network_interfaces] == [a.host_if, b.host_if]
    assert not hasattr(tx, "_socks")
    with tx:
        assert [s.getsockname()[0] for s in tx.sockets] == [a.host_ip4, b.host_ip4]
        assert tx.socket is tx.sockets[0]
        tx.setblocking(False)
        assert [s.getblocking() for s in tx.sockets] == [False, False]
        tx.setblocking(True)
        assert [s.getblocking() for s in tx.sockets] == [True, True]
    assert tx.sockets == [] and tx.socket is None
    with pytest.raises(me.MulticastExpertError, match="open"):
        tx.setblocking(False)
    with pytest.raises(me.MulticastExpertError, match="nosuch0"):
        me.McastTxSocket(V4, ["239.178.0.1"], ifaces=[a.host_if, "nosuch0"])
    assert open_fds() == before
