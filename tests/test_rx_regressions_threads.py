"""Regression tests: several threads on one receiving socket (items 7 and 8).

Live, in the session's private namespaces; interfaces added here are veth links of the test's own.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from helpers import V4, V6, Net, send_from_peer

import multicast_expert as me
from multicast_expert import interfaces, testing


def wait_for(predicate: Callable[[], bool], limit: float = 5.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def wait_until_stable(value: Callable[[], int], quiet: float = 0.6, limit: float = 8.0) -> int:
    """Wait until ``value()`` has not changed for ``quiet`` seconds (bounded by ``limit``)."""
    end = time.monotonic() + limit
    last, since = value(), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.05)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


class Receivers:
    """``n`` threads receiving from one socket with recv_packet until stopped; every packet kept."""

    def __init__(self, rx: me.McastRxSocket, n: int) -> None:
        self.rx = rx
        self.got: list[me.McastPacket] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(n)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                p = self.rx.recv_packet()
            except BaseException as exc:
                self.errors.append(exc)
                return
            if p is not None:
                with self._lock:
                    self.got.append(p)

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [p.payload for p in self.got]

    @contextlib.contextmanager
    def running(self) -> Iterator[Receivers]:
        for t in self._threads:
            t.start()
        try:
            yield self
        finally:
            self._stop.set()
            for t in self._threads:
                t.join(5)


@contextlib.contextmanager
def fast_thread_switches() -> Iterator[None]:
    """Switch threads far more often than the default 5 ms, to make races in short windows likely."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def one_new_link(
    rx: me.McastRxSocket,
    receivers: Receivers,
    family: int,
    groups: list[str],
    port: int,
    before: set[str],
    peer_n: int,
    cycle: int,
) -> list[str]:
    """Add a veth while ``receivers`` wait, check sockets and delivery on it, remove it again."""
    problems: list[str] = []
    peer = testing.Peer(peer_n)
    try:
        assert wait_for(lambda: peer.host_if in {i.machine_name for i in rx.network_interfaces})
        wait_until_stable(lambda: len(rx.sockets))  # the link's later events (up, addresses) too
        names = [i.machine_name for i in rx.network_interfaces]
        if sorted(names) != sorted(before | {peer.host_if}):
            problems.append(f"network_interfaces: {names}")
        expected = len(groups) * len(before | {peer.host_if})
        if (len(rx.sockets), len(rx.filenos())) != (expected, expected):
            problems.append(
                f"one OS socket per (group, interface) is {expected}; "
                f"rx.sockets has {len(rx.sockets)}, rx.filenos() {len(rx.filenos())}"
            )
        probe = b"probe %d" % cycle
        for _ in range(50):  # until the new link delivers (joins may take a moment)
            send_from_peer(peer, family, groups[0], port, [probe])
            if wait_for(lambda: probe in receivers.payloads(), 0.1):
                break
        sent = {b"new link %d %d" % (cycle, i) for i in range(len(groups))}
        for i in range(len(groups)):
            send_from_peer(peer, family, groups[i], port, [b"new link %d %d" % (cycle, i)])
        assert wait_for(lambda: sent <= set(receivers.payloads()))
        time.sleep(0.5)  # duplicates, if any, arrive too
        seen = collections.Counter(p for p in receivers.payloads() if p in sent)
        twice = {p: n for p, n in seen.items() if n != 1}
        if twice:
            problems.append(f"datagrams on the new link delivered more than once: {twice}")
    finally:
        peer.close()
    assert wait_for(lambda: peer.host_if not in {i.machine_name for i in rx.network_interfaces})
    return problems


