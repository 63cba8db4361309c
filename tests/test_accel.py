"""The optional C accelerator, multicast_expert._speedups, against the pure-Python equivalents.

Live tests over loopback (unicast UDP to 127.0.0.1 / ::1, and a link-local address on a veth of
the test's own) inside the session's private network namespace (the ``net`` fixture checks it).
Skipped when the extension is not built, except in CI, where it must be built.
"""

from __future__ import annotations

import errno
import gc
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NamedTuple

import pytest
from helpers import IN_CI, UNDER_ASAN, V4, V6, Net, resident_growth, rss_bytes

from multicast_expert import _accel, _platform, testing
from multicast_expert._packet import McastPacket

try:
    from multicast_expert import _speedups as sp
except ImportError as exc:  # pragma: no cover - depends on the build
    if IN_CI:
        raise ImportError(f"CI must build the C accelerator, but it is missing: {exc}") from exc
    pytest.skip(f"the C accelerator is not built here: {exc}", allow_module_level=True)

LOOP: dict[int, str] = {V4: "127.0.0.1", V6: "::1"}
FAMILIES = pytest.mark.parametrize("family", [V4, V6], ids=["v4", "v6"])


def _bound(family: int, ip: str | None = None, scope: int = 0) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)  # room for hundreds queued
    s.bind((ip or LOOP[family], 0) if family == V4 else (ip or LOOP[family], 0, 0, scope))
    return s


@contextmanager
def pair(family: int, ip: str | None = None, scope: int = 0) -> Iterator[tuple[socket.socket, socket.socket]]:
    """(receiver, sender): non-blocking UDP sockets on one loopback (or link-local) address."""
    rx, tx = _bound(family, ip, scope), _bound(family, ip, scope)
    try:
        yield rx, tx
    finally:
        rx.close()
        tx.close()


def settle(rx: socket.socket, count: int = 1, timeout: float = 10.0) -> None:
    """Wait until at least ``count`` datagrams' worth is readable (loopback delivery is immediate,
    but be safe): for count > 1 just wait for the first and give the rest a moment. (A 2 s wait
    once ran out on a machine loaded by two test sessions at once.)"""
    assert select.select([rx], [], [], timeout)[0], f"nothing arrived within {timeout} s"
    if count > 1:
        time.sleep(0.1)  # (under load a veth may take longer than loopback)


class BoomError(Exception):
    """Raised by the test's SIGALRM handler."""


@contextmanager
def alarm(after: float, handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, after)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def raise_boom(signum: int, frame: FrameType | None) -> None:
    raise BoomError


