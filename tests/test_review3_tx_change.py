"""Adversarial review: sending while interfaces change (address changes, a veth deleted and made
again, another interface taking a gone one's index, one of several interfaces failing under
threads or halfway through a batch), TTL and loopback on the wire, and the testing helpers as a
user's own test suite uses them. The findings are fixed (or, for the two IPv6 kernel
behaviours, documented); each test asserts what README promises now."""

from __future__ import annotations

import collections
import socket
import threading
import time

import pytest
from helpers import V4, V6, Net, recreate
from udp_capture import Capture

import multicast_expert as me
from multicast_expert import testing


def change_address(peer: testing.Peer, family: int) -> str:
    """Replace the host end's address of ``family`` by another one; returns the new address."""
    if family == V4:
        new = f"198.18.{peer.n}.99"
        testing.ip("addr", "del", f"{peer.host_ip4}/24", "dev", peer.host_if)
        testing.ip("addr", "add", f"{new}/24", "dev", peer.host_if)
    else:
        new = f"2001:db8:{peer.n}::99"
        testing.ip("-6", "addr", "del", f"{peer.host_ip6}/64", "dev", peer.host_if)
        testing.ip("-6", "addr", "add", f"{new}/64", "dev", peer.host_if, "nodad")
    return new


def group_of(family: int, n: int) -> str:
    return f"239.77.0.{n}" if family == V4 else f"ff15::77:{n}"


# ---- findings -----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_a_new_send_socket_after_an_address_change_sends_from_the_new_address(
    own_peer: testing.Peer, port: int, family: int
) -> None:
    """README, Troubleshooting, "Its address changes": "A send socket opened on the old address
    fails ... a new McastTxSocket picks up the new address."

    Before the fix, the new McastTxSocket (same interface name) fails to open with MulticastOSError
    EADDRNOTAVAIL ("no longer has the address this socket was opened with"): the name is served
    from the cached scan, whose record still holds the old address (a second attempt works,
    because the failed open rescanned)."""
    group = group_of(family, 1)
    cap = Capture(own_peer)
    with me.McastTxSocket(family, [group], iface=own_peer.host_if) as old:
        old.sendto(b"before", (group, port))
        new_ip = change_address(own_peer, family)
        with me.McastTxSocket(family, [group], iface=own_peer.host_if) as new:
            assert new.getsockname()[0] == new_ip
            new.sendto(b"after", (group, port))
    frames = [(f.payload, f.src) for f in cap.drain()]
    assert (b"after", new_ip) in frames


@pytest.mark.parametrize("family", [V4, V6])
def test_reopening_as_the_send_error_advises_works_once_the_interface_has_its_new_address(
    own_peer: testing.Peer, port: int, family: int
) -> None:
    """The send error after an address change (README: "whose message says to reopen it") says
    "the interface is down, gone, or no longer has the address this socket was opened with;
    reopen the socket once the interface is back". The socket names the interface by name.

    Doing exactly that (close(), open(), even after a rescan) raises the same MulticastOSError
    again, forever: the socket keeps the address resolved at construction
    (Out.ip, _tx_args.records) and binds to it on every open."""
    group = group_of(family, 2)
    tx = me.McastTxSocket(family, [group], iface=own_peer.host_if)
    tx.open()
    try:
        new_ip = change_address(own_peer, family)
        me.scan_interfaces()
    finally:
        tx.close()
    tx.open()
    try:
        assert tx.getsockname()[0] == new_ip
    finally:
        tx.close()


def test_an_ipv6_send_socket_whose_address_was_removed_sends_from_the_new_one_once_reopened(
    own_peer: testing.Peer, port: int
) -> None:
    """README, "Its address changes": over IPv6, Linux goes on sending from a bound address that
    was removed (the review found the README promising an error, which only IPv4 raises); the
    socket sends from the new address once reopened. Checked on the wire, before and after."""
    group = group_of(V6, 3)
    cap = Capture(own_peer)
    with me.McastTxSocket(V6, [group], iface=own_peer.host_if) as tx:
        new = change_address(own_peer, V6)
        tx.sendto(b"before", (group, port))  # (the kernel's behaviour, as documented)
        tx.close()
        tx.open()
        tx.sendto(b"after", (group, port))
    frames = {f.payload: f.src for f in cap.drain()}
    assert frames == {b"before": own_peer.host_ip6, b"after": new}, frames


