"""Receive capacity and per-packet control: recv_batch, send_batch, TTL/TOS/timestamps, sending
on several interfaces. Live, over lo and veth links in the private namespaces."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from helpers import V4, V6, Net, drain, send_from_peer, sender

import multicast_expert as me
from multicast_expert import testing

GROUPS = [f"239.150.0.{i}" for i in range(1, 17)]


def test_recv_batch_is_fair_ordered_and_complete(net: Net, port: int) -> None:
    with (
        me.McastRxSocket(V4, GROUPS, port, iface="lo", timeout=0.5, rcvbuf=1 << 20) as rx,
        me.McastTxSocket(V4, GROUPS, iface="lo") as tx,
    ):
        for i in range(20):
            for g in GROUPS:
                tx.sendto(b"%s %d" % (g.encode(), i), (g, port))
        time.sleep(0.05)
        first = rx.recv_batch(64)
        assert len(first) == 64
        per_group: dict[str, int] = {}
        for p in first:
            per_group[p.group] = per_group.get(p.group, 0) + 1
        assert sorted(per_group.values()) == [4] * 16  # an equal share for each ready group
        got = first + [p for _ in range(10) for p in rx.recv_batch(64)]
        assert len(got) == 16 * 20
        for g in GROUPS:
            seq = [int(p.payload.split()[1]) for p in got if p.group == g]
            assert seq == list(range(20))  # each group in arrival order
            assert all(p.payload.startswith(g.encode()) for p in got if p.group == g)
        assert rx.recv_batch() == []  # timeout: an empty list
    with pytest.raises(me.MulticastExpertError, match="closed"):
        rx.recv_batch()
    with pytest.raises(ValueError, match="max_packets 0 is out of range"):
        me.McastRxSocket(V4, GROUPS, port, iface="lo").recv_batch(0)


@pytest.mark.parametrize("groups", [["239.151.0.1"], ["239.151.0.1", "239.151.0.2"]])
def test_recv_batch_reports_truncation_per_packet(net: Net, port: int, groups: list[str]) -> None:
    with me.McastRxSocket(V4, groups, port, iface="lo", timeout=0.5) as rx, sender(V4, "127.0.0.1", 1) as tx:
        tx.sendto(b"short", (groups[0], port))
        tx.sendto(b"a much longer payload", (groups[0], port))
        got = rx.recv_batch(8, bufsize=10)
        assert [(p.payload, p.truncated) for p in got] == [(b"short", False), (b"a much lon", True)]


def test_send_batch_checks_every_destination_and_sends_all(net: Net, port: int) -> None:
    groups = GROUPS[:2]
    with (
        me.McastRxSocket(V4, groups, port, iface="lo", timeout=0.3, rcvbuf=1 << 20) as rx,
        me.McastTxSocket(V4, groups, iface="lo") as tx,
    ):
        batch = [(b"%d" % i, (groups[i % 2], port)) for i in range(100)]
        with pytest.raises(me.MulticastExpertError, match="was not one of the addresses given"):
            tx.send_batch([*batch[:3], (b"x", ("239.99.99.99", port))])
        assert rx.recv() is None  # nothing went out
        assert tx.send_batch(batch) == 100
        got = drain(rx, 200)
        assert sorted(int(p.payload) for p in got) == list(range(100))
        for g in groups:
            seq = [int(p.payload) for p in got if p.group == g]
            assert seq == sorted(seq)


@pytest.mark.parametrize("family", [V4, V6])
def test_ttl_tos_and_timestamps_on_request(net: Net, port: int, family: int) -> None:
    group = "239.152.0.1" if family == V4 else "ff15::152"
    lo = "127.0.0.1" if family == V4 else "::1"
    with (
        me.McastRxSocket(
            family, [group], port, iface=lo, timeout=0.5, recv_ttl=True, recv_tos=True, timestamps=True
        ) as rx,
        me.McastRxSocket(family, [group], port, iface=lo, timeout=0.5) as plain,
        sender(family, lo, 1, ttl=7) as tx,
    ):
        if family == V4:
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x20)
        else:
            tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x20)
        before = time.time()
        tx.sendto(b"one", (group, port))
        tx.sendto(b"two", (group, port))
        p = rx.recv_packet()
        assert p is not None and p.payload == b"one"
        assert p.ttl == 7 and p.tos == 0x20
        assert p.timestamp is not None and before - 1 < p.timestamp < time.time() + 1
        (q,) = rx.recv_batch(4)  # recvmmsg path: the same metadata
        assert (q.payload, q.ttl, q.tos) == (b"two", 7, 0x20) and q.timestamp is not None
        r = plain.recv_packet()
        assert r is not None and (r.ttl, r.tos, r.timestamp) == (None, None, None)
        assert r.payload == b"one" and r[:5] == (r.payload, r.src, r.group, r.iface_index, r.truncated)


def test_tx_on_several_interfaces(net: Net, port: int) -> None:
    group = "239.153.0.1"
    results: dict[str, list[bytes]] = {}

    def listen(peer: testing.Peer) -> list[bytes]:
        with me.McastRxSocket(V4, [group], port, iface=peer.peer_if, timeout=0.5) as rx:
            ready[peer.peer_if] = True
            return [p.payload for p in drain(rx, 10)]

    ready: dict[str, bool] = {}
    threads = [
        threading.Thread(target=lambda p=p: results.__setitem__(p.peer_if, p.run(lambda: listen(p))))
        for p in (net.a, net.b)
    ]
    for t in threads:
        t.start()
    while len(ready) < 2:
        time.sleep(0.01)
    me.scan_interfaces()
    with me.McastTxSocket(V4, [group], ifaces=[net.a.host_if, net.b.host_if]) as tx:
        assert [i.machine_name for i in tx.network_interfaces] == [net.a.host_if, net.b.host_if]
        tx.sendto(b"everywhere", (group, port))
        tx.sendto(b"only b", (group, port), iface=net.b.host_if)
        assert tx.send_batch([(b"batch", (group, port))]) == 1
        with pytest.raises(me.MulticastExpertError, match="not one this McastTxSocket sends on"):
            tx.sendto(b"x", (group, port), iface="lo")
    for t in threads:
        t.join(3)
    me.scan_interfaces()
    assert results[net.a.peer_if] == [b"everywhere", b"batch"]
    assert results[net.b.peer_if] == [b"everywhere", b"only b", b"batch"]


def test_async_recv_batch(net: Net, port: int) -> None:
    async def main() -> list[bytes]:
        async with (
            me.AsyncMcastRxSocket(V4, GROUPS[:4], port, iface="lo") as rx,
            me.AsyncMcastTxSocket(V4, GROUPS[:4], iface="lo") as tx,
        ):
            waiting = asyncio.ensure_future(rx.recv_batch(16))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            for g in GROUPS[:4]:
                await tx.sendto(g.encode(), (g, port))
            got = await asyncio.wait_for(waiting, 2)
            rest: list[me.McastPacket] = []
            while len(got) + len(rest) < 4:
                rest += await asyncio.wait_for(rx.recv_batch(16), 2)
            return sorted(p.payload for p in got + rest)

    assert asyncio.run(main()) == sorted(g.encode() for g in GROUPS[:4])


def test_send_from_peer_helper_still_used(net: Net, port: int) -> None:
    """recv_batch over a veth link (datagrams from another host)."""
    with me.McastRxSocket(V4, ["239.154.0.1"], port, iface=net.a.host_if, timeout=0.5) as rx:
        send_from_peer(net.a, V4, "239.154.0.1", port, [b"%d" % i for i in range(30)])
        got = rx.recv_batch(64)
        assert [p.payload for p in got] == [b"%d" % i for i in range(30)]
        assert all(p.src[0] == net.a.peer_ip4 and p.group == "239.154.0.1" for p in got)