# ---- the loader -------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("1", "False"), ("0", "True"), (None, "True")])
def test_pure_python_env_var_turns_the_accelerator_off(value: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MULTICAST_EXPERT_PURE_PYTHON"}
    if value is not None:
        env["MULTICAST_EXPERT_PURE_PYTHON"] = value
    code = "from multicast_expert import _accel as a; print(a.ACCELERATED, a.speedups is not None, a.REASON)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[:2] == [expected, expected]
    if expected == "False":
        assert "MULTICAST_EXPERT_PURE_PYTHON" in " ".join(out[2:])


def test_loaded_module_is_the_abi3_build() -> None:
    assert sp.__file__ is not None and sp.__file__.endswith(".abi3.so")
    if os.environ.get("MULTICAST_EXPERT_PURE_PYTHON") != "1":
        assert _accel.ACCELERATED and _accel.speedups is sp and _accel.REASON is None
    assert sp.MAX_VLEN == 1024 and sp.ARENA_BYTES == 1 << 20


# ---- recv_from / recv_packet --------------------------------------------------------------------


@FAMILIES
def test_recv_from_matches_socket_recvfrom(net: Net, family: int) -> None:
    with pair(family) as (rx, tx):
        for payload in (b"first", b"", b"\x00" * 3000, b"z" * 20000):
            tx.sendto(payload, rx.getsockname())
            tx.sendto(payload, rx.getsockname())
            settle(rx, 2)
            assert sp.recv_from(rx.fileno(), 65536) == rx.recvfrom(65536) == (payload, tx.getsockname())
        tx.sendto(b"peeked", rx.getsockname())
        settle(rx)
        assert sp.recv_from(rx.fileno(), 100, socket.MSG_PEEK) == rx.recvfrom(100)
        tx.sendto(b"0123456789", rx.getsockname())
        tx.sendto(b"0123456789", rx.getsockname())
        settle(rx, 2)
        assert sp.recv_from(rx.fileno(), 4) == rx.recvfrom(4) == (b"0123", tx.getsockname())
        tx.sendto(b"0123456789", rx.getsockname())
        settle(rx)
        # MSG_TRUNC makes recvfrom return the real length: still only bufsize bytes come back
        assert sp.recv_from(rx.fileno(), 4, socket.MSG_TRUNC)[0] == b"0123"


@FAMILIES
def test_recv_errors_match_the_socket_module(net: Net, family: int) -> None:
    with pair(family) as (rx, _tx):
        with pytest.raises(BlockingIOError) as py:
            rx.recvfrom(10)
        with pytest.raises(BlockingIOError) as c:
            sp.recv_from(rx.fileno(), 10)
        assert c.value.errno == py.value.errno == errno.EAGAIN
        with pytest.raises(BlockingIOError):
            sp.recv_packet(rx.fileno(), 10)
        with pytest.raises(ValueError, match="negative"):
            rx.recvfrom(-1)
        with pytest.raises(ValueError, match="negative"):
            sp.recv_from(rx.fileno(), -1)
        with pytest.raises(ValueError, match="negative"):
            sp.recv_packet(rx.fileno(), -1)
        with pytest.raises(ValueError, match="negative"):
            sp.recv_from(-1, 10)
        with pytest.raises(TypeError):
            sp.recv_from(rx.fileno())  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            sp.recv_from("3", 10)  # type: ignore[arg-type]
    r, w = os.pipe()
    try:
        for fn in (lambda: sp.recv_from(r, 10), lambda: sp.recv_packet(r, 10)):
            with pytest.raises(OSError) as err:
                fn()
            assert err.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)
    closed = socket.socket(family, socket.SOCK_DGRAM)
    fd = closed.fileno()
    closed.close()
    with pytest.raises(OSError) as err:
        sp.recv_from(fd, 10)
    assert err.value.errno == errno.EBADF
    calls: list[Callable[[], object]] = [
        lambda: sp.recv_from(closed, 10),
        lambda: sp.recv_packet(closed, 10),
        lambda: sp.recv_batch(closed, 4, 10, "g", 1, McastPacket),
        lambda: sp.send_batch(closed, family, [(b"x", (LOOP[family], 9))]),
    ]
    for call in calls:  # a socket object's fileno() is read in the call: closed is EBADF, not ValueError
        with pytest.raises(OSError) as err:
            call()
        assert err.value.errno == errno.EBADF
    with pytest.raises(TypeError, match="a descriptor"):
        sp.recv_packet(object(), 10)  # type: ignore[arg-type]


@FAMILIES
def test_recv_packet_matches_recvmsg_with_truncation(net: Net, family: int) -> None:
    with pair(family) as (rx, tx):
        for payload, bufsize in ((b"x" * 100, 10), (b"y" * 10, 10), (b"", 10), (b"w" * 60000, 65536)):
            tx.sendto(payload, rx.getsockname())
            tx.sendto(payload, rx.getsockname())
            settle(rx, 2)
            data, anc, flags, addr = rx.recvmsg(bufsize)
            assert anc == []
            assert sp.recv_packet(rx.fileno(), bufsize) == (data, addr, bool(flags & socket.MSG_TRUNC))
            assert data == payload[:bufsize] and addr == tx.getsockname()
            assert bool(flags & socket.MSG_TRUNC) == (len(payload) > bufsize)


def test_ipv6_link_local_sender_has_its_scope_as_socket_gives_it(own_peer: testing.Peer) -> None:
    dev = own_peer.host_if
    testing.ip("-6", "addr", "add", "fe80::aa/64", "dev", dev, "nodad")
    index = socket.if_nametoindex(dev)
    with pair(V6, "fe80::aa", index) as (rx, tx):
        for _ in range(2):
            tx.sendto(b"scoped", rx.getsockname())
        settle(rx, 2)
        got = sp.recv_from(rx.fileno(), 100)
        assert got == rx.recvfrom(100) == (b"scoped", ("fe80::aa", tx.getsockname()[1], 0, index))
        tx.sendto(b"scoped", rx.getsockname())
        settle(rx)
        assert sp.recv_packet(rx.fileno(), 100) == (
            b"scoped",
            ("fe80::aa", tx.getsockname()[1], 0, index),
            False,
        )
        # send_batch with the scope in the tuple (and a "%scope" text suffix, dropped as CPython does)
        assert sp.send_batch(tx.fileno(), V6, [(b"a", ("fe80::aa", rx.getsockname()[1], 0, index))]) == 1
        assert (
            sp.send_batch(tx.fileno(), V6, [(b"b", (f"fe80::aa%{dev}", rx.getsockname()[1], 0, index))]) == 1
        )
        settle(rx, 2)
        got_batch = sp.recv_batch(rx.fileno(), 8, 100, "fe80::aa", index, McastPacket)
        assert [(p.payload, p.src) for p in got_batch] == [(b"a", tx.getsockname()), (b"b", tx.getsockname())]


