"""recv_share: a whole fair batch over several sockets in one call, the C accelerator's
(``_speedups.recv_share``) and the pure-Python one (``_platform._mmsg.recv_share``), against the
sharing rule written out here, and against each other.

Live, over unicast UDP on loopback inside the session's private network namespace (the ``net``
fixture checks it). scripts/check-accel runs this file under AddressSanitizer too.
"""

from __future__ import annotations

import errno
import gc
import os
import select
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from helpers import IN_CI, V4, Net

from multicast_expert._packet import McastPacket
from multicast_expert._platform import _mmsg

try:
    from multicast_expert import _speedups as sp
except ImportError as exc:  # pragma: no cover - depends on the build
    if IN_CI:
        raise ImportError(f"CI must build the C accelerator, but it is missing: {exc}") from exc
    sp = None  # type: ignore[assignment]

Share = Callable[[int, type[Any], list[Any], int, int, list[Any], Callable[[Any], object]], None]
IMPLS: dict[str, Share | None] = {"c": None if sp is None else sp.recv_share, "pure": _mmsg.recv_share}
impls = pytest.mark.parametrize("impl", list(IMPLS))


def share_of(impl: str) -> Share:
    share = IMPLS[impl]
    if share is None:
        pytest.skip("the C accelerator is not built here")
    return share


class Iface:
    def __init__(self, index: int) -> None:
        self.index = index


