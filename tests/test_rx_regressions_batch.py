"""Regression tests: recv_batch's fairness, completeness and memory (items 12, 13, 14).

Live, over ``lo`` inside the session's private namespace. Each asserts what must happen; see the
module of each item for the failure it was written against.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import pytest
from helpers import V4, Net

import multicast_expert as me

RCVBUF = 1 << 20  # room for every datagram queued here (the OS may grant less: still enough)


def queue(tx: me.McastTxSocket, port: int, groups: list[str], per_group: int) -> None:
    """Queue ``per_group`` datagrams on each group, interleaved, payload ``b"GROUP N"``."""
    for i in range(per_group):
        for g in groups:
            tx.sendto(b"%s %d" % (g.encode(), i), (g, port))
    time.sleep(0.1)  # loopback delivers at once; a margin for the softirq


def counts(packets: list[me.McastPacket], groups: list[str]) -> dict[str, int]:
    c = collections.Counter(p.group for p in packets)
    return {g: c[g] for g in groups}


def open_pair(groups: list[str], port: int) -> tuple[me.McastRxSocket, me.McastTxSocket]:
    rx = me.McastRxSocket(V4, groups, port, iface="lo", timeout=0.5, rcvbuf=RCVBUF)
    tx = me.McastTxSocket(V4, groups, iface="lo")
    return rx, tx


# ---- item 12: fair shares over consecutive calls -------------------------------------------------
@pytest.mark.parametrize(
    ("n_groups", "max_packets", "calls"),
    [
        (3, None, 4),  # the report: default recv_batch() on 3 groups, 4 calls: 44/106/106
        (2, 3, 20),  # the report: recv_batch(3) on 2 groups: 20/40
        (3, 5, 12),  # kept apart: recv_batch(5) on 3 groups
    ],
)
def test_recv_batch_shares_are_equal_over_consecutive_calls(
    net: Net, port: int, n_groups: int, max_packets: int | None, calls: int
) -> None:
    """Every group stays busy (more queued than it can be given); over consecutive full calls each
    group's count may differ from another's by at most the number of groups."""
    groups = [f"239.170.{n_groups}.{i}" for i in range(1, n_groups + 1)]
    size = 64 if max_packets is None else max_packets
    per_group = size * calls // n_groups + 20  # every group still has data after the last call
    rx, tx = open_pair(groups, port)
    with rx, tx:
        queue(tx, port, groups, per_group)
        got: list[me.McastPacket] = []
        sizes = []
        for _ in range(calls):
            batch = rx.recv_batch() if max_packets is None else rx.recv_batch(max_packets)
            sizes.append(len(batch))
            got += batch
        share = counts(got, groups)
        assert max(share.values()) - min(share.values()) <= n_groups, (
            f"unequal shares over {calls} calls of recv_batch({size}): {share} (batch sizes {sizes})"
        )
        assert sizes == [size] * calls, f"every call had a full batch queued; got sizes {sizes}"
        for g in groups:  # and each group still in arrival order
            seq = [int(p.payload.split()[1]) for p in got if p.group == g]
            assert seq == list(range(len(seq)))


@pytest.mark.parametrize("max_packets", [1, 2, 4])
def test_recv_batch_smaller_than_the_group_count_rotates_over_groups(
    net: Net, port: int, max_packets: int
) -> None:
    """Kept apart: max_packets below (or just above) the number of groups: every group in turn."""
    groups = [f"239.170.9.{i}" for i in range(1, 4)]
    rx, tx = open_pair(groups, port)
    with rx, tx:
        queue(tx, port, groups, 30)
        got = [p for _ in range(60 // max_packets) for p in rx.recv_batch(max_packets)]
        share = counts(got, groups)
        assert max(share.values()) - min(share.values()) <= 3, (
            f"recv_batch({max_packets}) on 3 groups: {share}"
        )


# ---- item 13: everything queued, up to max_packets ----------------------------------------------
@pytest.mark.parametrize("first", ["recvfrom", "recv_packet", "recv"])
def test_recv_batch_after_a_single_receive_returns_everything_queued(net: Net, port: int, first: str) -> None:
    groups = [f"239.171.0.{i}" for i in range(1, 4)]
    rx, tx = open_pair(groups, port)
    with rx, tx:
        queue(tx, port, groups, 10)  # 30 datagrams on 3 groups
        one = getattr(rx, first)()
        assert one is not None
        batch = rx.recv_batch(64)
        assert len(batch) == 29, (
            f"29 datagrams were queued after one {first}(); recv_batch(64) gave {len(batch)}"
        )
        rx.settimeout(0)
        assert rx.recv_batch(64) == []


def test_recv_batch_fills_max_packets_then_leaves_the_rest(net: Net, port: int) -> None:
    """Kept apart: a smaller max_packets after one recvfrom() is filled exactly; the rest follows."""
    groups = [f"239.171.1.{i}" for i in range(1, 4)]
    rx, tx = open_pair(groups, port)
    with rx, tx:
        queue(tx, port, groups, 10)
        assert rx.recvfrom() is not None
        first = rx.recv_batch(25)
        assert len(first) == 25, f"29 queued, recv_batch(25) gave {len(first)}"
        second = rx.recv_batch(64)
        assert len(second) == 4, f"4 left, recv_batch(64) gave {len(second)}"
        payloads = {p.payload for p in first + second}
        assert len(payloads) == 29  # nothing twice


# ---- item 14: memory of recv_batch(1024) stays bounded --------------------------------------------
def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_recv_batch_1024_on_few_datagrams_keeps_memory_bounded(net: Net, port: int) -> None:
    """3 threads call recv_batch(1024) many times, each call finding 1-8 small datagrams on 1-3
    groups (so the per-socket quota keeps changing). Resident memory grows by less than 40 MB
    while they are still alive (today: about 127 MB per thread of zero-filled buffers)."""
    groups = [f"239.172.0.{i}" for i in range(1, 4)]
    threads_n, rounds = 3, 40
    with (
        me.McastRxSocket(V4, groups, port, iface="lo", timeout=0.05) as rx,
        me.McastTxSocket(V4, groups, iface="lo") as tx,
    ):
        before = rss_kib()
        done = threading.Barrier(threads_n + 1)
        leave = threading.Event()
        errors: list[BaseException] = []
        calls = [0] * threads_n

        def worker(k: int) -> None:
            try:
                for r in range(rounds):
                    n = 1 + (r + k) % 8
                    for i in range(n):
                        g = groups[(i + r) % (1 + (r + k) % 3)]
                        tx.sendto(b"x%d" % i, (g, port))
                    rx.recv_batch(1024)
                    calls[k] += 1
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.wait(30)
                leave.wait(30)  # stay alive (with whatever the thread keeps) until measured

        workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads_n)]
        for t in workers:
            t.start()
        try:
            done.wait(60)
            grown_mib = (rss_kib() - before) / 1024
        finally:
            leave.set()
            for t in workers:
                t.join(30)
        assert not errors, errors
        assert calls == [rounds] * threads_n
        assert grown_mib < 40, f"resident memory grew by {grown_mib:.0f} MiB over {threads_n * rounds} calls"
