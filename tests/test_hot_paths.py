"""The per-socket hot paths: with the C accelerator, an open socket's ``recvfrom``,
``recv_packet`` and (one interface) ``sendto`` are C methods (``_speedups.RxHot`` / ``TxHot``)
placed over the class's methods; everything they do not serve goes to the Python methods.

Behaviour tests run both ways (the same results with and without the accelerator): receives
woken by close, joins and leaves in other threads, timeouts changed while open, flags, keywords,
peeking, metadata, subclasses, several threads sharing one socket, and the send checks. The C
objects' own argument checks run whatever the mode (they are called directly). Live, in the
session's private namespace (the ``net`` fixture checks it).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import importlib
import os
import select
import socket
import sys
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import IN_CI, V4, V6, Net

import multicast_expert as me
from multicast_expert import _platform

C_METHOD = type(len)  # builtin_function_or_method
LO4 = "127.0.0.1"


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``fn`` in a thread; its result (or exception) lands in the returned list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # (handed to the test to assert on)
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def finish(t: threading.Thread, out: list[Any]) -> Any:
    t.join(10)
    assert not t.is_alive(), "the receive never returned"
    assert len(out) == 1
    return out[0]


def started(t: threading.Thread, rx: me.McastRxSocket) -> None:
    """Give a receive in ``t`` time to reach its wait (a close or join then has to wake it)."""
    threading.Event().wait(0.2)
    assert t.is_alive()


# ---- which methods serve ------------------------------------------------------------------
def test_open_sockets_use_the_c_methods_exactly_when_accelerated(net: Net, port: int) -> None:
    groups = ["239.181.0.1", "239.181.0.2"]
    rx = me.McastRxSocket(V4, groups, port, iface_ip=LO4, timeout=0.5)
    assert rx.recvfrom.__func__ is me.McastRxSocket.recvfrom  # type: ignore[attr-defined]
    with rx, me.McastTxSocket(V4, groups, LO4) as tx:
        for method in (rx.recvfrom, rx.recv_packet, tx.sendto):
            assert isinstance(method, C_METHOD) is me.ACCELERATED
        tx.sendto(b"one", (groups[1], port))
        assert rx.recvfrom() == (b"one", tx.getsockname())
    # closed: the class's methods' errors, whatever serves the call
    with pytest.raises(me.SocketClosedError, match=r"recvfrom\(\) on a closed McastRxSocket"):
        rx.recvfrom()
    with pytest.raises(me.SocketClosedError, match=r"recv_packet\(\) on a closed McastRxSocket"):
        rx.recv_packet()
    with pytest.raises(me.SocketClosedError, match=r"sendto\(\) on a closed McastTxSocket"):
        tx.sendto(b"x", (groups[0], port))


def test_a_subclass_override_is_called_not_the_c_method(net: Net, port: int) -> None:
    calls: list[int] = []

    class Counting(me.McastRxSocket):
        def recvfrom(self, bufsize: int = 4096, flags: int = 0) -> tuple[bytes, Any] | None:
            calls.append(bufsize)
            return super().recvfrom(bufsize, flags)

    class CountingTx(me.McastTxSocket):
        def sendto(self, bytes: bytes, address: Any, *, iface: Any = None) -> None:  # noqa: A002
            calls.append(-1)
            super().sendto(bytes, address, iface=iface)

    group = "239.181.0.3"
    with Counting(V4, [group], port, iface_ip=LO4, timeout=0.5) as rx, CountingTx(V4, [group], LO4) as tx:
        tx.sendto(b"a", (group, port))
        assert rx.recvfrom(100) is not None
        assert isinstance(rx.recv_packet, C_METHOD) is me.ACCELERATED  # (not overridden)
    assert calls == [-1, 100]


def test_sending_on_several_interfaces_keeps_the_python_method(net: Net, port: int) -> None:
    with me.McastTxSocket(V4, ["239.181.0.4"], ifaces=[net.a.host_if, net.b.host_if]) as tx:
        assert tx.sendto.__func__ is me.McastTxSocket.sendto  # type: ignore[attr-defined]


# ---- receives woken by changes in other threads --------------------------------------------
@pytest.mark.parametrize("count", [1, 3], ids=["one-group", "three-groups"])
def test_close_from_another_thread_wakes_a_waiting_receive(net: Net, port: int, count: int) -> None:
    groups = [f"239.181.1.{i + 1}" for i in range(count)]
    for timeout in (None, 30.0):
        rx = me.McastRxSocket(V4, groups, port, iface_ip=LO4, timeout=timeout)
        rx.open()
        with me.McastTxSocket(V4, groups, LO4) as tx:  # (a first receive makes the poller)
            tx.sendto(b"first", (groups[-1], port))
            assert rx.recvfrom() is not None
        t, out = in_thread(rx.recvfrom)
        started(t, rx)
        rx.close()
        got = finish(t, out)
        assert isinstance(got, me.SocketClosedError), got


def test_a_join_wakes_a_receive_waiting_on_one_group(net: Net, port: int) -> None:
    first, second = "239.181.2.1", "239.181.2.2"
    with (
        me.McastRxSocket(V4, [first], port, iface_ip=LO4, timeout=None) as rx,
        me.McastTxSocket(V4, [first, second], LO4) as tx,
    ):
        tx.sendto(b"1", (first, port))
        assert rx.recvfrom() == (b"1", tx.getsockname())
        t, out = in_thread(rx.recvfrom)
        started(t, rx)
        rx.join_group(second)
        tx.sendto(b"2", (second, port))
        assert finish(t, out) == (b"2", tx.getsockname())
        for i, group in enumerate([first, second, second, first]):  # both groups, many-socket paths
            tx.sendto(bytes([i]), (group, port))
            got = rx.recv_packet()
            assert got is not None and (got.payload, got.group) == (bytes([i]), group)


def test_leaving_the_only_group_then_joining_another_while_waiting(net: Net, port: int) -> None:
    first, second = "239.181.3.1", "239.181.3.2"
    with (
        me.McastRxSocket(V4, [first], port, iface_ip=LO4, timeout=5.0) as rx,
        me.McastTxSocket(V4, [first, second], LO4) as tx,
    ):
        tx.sendto(b"1", (first, port))
        assert rx.recvfrom() is not None
        t, out = in_thread(rx.recv_packet)
        started(t, rx)
        rx.leave_group(first)
        tx.sendto(b"left", (first, port))  # nobody's now
        rx.join_group(second)
        tx.sendto(b"2", (second, port))
        got = finish(t, out)
        assert isinstance(got, me.McastPacket) and (got.payload, got.group) == (b"2", second)


def test_a_timeout_changed_while_open_is_the_one_used(net: Net, port: int) -> None:
    group = "239.181.4.1"
    with (
        me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=None) as rx,
        me.McastTxSocket(V4, [group], LO4) as tx,
    ):
        tx.sendto(b"1", (group, port))
        assert rx.recvfrom() is not None  # (the poller now exists: the fast paths are on)
        rx.timeout = 0.1
        assert finish(*in_thread(rx.recvfrom)) is None  # (with timeout None it would never return)
        assert finish(*in_thread(rx.recv_packet)) is None
        rx.settimeout(0)
        assert rx.recvfrom() is None and rx.recv_packet() is None
        tx.sendto(b"2", (group, port))
        assert rx.recvfrom() == (b"2", tx.getsockname())
        rx.timeout = None
        tx.sendto(b"3", (group, port))
        assert rx.recvfrom() == (b"3", tx.getsockname())


# ---- arguments the C methods hand to the Python ones ----------------------------------------
@pytest.mark.parametrize("count", [1, 4], ids=["one-group", "four-groups"])
def test_flags_keywords_and_sizes_behave_as_the_python_methods(net: Net, port: int, count: int) -> None:
    groups = [f"239.181.5.{i + 1}" for i in range(count)]
    with (
        me.McastRxSocket(V4, groups, port, iface_ip=LO4, timeout=0.5) as rx,
        me.McastTxSocket(V4, groups, LO4) as tx,
    ):
        src = tx.getsockname()
        tx.sendto(b"peeked", (groups[-1], port))
        assert rx.recvfrom(4096, socket.MSG_PEEK) == (b"peeked", src)
        assert rx.recvfrom(bufsize=3) == (b"pee", src)  # (the peeked one, cut)
        tx.sendto(b"kw", (groups[0], port))
        packet = rx.recv_packet(bufsize=1)
        assert packet is not None
        assert (packet.payload, packet.truncated, packet.group) == (b"k", True, groups[0])
        tx.sendto(b"flags0", (groups[0], port))
        assert rx.recvfrom(10, 0) == (b"flags0", src)

        class Zero(int):
            pass

        tx.sendto(b"zero", (groups[0], port))  # (flags equal to 0 but not the int 0: the Python method's)
        assert rx.recvfrom(10, Zero(0)) == (b"zero", src)
        with pytest.raises(TypeError, match="flags must be an int"):
            rx.recvfrom(10, False)
        tx.sendto(b"big", (groups[0], port))
        assert rx.recvfrom(2**31 - 1) == (b"big", src)  # (the largest size: read into the heap)
        for bad in (0, -1, 2**31, 2**70):
            with pytest.raises(ValueError, match="bufsize"):
                rx.recvfrom(bad)
            with pytest.raises(ValueError, match="bufsize"):
                rx.recv_packet(bad)
        for wrong in (1.5, "10", None):
            with pytest.raises(TypeError):
                rx.recvfrom(wrong)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            rx.recvfrom(10, 0, 0)  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            rx.recv_packet(10, 0)  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            rx.recvfrom(nonsense=1)  # type: ignore[call-arg]
        assert rx.recvfrom() is None  # (nothing left: every datagram came once)


def test_metadata_sockets_fill_the_packet_fields(net: Net, port: int) -> None:
    group = "239.181.6.1"
    with (
        me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0.5, recv_ttl=True) as rx,
        me.McastTxSocket(V4, [group], LO4, ttl=7) as tx,
    ):
        for _ in range(2):
            tx.sendto(b"ttl", (group, port))
            packet = rx.recv_packet()
            assert packet is not None and packet.ttl == 7
        tx.sendto(b"plain", (group, port))
        assert rx.recvfrom() == (b"plain", tx.getsockname())


def test_ipv6_receive_and_send_on_the_hot_paths(net: Net, port: int) -> None:
    groups = ["ff12::181:1", "ff12::181:2"]
    iface = net.a.host_if
    with (
        me.McastRxSocket(V6, groups[:1], port, iface=iface, timeout=0.5) as rx,
        me.McastTxSocket(V6, groups, iface=iface, enable_external_loopback=True) as tx,
    ):
        src = tx.getsockname()
        for i in range(3):
            tx.sendto(bytes([i]), (groups[0], port))
            got = rx.recvfrom()
            assert got is not None and got[0] == bytes([i]) and got[1][:2] == src[:2]
        rx.join_group(groups[1])
        tx.sendto(b"4-tuple", (groups[1], port, 0, 0))
        packet = rx.recv_packet()
        assert packet is not None and (packet.payload, packet.group) == (b"4-tuple", groups[1])


# ---- several threads on one socket ------------------------------------------------------------
@pytest.mark.parametrize("count", [1, 16], ids=["one-group", "sixteen-groups"])
def test_threads_sharing_a_socket_get_each_datagram_once(net: Net, port: int, count: int) -> None:
    groups = [f"239.181.7.{i + 1}" for i in range(count)]
    total = 2000
    seen: Counter[bytes] = Counter()
    lock = threading.Lock()
    with (
        me.McastRxSocket(V4, groups, port, iface_ip=LO4, timeout=0.5, rcvbuf=4 << 20) as rx,
        me.McastTxSocket(V4, groups, LO4) as tx,
    ):

        def reader(recv: Callable[[], Any]) -> None:
            while True:
                got = recv()
                if got is None:
                    return
                payload = got[0]
                with lock:
                    seen[payload] += 1

        threads = [
            threading.Thread(target=reader, args=(rx.recvfrom if i % 2 else rx.recv_packet,))
            for i in range(4)
        ]
        for t in threads:
            t.start()
        for i in range(total):
            tx.sendto(b"%d" % i, (groups[i % count], port))
        for t in threads:
            t.join(30)
            assert not t.is_alive()
    assert sum(seen.values()) == total and set(seen.values()) == {1}


# ---- the send side ------------------------------------------------------------------------------
def test_sendto_remembers_only_checked_destinations(net: Net, port: int) -> None:
    group, other = "239.181.8.1", "239.181.8.2"
    with (
        me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0.3) as rx,
        me.McastTxSocket(V4, [group], LO4) as tx,
    ):
        hot = tx._hot
        assert (hot is not None) is me.ACCELERATED
        for _ in range(3):  # the same answers the first time (checked) and later (remembered)
            with pytest.raises(me.MulticastExpertError, match=r"239\.181\.8\.2\) was not one of"):
                tx.sendto(b"x", (other, port))
            with pytest.raises(OverflowError, match="70000"):
                tx.sendto(b"x", (group, 70000))
            with pytest.raises(TypeError):
                tx.sendto(b"x", [group, port])  # type: ignore[arg-type]
            with pytest.raises(OSError) as too_big:
                tx.sendto(b"x" * 70000, (group, port))  # EMSGSIZE, from the OS
            assert too_big.value.errno is not None
            tx.sendto(b"ok", (group, port))
            tx.sendto(bytearray(b"ba"), (group, port))  # type: ignore[arg-type]  # (as socket.sendto)
            tx.sendto(memoryview(b"mv"), (group, port))  # type: ignore[arg-type]
        if hot is not None:
            assert hot.remembered == 1 and hot.fd == tx.sockets[0].fileno()
        got = [rx.recvfrom() for _ in range(9)]
        assert [g[0] for g in got if g] == [b"ok", b"ba", b"mv"] * 3
        assert rx.recvfrom() is None
    if hot is not None:
        assert hot.fd == -1 and hot.remembered == 0  # closed: nothing stays


def test_sendto_on_a_non_blocking_socket_with_a_full_buffer_reports_it(net: Net, port: int) -> None:
    group = "239.181.8.3"
    with me.McastTxSocket(V4, [group], LO4) as tx:
        tx.setblocking(False)
        tx.sockets[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        # Loopback delivers at once, so the buffer never fills; what must hold is that a non-blocking
        # socket still sends through the hot path and every datagram either goes or raises.
        for _ in range(200):
            try:
                tx.sendto(b"x" * 1000, (group, port))
            except BlockingIOError:
                break


def test_a_method_taken_from_a_socket_that_is_gone(net: Net, port: int) -> None:
    group = "239.181.9.1"
    rx = me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0.1)
    rx.open()
    recv = rx.recvfrom
    gone = weakref.ref(rx)
    rx.close()
    del rx
    gc.collect()
    assert gone() is None  # the hot methods do not keep the socket alive (no reference cycle)
    with pytest.raises(ReferenceError, match="no longer exists"):
        recv()


# ---- the C objects' own checks (called directly, whatever the mode) ---------------------------
def _speedups() -> Any:
    try:
        return importlib.import_module("multicast_expert._speedups")
    except ImportError as exc:  # pragma: no cover - depends on the build
        if IN_CI:
            raise
        pytest.skip(f"the C accelerator is not built here: {exc}")


def test_c_objects_check_their_arguments() -> None:
    sp = _speedups()

    def ref() -> None:
        return None

    def fn(*args: object) -> None:
        return None

    with pytest.raises(TypeError, match="must be callable"):
        sp.RxHot(1, fn, fn, fn, None, None)
    with pytest.raises(TypeError, match="packet_cls"):
        sp.RxHot(ref, fn, fn, fn, int, None)
    with pytest.raises(ValueError, match="NaN"):
        sp.RxHot(ref, fn, fn, fn, None, float("nan"))
    with pytest.raises(TypeError):
        sp.RxHot(ref, fn, fn, fn, None)
    hot = sp.RxHot(ref, fn, fn, fn, me.McastPacket, 1.0)
    assert hot.mode == 0
    with pytest.raises(ValueError, match="negative"):
        hot.set_single(object(), -1, {}, object(), 3, 4)
    with pytest.raises(TypeError, match="by_fd must be a dict"):
        hot.set_single(object(), 5, [], object(), 3, 4)
    with pytest.raises(TypeError, match="by_fd must be a dict"):
        hot.set_multi([], [], object(), 3, 4)
    hot.set_closed()
    assert hot.mode == -1
    with pytest.raises(ReferenceError):  # (closed: handed to the owner, which is gone)
        hot.recvfrom()
    with pytest.raises(ValueError, match="AF_INET or AF_INET6"):
        sp.TxHot(ref, fn, fn, 12345)
    with pytest.raises(TypeError, match="must be callable"):
        sp.TxHot(ref, fn, None, int(V4))
    tx = sp.TxHot(ref, fn, fn, int(V4))
    tx.remember(("239.1.1.1", 5))
    assert tx.remembered == 0  # (no socket: nothing to remember for)
    with socket.socket(V4, socket.SOCK_DGRAM) as sock:
        tx.open(sock, object())
        assert tx.fd == sock.fileno()
        tx.remember(("239.1.1.1", 5))
        for bad in (("not an address", 5), ("239.1.1.1", 70000), ["239.1.1.1", 5], ("239.1.1.1", 5.0)):
            tx.remember(bad)
        assert tx.remembered == 1
        tx.close()
        assert (tx.fd, tx.remembered) == (-1, 0)
        with pytest.raises(ValueError, match="negative"):
            sock.close()
            tx.open(sock, object())  # (a closed socket's fileno() is -1)


def test_the_os_layer_offers_the_c_methods_exactly_when_accelerated() -> None:
    assert (_platform.IO.rx_hot is not None) is me.ACCELERATED
    assert (_platform.IO.tx_hot is not None) is me.ACCELERATED


def test_rxhot_serves_reads_wakeups_errors_and_hands_over_the_rest(net: Net) -> None:
    sp = _speedups()
    calls: list[tuple[object, ...]] = []

    def slow(o: object, *args: object, **kwargs: object) -> str:
        assert o is owner
        calls.append(("slow", args, kwargs))
        return "slow"

    class Owner:  # (the class whose methods get what the C ones do not serve)
        recvfrom = slow
        recv_packet = slow

    owner = Owner()

    def resume(o: object, kind: int, bufsize: int, timeout: float | None, polled: list[int] | None) -> str:
        assert o is owner
        calls.append(("resume", kind, bufsize, polled))
        return "resumed"

    hot = sp.RxHot(weakref.ref(owner), slow, slow, resume, me.McastPacket, 1.0)
    waker = os.eventfd(0, os.EFD_NONBLOCK)
    with (
        socket.socket(V4, socket.SOCK_DGRAM) as rx,
        socket.socket(V4, socket.SOCK_DGRAM) as tx,
        epoll_over(rx, waker) as ep,
    ):
        rx.bind((LO4, 0))
        tx.bind((LO4, 0))
        src = tx.getsockname()
        unit = SimpleNamespace(fd=rx.fileno(), live=True, group="g", iface=SimpleNamespace(index=7), sock=rx)
        assert hot.recvfrom() == "slow"  # (off: no state yet)
        hot.set_single(unit, rx.fileno(), {rx.fileno(): unit}, object(), ep.fileno(), waker)
        tx.sendto(b"one", rx.getsockname())
        assert hot.recvfrom() == (b"one", src)  # queued: the first read
        tx.sendto(b"two", rx.getsockname())
        assert hot.recv_packet(2) == me.McastPacket(b"tw", src, "g", 7, True, None, None, None)
        threading.Timer(0.1, lambda: tx.sendto(b"later", rx.getsockname())).start()
        assert hot.recvfrom() == (b"later", src)  # waited for on the epoll set
        os.eventfd_write(waker, 1)  # woken with nothing queued: handed to resume
        assert hot.recvfrom(100) == "resumed" and calls[-1] == ("resume", 0, 100, None)
        os.eventfd_read(waker)
        tx.sendto(b"dead", rx.getsockname())
        unit.live = False  # left meanwhile: never read, handed to resume
        assert hot.recv_packet() == "resumed" and calls[-1][:3] == ("resume", 1, 65535)
        unit.live = True
        with socket.socket(V4, socket.SOCK_DGRAM) as other:
            unit.sock = other  # (a socket object not on this descriptor: one closed by hand, say)
            assert hot.recvfrom() == "resumed"
            unit.sock = rx
        assert hot.recvfrom() == (b"dead", src)  # (it stayed queued)
        hot.set_timeout(0.05)
        assert hot.recvfrom() is None  # timed out
        handed: list[tuple[tuple[object, ...], dict[str, object]]] = [
            ((), {"bufsize": 5}),
            ((5, socket.MSG_PEEK), {}),
            ((1.5,), {}),
            ((0,), {}),
        ]
        for args, kwargs in handed:
            assert hot.recvfrom(*args, **kwargs) == "slow"
            assert calls.pop() == ("slow", args, kwargs)
        hot.set_timeout(0)
        assert hot.recvfrom() == "slow"  # (never waiting: the engine's general loop)
        hot.set_timeout(None)
        hot.set_multi({rx.fileno(): unit}, collections.deque(), object(), ep.fileno(), waker)
        tx.sendto(b"multi", rx.getsockname())
        assert hot.recv_packet() == me.McastPacket(b"multi", src, "g", 7, False, None, None, None)
        queued: collections.deque[object] = collections.deque([unit])
        hot.set_multi({rx.fileno(): unit}, queued, object(), ep.fileno(), waker)
        assert hot.recvfrom() == "slow"  # (something queued: the engine's general loop)
        # A read error is raised while the unit is live (here ECONNREFUSED on a connected socket);
        # once it is not, the error is not the caller's: the receive goes on in Python.
        with socket.socket(V4, socket.SOCK_DGRAM) as gone:
            gone.bind((LO4, 0))
            closed_port = gone.getsockname()
        rx.connect(closed_port)
        hot.set_single(unit, rx.fileno(), {rx.fileno(): unit}, object(), ep.fileno(), waker)
        for live in (True, False):
            unit.live = live
            rx.send(b"x")
            threading.Event().wait(0.05)
            if live:
                with pytest.raises(ConnectionRefusedError):
                    hot.recvfrom()
            else:
                hot.set_timeout(0.1)
                assert hot.recvfrom() == "resumed"
    os.close(waker)


@contextlib.contextmanager
def epoll_over(*socks: socket.socket | int) -> Iterator[select.epoll]:
    ep = select.epoll()
    try:
        for s in socks:
            ep.register(s if isinstance(s, int) else s.fileno(), select.EPOLLIN)
        yield ep
    finally:
        ep.close()


@pytest.mark.parametrize("count", [1, 3], ids=["one-group", "three-groups"])
def test_a_closed_socket_is_freed_at_once_even_after_fast_receives_and_sends(
    net: Net, port: int, count: int
) -> None:
    # (While open the fast methods keep their socket alive, as bound methods do; close() lets go.)
    groups = [f"239.181.10.{i + 1}" for i in range(count)]
    gc.collect()
    gc.disable()
    try:
        rx = me.McastRxSocket(V4, groups, port, iface_ip=LO4, timeout=0.2)
        tx = me.McastTxSocket(V4, groups, LO4)
        with rx, tx:
            for group in groups:
                tx.sendto(b"x", (group, port))
                tx.sendto(b"y", (group, port))
            assert len([rx.recvfrom() for _ in range(2 * count)]) == 2 * count
            assert rx.recv_packet() is None
        gone = (weakref.ref(rx), weakref.ref(tx))
        del rx, tx
        assert [ref() for ref in gone] == [None, None]
    finally:
        gc.enable()


def test_c_methods_keep_the_reference_count_of_none() -> None:
    # An abi3 build made with CPython 3.12+ headers (where Py_RETURN_NONE takes no reference,
    # None being immortal there) and run on 3.11 gave away a reference to None per call, until
    # the interpreter aborted. The count must not fall, whichever headers built the extension.
    sp = _speedups()

    class Owner:
        def recvfrom(self, *args: object) -> None:
            return None

    owner = Owner()
    hot = sp.RxHot(weakref.ref(owner), Owner.recvfrom, Owner.recvfrom, Owner.recvfrom, None, 1.0)
    tx = sp.TxHot(weakref.ref(owner), Owner.recvfrom, Owner.recvfrom, int(V4))
    calls: list[Callable[[], object]] = [
        hot.set_off,
        hot.set_closed,
        lambda: hot.set_timeout(None),
        lambda: hot.hold(owner),
        lambda: tx.remember(("239.1.1.1", 5)),
        tx.close,
    ]
    for call in calls:
        call()
        before = sys.getrefcount(None)
        for _ in range(2000):
            assert call() is None
        assert sys.getrefcount(None) > before - 100, call  # (one lost per call: 2,000)