class Pipe:
    """A pipe's read end as a unit's socket: reads of it fail (ENOTSOCK), an error of a live unit."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


class ShareUnit:
    """What recv_share reads of a unit: fd, group, iface.index, live."""

    def __init__(self, sock: socket.socket, group: str, index: int) -> None:
        #: The test's socket; ``sock`` is what the share checks ``fd`` against (see on_pipe).
        self.own = sock
        self.sock: socket.socket | Pipe = sock
        self.fd = sock.fileno()
        self.group = group
        self.iface = Iface(index)
        self.live = True


@contextmanager
def sockets(count: int) -> Iterator[tuple[list[ShareUnit], socket.socket]]:
    """``count`` receivers (units named g0, g1, ... with interface index 10, 11, ...) and a sender."""
    with ExitStack() as stack:
        units = []
        for i in range(count):
            s = stack.enter_context(socket.socket(V4, socket.SOCK_DGRAM))
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
            s.bind(("127.0.0.1", 0))
            units.append(ShareUnit(s, f"g{i}", 10 + i))
        tx = stack.enter_context(socket.socket(V4, socket.SOCK_DGRAM))
        tx.bind(("127.0.0.1", 0))
        yield units, tx


def queue(units: list[ShareUnit], tx: socket.socket, counts: list[int]) -> None:
    """``counts[i]`` datagrams ``b"i seq"`` on unit i, interleaved."""
    for seq in range(max(counts, default=0)):
        for i, (u, c) in enumerate(zip(units, counts, strict=True)):
            if seq < c:
                tx.sendto(b"%d %d" % (i, seq), u.own.getsockname())
    for u, c in zip(units, counts, strict=True):
        if c:
            select.select([u.own], [], [], 2.0)
    time.sleep(0.05)


def rule(counts: list[int], start: int, room: int) -> list[tuple[int, int]]:
    """The documented sharing rule: ``(unit, seq)`` in the order a share appends them."""
    n = len(counts)
    left, sent = list(counts), [0] * n
    active = [(start + i) % n for i in range(n)]
    out: list[tuple[int, int]] = []
    while active and room > 0:
        base, extra = divmod(room, len(active))
        more = []
        for k, u in enumerate(active):
            quota = base + (k < extra)
            if not quota:
                continue
            take = min(quota, left[u])
            out += [(u, sent[u] + j) for j in range(take)]
            sent[u] += take
            left[u] -= take
            room -= take
            if take == quota:
                more.append(u)
        active = more
    return out


def seqs(packets: list[McastPacket]) -> list[tuple[int, int]]:
    got = []
    for p in packets:
        unit, seq = (int(x) for x in p.payload.split())
        assert p.group == f"g{unit}" and p.iface_index == 10 + unit
        got.append((unit, seq))
    return got


def leftover(units: list[ShareUnit]) -> list[list[int]]:
    """What is still queued on each unit (sequence numbers), read one by one."""
    rest = []
    for u in units:
        mine = []
        while True:
            try:
                mine.append(int(u.own.recv(100).split()[1]))
            except BlockingIOError:
                break
        rest.append(mine)
    return rest


def never_gone(unit: object) -> bool:
    raise AssertionError(f"no read should fail here ({unit!r})")


@impls
@pytest.mark.parametrize(
    ("counts", "start", "room"),
    [
        ([5, 5, 5], 0, 9),  # one round, quotas 3/3/3
        ([2, 30, 30], 1, 40),  # refill rounds: the short unit drops out
        ([0, 7, 1, 20], 3, 25),  # an empty unit, a start past the first
        ([50], 0, 64),  # one unit: it gets all the room
        ([3, 3], 1, 100),  # more room than queued: everything
        ([4, 4, 4, 4, 4], 2, 3),  # less room than units: quotas of 0 are skipped
    ],
)
def test_share_follows_the_rule_and_leaves_the_rest_queued(
    net: Net, impl: str, counts: list[int], start: int, room: int
) -> None:
    share = share_of(impl)
    with sockets(len(counts)) as (units, tx):
        queue(units, tx, counts)
        out: list[McastPacket] = []
        share(100, McastPacket, list(units), start, room, out, never_gone)
        want = rule(counts, start, room)
        assert seqs(out) == want
        assert all(type(p) is McastPacket and p.truncated is False and p.ttl is None for p in out)
        assert all(p.src == tx.getsockname() for p in out)
        taken = [sum(1 for u, _ in want if u == i) for i in range(len(counts))]
        assert leftover(units) == [list(range(t, c)) for t, c in zip(taken, counts, strict=True)]


@impls
def test_share_appends_and_cuts_to_bufsize(net: Net, impl: str) -> None:
    share = share_of(impl)
    with sockets(2) as (units, tx):
        tx.sendto(b"0 0 and some more bytes", units[0].own.getsockname())
        tx.sendto(b"1 0", units[1].own.getsockname())
        queue(units, tx, [0, 0])
        time.sleep(0.05)
        marker = McastPacket(b"x", ("1.2.3.4", 1), "old", 1, False)
        out = [marker]
        share(5, McastPacket, units, 0, 8, out, never_gone)
        assert out[0] is marker  # appended, not replaced
        assert [(p.payload, p.truncated) for p in out[1:]] == [(b"0 0 a", True), (b"1 0", False)]


@impls
def test_share_of_more_than_1024(net: Net, impl: str) -> None:
    """Room beyond one recvmmsg call (the kernel's 1,024): several calls, still in order."""
    share = share_of(impl)
    with sockets(2) as (units, tx):
        counts = [1100, 300]
        queue(units, tx, counts)
        out: list[McastPacket] = []
        share(64, McastPacket, units, 1, 1300, out, never_gone)
        assert seqs(out) == rule(counts, 1, 1300)
        assert len(out) == 1300
        assert leftover(units) == [list(range(1000, 1100)), []]


@impls
def test_share_error_on_a_live_unit_raises_keeping_what_was_read(net: Net, impl: str) -> None:
    share = share_of(impl)
    r, w = os.pipe()  # not a socket: recvmmsg fails with ENOTSOCK
    try:
        with sockets(3) as (units, tx):
            queue(units, tx, [5, 0, 5])
            units[1].fd, units[1].sock = r, Pipe(r)
            asked: list[object] = []

            def live(unit: object) -> bool:
                asked.append(unit)
                return False

            out: list[McastPacket] = []
            with pytest.raises(OSError) as err:
                share(100, McastPacket, units, 0, 30, out, live)
            assert err.value.errno == errno.ENOTSOCK
            assert asked == [units[1]]
            assert seqs(out) == [(0, s) for s in range(5)]  # read before the error: kept
            assert leftover(units) == [[], [], list(range(5))]  # nothing read after it
    finally:
        os.close(r)
        os.close(w)


@impls
def test_share_skips_a_unit_gone_under_it_and_one_left_during_the_call(net: Net, impl: str) -> None:
    share = share_of(impl)
    r, w = os.pipe()
    try:
        with sockets(4) as (units, tx):
            queue(units, tx, [5, 0, 5, 5])
            units[1].fd, units[1].sock = r, Pipe(r)  # its read fails: gone() says it was closed under us
            units[3].live = False  # left before the call: never read

            def gone(unit: object) -> bool:
                assert unit is units[1]
                units[2].live = False  # another thread leaves unit 2 meanwhile
                return True

            out: list[McastPacket] = []
            share(100, McastPacket, units, 0, 40, out, gone)
            # Quotas of 10 each: unit 0 gives its 5, unit 1 is skipped (its quota not handed on),
            # units 2 and 3 are not live when their turn comes.
            assert seqs(out) == [(0, s) for s in range(5)]
            assert leftover(units) == [[], [], list(range(5)), list(range(5))]
    finally:
        os.close(r)
        os.close(w)


@impls
def test_share_never_reads_a_unit_whose_socket_was_closed_outside_the_library(net: Net, impl: str) -> None:
    """One of ``rx.sockets`` closed by the program, its number reused at once by another socket:
    the share passes that unit over and leaves the other socket's datagram queued for it."""
    share = share_of(impl)
    with sockets(2) as (units, tx):
        queue(units, tx, [2, 2])
        fd = units[1].fd
        units[1].own.close()
        with socket.socket(V4, socket.SOCK_DGRAM) as other:
            other.bind(("127.0.0.1", 0))
            assert other.fileno() == fd
            tx.sendto(b"1 99", other.getsockname())
            assert select.select([other], [], [], 1.0)[0]
            out: list[McastPacket] = []
            share(100, McastPacket, units, 0, 10, out, never_gone)
            assert seqs(out) == [(0, 0), (0, 1)]
            assert other.recv(100) == b"1 99"


class BoomError(Exception):
    pass


@impls
def test_share_propagates_an_exception_of_gone(net: Net, impl: str) -> None:
    share = share_of(impl)
    r, w = os.pipe()
    try:
        with sockets(2) as (units, tx):
            queue(units, tx, [0, 3])
            units[0].fd, units[0].sock = r, Pipe(r)

            def boom(unit: object) -> bool:
                raise BoomError

            out: list[McastPacket] = []
            with pytest.raises(BoomError):
                share(100, McastPacket, units, 0, 10, out, boom)
            assert out == []
    finally:
        os.close(r)
        os.close(w)


@impls
def test_share_with_nothing_to_do(net: Net, impl: str) -> None:
    share = share_of(impl)
    with sockets(2) as (units, tx):
        queue(units, tx, [2, 2])
        out: list[McastPacket] = []
        share(100, McastPacket, [], 0, 10, out, never_gone)
        share(100, McastPacket, units, 0, 0, out, never_gone)
        assert out == []
        share(100, McastPacket, units, 0, 10, out, never_gone)
        assert len(out) == 4
        share(100, McastPacket, units, 0, 10, out, never_gone)  # nothing queued: nothing added
        assert len(out) == 4


@impls
def test_share_unit_without_an_attribute_is_refused(net: Net, impl: str) -> None:
    share = share_of(impl)
    with sockets(2) as (units, tx):
        queue(units, tx, [2, 2])
        del units[1].iface
        out: list[McastPacket] = []
        with pytest.raises(AttributeError):
            share(100, McastPacket, units, 0, 10, out, never_gone)
        if impl == "c":  # (the C one reads every unit's attributes first)
            assert out == [] and leftover(units) == [[0, 1], [0, 1]]
        else:  # (the pure one at each unit's turn)
            assert seqs(out) == [(0, 0), (0, 1)] and leftover(units) == [[], [0, 1]]


def test_c_share_argument_types(net: Net) -> None:
    share_of("c")
    with sockets(1) as (units, _tx):
        out: list[McastPacket] = []
        with pytest.raises(TypeError, match="tuple subclass"):
            sp.recv_share(100, dict, units, 0, 4, out, never_gone)  # type: ignore[misc]
        with pytest.raises(TypeError, match="units must be a list"):
            sp.recv_share(100, McastPacket, tuple(units), 0, 4, out, never_gone)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="out must be a list"):
            sp.recv_share(100, McastPacket, units, 0, 4, (), never_gone)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="callable"):
            sp.recv_share(100, McastPacket, units, 0, 4, out, None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="negative"):
            sp.recv_share(100, McastPacket, units, 0, -1, out, never_gone)
        units[0].group = b"g0"  # type: ignore[assignment]
        with pytest.raises(TypeError, match="group must be a str"):
            sp.recv_share(100, McastPacket, units, 0, 4, out, never_gone)
        units[0].group = "g0"
        units[0].iface.index = "10"  # type: ignore[assignment]
        with pytest.raises(TypeError, match="index must be an int"):
            sp.recv_share(100, McastPacket, units, 0, 4, out, never_gone)
        units[0].fd = -1
        with pytest.raises(ValueError, match="negative"):
            sp.recv_share(100, McastPacket, units, 0, 4, out, never_gone)
        assert out == []


