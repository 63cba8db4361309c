"""Races between receives, membership changes and close/open, found by review: each test failed
before its fix. Membership transactions (join, leave, block, unblock, refresh) check under the
membership's lock that the socket is open, so none commits sockets a racing close() never takes
out, or that a racing open() makes again. Reads of a unit check, with the GIL held from the
check through the system call, that it is live and its socket still open on its number, before
every recvmmsg of a batch too. A socket of ``rx.sockets`` closed by the program is never read
through its number, which another socket may have taken.

Live, in the session's private namespace (the ``net`` fixture); every test runs both ways
(accelerated, and MULTICAST_EXPERT_PURE_PYTHON=1).
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any

import pytest
from helpers import V4, Net, run_for_a_while

import multicast_expert as me
from multicast_expert import _platform, _rx_args, _rx_hot, rx_socket
from multicast_expert._platform import _mmsg

LO4 = "127.0.0.1"


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def count_received(rx: me.McastRxSocket, payload: bytes, wait: float = 0.5) -> int:
    """How many times ``payload`` is received within ``wait`` seconds."""
    n = 0
    deadline = time.monotonic() + wait
    rx.timeout = 0.05
    while time.monotonic() < deadline:
        got = rx.recvfrom()
        if got is not None and got[0] == payload:
            n += 1
    return n


# ---- join_group against close() and open() ------------------------------------------------------------
def test_a_join_that_races_a_close_leaves_no_socket_open_and_no_duplicate_after_reopen(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """join_group() checks "open" (``_need_open``), then joins under the membership lock; close()
    from another thread can run between the two. The join then opens an OS socket (and joins
    the group in the kernel) on a closed McastRxSocket: it stays open (rx.sockets lists it while
    closed), and after the next open() the group has two sockets, so every datagram arrives twice.
    Here the other thread's close runs exactly in that gap (where a GIL switch can put it)."""
    first, second = "239.184.1.1", "239.184.1.2"
    rx = me.McastRxSocket(V4, [first], port, iface_ip=LO4, timeout=0.2)
    rx.open()
    before = fd_count()
    real = _rx_args.parse_sources
    fired: list[int] = []

    def parse_then_other_thread_closes(*args: Any) -> Any:
        if not fired:
            fired.append(1)
            t = threading.Thread(target=rx.close)
            t.start()
            t.join()
        return real(*args)

    monkeypatch.setattr(rx_socket, "parse_sources", parse_then_other_thread_closes)
    with pytest.raises(me.SocketClosedError, match=r"join_group\(\) on a closed McastRxSocket"):
        rx.join_group(second)  # (it went ahead on the closed socket, opening one that stayed open)
    monkeypatch.setattr(rx_socket, "parse_sources", real)
    try:
        assert not rx.is_opened
        leftover = rx.sockets
        assert leftover == [], f"closed, yet {len(leftover)} OS socket(s) open: {leftover}"
        assert fd_count() <= before - 1  # (the first group's socket closed; nothing opened)
    finally:
        rx.open()
        try:
            with me.McastTxSocket(V4, [second], LO4) as tx:
                if second in rx.mcast_ips:
                    tx.sendto(b"once", (second, port))
                    assert count_received(rx, b"once") == 1
        finally:
            rx.close()