def test_ipv4_mapped_senders_are_as_the_socket_module_writes_them(net: Net) -> None:
    with socket.socket(V6, socket.SOCK_DGRAM) as rx, socket.socket(V4, socket.SOCK_DGRAM) as tx:
        rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        rx.bind(("::", 0))
        rx.setblocking(False)
        tx.bind(("127.0.0.1", 0))
        for _ in range(2):
            tx.sendto(b"m", ("127.0.0.1", rx.getsockname()[1]))
        settle(rx, 2)
        assert (
            sp.recv_from(rx.fileno(), 10)
            == rx.recvfrom(10)
            == (b"m", ("::ffff:127.0.0.1", tx.getsockname()[1], 0, 0))
        )


# ---- units: recv_unit, epoll_recv ---------------------------------------------------------------


class _Iface:
    def __init__(self, index: int) -> None:
        self.index = index


class _OnFd:
    """A unit's socket object as the C reads check it: only its ``fileno()``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


class _Unit:
    """What epoll_recv and recv_unit read of a unit: fd, group, iface.index, live, and sock (whose
    fileno() must still be fd: else a socket the program closed, never read)."""

    def __init__(self, group: str, index: int, live: bool = True, fd: int = -1) -> None:
        self.group, self.iface, self.live, self.fd = group, _Iface(index), live, fd
        self.sock: socket.socket | _OnFd = _OnFd(fd)


def unit_of(sock: socket.socket | int, group: str = "g", index: int = 1) -> _Unit:
    return _Unit(group, index, fd=sock if isinstance(sock, int) else sock.fileno())


@FAMILIES
def test_recv_unit_reads_only_a_live_unit_whose_socket_is_on_its_descriptor(net: Net, family: int) -> None:
    """recv_unit, the engine's read: recv_from's datagram, or the unit's packet; nothing queued is
    BlockingIOError; a unit no longer live, or whose socket was closed (by hand) with its number
    reused by another socket, is EBADF and that other socket's datagram stays queued for it."""
    with pair(family) as (rx, tx):
        unit = unit_of(rx, "239.1.2.3", 5)
        unit.sock = rx  # (recv_unit also checks that the unit's socket is still on its descriptor)
        with pytest.raises(BlockingIOError):
            sp.recv_unit(100, 0, None, unit)
        for payload in (b"one", b"two", b"three"):
            tx.sendto(payload, rx.getsockname())
        assert select.select([rx], [], [], 1.0)[0]
        assert sp.recv_unit(100, socket.MSG_PEEK, None, unit) == (b"one", tx.getsockname())
        assert sp.recv_unit(2, 0, None, unit) == (b"on", tx.getsockname())
        assert sp.recv_unit(3, 0, McastPacket, unit) == McastPacket(
            b"two", tx.getsockname(), "239.1.2.3", 5, False, None, None, None
        )
        with pytest.raises(ValueError, match="flags"):
            sp.recv_unit(100, socket.MSG_PEEK, McastPacket, unit)
        unit.live = False
        for cls in (None, McastPacket):
            with pytest.raises(OSError) as err:
                sp.recv_unit(100, 0, cls, unit)
            assert err.value.errno == errno.EBADF
        unit.live = True
        assert sp.recv_unit(100, 0, McastPacket, unit).payload == b"three"
        rx.close()  # by hand, the unit still "live"; its number is reused at once
        with _bound(family) as other:
            assert other.fileno() == unit.fd
            tx.sendto(b"other's", other.getsockname())
            assert select.select([other], [], [], 1.0)[0]
            with pytest.raises(OSError) as err:
                sp.recv_unit(100, 0, None, unit)
            assert err.value.errno == errno.EBADF
            assert other.recvfrom(100)[0] == b"other's"


# ---- epoll_recv ---------------------------------------------------------------------------------


@contextmanager
def epoll_of(*socks: socket.socket) -> Iterator[tuple[select.epoll, int]]:
    """An epoll set over ``socks`` plus an eventfd waker (as the engine's poller has)."""
    waker = os.eventfd(0, os.EFD_NONBLOCK)
    ep = select.epoll()
    try:
        for fd in (waker, *(s.fileno() for s in socks)):
            ep.register(fd, select.EPOLLIN)
        yield ep, waker
    finally:
        ep.close()
        os.close(waker)


