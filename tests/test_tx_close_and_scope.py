"""Sends racing close() in other threads, and IPv6 scope ids and flowinfo (each test failed on
the code before its fix): a closed socket never sends through another socket that took its
descriptor number, a send that meets the close raises SocketClosedError, a scope id naming
another interface is refused, and send_batch refuses the flowinfo sendto refuses."""

from __future__ import annotations

import collections
import random
import socket
import threading
from collections.abc import Callable

import pytest
from helpers import Net
from udp_capture import V4, V6, Capture

import multicast_expert as me
from multicast_expert import interfaces, testing


def sender(how: str, groups: list[str], port: int) -> Callable[[me.McastTxSocket], None]:
    """A send of every group once by sendto, or of 32 datagrams (one sendmmsg call) by send_batch."""
    batch = [(b"TX", (g, port)) for g in groups] * 4

    def send(tx: me.McastTxSocket) -> None:
        if how == "sendto":
            for g in groups:
                tx.sendto(b"TX", (g, port))
        else:
            tx.send_batch(batch)

    return send


def race_close(
    tx_iface: str,
    family: int,
    groups: list[str],
    send: Callable[[me.McastTxSocket], None],
    rounds: int,
    after_close: Callable[[], list[socket.socket]] | None = None,
) -> collections.Counter[str]:
    """``rounds`` times: open a socket, start two threads sending with ``send`` until it raises,
    close the socket from this thread (then call ``after_close``, whose sockets are closed after
    the senders end). Returns the errors the senders met, by type and errno."""
    errors: collections.Counter[str] = collections.Counter()
    rnd = random.Random(3)
    for _ in range(rounds):
        tx = me.McastTxSocket(family, groups, iface=tx_iface)
        tx.open()
        go = threading.Event()

        def loop(tx: me.McastTxSocket, go: threading.Event) -> None:
            go.wait()
            while True:
                try:
                    send(tx)
                except BaseException as exc:
                    if type(exc) is not me.SocketClosedError:
                        errors[f"{type(exc).__name__}({getattr(exc, 'errno', '')})"] += 1
                    return

        threads = [threading.Thread(target=loop, args=(tx, go)) for _ in range(2)]
        for t in threads:
            t.start()
        go.set()
        threading.Event().wait(rnd.random() * 0.003)
        tx.close()
        others = after_close() if after_close is not None else []
        threading.Event().wait(0.002)
        for t in threads:
            t.join(10)
        for s in others:
            s.close()
    return errors


# ---- a socket closed by another thread never sends through a reused descriptor number -----------
@pytest.mark.parametrize("how", ["sendto", "send_batch"])
def test_closed_socket_never_sends_through_a_reused_descriptor(
    two_peers: tuple[testing.Peer, testing.Peer], port: int, how: str
) -> None:
    """Two threads send on an McastTxSocket on interface A; a third closes it and opens sockets
    that send on interface B (they take the freed descriptor number). Nothing the closed socket's
    senders send may leave on B: a closed socket sends nothing, and never through another socket."""
    if how == "sendto" and not me.ACCELERATED:
        pytest.skip(
            "pure-Python sendto is CPython's socket.sendto, which reads the descriptor number after "
            "letting other threads run: the window any Python socket has (README, McastTxSocket)"
        )
    a, b = two_peers
    groups = [f"239.206.0.{i + 1}" for i in range(8)]
    b_index = socket.if_nametoindex(b.host_if)
    send = sender(how, groups, port)

    def on_b() -> list[socket.socket]:
        made = []
        for _ in range(4):
            s = socket.socket(V4, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(b.host_ip4))
            made.append(s)
        return made

    cap = Capture(b)
    try:
        race_close(a.host_if, V4, groups, send, 100, on_b)
        leaked = [f for f in cap.drain(0.5) if f.dport == port]
    finally:
        cap.close()
    assert b_index > 0
    assert leaked == [], (
        f"{len(leaked)} datagrams of the closed socket on A went out on {b.host_if} via other sockets"
    )


