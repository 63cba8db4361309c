"""Adversarial tests of the per-socket C methods (``_speedups.RxHot`` / ``TxHot``): what an open
socket's ``recvfrom``, ``recv_packet`` and ``sendto`` do must not depend on whether the
accelerator serves them. Each test states the behaviour of the pure-Python methods (or the
documented one) and runs both ways.

Some of these fail with the accelerator on (found in review); they pass once the C methods
behave as the Python ones. Live, in the session's private namespace (the ``net`` fixture).
"""

from __future__ import annotations

import contextlib
import decimal
import gc
import os
import random
import select
import signal
import socket
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest
from helpers import V4, V6, Net, resident_growth

import multicast_expert as me
from multicast_expert import _platform, _rx_read, testing
from multicast_expert._errors import MulticastPortError

LO4 = "127.0.0.1"


def fd_count() -> int:
    """Descriptors open now, without collecting garbage first."""
    return len(os.listdir("/proc/self/fd"))


class InterruptedByTestError(Exception):
    """Raised by the test's signal handler."""


# ---- exceptions raised while a receive waits ------------------------------------------------------
@pytest.mark.parametrize("count", [1, 3], ids=["one-group", "three-groups"])
@pytest.mark.parametrize("closes", [True, False], ids=["closes", "only-raises"])
def test_a_signal_handler_that_closes_and_raises_propagates_its_exception(
    net: Net, port: int, count: int, closes: bool
) -> None:
    """A signal handler runs inside the wait of a receive in the main thread; an exception it
    raises must reach the caller, as it does from the Python methods, even when the handler
    also closed the socket (e.g. a SIGTERM/SIGINT handler that cleans up, then raises). The C
    wait discarded the exception as "an error of a socket closed under us" and raised
    SocketClosedError instead."""
    groups = [f"239.183.0.{i + 1}" for i in range(count)]
    rx = me.McastRxSocket(V4, groups, port, iface_ip=LO4, timeout=10.0)
    rx.open()
    try:
        with me.McastTxSocket(V4, groups, LO4) as tx:  # a first receive makes the poller: fast paths on
            tx.sendto(b"first", (groups[0], port))
            assert rx.recvfrom() is not None

        def handler(signum: int, frame: FrameType | None) -> None:
            if closes:
                rx.close()
            raise InterruptedByTestError

        old = signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        try:
            with pytest.raises(InterruptedByTestError):
                rx.recvfrom()  # (nothing is sent: only the signal ends this wait)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    finally:
        if rx.is_opened:
            rx.close()


# ---- patching, subclassing and introspection -------------------------------------------------------
def patch_with_spies(monkeypatch: pytest.MonkeyPatch, recv_name: str) -> list[str]:
    """Patch McastTxSocket.sendto and McastRxSocket.<recv_name> on the classes with spies that
    note "send" / "recv" in the returned list, then call the real methods."""
    calls: list[str] = []
    real_send, real_recv = me.McastTxSocket.sendto, getattr(me.McastRxSocket, recv_name)

    def spy_send(self: me.McastTxSocket, *args: Any, **kwargs: Any) -> None:
        calls.append("send")
        real_send(self, *args, **kwargs)

    def spy_recv(self: me.McastRxSocket, *args: Any, **kwargs: Any) -> Any:
        calls.append("recv")
        return real_recv(self, *args, **kwargs)

    monkeypatch.setattr(me.McastTxSocket, "sendto", spy_send)
    monkeypatch.setattr(me.McastRxSocket, recv_name, spy_recv)
    return calls