@FAMILIES
def test_epoll_recv_reads_the_one_ready_socket(net: Net, family: int) -> None:
    with pair(family) as (a, tx), pair(family) as (b, _), epoll_of(a, b) as (ep, waker):
        by_fd: dict[int, object] = {a.fileno(): unit_of(a, "g-a", 7), b.fileno(): unit_of(b, "g-b", 8)}
        start = time.monotonic()
        assert sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, 0.2) is None
        assert 0.19 <= time.monotonic() - start < 1.5
        assert sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, 0) is None
        tx.sendto(b"one", a.getsockname())
        settle(a)
        assert sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, 1.0) == (b"one", tx.getsockname())
        tx.sendto(b"two-long", b.getsockname())
        settle(b)
        got = sp.epoll_recv(3, McastPacket, by_fd, ep.fileno(), waker, None)
        assert type(got) is McastPacket
        assert got == McastPacket(b"two", tx.getsockname(), "g-b", 8, True)  # cut to bufsize
        tx.sendto(b"big" * 4000, b.getsockname())  # > the C stack buffer: the heap one
        settle(b)
        assert sp.epoll_recv(20000, None, by_fd, ep.fileno(), waker, 1.0) == (b"big" * 4000, tx.getsockname())


def test_epoll_recv_reads_nothing_when_several_are_ready_or_woken(net: Net) -> None:
    with pair(V4) as (a, tx), pair(V4) as (b, _), epoll_of(a, b) as (ep, waker):
        by_fd: dict[int, object] = {a.fileno(): unit_of(a, "a"), b.fileno(): unit_of(b, "b")}
        tx.sendto(b"1", a.getsockname())
        tx.sendto(b"2", b.getsockname())
        settle(a)
        settle(b)
        got = sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, 1.0)
        assert sorted(got) == sorted([a.fileno(), b.fileno()])  # type: ignore[arg-type]
        assert a.recvfrom(10)[0] == b"1" and b.recvfrom(10)[0] == b"2"  # nothing was read
        os.eventfd_write(waker, 1)
        assert sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, None) == []  # woken alone
        tx.sendto(b"3", a.getsockname())
        settle(a)
        assert sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, None) == [a.fileno()]  # and woken
        assert os.eventfd_read(waker) == 1  # never drained by epoll_recv
        assert sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, 1.0) == (b"3", tx.getsockname())
        timer = threading.Timer(0.1, os.eventfd_write, (waker, 1))
        start = time.monotonic()
        timer.start()
        assert sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, 5.0) == []  # woken from a thread
        assert time.monotonic() - start < 1.0
        timer.join()


def test_epoll_recv_never_reads_a_socket_that_is_not_a_live_unit(net: Net) -> None:
    # (its descriptor may have been closed and its number reused by a socket not ours meanwhile)
    with pair(V4) as (a, tx), epoll_of(a) as (ep, waker):
        tx.sendto(b"left", a.getsockname())
        settle(a)
        assert sp.epoll_recv(100, McastPacket, {}, ep.fileno(), waker, 1.0) == [a.fileno()]
        dead: dict[int, object] = {a.fileno(): _Unit("g", 1, live=False, fd=a.fileno())}
        assert sp.epoll_recv(100, McastPacket, dead, ep.fileno(), waker, 1.0) == [a.fileno()]
        assert a.recvfrom(10)[0] == b"left"  # left queued: not read, not dropped


def test_epoll_recv_read_errors_raise_only_for_a_live_unit(net: Net) -> None:
    # A connected UDP socket that sent to a closed port gets ECONNREFUSED (ICMP port unreachable)
    # on its next read; epoll reports it ready (EPOLLERR).
    for live in (True, False):
        with pair(V4) as (a, tx), epoll_of(a) as (ep, waker):
            port = tx.getsockname()[1]
            tx.close()
            a.connect(("127.0.0.1", port))
            a.send(b"x")
            settle(a)
            by_fd: dict[int, object] = {a.fileno(): _Unit("g", 1, live=live, fd=a.fileno())}
            if live:
                with pytest.raises(ConnectionRefusedError) as err:
                    sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, 1.0)
                assert err.value.fd == a.fileno()  # type: ignore[attr-defined]
            else:  # (a unit no longer live is not read at all: its error stays unseen)
                assert sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, 1.0) == [a.fileno()]


