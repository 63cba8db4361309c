"""The send paths' own cases (live, in the session's private namespace): the pure-Python sendmmsg
(chunks above the kernel's 1,024 per call, many destinations, changing payload sizes and
families on one thread), the destinations a socket remembers as valid, and batch items that
are lists. Both modes run these (the pure sendmmsg is called directly, whatever the mode)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, NamedTuple

import pytest
from helpers import V4, V6, Net, drain

import multicast_expert as me
from multicast_expert import _tx_args
from multicast_expert._platform import _sendmmsg, linux

PURE = linux.LinuxIO()  # the pure-Python I/O, whatever _platform.IO is


class Dest(NamedTuple):
    group: str
    port: int


@contextmanager
def receivers(family: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` non-blocking unicast sockets on loopback, each with room for many datagrams."""
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(family, socket.SOCK_DGRAM))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind(("127.0.0.1", 0) if family == V4 else ("::1", 0))
            s.setblocking(False)
            socks.append(s)
        yield socks


def queued(s: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(s.recv(65535))
        except BlockingIOError:
            return got


def sender(family: int) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    return s


@pytest.mark.parametrize("family", [V4, V6])
def test_pure_sendmmsg_over_1024_to_300_destinations_in_order(net: Net, family: int) -> None:
    with receivers(family, 300) as rxs, sender(family) as tx:
        dests = [r.getsockname()[:2] for r in rxs]
        # 2,500 datagrams: three sendmmsg calls; sizes vary so every iovec differs
        batch = [(b"%d:" % i + b"p" * (i % 97), dests[i % 300]) for i in range(2500)]
        assert PURE.send_many(tx, family, batch) == 2500
        for k, r in enumerate(rxs):
            assert queued(r) == [d for d, a in batch if a == dests[k]]


def test_pure_sendmmsg_sizes_and_families_change_between_calls(net: Net) -> None:
    with receivers(V4, 2) as r4, receivers(V6, 1) as r6, sender(V4) as t4, sender(V6) as t6:
        a, b = (r.getsockname() for r in r4)
        c = r6[0].getsockname()  # (ip, port, flowinfo, scope): the four-tuple form
        # the same sizes twice (iovecs reused), other sizes, fewer datagrams, then IPv6 on the
        # same thread (28-byte destinations) and IPv4 again (16-byte ones)
        calls = [
            (t4, V4, [(b"aa", a), (b"bbb", b)]),
            (t4, V4, [(b"cc", b), (b"ddd", a)]),
            (t4, V4, [(b"e" * 500, a), (b"f", b), (b"", a)]),
            (t4, V4, [(b"g", b)]),
            (t6, V6, [(b"h", c), (b"ii", c[:2])]),
            (t4, V4, [(b"j", a), (b"kk", b)]),
        ]
        for tx, family, batch in calls:
            assert PURE.send_many(tx, family, batch) == len(batch)
        assert queued(r4[0]) == [b"aa", b"ddd", b"e" * 500, b"", b"j"]
        assert queued(r4[1]) == [b"bbb", b"cc", b"f", b"g", b"kk"]
        assert queued(r6[0]) == [b"h", b"ii"]


def test_pure_sendmmsg_past_its_destination_memory(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sendmmsg, "_KNOWN_MAX", 3)
    monkeypatch.setitem(_sendmmsg._raw_names, V4, {})
    with receivers(V4, 10) as rxs, sender(V4) as tx:
        dests = [r.getsockname() for r in rxs]
        for round_ in range(2):  # the second round finds 3 remembered, 7 computed again
            batch = [(b"%d-%d" % (round_, i), d) for i, d in enumerate(dests)]
            assert PURE.send_many(tx, V4, batch) == 10
        assert len(_sendmmsg._raw_names[V4]) == 3
        for i, r in enumerate(rxs):
            assert queued(r) == [b"0-%d" % i, b"1-%d" % i]


def test_pure_send_known_sends_only_when_every_destination_is_known(net: Net) -> None:
    with receivers(V4, 2) as (ra, rb), sender(V4) as tx:
        a, b = ra.getsockname(), rb.getsockname()
        known: dict[object, object] = {a: None, b: None}
        assert PURE.send_known(tx, V4, [(b"1", a), (b"2", b), (b"3", a)], known) == 3
        assert known == {a: _sendmmsg.sockaddr(V4, *a), b: _sendmmsg.sockaddr(V4, *b)}  # remembered
        assert PURE.send_known(tx, V4, [(b"4", b)], known) == 1
        assert PURE.send_known(tx, V4, [], known) == 0
        refused: list[list[Any]] = [
            [(b"x", a), (b"x", ("127.0.0.1", 9))],  # a destination not known
            [(b"x", a), [b"x", a]],  # a list, not a tuple
            [(b"x", a), (bytearray(b"x"), a)],  # not exactly bytes
            [(b"x", a), (b"x", (a[0], float(a[1])))],  # equal, but the port is not an int
            [(b"x", a), (b"x", [a[0], a[1]])],  # unhashable
            [(b"x", a), (b"x",)],
            [(b"x", a), (b"x", a, b"y")],
        ]
        for batch in refused:
            assert PURE.send_known(tx, V4, batch, known) is None
        assert queued(ra) == [b"1", b"3"] and queued(rb) == [b"2", b"4"]  # nothing of the refused


def test_known_destinations_keep_every_check() -> None:
    allowed = frozenset(["239.1.2.3"])
    known: dict[object, object] = {}
    good = [(b"a", ("239.1.2.3", 5000))]
    assert _tx_args.check_batch(good, V4, allowed, known) == good
    assert known == {("239.1.2.3", 5000): None}
    # equal to a remembered destination, but not a valid port or payload: still refused
    with pytest.raises(TypeError, match=r"port must be an int.*float 5000\.0"):
        _tx_args.check_batch([(b"a", ("239.1.2.3", 5000.0))], V4, allowed, known)  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"port must be an int.*bool"):
        _tx_args.check_batch([(b"a", ("239.1.2.3", True))], V4, allowed, {("239.1.2.3", 1): None})
    with pytest.raises(TypeError, match="payload must be bytes-like"):
        _tx_args.check_batch(
            [(b"a", ("239.1.2.3", 5000)), ("text", ("239.1.2.3", 5000))],  # type: ignore[list-item]
            V4,
            allowed,
            known,
        )
    with pytest.raises(me.MulticastExpertError, match="was not one of the addresses"):
        _tx_args.check_batch([(b"a", ("239.1.2.3", 5000)), (b"b", ("239.9.9.9", 5000))], V4, allowed, known)
    assert known == {("239.1.2.3", 5000): None}  # (only valid destinations are remembered)
    # a bytes-like payload is converted; an equal named tuple is the same destination
    dest = Dest("239.1.2.3", 5000)
    assert _tx_args.check_batch([(bytearray(b"x"), dest)], V4, allowed, known) == [(b"x", dest)]  # type: ignore[list-item]