@pytest.mark.parametrize("family", [V4, V6])
def test_reopening_works_once_a_deleted_interface_is_back(
    own_peer: testing.Peer, port: int, family: int
) -> None:
    """README, "The veth peer disappears": "sending raises OSError saying the interface is down,
    gone or lost its address"; the error says "reopen the socket once the interface is back".

    The interface comes back (same name, same addresses). Reopening (close(), open()) raises
    MulticastOSError "the interface no longer exists" while `ip link` lists it: the socket keeps
    the IfaceInfo (index) resolved at construction (tx_socket.McastTxSocket.__init__ ->
    _tx_args.records; open_os_socket uses out.iface.index; iface_exists checks that old index).
    Sending on the still-open socket also says "the interface no longer exists" (IPv4)."""
    group = group_of(family, 4)
    tx = me.McastTxSocket(family, [group], iface=own_peer.host_if)
    tx.open()
    try:
        testing.ip("link", "del", own_peer.host_if)
        with pytest.raises(OSError, match="reopen the socket once the interface is back"):
            tx.sendto(b"gone", (group, port))
        recreate(own_peer)
    finally:
        tx.close()
    cap = Capture(own_peer)
    tx.open()
    try:
        tx.sendto(b"back", (group, port))
    finally:
        tx.close()
    assert [f.payload for f in cap.drain()] == [b"back"]


def test_ipv6_send_socket_reopened_after_its_index_was_taken_refuses_to_send_elsewhere(
    two_peers: tuple[testing.Peer, testing.Peer], port: int
) -> None:
    """README, "The veth peer disappears": over IPv6 the kernel knows a send socket's interface
    by index only, so an interface that takes a gone one's index (made with an explicit index,
    or moved in from another namespace) gets what the open socket sends (the review showed it on
    the wire; README now says so, and to reopen). Reopened, the socket looks its interface up by
    name: it refuses ("no longer exists") instead of sending by the other interface."""
    a, b = two_peers
    group = group_of(V6, 5)
    tx = me.McastTxSocket(V6, [group], iface=a.host_if)
    tx.open()
    index = tx.network_interface.index
    other = "mxv161h"
    try:
        testing.ip("link", "del", a.host_if)
        testing.ip("link", "add", other, "index", str(index), "type", "veth", "peer", "name", "mxv161p",
                   "netns", str(b.pid))  # fmt: skip
        testing.ip("link", "set", "mxv161p", "up", ns_pid=b.pid)
        testing.ip("link", "set", other, "up")
        testing.wait_for_mcast_route(other)

        class Other:  # (what Capture needs of a peer: the far end and a way into its namespace)
            peer_if = "mxv161p"
            run = staticmethod(b.run)

        cap = Capture(Other())  # type: ignore[arg-type]
        try:
            tx.close()
            with pytest.raises(me.MulticastOSError, match="no longer exists"):
                tx.open()
            with pytest.raises(me.SocketClosedError):
                tx.sendto(b"leak", (group, port))
            leaked = cap.drain()
        finally:
            cap.close()
    finally:
        if tx.is_opened:
            tx.close()
        testing.ip("link", "del", other)
    assert leaked == []


def test_a_default_interface_receiver_run_in_the_peer_joins_the_peers_interfaces(
    net: Net, mcast_network: testing.Network, port: int
) -> None:
    """README, "Testing your own multicast code": ``peer.run(lambda: ...)  # runs a function
    inside the peer host``; README, Receiving: with no interface named, a socket uses "every
    non-loopback interface with an address of the family".

    A user's test opens a sender on the default route (the README's example), then runs a
    receiver on the default interfaces inside the peer: it fails with "No interface could join:
    mxv1h: ... the interface no longer exists" (after a RuntimeWarning), because the library's
    interface cache (interfaces._cache, reused for up to a second by cached_interfaces) is
    process-wide while the namespaces are per thread: the peer thread gets the test
    namespace's list."""
    peer = mcast_network.default_peer
    group = "239.77.1.1"
    ready = threading.Event()
    out: list[object] = []

    def receive() -> None:
        try:
            with me.McastRxSocket(V4, [group], port, timeout=3) as rx:
                ready.set()
                out.append(rx.recv())
        except Exception as exc:
            out.append(exc)
            ready.set()

    with me.McastTxSocket(V4, [group]) as tx:  # default route: the peer
        t = threading.Thread(target=lambda: peer.run(receive))
        t.start()
        ready.wait(5)
        tx.sendto(b"hi", (group, port))
        t.join(5)
    assert out == [b"hi"]