def test_c_share_keeps_no_references(net: Net) -> None:
    share_of("c")
    group, index = "".join(["g", "0"]), 10**20  # objects of this test only
    with sockets(2) as (units, tx):
        for u in units:
            u.group, u.iface.index = group, index
        gc.collect()
        before = [sys.getrefcount(x) for x in (group, index, McastPacket, *units)]
        for _ in range(3):
            queue(units, tx, [20, 20])
            out: list[McastPacket] = []
            sp.recv_share(100, McastPacket, units, 1, 64, out, never_gone)
            assert len(out) == 40 and out[0].group is group and out[0].iface_index is index
            del out
        gc.collect()
        assert [sys.getrefcount(x) for x in (group, index, McastPacket, *units)] == before


@pytest.mark.parametrize("start", [0, 1, 5])
def test_c_and_pure_share_give_the_same_packets(net: Net, start: int) -> None:
    share_of("c")
    counts = [9, 1, 14, 0, 6]
    results = []
    with sockets(len(counts)) as (units, tx):
        for share in (sp.recv_share, _mmsg.recv_share):
            queue(units, tx, counts)
            out: list[McastPacket] = []
            share(8, McastPacket, units, start, 24, out, never_gone)
            results.append(out)
            leftover(units)
    assert results[0] == results[1]
    assert [type(p) for p in results[0]] == [type(p) for p in results[1]]