def test_known_destinations_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tx_args, "KNOWN_MAX", 5)
    allowed = frozenset(["239.1.2.3"])
    known: dict[object, object] = {}
    batch = [(b"x", ("239.1.2.3", p)) for p in range(20)]
    assert _tx_args.check_batch(batch, V4, allowed, known) == batch
    assert len(known) == 5
    assert _tx_args.check_batch(batch, V4, allowed, known) == batch  # the rest: the full check


def test_batch_items_that_are_lists_are_sent(net: Net, port: int) -> None:
    group = "239.176.0.1"
    with (
        me.McastRxSocket(V4, [group], port, iface="lo", timeout=0.3) as rx,
        me.McastTxSocket(V4, [group], iface="lo") as tx,
    ):
        assert tx.send_batch([[b"one", (group, port)], (b"two", (group, port))]) == 2  # type: ignore[list-item]
        assert tx.send_batch([[b"three", (group, port)]]) == 1  # type: ignore[list-item]
        assert [p.payload for p in drain(rx)] == [b"one", b"two", b"three"]


# ---- sendto's common path (one interface, an allowed group seen before) ------------------------
class Group(str):
    """A str subclass: equal to the group, never remembered by identity."""


def test_sendto_repeated_keeps_every_check_and_error(net: Net, port: int) -> None:
    group, other = "239.176.0.2", "239.176.0.3"
    with me.McastRxSocket(V4, [group], port, iface="lo", timeout=0.3) as rx:
        tx = me.McastTxSocket(V4, [group], iface="lo")
        tx.open()
        dest = (group, port)
        for payload in (b"1", b"2"):  # the second goes the short way
            tx.sendto(payload, dest)
        tx.sendto(b"3", (Group(group), port))
        tx.sendto(b"4", dest, iface="lo")
        for _ in range(2):
            with pytest.raises(OverflowError, match=r"70000.*0\.\.65535") as bad_port:
                tx.sendto(b"x", (group, 70000))
            assert isinstance(bad_port.value, me.MulticastValueError)
            with pytest.raises(me.MulticastExpertError, match=r"239\.176\.0\.3\) was not one of"):
                tx.sendto(b"x", (other, port))
            with pytest.raises(TypeError):
                tx.sendto(b"x", 5)  # type: ignore[arg-type]
            with pytest.raises(me.MulticastValueError, match="not one this McastTxSocket sends on"):
                tx.sendto(b"x", dest, iface=net.a.host_if)
        tx.close()
        for address in (dest, 5):  # closed: the same error whatever the address
            with pytest.raises(me.SocketClosedError, match=r"sendto\(\) on a closed McastTxSocket"):
                tx.sendto(b"x", address)  # type: ignore[arg-type]
        tx.open()  # reopened: a new OS socket, found again
        tx.sendto(b"5", dest)
        tx.sendto(b"6", dest)
        tx.close()
        assert [p.payload for p in drain(rx)] == [b"1", b"2", b"3", b"4", b"5", b"6"]