def test_a_class_level_patch_of_the_methods_is_called(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``monkeypatch.setattr(McastTxSocket, "sendto", spy)`` / ``mock.patch.object`` on the class
    (a common way to observe a library in tests) must be what ``tx.sendto`` calls. With the
    accelerator, open() compared the class's method with itself (both the patch) and installed
    the C methods, which never call the patch."""
    group = "239.183.1.1"
    calls = patch_with_spies(monkeypatch, "recvfrom")
    with (
        me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=1.0) as rx,
        me.McastTxSocket(V4, [group], LO4) as tx,
    ):
        for _ in range(3):
            tx.sendto(b"x", (group, port))
            assert rx.recvfrom() is not None
    assert calls == ["send", "recv"] * 3


def test_a_class_level_patch_applied_after_open_is_called(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same with the patch applied to the class once the sockets are open (a fixture opened
    them; the test then patches the class): the instance dict's C methods shadow the class."""
    group = "239.183.1.7"
    with (
        me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=1.0) as rx,
        me.McastTxSocket(V4, [group], LO4) as tx,
    ):
        calls = patch_with_spies(monkeypatch, "recv_packet")
        for _ in range(2):
            tx.sendto(b"x", (group, port))
            assert rx.recv_packet() is not None
    assert calls == ["send", "recv"] * 2


def test_an_instance_attribute_set_before_open_survives_open(net: Net, port: int) -> None:
    """An attribute the caller put on the instance (``mock.patch.object(rx, "recvfrom")``, a
    wrapper) before opening is the caller's: open() must not delete or replace it. open() now
    pops or overwrites ``recvfrom``, ``recv_packet`` and ``sendto`` in the instance dict, with or
    without the accelerator (a regression from before the C methods)."""
    group = "239.183.1.2"

    def wrapped_recv(*args: Any) -> str:
        return "wrapped"

    def wrapped_send(*args: Any, **kwargs: Any) -> str:
        return "wrapped"

    rx = me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0.2)
    tx = me.McastTxSocket(V4, [group], LO4)
    rx.recvfrom = wrapped_recv  # type: ignore[method-assign,assignment]
    tx.sendto = wrapped_send  # type: ignore[method-assign,assignment]
    with rx, tx:
        assert rx.recvfrom() == "wrapped"  # type: ignore[comparison-overlap]
        assert tx.sendto(b"x", (group, port)) == "wrapped"  # type: ignore[func-returns-value]


def test_a_weak_method_of_the_class_method_works_while_open(net: Net, port: int) -> None:
    """While open, ``rx.recvfrom`` and ``tx.sendto`` are the per-socket hot methods (builtin
    methods or closures, not bound method objects), so ``weakref.WeakMethod`` cannot take them
    (documented). The class's method bound to the socket can be taken, and behaves the same."""
    group = "239.183.1.3"
    with (
        me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0.5) as rx,
        me.McastTxSocket(V4, [group], LO4) as tx,
    ):
        if me.ACCELERATED:
            with pytest.raises(TypeError):
                weakref.WeakMethod(rx.recvfrom)
        send = weakref.WeakMethod(me.McastTxSocket.sendto.__get__(tx))
        recv = weakref.WeakMethod(me.McastRxSocket.recvfrom.__get__(rx))
        fn = send()
        assert fn is not None
        fn(b"weak", (group, port))
        got = recv()
        assert got is not None
        assert got() == (b"weak", tx.getsockname())


def test_bound_methods_of_an_open_socket_work_after_the_socket_name_is_dropped(net: Net, port: int) -> None:
    """A bound method keeps its object: ``send = tx.sendto; del tx`` (or a factory returning
    ``rx.recvfrom`` of a socket it opened) goes on working with the Python methods. The C methods
    hold the socket weakly, so the socket is collected under them and the next call raises
    ReferenceError."""
    group = "239.183.1.4"

    def opened_methods() -> tuple[Callable[..., Any], Callable[..., Any]]:
        rx = me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=1.0)
        rx.open()
        tx = me.McastTxSocket(V4, [group], LO4)
        tx.open()
        return rx.recvfrom, tx.sendto

    recv, send = opened_methods()
    gc.collect()
    send(b"still here", (group, port))
    got = recv()
    assert got is not None and got[0] == b"still here"


def test_wrong_arguments_to_sendto_name_sendto_in_the_error(net: Net, port: int) -> None:
    """The TypeError for a wrong call names the method called, ``sendto()``; the C method hands
    such calls to a private helper, so the message named ``McastTxSocket._sendto_checked()``."""
    group = "239.183.1.5"
    with me.McastTxSocket(V4, [group], LO4) as tx:
        calls: list[Callable[[], Any]] = [
            lambda: tx.sendto(b"x"),  # type: ignore[call-arg]
            lambda: tx.sendto(b"x", (group, port), None),  # type: ignore[call-arg]
            lambda: tx.sendto(b"x", (group, port), bogus=1),  # type: ignore[call-arg]
        ]
        for call in calls:
            with pytest.raises(TypeError) as err:
                call()
            assert "sendto()" in str(err.value) and "_sendto_checked" not in str(err.value), err.value


