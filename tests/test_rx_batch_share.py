"""recv_batch's one-call share (the C accelerator's or the pure-Python one, whichever this run
uses), seen through McastRxSocket: refill rounds, one socket, sockets left while batches run,
argument checks on the fast path, and the per-bufsize readers.

Live, over ``lo`` inside the session's private namespace.
"""

from __future__ import annotations

import threading
import time

import pytest
from helpers import V4, Net

import multicast_expert as me


def queue(tx: me.McastTxSocket, port: int, counts: dict[str, int]) -> None:
    """``counts[group]`` datagrams ``b"GROUP SEQ"`` on each group, interleaved."""
    for seq in range(max(counts.values())):
        for g, c in counts.items():
            if seq < c:
                tx.sendto(b"%s %d" % (g.encode(), seq), (g, port))
    time.sleep(0.1)


def check_order(packets: list[me.McastPacket]) -> dict[str, list[int]]:
    by_group: dict[str, list[int]] = {}
    for p in packets:
        g, seq = p.payload.decode().split()
        assert p.group == g
        by_group.setdefault(g, []).append(int(seq))
    return by_group


def test_recv_batch_refills_from_the_groups_that_have_more(net: Net, port: int) -> None:
    groups = [f"239.173.0.{i}" for i in range(1, 4)]
    with (
        me.McastRxSocket(V4, groups, port, iface="lo", timeout=0.5, rcvbuf=1 << 20) as rx,
        me.McastTxSocket(V4, groups, iface="lo") as tx,
    ):
        counts = dict(zip(groups, [2, 30, 30], strict=True))
        queue(tx, port, counts)
        first = rx.recv_batch(40)
        assert len(first) == 40, "60 queued: the room the short group left goes to the others"
        got = check_order(first)
        assert got[groups[0]] == [0, 1]
        long_ones = [len(got[g]) for g in groups[1:]]
        assert sum(long_ones) == 38 and abs(long_ones[0] - long_ones[1]) <= 2, long_ones
        rest = rx.recv_batch(64)
        assert len(rest) == 22
        every = check_order(first + rest)
        assert every == {g: list(range(c)) for g, c in counts.items()}  # each in arrival order


def test_recv_batch_of_one_socket_takes_all_the_room(net: Net, port: int) -> None:
    group = "239.173.1.1"
    with (
        me.McastRxSocket(V4, [group], port, iface="lo", timeout=0.5, rcvbuf=1 << 20) as rx,
        me.McastTxSocket(V4, [group], iface="lo") as tx,
    ):
        queue(tx, port, {group: 100})
        sizes = [len(rx.recv_batch(64)), len(rx.recv_batch(64))]
        assert sizes == [64, 36]
        rx.settimeout(0)
        assert rx.recv_batch(64) == []


def test_recv_batch_with_groups_left_and_joined_while_batches_run(net: Net, port: int) -> None:
    """Another thread leaves and joins groups while this one drains: no error, and every packet
    belongs to the group it says (a socket left mid-batch is skipped, never misread)."""
    groups = [f"239.173.2.{i}" for i in range(1, 9)]
    stop = threading.Event()
    errors: list[BaseException] = []
    with (
        me.McastRxSocket(V4, groups, port, iface="lo", timeout=0.05, rcvbuf=1 << 20) as rx,
        me.McastTxSocket(V4, groups, iface="lo") as tx,
    ):

        def send() -> None:
            try:
                seq = 0
                while not stop.is_set():
                    tx.send_batch([(b"%s %d" % (g.encode(), seq), (g, port)) for g in groups])
                    seq += 1
                    time.sleep(0.0005)
            except BaseException as exc:
                errors.append(exc)

        def churn() -> None:
            try:
                for _ in range(15):
                    for g in groups[4:]:
                        rx.leave_group(g)
                    time.sleep(0.005)
                    for g in groups[4:]:
                        rx.join_group(g)
                    time.sleep(0.005)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=send), threading.Thread(target=churn)]
        for t in threads:
            t.start()
        got: list[me.McastPacket] = []
        try:
            while threads[1].is_alive():
                got += rx.recv_batch(64)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        assert not errors, errors
        assert got, "datagrams kept arriving on the groups never left"
        for p in got:
            assert p.payload.split()[0] == p.group.encode()
        assert {p.group for p in got} >= set(groups[:4])


def test_recv_batch_argument_checks(net: Net, port: int) -> None:
    with me.McastRxSocket(V4, ["239.173.3.1"], port, iface="lo", timeout=0) as rx:
        for bad in (0, 1025, -1):
            with pytest.raises(
                ValueError, match=rf"max_packets {bad} is out of range; valid values are 1\.\.1024"
            ):
                rx.recv_batch(bad)
        for wrong in (True, 2.0, "8", None):
            with pytest.raises(TypeError, match=r"max_packets must be an int in 1\.\.1024"):
                rx.recv_batch(wrong)  # type: ignore[arg-type]
        for bad in (0, 2**31):
            with pytest.raises(ValueError, match=f"bufsize {bad} is out of range"):
                rx.recv_batch(8, bad)
        with pytest.raises(TypeError, match="bufsize must be an int"):
            rx.recv_batch(8, "100")  # type: ignore[arg-type]

        class Count(int):
            pass

        assert rx.recv_batch(Count(8), Count(100)) == []  # an int subclass is an int


def test_recv_batch_with_many_buffer_sizes(net: Net, port: int) -> None:
    """More sizes than the socket keeps readers for: each call still cuts at its own size."""
    groups = ["239.173.4.1", "239.173.4.2"]
    with (
        me.McastRxSocket(V4, groups, port, iface="lo", timeout=0.5) as rx,
        me.McastTxSocket(V4, groups, iface="lo") as tx,
    ):
        for rounds in range(2):
            for size in range(1, 21):
                for g in groups:
                    tx.sendto(b"0123456789", (g, port))
                got: list[me.McastPacket] = []
                while len(got) < 2:
                    got += rx.recv_batch(4, size)
                want = (b"0123456789"[:size], size < 10)
                assert [(p.payload, p.truncated) for p in got] == [want, want], (rounds, size)