# ---- item 7: following interfaces with several receiving threads --------------------------------
@pytest.mark.parametrize(
    ("family", "n_groups", "n_threads", "cycles", "peer_n"),
    [
        (V4, 200, 3, 1, 241),  # the report: 200 groups, 3 threads
        (V4, 2, 5, 3, 242),  # kept apart: 2 groups, 5 threads (a short window: several tries)
        (V6, 20, 3, 4, 243),  # kept apart: IPv6
    ],
)
def test_new_interface_is_joined_once_whatever_the_number_of_receiving_threads(
    net: Net, port: int, family: int, n_groups: int, n_threads: int, cycles: int, peer_n: int
) -> None:
    """Threads wait in recv_packet on a following socket; a veth appears (``cycles`` times, each
    link removed again): one OS socket per (group, interface), and each datagram on the new link
    is delivered once."""
    if family == V4:
        groups = [f"239.190.{i // 250}.{i % 250 + 1}" for i in range(n_groups)]
    else:
        groups = [f"ff15::190:{i + 1:x}" for i in range(n_groups)]
    interfaces.rescan_interfaces()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rx = me.McastRxSocket(family, groups, port, follow_interfaces=True, timeout=0.2)
    with rx, fast_thread_switches(), Receivers(rx, n_threads).running() as receivers:
        before = {i.machine_name for i in rx.network_interfaces}
        assert len(rx.sockets) == n_groups * len(before)
        time.sleep(0.2)  # every thread is waiting in recv_packet
        for cycle in range(cycles):
            problems = one_new_link(rx, receivers, family, groups, port, before, peer_n, cycle)
            assert not problems, f"cycle {cycle}: {problems}"
        assert not receivers.errors, receivers.errors
    interfaces.rescan_interfaces()


#: Fresh sockets per run of the race (each has one first wait).
ATTEMPTS = 150


# ---- item 8: membership changes racing a receive's first wait -------------------------------------
def churn(rx: me.McastRxSocket, pool: list[str], stop: threading.Event, errors: list[str]) -> None:
    """Join and leave the groups of ``pool`` in turn until ``stop`` (at least three changes)."""
    try:
        i = 0
        while not stop.is_set() or i < 3:
            g = pool[i % len(pool)]
            if g in rx.mcast_ips:
                rx.leave_group(g)
            else:
                rx.join_group(g)
            i += 1
    except BaseException as exc:
        errors.append(f"churn: {exc!r}")


def first_receives_while_churning(
    rx: me.McastRxSocket, tx: me.McastTxSocket, port: int, pool: list[str], receive: str
) -> list[str]:
    """On a freshly opened ``rx``: receive three times while another thread churns, then check that
    every group joined at the end wakes a receive. Returns what went wrong."""
    problems: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=churn, args=(rx, pool, stop, problems))
    t.start()
    try:
        for _ in range(3):
            getattr(rx, receive)()
    except BaseException as exc:
        problems.append(f"{receive}: {exc!r}")
    stop.set()
    t.join(5)
    joined = set(rx.mcast_ips)
    for g in joined:
        tx.sendto(g.encode(), (g, port))
    woke: set[str] = set()
    rx.settimeout(0.5)
    deadline = time.monotonic() + 2
    try:
        while woke != joined and time.monotonic() < deadline:
            woke |= {p.group for p in rx.recv_batch(64)}
    except BaseException as exc:
        problems.append(f"after the churn: {exc!r}")
    if woke != joined:
        problems.append(f"joined {sorted(joined)}, a receive woke only for {sorted(woke)}")
    return problems


@pytest.mark.parametrize("receive", ["recv_batch", "recv_packet"])
def test_joins_and_leaves_racing_the_first_receive(net: Net, port: int, receive: str) -> None:
    """One thread joins and leaves groups in a loop while another starts receiving on a fresh
    socket: no receive fails, and afterwards every joined group wakes a receive. Repeated on many
    fresh sockets, because the window (the receive's first wait) exists once per socket."""
    base = "239.191.0.1"
    pool = [f"239.191.1.{i}" for i in range(1, 7)]
    failures: list[str] = []
    with me.McastTxSocket(V4, [base, *pool], iface="lo") as tx, fast_thread_switches():
        for attempt in range(ATTEMPTS):
            with me.McastRxSocket(V4, [base], port, iface="lo", timeout=0.01) as rx:
                failures += [
                    f"attempt {attempt}: {p}"
                    for p in first_receives_while_churning(rx, tx, port, pool, receive)
                ]
            if len(failures) >= 5:
                break
    assert not failures, failures