def test_a_timeout_assigned_while_open_installs_the_methods_is_used(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rx.timeout = t`` from another thread while open() runs: open() made the C methods with
    the timeout it read, and the setter told the previous (closed) C object, so the socket
    reported ``timeout == t`` while its receives waited by the old value. Reproduced without a
    race: the assignment is made at the moment the other thread could make it (right after the
    C object is built, before it is stored)."""
    group = "239.183.1.6"
    rx = me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=None)
    make = _platform.IO.rx_hot
    if make is not None:

        def make_then_assign(*args: Any) -> Any:
            hot = make(*args)
            rx.timeout = 0.1  # (what another thread may do here)
            return hot

        monkeypatch.setattr(_platform.IO, "rx_hot", make_then_assign)
    else:
        rx.timeout = 0.1  # (no C object: the same end state)
    done: list[Any] = []
    with rx, me.McastTxSocket(V4, [group], LO4) as tx:
        tx.sendto(b"first", (group, port))
        assert rx.recvfrom() is not None  # (the poller now exists: the fast paths are on)
        assert rx.timeout == 0.1

        def receive() -> None:
            try:
                done.append(rx.recvfrom())
            except me.SocketClosedError as exc:  # (the close below ended a receive still waiting)
                done.append(exc)

        t = threading.Thread(target=receive, daemon=True)
        t.start()
        t.join(3)  # (a hang guard: 0.1 s is what it must wait; waiting for ever is the bug)
        alive = t.is_alive()
    t.join(10)
    assert not alive, "the receive waited past the socket's timeout"
    assert done == [None]


# ---- descriptors the library no longer owns ---------------------------------------------------------
def test_sendto_never_sends_on_a_descriptor_reused_after_the_socket_was_closed(net: Net, port: int) -> None:
    """``tx.socket`` is public; once the caller closed it, the Python sendto fails (EBADF). The C
    sendto kept the raw descriptor number and sent the datagram on whatever socket reused it
    (another source port, interface or TTL)."""
    group = "239.183.2.1"
    with me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0.3) as rx:
        tx = me.McastTxSocket(V4, [group], LO4)
        tx.open()
        try:
            for _ in range(2):  # (checked, then remembered)
                tx.sendto(b"ok", (group, port))
                assert rx.recvfrom() == (b"ok", tx.getsockname())
            old = tx.socket
            assert old is not None
            fd = old.fileno()
            old.close()
            with socket.socket(V4, socket.SOCK_DGRAM) as other:
                other.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LO4))
                other.bind((LO4, 0))
                assert other.fileno() == fd  # (the lowest free number: the one just closed)
                with pytest.raises(OSError):
                    tx.sendto(b"wrong socket", (group, port))
                assert rx.recvfrom() is None  # nothing went out on the other socket
        finally:
            tx.close()


def test_a_kept_sendto_of_a_dropped_socket_never_sends_on_a_reused_descriptor(net: Net, port: int) -> None:
    """``send = tx.sendto`` kept, the socket itself dropped (no misuse of ``tx.socket``): the Python
    bound method keeps its socket, so sends go on from it. The C method holds the socket weakly
    but its descriptor number strongly: the socket was collected and closed, the number reused
    by an unrelated socket, and the kept ``send`` sent a remembered destination's datagram on
    that unrelated socket (its source port, interface, TTL)."""
    group = "239.183.2.3"
    with me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0.3) as rx:
        tx = me.McastTxSocket(V4, [group], LO4)
        tx.open()
        source = tx.getsockname()
        send = tx.sendto
        for _ in range(2):  # (checked, then remembered)
            send(b"ok", (group, port))
            assert rx.recvfrom() == (b"ok", source)
        del tx
        gc.collect()
        with socket.socket(V4, socket.SOCK_DGRAM) as other:
            other.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LO4))
            other.bind((LO4, 0))
            with contextlib.suppress(OSError, ReferenceError):  # (refusing is acceptable ...)
                send(b"kept", (group, port))  # (... sending from another socket is not)
            got = rx.recvfrom()
            assert got is None or got == (b"kept", source), got


@pytest.mark.parametrize("groups", [1, 2], ids=["one-group", "two-groups"])
@pytest.mark.parametrize("timeout", [0.3, 0], ids=["waiting", "timeout-0"])
def test_a_receive_never_returns_a_datagram_of_a_socket_that_reused_the_descriptor(
    net: Net, port: int, timeout: float, groups: int
) -> None:
    """``rx.sockets`` is public; after the caller closed one, its number may be reused by an
    unrelated socket. No receive may return that socket's datagram (nor take it from it): the C
    methods read the raw number while the unit was still "live", and the pure-Python engine's
    reads go through the library's reader, a second socket object on the same number, so both
    returned a datagram sent to the unrelated socket."""
    group = "239.183.2.2"
    with (
        me.McastRxSocket(V4, [group, "239.183.2.3"][:groups], port, iface_ip=LO4, timeout=0.3) as rx,
        me.McastTxSocket(V4, [group], LO4) as tx,
    ):
        tx.sendto(b"1", (group, port))
        assert rx.recvfrom() == (b"1", tx.getsockname())
        rx.timeout = timeout  # (0: the engine's own loop reads, never waiting)
        sock = rx.sockets[0]
        fd = sock.fileno()
        sock.close()
        with socket.socket(V4, socket.SOCK_DGRAM) as other, socket.socket(V4, socket.SOCK_DGRAM) as stranger:
            other.bind((LO4, 0))
            assert other.fileno() == fd
            stranger.sendto(b"not for rx", other.getsockname())
            for receive in (rx.recvfrom, rx.recv_packet, rx.recv_batch):
                try:
                    got = receive()
                except OSError:
                    continue  # (an error is an acceptable answer; another socket's data is not)
                if got is None:
                    continue
                payloads = [p.payload for p in got] if isinstance(got, list) else [got[0]]
                assert b"not for rx" not in payloads, got
            assert other.recv(100) == b"not for rx"  # (still queued for its own socket)


# ---- the destinations the C sendto remembers ----------------------------------------------------------
def test_sendto_with_a_port_that_is_not_an_int_raises_as_the_python_method(net: Net, port: int) -> None:
    """``sock.sendto`` takes only an integer port: the Python method raises TypeError for
    ``(group, 5000.0)`` every time. The C method looked the tuple up in its table of remembered
    destinations, where ``(group, 5000.0) == (group, 5000)`` with the same hash, and sent it."""
    group = "239.183.3.1"
    with (
        me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0.2) as rx,
        me.McastTxSocket(V4, [group], LO4) as tx,
    ):
        for _ in range(2):
            tx.sendto(b"int", (group, port))
        for odd in (float(port), decimal.Decimal(port)):
            with pytest.raises(TypeError):
                tx.sendto(b"odd", (group, odd))  # type: ignore[arg-type]
        assert [rx.recvfrom(), rx.recvfrom(), rx.recvfrom()] == [
            (b"int", tx.getsockname()),
            (b"int", tx.getsockname()),
            None,
        ]


def test_an_ipv6_flowinfo_out_of_range_is_not_reported_as_a_bad_port(net: Net, port: int) -> None:
    """``sock.sendto`` raises OverflowError for a flowinfo above 2**20-1; sendto() turned every
    OverflowError into MulticastPortError ("port 20000 is out of range") although the port is
    valid (both modes: the message must not blame the port)."""
    group = "ff12::183:3"
    with me.McastTxSocket(V6, [group], iface=net.a.host_if) as tx:
        for _ in range(2):  # (checked, then the remembered path)
            with pytest.raises((OverflowError, ValueError)) as err:
                tx.sendto(b"x", (group, port, 2**20, 0))
            assert not isinstance(err.value, MulticastPortError), err.value
            assert "flowinfo" in str(err.value)


def test_sendto_past_the_remembered_destinations_cap_still_sends_correctly(net: Net, port: int) -> None:
    """More destinations than the C table keeps (4,096): every send still goes to its own
    destination, before and after the table starts again."""
    group = "239.183.3.2"
    with (
        me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0.3) as rx,
        me.McastTxSocket(V4, [group], LO4) as tx,
    ):
        dest = (group, port)
        for n in range(3):
            tx.sendto(b"before %d" % n, dest)
        for other in range(40000, 40000 + 4200):  # (nobody listens there)
            tx.sendto(b"elsewhere", (group, other))
        hot = tx._hot
        if hot is not None:
            assert 0 < hot.remembered <= 4096
        for n in range(3):
            tx.sendto(b"after %d" % n, dest)
        got = [rx.recvfrom() for _ in range(7)]
        assert [g[0] if g else None for g in got] == [
            b"before 0",
            b"before 1",
            b"before 2",
            b"after 0",
            b"after 1",
            b"after 2",
            None,
        ]


@pytest.mark.parametrize("form", ["2-tuple", "4-tuple"])
def test_ipv6_destinations_with_and_without_scope_id_on_the_c_path(
    net: Net, port: int, own_peer: testing.Peer, form: str
) -> None:
    """IPv6 sends, remembered as 2- and 4-tuples (with the interface's scope id): each arrives
    once; the errors after the link goes down are the Python method's (ENETUNREACH, translated)."""
    group = "ff12::183:1"
    iface = own_peer.host_if
    index = socket.if_nametoindex(iface)
    dest: tuple[Any, ...] = (group, port) if form == "2-tuple" else (group, port, 0, index)
    with (
        me.McastRxSocket(V6, [group], port, iface=iface, timeout=0.5) as rx,
        me.McastTxSocket(V6, [group], iface=iface, enable_external_loopback=True) as tx,
    ):
        for i in range(3):
            tx.sendto(bytes([i]), dest)
            got = rx.recv_packet()
            assert got is not None and (got.payload, got.group, got.iface_index) == (bytes([i]), group, index)
        testing.ip("link", "set", iface, "down")
        try:
            errors = []
            for _ in range(3):  # (the checked send, then the remembered one)
                with pytest.raises(OSError) as err:
                    tx.sendto(b"down", dest)
                errors.append((type(err.value), err.value.errno, str(err.value)))
            assert len(set(errors)) == 1 and errors[0][1] == 101, errors  # ENETUNREACH each time
            assert isinstance(err.value, me.MulticastExpertError)
        finally:
            testing.ip("link", "set", iface, "up")
            testing.wait_for_mcast_route(iface)


# ---- several threads, membership churn, close and reopen -----------------------------------------------
def test_receivers_during_joins_leaves_and_reopens_get_each_datagram_once_from_its_group(
    net: Net, port: int
) -> None:
    """Four threads receive (recvfrom and recv_packet) while another joins and leaves groups and
    now and then closes and reopens the socket (descriptor numbers are reused all the time):
    every datagram arrives at most once, a packet's group is the one its payload names (a read
    of a reused descriptor for the wrong unit would mislabel it), and the only error is
    SocketClosedError while closed."""
    groups = [f"239.183.4.{i + 1}" for i in range(6)]
    rx = me.McastRxSocket(V4, groups[:1], port, iface_ip=LO4, timeout=0.05)
    rx.open()
    stop = threading.Event()
    lock = threading.Lock()
    seen: Counter[bytes] = Counter()
    problems: list[object] = []

    def reader(packets: bool) -> None:
        while not stop.is_set():
            try:
                if packets:
                    p = rx.recv_packet()
                    if p is None:
                        continue
                    if p.payload.split(b"|")[0].decode() != p.group:
                        problems.append(("mislabelled", p))
                    data = p.payload
                else:
                    got = rx.recvfrom()
                    if got is None:
                        continue
                    data = got[0]
                with lock:
                    seen[data] += 1
            except me.SocketClosedError:
                stop.wait(0.001)
            except Exception as exc:  # (collected for the assertion below)
                problems.append(repr(exc))

    def churn() -> None:
        rnd = random.Random(7)
        while not stop.is_set():
            try:
                joined = set(rx.mcast_ips) if rx.is_opened else set()
                op = rnd.random()
                if op < 0.05:
                    rx.close()
                    rx.open()
                elif op < 0.5 and len(joined) < len(groups):
                    rx.join_group(rnd.choice([g for g in groups if g not in joined]))
                elif joined:
                    rx.leave_group(rnd.choice(sorted(joined)))
            except me.MulticastExpertError:
                pass
            stop.wait(0.001)

    def send() -> None:
        with me.McastTxSocket(V4, groups, LO4) as tx:
            n = 0
            while not stop.is_set():
                group = groups[n % len(groups)]
                tx.sendto(b"%s|%d" % (group.encode(), n), (group, port))
                n += 1
                if n % 50 == 0:
                    stop.wait(0.001)

    threads = [threading.Thread(target=reader, args=(i % 2 == 1,)) for i in range(4)]
    threads += [threading.Thread(target=churn), threading.Thread(target=send)]
    for t in threads:
        t.start()
    stop.wait(4.0)
    stop.set()
    for t in threads:
        t.join(10)
    try:
        assert not any(t.is_alive() for t in threads)
        assert not problems, problems[:5]
        assert seen and set(seen.values()) == {1}
    finally:
        if rx.is_opened:
            rx.close()


@pytest.mark.parametrize("reader_made", [False, True], ids=["reader-unmade", "reader-made"])
def test_a_read_of_a_unit_left_meanwhile_never_reads_the_socket_that_reused_its_descriptor(
    net: Net, port: int, reader_made: bool
) -> None:
    """The engine takes a ready unit, then reads it. Between the two another thread may leave
    that unit's group (its socket closes) and join another (whose socket may get the same
    descriptor number). The read of the old unit must fail with an OSError (which the engine
    passes over for a unit no longer live), never return the new socket's datagram under the
    old group: the accelerated reads took the bare number, so CI once saw a packet of one group
    labelled with another (the churn test above). Every read function, both ways."""
    first, second, third = "239.183.5.1", "239.183.5.2", "239.183.5.3"
    with (
        me.McastRxSocket(V4, [first, second], port, iface_ip=LO4, timeout=1.0) as rx,
        me.McastTxSocket(V4, [third], LO4) as tx,
    ):
        old = next(u for u in rx._members.all_units() if u.group == first)
        if reader_made:
            assert old.reader is not None  # (made before the leave, then let go by it)
        rx.leave_group(first)
        rx.join_group(third)
        new = next(u for u in rx._members.all_units() if u.group == third)
        assert new.fd == old.fd and not old.live  # (the number was reused: the case under test)
        tx.sendto(b"third", (third, port))
        assert select.select([new.sock], [], [], 1.0)[0]
        reads: list[Callable[[], object]] = [
            lambda: _rx_read.datagram_readers(4096, 0)[0](old),
            lambda: _rx_read.datagram_readers(4096, socket.MSG_PEEK)[0](old),
            lambda: _rx_read.packet_readers(65535, V4, False)[0](old),
            lambda: _rx_read.packet_readers(65535, V4, True)[0](old),
            lambda: _rx_read.batch_readers(65535, V4, False)[0](old, 4),
        ]
        for read in reads:
            with pytest.raises(OSError) as err:
                read()
            assert not isinstance(err.value, BlockingIOError), err.value
        got = rx.recv_packet()
        assert got is not None and (got.payload, got.group) == (b"third", third)


class _LeftDuringTheRead:
    """A unit's reader whose reads return, then find the unit left: what another thread's
    leave_group() looks like when it runs while Python's socket method waits for its system call
    without the GIL (the call may then have read a new socket that reused the number)."""

    def __init__(self, unit: Any) -> None:
        self.unit, self.real = unit, unit.reader

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(*args: Any) -> Any:
            got = method(*args)
            if name.startswith("recv") or name == "fileno":  # (fileno: the ctypes reads' descriptor)
                self.unit.live = False
            return got

        return call


def test_a_packet_read_while_its_group_is_left_is_dropped_not_labelled(net: Net, port: int) -> None:
    """Each packet read through a unit's reader (the pure-Python reads, and the metadata read
    both ways) looks at the unit again after the read (or, for a batch, right before it): left
    meanwhile, the packet is dropped or not read (an OSError the engine passes over, or nothing),
    never returned with the left group's name."""
    group = "239.183.6.1"
    with (
        me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0.2) as rx,
        me.McastTxSocket(V4, [group], LO4) as tx,
    ):
        unit = next(iter(rx._members.all_units()))
        unit.reader = _LeftDuringTheRead(unit)  # type: ignore[assignment]
        reads: dict[str, Callable[[], object]] = {
            "metadata": lambda: _rx_read.packet_readers(65535, V4, True)[0](unit)
        }
        if _platform.IO.recv_unit is None:  # (accelerated, these read the descriptor in one C call)
            reads["plain"] = lambda: _rx_read.packet_readers(65535, V4, False)[0](unit)
            reads["batch"] = lambda: _rx_read.batch_readers(65535, V4, False)[0](unit, 4)
            reads["public"] = rx.recv_packet
        for name, read in reads.items():
            unit.live = True
            tx.sendto(name.encode(), (group, port))
            assert select.select([unit.sock], [], [], 1.0)[0], name
            try:
                got = read()
            except OSError as exc:
                assert not isinstance(exc, BlockingIOError), (name, exc)
            else:  # (nothing: the datagram was dropped, or not read at all)
                assert got is None or got == [], (name, got)
            assert not unit.live, name  # (the read ran: the datagram was taken, then dropped)
        unit.live = True  # (so close() lets go of it as usual)
        unit.reader = unit.reader.real  # type: ignore[attr-defined]


# ---- resources ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [1, 3], ids=["one-group", "three-groups"])
def test_dropping_unclosed_sockets_after_c_receives_and_sends_frees_their_descriptors(
    net: Net, port: int, count: int
) -> None:
    """Dropping an open socket whose hot methods served (and whose engine has a poller) closes its
    OS sockets and the poller at the next garbage collection: while open, the methods keep their
    socket alive as bound methods would (a reference cycle, broken by close()). Closed sockets
    are freed at once."""
    groups = [f"239.183.5.{i + 1}" for i in range(count)]
    gc.collect()
    gc.disable()
    try:
        before = fd_count()
        rx = me.McastRxSocket(V4, groups, port, iface_ip=LO4, timeout=0.3)
        rx.open()
        tx = me.McastTxSocket(V4, groups, LO4)
        tx.open()
        for group in groups:
            for _ in range(2):
                tx.sendto(b"x", (group, port))
        for _ in range(2 * count):
            assert rx.recvfrom() is not None
        assert rx.recv_packet() is None
        assert fd_count() > before
        del rx, tx
        gc.collect()
        assert fd_count() == before
    finally:
        gc.enable()


def test_the_c_methods_do_not_leak_over_many_calls(net: Net, port: int) -> None:
    """Resident size stays flat over many calls of every path of the C methods: datagrams and
    packets from one socket and from several, timeouts, hand-overs to Python (keywords, errors,
    several sockets ready), and the send paths (remembered, refused by the OS, not allowed)."""
    groups = ["239.183.6.1", "239.183.6.2"]
    with (
        me.McastRxSocket(V4, groups[:1], port, iface_ip=LO4, timeout=1e-4, rcvbuf=4 << 20) as one,
        me.McastRxSocket(V4, groups, port + 1, iface_ip=LO4, timeout=1e-4, rcvbuf=4 << 20) as two,
        me.McastTxSocket(V4, groups, LO4) as tx,
    ):
        to_one, to_a, to_b = (groups[0], port), (groups[0], port + 1), (groups[1], port + 1)
        too_big = b"x" * 70000

        def round_trip() -> None:
            tx.sendto(b"one", to_one)
            assert one.recvfrom() is not None
            tx.sendto(b"one", to_one)
            assert one.recv_packet() is not None
            tx.sendto(b"one", to_one)
            assert one.recvfrom(bufsize=100) is not None  # (keywords: the Python method)
            assert one.recvfrom() is None  # (timeout in C)
            tx.sendto(b"a", to_a)
            assert two.recvfrom() is not None
            tx.sendto(b"a", to_a)
            tx.sendto(b"b", to_b)
            assert two.recv_packet() is not None  # (two ready: handed to the engine)
            assert two.recv_packet() is not None
            assert two.recv_packet() is None
            with pytest.raises(ValueError):
                one.recvfrom(0)
            with pytest.raises(OSError):
                tx.sendto(too_big, to_one)
            with pytest.raises(me.MulticastExpertError):
                tx.sendto(b"x", ("239.183.6.9", port))

        assert resident_growth(round_trip) < 4 << 20


@pytest.fixture
def no_signal_timer() -> Iterator[None]:
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)