# ---- recv_poll_share: the non-waiting poll and the share in one call (C only) -------------------


@pytest.mark.parametrize(("turn", "room"), [(0, 64), (1, 10), (7, 5)])
def test_c_poll_share_polls_then_shares_in_descriptor_order(net: Net, turn: int, room: int) -> None:
    share_of("c")
    with sockets(5) as (units, tx), select.epoll() as ep:
        waker = os.eventfd(0, os.EFD_NONBLOCK)
        try:
            for u in units:
                ep.register(u.fd, select.EPOLLIN)
            ep.register(waker, select.EPOLLIN)
            os.eventfd_write(waker, 1)  # readable too: never counted, never read
            counts = [6, 0, 3, 9, 2]
            queue(units, tx, counts)
            by_fd = {u.fd: u for u in units[:4]}  # unit 4 is ready but not (or no longer) ours
            out: list[McastPacket] = []
            ready = sp.recv_poll_share(100, McastPacket, ep.fileno(), by_fd, turn, room, out, never_gone)
            ours = sorted((u for u in units[:4] if counts[units.index(u)]), key=lambda u: u.fd)
            assert ready == len(ours) == 3
            # The rule over the ready units in descriptor order, from turn % ready.
            order = [units.index(u) for u in ours]
            want = [(order[i], seq) for i, seq in rule([counts[k] for k in order], turn % ready, room)]
            assert seqs(out) == want
            assert leftover(units)[4] == [0, 1]  # never read
            assert os.eventfd_read(waker) == 1  # not drained
        finally:
            os.close(waker)


def test_c_poll_share_reports_nothing_ready_and_a_failed_poll(net: Net) -> None:
    share_of("c")
    with sockets(2) as (units, _tx), select.epoll() as ep:
        for u in units:
            ep.register(u.fd, select.EPOLLIN)
        by_fd = {u.fd: u for u in units}
        out: list[McastPacket] = []
        assert sp.recv_poll_share(100, McastPacket, ep.fileno(), by_fd, 0, 64, out, never_gone) == 0
        assert out == []
        r, w = os.pipe()  # not an epoll descriptor: epoll_wait fails (EINVAL): -1, no exception
        try:
            assert sp.recv_poll_share(100, McastPacket, r, by_fd, 0, 64, out, never_gone) == -1
        finally:
            os.close(r)
            os.close(w)
        with pytest.raises(TypeError, match="by_fd must be a dict"):
            sp.recv_poll_share(100, McastPacket, ep.fileno(), [], 0, 64, out, never_gone)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="negative"):
            sp.recv_poll_share(100, McastPacket, -1, by_fd, 0, 64, out, never_gone)


def test_c_poll_share_over_64_ready(net: Net) -> None:
    """More ready sockets than the call's stack arrays: the heap ones, same rule."""
    share_of("c")
    with sockets(70) as (units, tx), select.epoll() as ep:
        for u in units:
            ep.register(u.fd, select.EPOLLIN)
        counts = [3] * 70
        queue(units, tx, counts)
        by_fd = {u.fd: u for u in units}
        out: list[McastPacket] = []
        assert sp.recv_poll_share(100, McastPacket, ep.fileno(), by_fd, 3, 100, out, never_gone) == 70
        order = [units.index(u) for u in sorted(units, key=lambda u: u.fd)]
        assert seqs(out) == [(order[i], seq) for i, seq in rule(counts, 3, 100)]