# ---- a send that meets a close from another thread raises SocketClosedError ----------------------
@pytest.mark.parametrize("how", ["sendto", "send_batch"])
def test_send_meeting_a_close_raises_socket_closed_error(
    net: Net, own_peer: testing.Peer, port: int, how: str
) -> None:
    groups = [f"239.207.0.{i + 1}" for i in range(8)]
    send = sender(how, groups, port)

    errors = race_close(own_peer.host_if, V4, groups, send, 150)
    assert errors == {}, f"sends racing close() raised {dict(errors)} instead of SocketClosedError"


# ---- an IPv6 scope id naming another interface is refused -------------------------------------------
@pytest.mark.parametrize("many", [False, True], ids=["one-iface", "two-ifaces"])
@pytest.mark.parametrize("how", ["sendto", "send_batch"])
def test_scope_id_of_another_interface_never_sends_there(
    two_peers: tuple[testing.Peer, testing.Peer], port: int, many: bool, how: str
) -> None:
    """A socket opened on A (or on A and B) is given a link-scope destination whose scope id is a
    third interface C's (the kernel would send there, over the socket's own interface): refused,
    naming the scope id, with nothing sent anywhere. The scope id of the interface sent on, or 0,
    sends there once."""
    a, b = two_peers
    c = testing.Peer(247)  # (far above the numbers own_peer hands out)
    interfaces.rescan_interfaces()
    try:
        group = "ff12::e:2"
        c_index, a_index = socket.if_nametoindex(c.host_if), socket.if_nametoindex(a.host_if)
        caps = [Capture(a), Capture(b), Capture(c)]

        def send(tx: me.McastTxSocket, dest: tuple[str, int, int, int], payload: bytes) -> None:
            if how == "sendto":
                tx.sendto(payload, dest)
            else:
                tx.send_batch([(payload, dest)])

        try:
            with me.McastTxSocket(V6, [group], ifaces=[a.host_if, b.host_if] if many else [a.host_if]) as tx:
                with pytest.raises(me.MulticastExpertError, match=f"scope id {c_index}"):
                    send(tx, (group, port, 0, c_index), b"bad")
                send(tx, (group, port, 0, 0), b"zero")
                if not many:
                    send(tx, (group, port, 0, a_index), b"own")
            seen = [sorted(f.payload for f in cap.drain(0.5) if f.dport == port) for cap in caps]
        finally:
            for cap in caps:
                cap.close()
        assert seen == [[b"own", b"zero"] if not many else [b"zero"], [b"zero"] if many else [], []], seen
    finally:
        c.close()
        interfaces.rescan_interfaces()


# ---- send_batch refuses the IPv6 flowinfo sendto refuses -----------------------------------------
def test_send_batch_refuses_flowinfo_sendto_refuses(net: Net, own_peer: testing.Peer, port: int) -> None:
    """README: send_batch 'checks every pair as sendto does before anything is sent'. sendto
    (both modes) and the accelerated send_batch raise OverflowError for a flowinfo above 2**20-1;
    the pure-Python send_batch sends the whole batch."""
    group = "ff15::e:3"
    bad = (group, port, 1 << 20, 0)
    cap = Capture(own_peer)
    try:
        with me.McastTxSocket(V6, [group], iface=own_peer.host_if) as tx:
            with pytest.raises(OverflowError):
                tx.sendto(b"sendto", bad)
            try:
                outcome: object = tx.send_batch([(b"first", (group, port)), (b"batch", bad)])
            except OverflowError as exc:
                outcome = exc
        frames = [f.payload for f in cap.drain(0.5) if f.dport == port]
    finally:
        cap.close()
    assert isinstance(outcome, OverflowError), f"send_batch returned {outcome!r} and sent {frames}"
    assert frames == []
