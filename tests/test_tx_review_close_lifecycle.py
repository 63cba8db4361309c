"""Adversarial review of close() marking the socket closed before closing the OS sockets
(256a26e): leaving a ``with`` block, a second close(), receives, and other calls racing it."""

from __future__ import annotations

import collections
import socket
import sys
import threading
import time

from helpers import Net

import multicast_expert as me
from multicast_expert import testing


def _race(tx: me.McastTxSocket, first, second, rounds: int) -> collections.Counter[str]:  # type: ignore[no-untyped-def]
    """Run first() and second() at once from two threads, on a freshly opened socket each round."""
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(rounds):
        tx.open()
        barrier = threading.Barrier(2)
        out: dict[str, str] = {}

        def run(name: str, fn, barrier: threading.Barrier, out: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
            barrier.wait()
            try:
                fn()
                out[name] = "ok"
            except BaseException as exc:
                out[name] = type(exc).__name__

        ts = [
            threading.Thread(target=run, args=("a", first, barrier, out)),
            threading.Thread(target=run, args=("b", second, barrier, out)),
        ]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        seen[f"{out.get('a')}/{out.get('b')}"] += 1
        if tx.is_opened:
            tx.close()
    return seen


def test_leaving_with_while_another_thread_closes_raises_nothing(net: Net, own_peer: testing.Peer) -> None:
    """README: 'Leaving a with block after another thread closed the socket raises nothing'.
    close() now clears the socket first and sets is_opened = False last, so a ``with`` exit in
    that window sees is_opened True, calls close(), and gets 'already closed'."""
    tx = me.McastTxSocket(socket.AF_INET, ["239.212.0.1"], iface=own_peer.host_if)
    seen = _race(tx, lambda: tx.__exit__(None, None, None), tx.close, 2000)
    bad = {k: n for k, n in seen.items() if k != "ok/ok"}
    assert not bad, dict(seen)


def test_close_racing_close_one_wins_the_other_is_told(net: Net, own_peer: testing.Peer) -> None:
    """Two threads call close() at once: one closes, the other raises MulticastExpertError
    ('already closed'); never AttributeError or an OS error."""
    tx = me.McastTxSocket(socket.AF_INET, ["239.212.0.2"], iface=own_peer.host_if)
    seen = _race(tx, tx.close, tx.close, 2000)
    fine = {"ok/MulticastExpertError", "MulticastExpertError/ok"}
    bad = {k: n for k, n in seen.items() if k not in fine}
    assert not bad, dict(seen)


def _hammer(tx: me.McastTxSocket, call, seconds: float = 1.5) -> collections.Counter[str]:  # type: ignore[no-untyped-def]
    """call() in a loop in one thread while this thread opens and closes ``tx``; the errors seen."""

    errors: collections.Counter[str] = collections.Counter()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                call()
            except me.SocketClosedError:
                pass
            except BaseException as exc:
                errors[f"{type(exc).__name__}: {exc}"[:90]] += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows: windows show up
    try:
        t = threading.Thread(target=loop)
        t.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            tx.open()
            tx.close()
        stop.set()
        t.join(10)
    finally:
        sys.setswitchinterval(old)
    return errors


def test_getsockname_racing_close_raises_socket_closed_error(net: Net, own_peer: testing.Peer) -> None:
    tx = me.McastTxSocket(socket.AF_INET, ["239.212.0.3"], iface=own_peer.host_if)
    errors = _hammer(tx, tx.getsockname)
    assert errors == {}, dict(errors)


def test_fileno_racing_close_returns_a_number(net: Net, own_peer: testing.Peer) -> None:
    tx = me.McastTxSocket(socket.AF_INET, ["239.212.0.4"], iface=own_peer.host_if)
    errors = _hammer(tx, tx.fileno)
    assert errors == {}, dict(errors)


def test_setsockopt_racing_close_raises_socket_closed_error(net: Net, own_peer: testing.Peer) -> None:
    tx = me.McastTxSocket(socket.AF_INET, ["239.212.0.5"], iface=own_peer.host_if)
    errors = _hammer(tx, lambda: tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2))
    assert errors == {}, dict(errors)


def test_recvfrom_racing_close_raises_socket_closed_error(net: Net, own_peer: testing.Peer) -> None:
    tx = me.McastTxSocket(socket.AF_INET, ["239.212.0.6"], iface=own_peer.host_if, timeout=0.001)
    errors = _hammer(tx, tx.recvfrom)
    assert errors == {}, dict(errors)


def test_sendto_and_batch_racing_close_raise_socket_closed_error(
    net: Net, own_peer: testing.Peer, port: int
) -> None:
    group = "239.212.0.7"
    tx = me.McastTxSocket(socket.AF_INET, [group], iface=own_peer.host_if)

    def send() -> None:
        tx.sendto(b"x", (group, port))
        tx.send_batch([(b"y", (group, port))] * 4)
        tx.sendto(b"z", (group, port), iface=own_peer.host_if)
        tx.send_batch([(b"w", (group, port))], iface=own_peer.host_if)

    errors = _hammer(tx, send)
    assert errors == {}, dict(errors)