def test_epoll_recv_bad_arguments_and_signals(net: Net) -> None:
    with pair(V4) as (a, _tx), epoll_of(a) as (ep, waker):
        by_fd: dict[int, object] = {a.fileno(): unit_of(a, "g")}
        with pytest.raises(TypeError, match="by_fd"):
            sp.epoll_recv(100, None, [], ep.fileno(), waker, 0)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="packet_cls"):
            sp.epoll_recv(100, list, by_fd, ep.fileno(), waker, 0)  # type: ignore[type-var]
        with pytest.raises(ValueError, match="NaN"):
            sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, float("nan"))
        with pytest.raises(ValueError):
            sp.epoll_recv(100, None, by_fd, -1, waker, 0)
        with pytest.raises(ValueError):
            sp.epoll_recv(-1, None, by_fd, ep.fileno(), waker, 0)
        with pytest.raises(OSError) as err:
            sp.epoll_recv(100, None, by_fd, a.fileno(), waker, 0)  # not an epoll descriptor
        assert err.value.errno == errno.EINVAL
        with alarm(0.1, raise_boom), pytest.raises(BoomError):
            sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, None)
        seen: list[int] = []
        with alarm(0.05, lambda signum, frame: seen.append(signum)):
            start = time.monotonic()
            assert sp.epoll_recv(100, None, by_fd, ep.fileno(), waker, 0.3) is None
            took = time.monotonic() - start
        assert seen == [signal.SIGALRM] and 0.29 <= took < 1.5  # a quiet signal keeps the deadline


# ---- recv_batch ---------------------------------------------------------------------------------


def expected_packets(rx: socket.socket, n: int, bufsize: int, group: str, index: int) -> list[McastPacket]:
    out = []
    for _ in range(n):
        data, _anc, flags, addr = rx.recvmsg(bufsize)
        out.append(McastPacket(data, addr, group, index, bool(flags & socket.MSG_TRUNC)))
    return out


@FAMILIES
def test_recv_batch_matches_recvmsg_one_by_one(net: Net, family: int) -> None:
    with pair(family) as (rx, tx):
        payloads = [b"p%03d" % i * (i % 7 + 1) for i in range(300)]
        for rounds in range(2):
            for p in payloads:
                tx.sendto(p, rx.getsockname())
            settle(rx, 300)
            if rounds == 0:
                want = expected_packets(rx, 300, 20, "239.1.2.3", 7)
            got = sp.recv_batch(rx.fileno(), 1024, 20, "239.1.2.3", 7, McastPacket)
        assert got == want
        assert all(type(p) is McastPacket for p in got)
        assert [p.truncated for p in got] == [len(p) > 20 for p in payloads]
        assert got[0].src is got[1].src  # one sender: its address tuple is shared
        assert {hash(p) for p in got[:5]} == {hash(tuple(p)) for p in want[:5]}
        assert got[3]._replace(ttl=1).ttl == 1 and got[3]._asdict()["payload"] == payloads[3][:20]


def test_recv_batch_takes_count_and_leaves_the_rest(net: Net) -> None:
    with pair(V4) as (rx, tx):
        for i in range(100):
            tx.sendto(b"%d" % i, rx.getsockname())
        settle(rx, 100)
        first = sp.recv_batch(rx.fileno(), 40, 100, "g", 1, McastPacket)
        second = sp.recv_batch(rx.fileno(), 17, 100, "g", 1, McastPacket)
        rest = sp.recv_batch(rx.fileno(), 1024, 100, "g", 1, McastPacket)
        assert [len(first), len(second), len(rest)] == [40, 17, 43]
        assert [p.payload for p in first + second + rest] == [b"%d" % i for i in range(100)]
        assert sp.recv_batch(rx.fileno(), 1024, 100, "g", 1, McastPacket) == []  # nothing: []
        assert sp.recv_batch(rx.fileno(), 0, 100, "g", 1, McastPacket) == []
        tx.sendto(b"big datagram", rx.getsockname())
        settle(rx)
        assert sp.recv_batch(rx.fileno(), 4, 0, "g", 1, McastPacket)[0][:2] == (b"", tx.getsockname())


def test_recv_batch_large_count_with_few_datagrams_stays_cheap(net: Net) -> None:
    # Memory per call is bounded by ARENA_BYTES (not count * bufsize = 64 MiB here), never
    # zero-filled, and only the slots used are set up; RSS must not grow with the calls.
    with pair(V4) as (rx, tx):
        addr, fd = rx.getsockname(), rx.fileno()
        sp.recv_batch(fd, 1024, 65535, "g", 1, McastPacket)
        gc.collect()
        before = rss_bytes()
        start = time.perf_counter()
        for i in range(2000):
            tx.sendto(b"%d" % i, addr)
            got = sp.recv_batch(fd, 1024, 65535, "g", 1, McastPacket)
            assert [p.payload for p in got] == [b"%d" % i]
        took = time.perf_counter() - start
        assert UNDER_ASAN or rss_bytes() - before < 8 << 20
        assert took < 10.0  # ~10 us a round here; count*bufsize zero-filling would be ~10 ms a call


