"""Sending, the hard cases (live, in private namespaces): batches to many groups, a down interface
among several, batches that fail midway, bad ports in batches, asyncio on several interfaces,
the IPv6 source address, the 1.6.0 positional form and the per-interface send records."""

from __future__ import annotations

import socket
import threading

from helpers import V4, V6, Net, drain

import multicast_expert as me
from multicast_expert import testing


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
