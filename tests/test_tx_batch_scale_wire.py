"""send_batch to hundreds of groups, mixed payload sizes (0 bytes to the largest datagram), far
more than 1,024 datagrams per batch, checked on the wire (an AF_PACKET capture in the peer) and by
a bare receiver joined to every group, against a bare-socket sender: every datagram exactly once,
on its group, in order per group, from the interface's address, with the socket's TTL."""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Callable

import pytest
from helpers import Net, sender
from udp_capture import V4, V6, Capture, Receiver, big_mtu, in_thread

import multicast_expert as me
from multicast_expert import testing

TTL = 7


def groups_for(family: int, n: int) -> list[str]:
    if family == V4:
        return [f"239.201.{i // 250}.{i % 250 + 1}" for i in range(n)]
    return [f"ff15::a:{i:x}" for i in range(n)]


def make_batch(
    family: int, groups: list[str], port: int, count: int, seed: int
) -> list[tuple[bytes, tuple[str, int]]]:
    rnd = random.Random(seed)
    top = 65507 if family == V4 else 65487  # (IPv6: the largest that fits an MTU of 65535)
    sizes = [0, 1, 7, 8, 100, 1472, 1473, 9000, 32768, top - 1, top]
    batch = []
    for i in range(count):
        gi = i % len(groups) if i < len(groups) else rnd.randrange(len(groups))
        size = sizes[i % len(sizes)] if i % 3 else rnd.randrange(0, 200)
        head = struct.pack("!IH", i, gi)
        body = (head * (size // len(head) + 1))[:size]
        batch.append((body, (groups[gi], port)))
    return batch


def per_group(items: list[tuple[bytes, str]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for payload, group in items:
        out.setdefault(group, []).append(payload)
    return out


def check_delivery(
    peer: testing.Peer,
    family: int,
    groups: list[str],
    port: int,
    batch: list[tuple[bytes, tuple[str, int]]],
    send: Callable[[list[tuple[bytes, tuple[str, int]]]], object],
) -> None:
    src = peer.host_ip4 if family == V4 else peer.host_ip6
    cap = Capture(peer)
    rx = Receiver(peer, family, groups, port)
    try:
        result = send(batch)
        got = rx.drain(1.0)
        frames = [f for f in cap.drain(0.5) if f.dport == port]
    finally:
        rx.close()
        cap.close()
    assert result == len(batch)
    expected = per_group([(p, a[0]) for p, a in batch])
    # the wire: every datagram once, on its group, from the interface's address, with the TTL
    assert len(frames) == len(batch), (len(frames), len(batch))
    assert {(f.src, f.ttl) for f in frames} == {(src, TTL)}
    assert per_group([(f.payload, f.dst) for f in frames]) == expected
    # the receiver: the same
    assert len(got) == len(batch), (len(got), len(batch))
    assert {(g.src, g.ttl) for g in got} == {(src, TTL)}
    assert per_group([(g.payload, g.group) for g in got]) == expected


@pytest.mark.parametrize("family", [V4, V6])
@pytest.mark.parametrize("ngroups,count", [(300, 1500), (1000, 3100)])
def test_big_batch_many_groups_wire_and_receivers(
    net: Net, own_peer: testing.Peer, port: int, family: int, ngroups: int, count: int
) -> None:
    big_mtu(own_peer)
    groups = groups_for(family, ngroups)
    batch = make_batch(family, groups, port, count, seed=ngroups)
    with me.McastTxSocket(family, groups, iface=own_peer.host_if, ttl=TTL) as tx:
        # first: destinations new to the socket (checked in Python), on a fresh thread
        check_delivery(own_peer, family, groups, port, batch, lambda b: in_thread(tx.send_batch, b))
        # again: every destination known (the fast path), on this thread
        check_delivery(own_peer, family, groups, port, batch, tx.send_batch)
        # a generator, not a list
        check_delivery(own_peer, family, groups, port, batch, lambda b: tx.send_batch(x for x in b))


@pytest.mark.parametrize("family", [V4, V6])
def test_bare_sender_same_batch(net: Net, own_peer: testing.Peer, port: int, family: int) -> None:
    """The comparison: a bare socket sending the same batch one sendto at a time."""
    big_mtu(own_peer)
    groups = groups_for(family, 1000)
    batch = make_batch(family, groups, port, 3100, seed=1000)
    src = own_peer.host_ip4 if family == V4 else own_peer.host_ip6
    with sender(family, src, socket.if_nametoindex(own_peer.host_if), ttl=TTL) as s:

        def send(b: list) -> int:  # type: ignore[type-arg]
            for p, a in b:
                s.sendto(p, a)
            return len(b)

        check_delivery(own_peer, family, groups, port, batch, send)


@pytest.mark.parametrize("family", [V4, V6])
def test_big_batch_on_two_interfaces_each_gets_everything(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    second = testing.Peer(176)  # (outside own_peer's and two_peers' ranges)
    try:
        big_mtu(own_peer)
        big_mtu(second)
        me.interfaces.rescan_interfaces()
        groups = groups_for(family, 400)
        batch = make_batch(family, groups, port, 2100, seed=7)
        with me.McastTxSocket(family, groups, ifaces=[own_peer.host_if, second.host_if], ttl=TTL) as tx:
            caps = [Capture(own_peer), Capture(second)]
            rxs = [Receiver(own_peer, family, groups, port), Receiver(second, family, groups, port)]
            try:
                assert tx.send_batch(batch) == len(batch)
                gots = [r.drain(1.0) for r in rxs]
                frames = [[f for f in c.drain(0.5) if f.dport == port] for c in caps]
            finally:
                for r in rxs:
                    r.close()
                for c in caps:
                    c.close()
        expected = per_group([(p, a[0]) for p, a in batch])
        for peer, got, fr in zip((own_peer, second), gots, frames, strict=True):
            src = peer.host_ip4 if family == V4 else peer.host_ip6
            assert len(fr) == len(batch)
            assert {(f.src, f.ttl) for f in fr} == {(src, TTL)}
            assert per_group([(f.payload, f.dst) for f in fr]) == expected
            assert len(got) == len(batch)
            assert per_group([(g.payload, g.group) for g in got]) == expected
    finally:
        second.close()
        me.interfaces.rescan_interfaces()