def test_recv_batch_errors(net: Net) -> None:
    with pair(V4) as (rx, _tx):
        fd = rx.fileno()
        with pytest.raises(TypeError, match="tuple subclass"):
            sp.recv_batch(fd, 4, 100, "g", 1, dict)  # type: ignore[type-var]
        with pytest.raises(TypeError, match="group"):
            sp.recv_batch(fd, 4, 100, b"g", 1, McastPacket)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="ifindex"):
            sp.recv_batch(fd, 4, 100, "g", "1", McastPacket)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="negative"):
            sp.recv_batch(fd, -1, 100, "g", 1, McastPacket)
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as err:
            sp.recv_batch(r, 4, 100, "g", 1, McastPacket)
        assert err.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)


def test_recv_batch_keeps_no_references(net: Net) -> None:
    group, index = "".join(["239.", "9.9.9"]), 10**20  # objects of this test only
    with pair(V4) as (rx, tx):
        gc.collect()  # packets left over from earlier tests hold references to McastPacket
        refs = (sys.getrefcount(group), sys.getrefcount(index), sys.getrefcount(McastPacket))
        for _ in range(3):
            for i in range(50):
                tx.sendto(b"%d" % i, rx.getsockname())
            settle(rx, 50)
            got = sp.recv_batch(rx.fileno(), 64, 100, group, index, McastPacket)
            assert len(got) == 50 and got[0].group is group and got[0].iface_index is index
            del got
        gc.collect()
        assert (sys.getrefcount(group), sys.getrefcount(index), sys.getrefcount(McastPacket)) == refs


# ---- send_batch ---------------------------------------------------------------------------------


@FAMILIES
def test_send_batch_to_300_destinations_misdirects_nothing(net: Net, family: int) -> None:
    # 300 receivers, each on its own port; every datagram names its destination's port. Two
    # threads send to interleaved halves at once, several rounds (a sockaddr shared across calls
    # would send some datagrams to the other thread's destinations).
    receivers = [_bound(family) for _ in range(300)]
    senders = [_bound(family) for _ in range(2)]
    try:
        dests = [r.getsockname() for r in receivers]
        rounds = 5
        errors: list[BaseException] = []

        def send(k: int) -> None:
            try:
                for n in range(rounds):
                    batch = [(b"%d %d" % (d[1], n), d) for d in dests[k::2]]
                    assert sp.send_batch(senders[k].fileno(), family, batch) == len(batch)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        single = [(memoryview(b"%d single" % d[1]), d) for d in dests]
        assert sp.send_batch(senders[0].fileno(), family, single) == 300  # one call, 300 places
        for r in receivers:
            port = r.getsockname()[1]
            got = [r.recvfrom(100)[0] for _ in range(rounds + 1)]
            assert sorted(got) == sorted(
                [b"%d %d" % (port, n) for n in range(rounds)] + [b"%d single" % port]
            )
            with pytest.raises(BlockingIOError):
                r.recvfrom(100)
    finally:
        for s in receivers + senders:
            s.close()


@FAMILIES
def test_send_batch_sends_like_sendto(net: Net, family: int) -> None:
    with pair(family) as (rx, tx):
        dest = rx.getsockname()
        short = dest[:2]
        batch: list[tuple[bytes | bytearray | memoryview, tuple[str, int] | tuple[str, int, int, int]]] = [
            (b"bytes", dest),
            (bytearray(b"bytearray"), short),
            (memoryview(b"xxmemoryview")[2:], dest),
            (b"", dest),
            (b"big" * 10000, dest),
        ]
        assert sp.send_batch(tx.fileno(), family, batch) == 5
        assert sp.send_batch(tx.fileno(), family, []) == 0
        settle(rx, 5)
        assert [rx.recvfrom(65536) for _ in range(5)] == [(bytes(d), tx.getsockname()) for d, _ in batch]
        many = [(b"%d" % i, dest) for i in range(2500)]  # > MAX_VLEN: several sendmmsg calls
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        assert sp.send_batch(tx.fileno(), family, many) == 2500
        got = sp.recv_batch(rx.fileno(), 4096, 10, "g", 0, McastPacket)
        assert [p.payload for p in got] == [d for d, _ in many]