# ---- promises checked and kept ------------------------------------------------------------------
@pytest.mark.parametrize("batch", [False, True], ids=["sendto", "send_batch"])
@pytest.mark.parametrize("family", [V4, V6])
def test_threads_sending_on_two_interfaces_while_one_is_deleted_and_made_again(
    two_peers: tuple[testing.Peer, testing.Peer], port: int, family: int, batch: bool
) -> None:
    """Kept: every failure is a MulticastSendError naming only the changing interface, with
    sent_by_iface/sent_on right, and the healthy interface sends every datagram exactly once."""
    a, b = two_peers
    group = group_of(family, 6)
    cap = Capture(b)
    errors: collections.Counter[tuple[object, ...]] = collections.Counter()
    per, threads = 150, 4
    with me.McastTxSocket(family, [group], ifaces=[a.host_if, b.host_if]) as tx:
        start = threading.Barrier(threads + 1)

        def worker(k: int) -> None:
            start.wait()
            for i in range(per):
                try:
                    if batch:
                        tx.send_batch(
                            [(f"{k}-{i}-x".encode(), (group, port)), (f"{k}-{i}-y".encode(), (group, port))]
                        )
                    else:
                        tx.sendto(f"{k}-{i}".encode(), (group, port))
                except Exception as exc:
                    errors[
                        (
                            type(exc),
                            tuple(getattr(exc, "failures", {})),
                            tuple(getattr(exc, "sent_on", ())),
                            tuple(getattr(exc, "sent_by_iface", {}).items()),
                        )
                    ] += 1
                time.sleep(0.0005)

        ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        start.wait()
        time.sleep(0.03)
        testing.ip("link", "del", a.host_if)
        time.sleep(0.03)
        recreate(a)
        for t in ts:
            t.join()
    n = 2 if batch else 1
    assert errors, "the deleted interface never failed a send"
    assert set(errors) == {
        (me.MulticastSendError, (a.host_if,), (b.host_if,), ((a.host_if, 0), (b.host_if, n)))
    }
    payloads = [f.payload for f in cap.drain()]
    assert len(payloads) == len(set(payloads)) == per * threads * n


@pytest.mark.parametrize("family", [V4, V6])
def test_a_batch_one_interface_refuses_halfway(
    two_peers: tuple[testing.Peer, testing.Peer], port: int, family: int
) -> None:
    """Kept: one interface refuses the 2nd datagram (MTU 1280, no fragmentation): the other
    sends all three, the first only the first; MulticastSendError says so."""
    a, b = two_peers
    group = group_of(family, 7)
    cap_a, cap_b = Capture(a), Capture(b)
    testing.ip("link", "set", a.host_if, "mtu", "1280")
    batch = [(b"s1", (group, port)), (b"B" * 1400, (group, port)), (b"s3", (group, port))]
    with me.McastTxSocket(family, [group], ifaces=[a.host_if, b.host_if]) as tx:
        if family == V4:
            tx.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
        else:
            tx.setsockopt(socket.IPPROTO_IPV6, 62, 1)  # IPV6_DONTFRAG
        with pytest.raises(me.MulticastSendError) as caught:
            tx.send_batch(batch)
    err = caught.value
    assert err.sent_by_iface == {a.host_if: 1, b.host_if: 3} and err.sent == 1 and err.sent_on == [b.host_if]
    assert list(err.failures) == [a.host_if]
    assert [f.payload for f in cap_a.drain()] == [b"s1"]
    assert [f.payload[:2] for f in cap_b.drain()] == [b"s1", b"BB", b"s3"]


@pytest.mark.parametrize("family", [V4, V6])
def test_ttl_and_loopback_on_the_wire(own_peer: testing.Peer, port: int, family: int) -> None:
    """Kept: ttl= is the IP TTL / hop limit on the wire for sendto and send_batch, and
    enable_external_loopback decides whether a receiver on this host gets a copy."""
    group = group_of(family, 8)
    cap = Capture(own_peer)
    with me.McastRxSocket(family, [group], port, iface=own_peer.host_if, timeout=0.5) as rx:
        with me.McastTxSocket(family, [group], iface=own_peer.host_if, ttl=7) as tx:
            tx.sendto(b"t7", (group, port))
            tx.send_batch([(b"b7", (group, port))])
        with me.McastTxSocket(
            family, [group], iface=own_peer.host_if, ttl=3, enable_external_loopback=True
        ) as tx:
            tx.sendto(b"t3", (group, port))
        local = []
        while (p := rx.recv()) is not None:
            local.append(p)
    assert [(f.payload, f.ttl) for f in cap.drain()] == [(b"t7", 7), (b"b7", 7), (b"t3", 3)]
    assert local == [b"t3"]