def test_sendto_on_several_interfaces_sends_on_each_every_time(net: Net, port: int) -> None:
    group = "239.176.0.4"
    a, b = net.a.host_if, net.b.host_if
    with (
        me.McastRxSocket(V4, [group], port, iface=a, timeout=0.3) as rx_a,
        me.McastRxSocket(V4, [group], port, iface=b, timeout=0.3) as rx_b,
        me.McastTxSocket(V4, [group], ifaces=[a, b], enable_external_loopback=True) as tx,
    ):
        for payload in (b"1", b"2", b"3"):
            tx.sendto(payload, (group, port))
        assert [p.payload for p in drain(rx_a)] == [b"1", b"2", b"3"]
        assert [p.payload for p in drain(rx_b)] == [b"1", b"2", b"3"]


# ---- send_batch of destinations already known valid (the accelerator: checked in C) ----------
def test_send_batch_to_known_destinations_keeps_errors_and_counts(net: Net, port: int) -> None:
    group = "239.176.0.5"
    dest = (group, port)
    with (
        me.McastRxSocket(V4, [group], port, iface="lo", timeout=0.3) as rx,
        me.McastTxSocket(V4, [group], iface="lo") as tx,
    ):
        assert tx.send_batch([(b"a", dest)]) == 1  # checked in full: the destination is now known
        assert tx.send_batch(d for d in [(b"b", dest), (b"c", dest)]) == 2  # any iterable
        with pytest.raises(me.MulticastSendError) as caught:
            tx.send_batch([(b"d", dest), (b"e", dest), (bytes(70000), dest), (b"f", dest)])
        assert caught.value.sent == 2 and caught.value.sent_by_iface == {"lo": 2}
        with pytest.raises(me.MulticastSendError) as first:
            tx.send_batch([(bytes(70000), dest), (b"g", dest)])
        assert first.value.sent == 0 and "Sending a batch of 2" in str(first.value)
        with pytest.raises(TypeError, match="bytes"):
            tx.send_batch([(b"h", dest), ("text", dest)])  # type: ignore[list-item]
        with pytest.raises(me.MulticastValueError, match="not one this McastTxSocket sends on"):
            tx.send_batch([(b"h", dest)], iface=net.a.host_if)
        assert tx.send_batch([(b"i", dest)], iface="lo") == 1
        tx.close()
        with pytest.raises(me.SocketClosedError, match=r"send_batch\(\) on a closed"):
            tx.send_batch([(b"j", dest)])
        assert [p.payload for p in drain(rx)] == [b"a", b"b", b"c", b"d", b"e", b"i"]