BAD_V4: list[tuple[object, type[BaseException]]] = [
    (("127.0.0.1", 70000), OverflowError),
    (("127.0.0.1", -1), OverflowError),
    (("127.0.0.1", 2**70), OverflowError),
    (("127.0.0.1",), TypeError),
    (("127.0.0.1", 1, 2), TypeError),
    (["127.0.0.1", 1], TypeError),
    (("127.0.0.1", "1"), TypeError),
    (("127.0.0.1", 1.5), TypeError),
    ((5, 1), TypeError),
    (("127.0.\x000.1", 1), TypeError),
    (b"127.0.0.1", TypeError),
]
BAD_V6: list[tuple[object, type[BaseException]]] = [
    (("::1", 70000), OverflowError),
    (("::1", 1, 2**20), OverflowError),
    (("::1", 1, -1), OverflowError),
    (("::1",), TypeError),
    (("::1", 1, 0, 0, 0), TypeError),
    (("::1", "x"), TypeError),
    ((None, 1), TypeError),
    ("::1", TypeError),
]


@pytest.mark.parametrize(
    ("family", "address", "exc_type"), [(V4, a, e) for a, e in BAD_V4] + [(V6, a, e) for a, e in BAD_V6]
)
def test_send_batch_rejects_addresses_as_sendto_does(
    net: Net, family: int, address: object, exc_type: type[BaseException]
) -> None:
    with pair(family) as (rx, tx):
        with pytest.raises(exc_type) as py:
            tx.sendto(b"x", address)  # type: ignore[call-overload]
        good = (b"ok", rx.getsockname())
        with pytest.raises(exc_type) as c:
            sp.send_batch(tx.fileno(), family, [good, (b"x", address)])  # type: ignore[list-item]
        assert type(c.value) is type(py.value)
        assert "port must be 0-65535." in str(c.value) or "port must" not in str(py.value)
        with pytest.raises(BlockingIOError):
            rx.recvfrom(10)  # checked before anything was sent


@pytest.mark.parametrize(
    ("family", "host", "code"),
    [
        # What socket.sendto raises for these (measured; not re-run here, since sendto would ask
        # the resolver): socket.gaierror EAI_NONAME for a non-literal, EAI_ADDRFAMILY for the
        # other family's literal. send_batch never resolves names.
        (V4, "1.2.3.999", socket.EAI_NONAME),
        (V4, "localhost", socket.EAI_NONAME),
        (V4, "x" * 300, socket.EAI_NONAME),
        (V4, "::1", socket.EAI_ADDRFAMILY),
        (V6, "1.2.3.4", socket.EAI_ADDRFAMILY),
        (V6, "::g", socket.EAI_NONAME),
    ],
)
def test_send_batch_non_literal_hosts_are_gaierror(net: Net, family: int, host: str, code: int) -> None:
    with pair(family) as (_rx, tx), pytest.raises(socket.gaierror) as c:
        sp.send_batch(tx.fileno(), family, [(b"x", (host, 9))])
    assert c.value.errno == code
    assert getattr(c.value, "sent", None) == 0


def test_send_batch_bad_data_and_arguments(net: Net) -> None:
    with pair(V4) as (rx, tx):
        dest = rx.getsockname()
        bad_data: list[tuple[object, type[BaseException]]] = [
            ("str", TypeError),
            (5, TypeError),
            (memoryview(b"abcd")[::2], BufferError),
        ]
        for data, exc_type in bad_data:
            with pytest.raises(exc_type):
                tx.sendto(data, dest)  # type: ignore[call-overload]
            with pytest.raises(exc_type):
                sp.send_batch(tx.fileno(), V4, [(data, dest)])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            sp.send_batch(tx.fileno(), V4, [(b"x",)])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            sp.send_batch(tx.fileno(), V4, (d for d in [(b"x", dest)]))  # type: ignore[call-overload]
        with pytest.raises(OSError) as err:
            sp.send_batch(tx.fileno(), socket.AF_UNIX, [(b"x", dest)])
        assert err.value.errno == errno.EAFNOSUPPORT


def test_send_batch_error_after_some_were_sent_reports_the_count(net: Net) -> None:
    # Broadcast without SO_BROADCAST: the kernel refuses that datagram (EACCES) before sending it.
    with pair(V4) as (rx, tx):
        dest, tx_fd = rx.getsockname(), tx.fileno()
        batch = [(b"1", dest), (b"2", dest), (b"no", ("255.255.255.255", dest[1])), (b"3", dest)]
        with pytest.raises(PermissionError) as err:
            tx.sendto(b"no", ("255.255.255.255", dest[1]))
        with pytest.raises(PermissionError) as c:
            sp.send_batch(tx.fileno(), V4, batch)
        assert c.value.errno == err.value.errno == errno.EACCES
        assert getattr(c.value, "sent", None) == 2
        settle(rx, 2)
        assert [rx.recvfrom(10)[0] for _ in range(2)] == [b"1", b"2"]
        with pytest.raises(PermissionError) as c:
            sp.send_batch(tx.fileno(), V4, batch[2:])
        assert getattr(c.value, "sent", None) == 0
    with pytest.raises(OSError) as closed:
        sp.send_batch(tx_fd, V4, [(b"1", dest)])  # closed socket
    assert closed.value.errno == errno.EBADF and getattr(closed.value, "sent", None) == 0