def test_a_receive_interrupted_by_a_signal_that_does_not_raise_goes_on_waiting(
    net: Net, port: int, no_signal_timer: None
) -> None:
    """A signal whose handler returns normally interrupts the C wait (EINTR); the receive goes on
    and returns the datagram that arrives later, as the Python methods do."""
    group = "239.183.7.1"
    fired: list[int] = []
    with (
        me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=10.0) as rx,
        me.McastTxSocket(V4, [group], LO4) as tx,
    ):
        tx.sendto(b"first", (group, port))
        assert rx.recvfrom() is not None

        def handler(signum: int, frame: FrameType | None) -> None:
            fired.append(signum)
            if len(fired) == 3:
                tx.sendto(b"after signals", (group, port))

        old = signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
        try:
            assert rx.recvfrom() == (b"after signals", tx.getsockname())
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        assert len(fired) >= 3


# ---- what a leave does while a receive waits ------------------------------------------------------------
def kernel_groups(family: int) -> str:
    """The memberships the kernel holds in this namespace (/proc/net/igmp or igmp6)."""
    with open("/proc/net/igmp" if family == V4 else "/proc/net/igmp6") as f:
        return f.read()


def kernel_form(family: int, group: str) -> str:
    """How ``group`` appears in :func:`kernel_groups`."""
    if family == V4:
        return f"{int.from_bytes(socket.inet_aton(group), 'little'):08X}"
    return socket.inet_pton(V6, group).hex()