def test_joins_and_leaves_racing_close_and_open_keep_one_socket_per_group(net: Net, port: int) -> None:
    """The same race without any patch: one thread closes and reopens, another joins and leaves.
    Whenever both stop, an open socket has exactly one OS socket per (group, interface) and a
    closed one none, and no descriptor is left behind."""
    groups = ["239.184.2.1", "239.184.2.2", "239.184.2.3"]
    rx = me.McastRxSocket(V4, groups[:1], port, iface_ip=LO4, timeout=0.05)
    base = fd_count()
    rx.open()
    stop = threading.Event()
    bad: list[str] = []

    def reopen() -> None:
        while not stop.is_set():
            try:
                rx.close()
                rx.open()
            except me.MulticastExpertError:
                pass

    def churn() -> None:
        i = 0
        while not stop.is_set():
            g = groups[1 + i % 2]
            i += 1
            try:
                if g in rx.mcast_ips:
                    rx.leave_group(g)
                else:
                    rx.join_group(g)
            except me.MulticastExpertError:
                pass
            except Exception as exc:  # (collected for the assertion)
                bad.append(repr(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # (more thread switches: the race shows within seconds)
    try:
        run_for_a_while(stop, reopen, churn)
    finally:
        sys.setswitchinterval(interval)
    try:
        assert not bad, bad[:3]
        units = rx._members.all_units()
        by_group: dict[str, int] = {}
        for u in units:
            by_group[u.group] = by_group.get(u.group, 0) + 1
        if rx.is_opened:
            assert all(n == 1 for n in by_group.values()), by_group
            assert set(by_group) == set(rx.mcast_ips), (by_group, rx.mcast_ips)
    finally:
        if rx.is_opened:
            rx.close()
    assert rx.sockets == []
    leaked = fd_count() - base
    assert leaked <= 0, f"{leaked} descriptor(s) left open after close"


# ---- batch reads that took the number once, then read it later ---------------------------------------
def test_batch_reads_never_consume_a_socket_that_reused_a_left_units_number(net: Net, port: int) -> None:
    """Stress, both ways: two threads call recv_batch (64 x 65535: recvmmsg in chunks of 16, each
    with the GIL released in C; ctypes calls in pure mode) on two flooded groups; another thread
    leaves one group, opens a plain socket of its own (which takes the freed number, the lowest
    free one), sends itself datagrams by unicast, drains them, closes it and joins again. The
    plain socket must get all its datagrams: any it misses were read by a batch through the
    stale number (and dropped there)."""
    churned, steady = "239.184.4.1", "239.184.4.2"
    rx = me.McastRxSocket(V4, [churned, steady], port, iface_ip=LO4, timeout=0.01, rcvbuf=4 << 20)
    rx.open()
    holes = []  # (lower free numbers filled: the number a leave frees is the next one handed out)
    top = max(rx.filenos())
    while True:
        f = os.open("/dev/null", os.O_RDONLY)
        if f > top:
            os.close(f)
            break
        holes.append(f)
    stop = threading.Event()
    stats = {"reused": 0, "lost": 0, "rounds": 0}
    bad: list[str] = []

    def flood() -> None:
        with me.McastTxSocket(V4, [churned, steady], LO4) as tx:
            while not stop.is_set():
                for _ in range(200):
                    tx.sendto(b"x" * 100, (churned, port))
                    tx.sendto(b"x" * 100, (steady, port))
                time.sleep(0.0005)

    def batch() -> None:
        while not stop.is_set():
            try:
                for p in rx.recv_batch():
                    if p.payload != b"x" * 100:
                        bad.append(repr(p))
                time.sleep(0.0005)  # (lets the queues grow past one recvmmsg chunk)
            except me.MulticastExpertError:
                pass
            except Exception as exc:
                bad.append(repr(exc))

    def churn() -> None:
        with socket.socket(V4, socket.SOCK_DGRAM) as out:
            while not stop.is_set():
                old = next(u.fd for u in rx._members.all_units() if u.group == churned)
                rx.leave_group(churned)
                s = socket.socket(V4, socket.SOCK_DGRAM)
                try:
                    s.bind((LO4, 0))
                    for i in range(20):
                        out.sendto(b"p%d" % i, s.getsockname())
                    time.sleep(0.002)
                    s.setblocking(False)
                    n = 0
                    while True:
                        try:
                            s.recv(100)
                            n += 1
                        except BlockingIOError:
                            break
                    stats["rounds"] += 1
                    if s.fileno() == old:
                        stats["reused"] += 1
                        stats["lost"] += 20 - n
                finally:
                    s.close()
                rx.join_group(churned)

    run_for_a_while(stop, flood, batch, batch, churn)
    if rx.is_opened:
        rx.close()
    for f in holes:
        os.close(f)
    assert not bad, bad[:3]
    assert stats["reused"], stats
    assert stats["lost"] == 0, stats


def test_a_large_pure_python_share_read_stays_on_the_socket_it_checked(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large recvmmsg of the ctypes share releases the GIL: another thread may leave the group
    and open a socket that takes the number before the system call runs (here it runs exactly
    there). The read is made on a duplicate of the number taken before the check, so it reads
    the socket it checked, and the program's new socket keeps every datagram sent to it."""
    group = "239.184.8.1"
    rx = me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0.2)
    rx.open()
    unit = next(iter(rx._members.all_units()))
    calls = _mmsg._c()
    real = calls.recvmmsg_released
    theirs: list[socket.socket] = []

    def leave_and_open() -> None:
        rx.leave_group(group)
        s = socket.socket(V4, socket.SOCK_DGRAM)
        s.bind((LO4, 0))
        theirs.append(s)
        with socket.socket(V4, socket.SOCK_DGRAM) as out:
            for i in range(3):
                out.sendto(b"not the library's %d" % i, s.getsockname())

    def other_thread_runs_first(fd: int, *args: Any) -> int:
        if not theirs:
            t = threading.Thread(target=leave_and_open)
            t.start()
            t.join()
            assert theirs[0].fileno() == unit.fd  # (the number was reused: the case under test)
        return int(real(fd, *args))

    try:
        with me.McastTxSocket(V4, [group], LO4) as tx:
            for i in range(5):
                tx.sendto(b"ours %d" % i, (group, port))
        time.sleep(0.05)
        monkeypatch.setattr(calls, "recvmmsg_released", other_thread_runs_first)
        out: list[me.McastPacket] = []
        _mmsg.recv_share(65535, me.McastPacket, [unit], 0, 64, out, lambda u: True)
        assert theirs, "the large read never ran"
        assert [p.payload for p in out] == [b"ours %d" % i for i in range(5)]
        assert all(p.group == group for p in out)
        s = theirs[0]
        s.setblocking(False)
        assert [s.recv(100) for _ in range(3)] == [b"not the library's %d" % i for i in range(3)]
    finally:
        for s in theirs:
            s.close()
        if rx.is_opened:
            rx.close()


@pytest.mark.parametrize("groups", [1, 2], ids=["single", "multi"])
def test_a_share_never_reads_a_number_reused_between_its_recvmmsg_calls(
    net: Net, port: int, groups: int
) -> None:
    """A share (the C one, or the ctypes one) reads each unit in recvmmsg calls of up to 16 slots.
    Between two calls Python code may run (here a gc callback, run while the share makes its
    packets, deterministically; it stands for another thread where the GIL was released) that
    leaves the group and opens a socket that takes the number. The next call must not read that
    socket: the share took the number once and checked ``live`` once, so it read (and then
    dropped) the program's datagrams."""
    names = ["239.184.5.1", "239.184.5.2"][:groups]
    group = names[0]
    rx = me.McastRxSocket(V4, names, port, iface_ip=LO4, timeout=0.2, rcvbuf=1 << 20)
    rx.open()
    theirs: list[socket.socket] = []
    old = next(u.fd for u in rx._members.all_units() if u.group == group)

    def mid_share(phase: str, info: Any) -> None:
        if theirs or phase != "start":
            return
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and frame.f_code.co_name != "receive_batch":
            frame = frame.f_back
        if frame is None or not frame.f_locals.get("out"):
            return  # (only once the share has appended its first packet: inside the share)
        theirs.append(None)  # type: ignore[arg-type]
        rx.leave_group(group)
        s = socket.socket(V4, socket.SOCK_DGRAM)
        s.bind((LO4, 0))
        theirs[0] = s
        with socket.socket(V4, socket.SOCK_DGRAM) as out:
            for i in range(5):
                out.sendto(b"not the library's %d" % i, s.getsockname())

    try:
        with me.McastTxSocket(V4, [group], LO4) as tx:
            for i in range(40):
                tx.sendto(b"ours %d" % i, (group, port))
            time.sleep(0.1)
        assert rx.recv_batch(1)  # (makes the poller: the batch below goes the usual way)
        threshold = gc.get_threshold()
        gc.callbacks.append(mid_share)
        gc.set_threshold(1)
        try:
            got = rx.recv_batch()
        finally:
            gc.set_threshold(*threshold)
            gc.callbacks.remove(mid_share)
        assert theirs, "the gc callback never ran inside the share"
        s = theirs[0]
        assert s.fileno() == old  # (the number was reused: the case under test)
        assert all(p.payload.startswith(b"ours") for p in got), got
        s.setblocking(False)
        mine = []
        while True:
            try:
                mine.append(s.recv(100))
            except BlockingIOError:
                break
        assert len(mine) == 5, f"the program's own socket lost {5 - len(mine)} of its 5 datagrams"
    finally:
        for s in theirs:
            if s is not None:
                s.close()
        if rx.is_opened:
            rx.close()


def test_a_join_that_races_an_open_gives_its_group_one_socket(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open() marks the engine open (so join_group's check passes), installs the hot methods, then
    opens every group's sockets. A join from another thread in between joins its group (one OS
    socket), then open() opens that group again (it is in ``groups`` by then): two OS sockets for
    one group on one interface, and every datagram of it is received twice."""
    first, second = "239.184.6.1", "239.184.6.2"
    rx = me.McastRxSocket(V4, [first], port, iface_ip=LO4, timeout=0.2)
    real = _rx_hot.install
    errors: list[BaseException] = []

    def install_then_other_thread_joins(*args: Any) -> None:
        real(*args)

        def join() -> None:
            try:
                rx.join_group(second)
            except BaseException as exc:  # (reported below)
                errors.append(exc)

        t = threading.Thread(target=join)
        t.start()
        t.join()

    monkeypatch.setattr(_rx_hot, "install", install_then_other_thread_joins)
    rx.open()
    monkeypatch.setattr(_rx_hot, "install", real)
    try:
        per_group = [u.group for u in rx._members.all_units()]
        with me.McastTxSocket(V4, [second], LO4) as tx:
            tx.sendto(b"once", (second, port))
            n = count_received(rx, b"once")
        assert per_group.count(second) <= 1, per_group
        assert n <= 1, f"one datagram received {n} times"
    finally:
        rx.close()


@pytest.mark.parametrize("kind", ["recv_packet", "recvfrom"])
@pytest.mark.parametrize("reader_made", [False, True], ids=["reader-unmade", "reader-made"])
def test_a_socket_closed_by_hand_before_the_poller_exists_never_lets_its_number_be_read(
    net: Net, port: int, kind: str, reader_made: bool
) -> None:
    """The poller is made on the first wait and registers every number in ``by_fd``. One of
    rx.sockets closed by hand before that, its number taken by a socket of the program: the
    poller now watches the program's socket under the unit's number. The engine's own reads
    check ``sock.fileno() == fd`` (OSError EBADF), but the multi-socket fast paths do not: C
    epoll_read (RxHot) checks only ``live``, PyHot reads ``first.reader`` after ``first.live``.
    The program's datagram is returned as the closed unit's group's, or (pure, reader not made
    yet) the reader is made on fileno() -1 and ValueError escapes."""
    a, b = "239.184.7.1", "239.184.7.2"
    rx = me.McastRxSocket(V4, [a, b], port, iface_ip=LO4, timeout=0.3)
    rx.open()
    f = None
    try:
        assert rx._engine._poller is None
        unit = next(u for u in rx._members.all_units() if u.group == a)
        if reader_made and _platform.IO.recv_unit is None:
            assert unit.reader is not None
        unit.sock.close()  # (one of rx.sockets, closed by the program)
        f = socket.socket(V4, socket.SOCK_DGRAM)
        assert f.fileno() == unit.fd  # (the number was reused: the case under test)
        f.bind((LO4, 0))
        with socket.socket(V4, socket.SOCK_DGRAM) as out:
            for i in range(3):
                out.sendto(b"foreign %d" % i, f.getsockname())
        results: list[object] = []
        for _ in range(3):
            try:
                results.append(getattr(rx, kind)())
            except OSError as exc:
                results.append(exc)
            except Exception as exc:
                results.append(("unexpected", exc))
        for r in results:
            assert not (isinstance(r, tuple) and r and r[0] == "unexpected"), results
            payload = getattr(r, "payload", None) or (r[0] if isinstance(r, tuple) else None)
            assert not (isinstance(payload, bytes) and payload.startswith(b"foreign")), results
    finally:
        if f is not None:
            f.close()
        rx.close()