def test_send_batch_matches_the_pure_python_send_many(net: Net) -> None:
    with pair(V6) as (rx, tx):
        dest = rx.getsockname()
        batch = [(b"%d" % i, dest if i % 2 else dest[:2]) for i in range(40)]
        assert sp.send_batch(tx.fileno(), V6, batch) == _platform.IO.send_many(tx, V6, batch) == 40
        settle(rx, 80)
        got = [p.payload for p in sp.recv_batch(rx.fileno(), 100, 10, "g", 0, McastPacket)]
        assert got == [d for d, _ in batch] * 2


class _Dest(NamedTuple):
    group: str
    port: int


def test_send_batch_with_known_sends_only_when_every_destination_is_known(net: Net) -> None:
    with pair(V4) as (ra, tx), pair(V4) as (rb, _):
        a, b = ra.getsockname(), rb.getsockname()
        known: set[object] = {a, b}
        assert sp.send_batch(tx.fileno(), V4, [(b"1", a), (b"2", b)], known) == 2
        assert sp.send_batch(tx.fileno(), V4, [], frozenset()) == 0
        assert sp.send_batch(tx.fileno(), V4, [(b"3", a)], None) == 1  # (None: no such check)
        refused: list[list[Any]] = [
            [(b"x", a), (b"x", ("127.0.0.1", 9))],  # a destination not known
            [(b"x", a), [b"x", a]],  # a list, not a tuple
            [(b"x", a), (bytearray(b"x"), a)],  # not exactly bytes
            [(b"x", a), (b"x", (a[0], float(a[1])))],  # equal, but the port is not an int
            [(b"x", a), (b"x", _Dest(*a))],  # equal, but not exactly a tuple
            [(b"x", a), (b"x",)],
            [(b"x", a), (b"x", a, b"y")],
        ]
        for batch in refused:
            assert sp.send_batch(tx.fileno(), V4, batch, known) is None
        with pytest.raises(TypeError, match="known must be a set, a dict"):
            sp.send_batch(tx.fileno(), V4, [(b"x", a)], [a])  # type: ignore[call-overload]
        settle(rb)
        assert [sp.recv_from(ra.fileno(), 100)[0] for _ in range(2)] == [b"1", b"3"]
        assert sp.recv_from(rb.fileno(), 100)[0] == b"2"
        for r in (ra, rb):  # nothing of the refused batches went out
            with pytest.raises(BlockingIOError):
                sp.recv_from(r.fileno(), 100)


# ---- no leaks -----------------------------------------------------------------------------------


def test_repeated_calls_do_not_leak(net: Net) -> None:
    # C-level leaks are invisible to tracemalloc: watch the resident size over many calls instead
    # (the ASan run of scripts/check-accel checks the memory accesses themselves).
    waker = os.eventfd(0)
    with select.epoll() as ep, pair(V6) as (rx, tx):
        ep.register(rx.fileno(), select.EPOLLIN)
        fd, dest = rx.fileno(), rx.getsockname()
        batch = [(b"leak test payload", dest)] * 8
        by_fd: dict[int, object] = {fd: unit_of(fd, "g")}

        def round_trip() -> None:
            assert sp.send_batch(tx.fileno(), V6, batch) == 8
            got = sp.epoll_recv(9000, McastPacket, by_fd, ep.fileno(), waker, 1.0)
            assert type(got) is McastPacket and got.group == "g"
            sp.recv_from(fd, 100)
            sp.recv_packet(fd, 20000)  # heap buffer
            unit = unit_of(fd)
            unit.sock = rx
            assert type(sp.recv_unit(100, 0, McastPacket, unit)) is McastPacket
            assert sp.recv_unit(20000, 0, None, unit)[0] == b"leak test payload"  # heap buffer
            assert len(sp.recv_batch(rx, 1024, 9000, "g", 1, McastPacket)) == 3
            unit.live = False
            with pytest.raises(OSError):
                sp.recv_unit(100, 0, None, unit)  # (not live: EBADF, nothing read)
            with pytest.raises(OverflowError):
                sp.send_batch(tx.fileno(), V6, [(b"x", dest), (b"x", ("::1", 70000))])
            with pytest.raises(BlockingIOError):
                sp.recv_from(fd, 100)

        assert resident_growth(round_trip) < 4 << 20
    os.close(waker)