@pytest.mark.parametrize("family", [V4, V6], ids=["v4", "v6"])
def test_leaving_the_group_a_receive_waits_on_drops_the_membership_at_once(
    net: Net, port: int, family: int
) -> None:
    """leave_group() "stops receiving a group (also for a receive already waiting)": when it returns,
    the OS membership is gone (the IGMP/MLD leave goes out), as with the Python methods. The C wait
    of a one-socket receive polls the socket's descriptor itself, and a poll holds the socket: the
    closed socket stayed joined (and kept queueing the group's traffic) until that receive returned,
    with timeout None for ever."""
    first, other = ("239.183.8.1", "239.183.8.2") if family == V4 else ("ff12::183:8:1", "ff12::183:8:2")
    iface = net.a.host_if
    rx = me.McastRxSocket(family, [first], port, iface=iface, timeout=None)
    rx.open()
    out: list[Any] = []

    def receive() -> None:
        try:
            out.append(rx.recvfrom())
        except me.SocketClosedError as exc:
            out.append(exc)

    try:
        with me.McastTxSocket(family, [first], iface=iface, enable_external_loopback=True) as tx:
            tx.sendto(b"first", (first, port))  # (a first receive makes the poller: fast paths on)
            assert rx.recvfrom() is not None
        t = threading.Thread(target=receive, daemon=True)
        t.start()
        threading.Event().wait(0.2)  # (the receive reaches its wait)
        assert t.is_alive()
        assert kernel_form(family, first) in kernel_groups(family)
        rx.join_group(other)  # (the socket stays open, receiving another group)
        rx.leave_group(first)
        still_joined = kernel_form(family, first) in kernel_groups(family)
    finally:
        rx.close()
    t.join(10)
    assert not t.is_alive() and isinstance(out[0], me.SocketClosedError)
    assert not still_joined, "the OS still holds the membership that leave_group() dropped"
