"""Review 3: receiving under change and concurrency (follow_interfaces, fork, timeouts, batches,
live membership, per-packet metadata).

Tests whose docstring starts "Review finding, fixed" failed before this session's fixes and say
which README promise they broke; the others are promises checked and found kept.

Live, in the session's private namespaces; every link made or removed here is a veth of the
test's own (``own_peer``, or ``testing.Peer(n)`` with n in 160..163, each closed before the test
ends), or lives in a further private namespace made by ``testing.private_network``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import resource
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from helpers import V4, V6, Net, send_from_peer, sender
from test_rx_regressions_links import bring_up
from wire import arrives, received

import multicast_expert as me
from multicast_expert import interfaces, testing

#: A second sender address on peer ``a`` (conftest adds it).
STRANGER: dict[int, str] = {V4: "198.18.1.3", V6: "2001:db8:1::3"}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Opening or following on the default set may warn about skipped interfaces: not the point."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def names(rx: me.McastRxSocket) -> set[str]:
    return {i.machine_name for i in rx.network_interfaces}


def wait_for(pred: Callable[[], bool], limit: float = 3.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def following(family: int, groups: list[str], port: int, timeout: float | None = 0.2) -> me.McastRxSocket:
    with quiet():
        return me.McastRxSocket(family, groups, port, follow_interfaces=True, timeout=timeout)


# ==== findings ======================================================================================
@pytest.mark.parametrize("family", [V4, V6])
def test_following_socket_joins_an_interface_that_appeared_before_open(
    net: Net, port: int, family: int
) -> None:
    """Review finding, fixed. README ("Interfaces that come and go"): a socket on the default set "with
    ``follow_interfaces=True`` joins every group on an interface that appears ... Without
    ``follow_interfaces`` the set is fixed when the socket is made". A following socket is made,
    an interface appears, then open(): the new interface is never joined (not in
    network_interfaces, nothing sent on it arrives), however long one waits and receives. The
    set is picked in the constructor and the rtnetlink watch starts only in open(), so the
    notifications in between are never seen and no rescan is made at open."""
    group = "239.163.0.1" if family == V4 else "ff15::163:1"
    interfaces.rescan_interfaces()
    rx = following(family, [group], port)
    peer = testing.Peer(160 + (family == V6))
    try:
        with quiet():
            rx.open()
        try:
            time.sleep(1.2)  # (older than any cached scan)
            with quiet():
                got = arrives(rx, peer, family, group, port, limit=3.0)
            assert got, f"nothing from {peer.host_if} arrives; the socket listens on {sorted(names(rx))}"
        finally:
            rx.close()
    finally:
        peer.close()


@pytest.mark.parametrize("family", [V4, V6])
def test_reopened_following_socket_joins_an_interface_that_appeared_while_closed(
    net: Net, port: int, family: int
) -> None:
    """Review finding, fixed. Same promise as above: open(), close(), an interface appears, open() again. The
    reopened following socket joins only the interfaces it had before the close, and never the
    new one (no notification is pending for it)."""
    group = "239.163.0.2" if family == V4 else "ff15::163:2"
    interfaces.rescan_interfaces()
    rx = following(family, [group], port)
    with quiet():
        rx.open()
    rx.close()
    peer = testing.Peer(162 + (family == V6))
    try:
        time.sleep(1.2)
        with quiet():
            rx.open()
        try:
            with quiet():
                got = arrives(rx, peer, family, group, port, limit=3.0)
            assert got, f"nothing from {peer.host_if} arrives; the socket listens on {sorted(names(rx))}"
        finally:
            rx.close()
    finally:
        peer.close()


@pytest.mark.parametrize("family", [V4, V6])
def test_timeout_zero_never_waits_on_a_following_socket_with_one_os_socket(port: int, family: int) -> None:
    """Review finding, fixed. README (Receiving): "``timeout``: ... ``0`` never waits"; "Receives return
    ``None`` on timeout" (and the trio recipe: "open the socket with ``timeout=0`` ... read until a
    receive returns None"). A following socket with one group on a host with one interface (one OS
    socket): recv_packet() with nothing queued never returns; it spins until close() from another thread
    ends it. Both modes. Cause (guess): _engine.py ReceiveEngine._receive, SINGLE mode with a service
    watched (not plain): a missed read sets ``waited = False`` (line ~403), so remaining(0, ..., False)
    gives another 0 s poll instead of EXPIRED, and the ``or timeout == 0`` (line ~423) sends it back to
    the read: forever (``single_only`` at line ~419 covers only the plain case)."""
    group = "239.163.6.1" if family == V4 else "ff15::163:61"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        network = testing.private_network(peers=1)  # (a namespace of its own: one interface)
        network.__enter__()
    try:
        rx = following(family, [group], port, timeout=0)
        with quiet():
            rx.open()
        assert len(rx.sockets) == 1, rx.sockets
        out: list[object] = []

        def receive() -> None:
            with contextlib.suppress(me.MulticastExpertError):
                out.append(rx.recv_packet())

        t = threading.Thread(target=receive, daemon=True)
        t.start()
        t.join(3)
        hung = t.is_alive()
        rx.close()
        t.join(3)
        assert not hung, "recv_packet() with timeout=0 and nothing queued was still running after 3 s"
    finally:
        network.__exit__(None, None, None)


def test_fork_child_receiving_leaves_the_parent_following_interfaces(net: Net, port: int) -> None:
    """Review finding, fixed. README (Receiving): "After ``fork()`` ... the child may use or close
    its copy; the parent's socket keeps working"; and "Changes are applied by the receive that is waiting (at
    once) or by the next one". A following socket forks; the child receives for a while; an
    interface appears meanwhile; the child exits. The parent's next receives never join the new
    interface (a control without fork does). Cause (guess): the rtnetlink watch socket
    (rx_socket.py _start_watch/_on_interface_change) is one open file shared with the child, and
    _engine.py _after_fork_in_child only replaces the poller, so the child drains the parent's
    notifications."""
    group = "239.163.0.3"
    interfaces.rescan_interfaces()
    rx = following(V4, [group], port)
    with quiet():
        rx.open()
    try:
        assert rx.fileno() >= 0
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: receive for 3 s, close its copy, leave
            code = 0
            try:
                os.close(r)
                os.write(w, b"x")
                end = time.monotonic() + 3
                while time.monotonic() < end:
                    with quiet():
                        rx.recv_packet()
                rx.close()
            except BaseException:
                code = 2
            os._exit(code)
        os.close(w)
        os.read(r, 1)
        os.close(r)
        time.sleep(0.3)
        peer = testing.Peer(160)
        try:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            with quiet():
                got = arrives(rx, peer, V4, group, port, limit=3.0)
            assert got, f"nothing from {peer.host_if} arrives; the parent listens on {sorted(names(rx))}"
        finally:
            peer.close()
    finally:
        rx.close()


def test_recv_batch_ready_sockets_share_equally_with_a_group_on_two_interfaces(net: Net, port: int) -> None:
    """README (recv_batch): the ready OS sockets, one per group and interface, share
    ``max_packets`` equally. Two groups with plenty queued, group A on interfaces a and b, group B
    on a: three sockets, so every recv_batch(12) gives A 8 (4 per interface) and B 4. (The review
    found the README saying "groups" where the code shares by socket; the README now says so.)"""
    ga, gb = "239.163.2.1", "239.163.2.2"
    with me.McastRxSocket(V4, [ga, gb], port, ifaces=[net.a.host_if, net.b.host_if], timeout=1) as rx:
        a_index, b_index = (interfaces.find_interface(n).index for n in (net.a.host_if, net.b.host_if))
        send_from_peer(net.a, V4, ga, port, [b"A-a%d" % i for i in range(30)])
        send_from_peer(net.b, V4, ga, port, [b"A-b%d" % i for i in range(30)])
        send_from_peer(net.a, V4, gb, port, [b"B-a%d" % i for i in range(30)])
        time.sleep(0.2)
        shares = [collections.Counter((p.group, p.iface_index) for p in rx.recv_batch(12)) for _ in range(3)]
        want = {(ga, a_index): 4, (ga, b_index): 4, (gb, a_index): 4}
        assert all(s == want for s in shares), [dict(s) for s in shares]


@pytest.mark.parametrize("family", [V4, V6])
def test_block_source_stops_what_the_sender_sends_after_it(net: Net, port: int, family: int) -> None:
    """README (Live membership): a block stops what the sender sends from then on; what it had
    already queued is still delivered, as with a bare socket. A datagram queued before the block
    arrives; one sent after it does not, while another sender's still does."""
    group = "239.163.7.1" if family == V4 else "ff15::163:71"
    stranger = STRANGER[family]
    with me.McastRxSocket(family, [group], port, iface=net.a.host_if, timeout=0.5) as rx:
        send_from_peer(net.a, family, group, port, [b"queued before the block"], src_ip=stranger)
        time.sleep(0.1)
        rx.block_source(group, stranger)
        send_from_peer(net.a, family, group, port, [b"sent after the block"], src_ip=stranger)
        send_from_peer(net.a, family, group, port, [b"from the other sender"])
        got = sorted(p.payload for p in received(rx))
        assert got == [b"from the other sender", b"queued before the block"], got


# ==== promises checked and found kept ================================================================
@pytest.mark.parametrize("family", [V4, V6])
def test_threads_receiving_while_a_link_flaps_and_readdresses(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """Kept: three threads (recv_batch, recv_packet x2) on a following socket while own_peer's
    link goes down/up, loses and regains its address, gains and loses a second one: no
    exception, no datagram twice, none lost on the untouched interface, each labelled with its
    group and arrival interface."""
    groups = ["239.163.3.1", "239.163.3.2"] if family == V4 else ["ff15::163:31", "ff15::163:32"]
    rx = following(family, groups, port, timeout=0.1)
    with quiet():
        rx.open()
    idx = {i.machine_name: i.index for i in interfaces.rescan_interfaces()}
    got: list[me.McastPacket] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def recv(batch: bool) -> None:
        while not stop.is_set():
            try:
                with quiet():
                    ps = rx.recv_batch(8) if batch else [rx.recv_packet()]
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                got.extend(p for p in ps if p is not None)

    threads = [threading.Thread(target=recv, args=(b,)) for b in (True, False, False)]
    for t in threads:
        t.start()
    sent_a: list[bytes] = []
    dev = own_peer.host_if
    try:
        for cycle in range(6):
            for g in groups:
                pa = [b"a %d %s %d" % (cycle, g.encode(), i) for i in range(5)]
                sent_a += pa
                send_from_peer(net.a, family, g, port, pa)
                with contextlib.suppress(OSError):
                    send_from_peer(
                        own_peer, family, g, port, [b"p %d %s %d" % (cycle, g.encode(), i) for i in range(5)]
                    )
            if cycle % 3 == 0:
                testing.ip("link", "set", dev, "down")
                time.sleep(0.2)
                testing.ip("link", "set", dev, "up")
                testing.ip("-6", "addr", "replace", f"{own_peer.host_ip6}/64", "dev", dev, "nodad")
            elif cycle % 3 == 1 and family == V4:
                testing.ip("addr", "del", f"{own_peer.host_ip4}/24", "dev", dev)
                time.sleep(0.2)
                testing.ip("addr", "add", f"{own_peer.host_ip4}/24", "dev", dev)
            elif cycle % 3 == 1:
                testing.ip("-6", "addr", "del", f"{own_peer.host_ip6}/64", "dev", dev)
                time.sleep(0.2)
                testing.ip("-6", "addr", "add", f"{own_peer.host_ip6}/64", "dev", dev, "nodad")
            else:
                testing.ip("addr", "add", "198.18.99.1/24", "dev", dev)
                testing.ip("addr", "del", "198.18.99.1/24", "dev", dev)
            with contextlib.suppress(Exception):
                testing.wait_for_mcast_route(dev)
            time.sleep(0.5)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        rx.close()
    seen = collections.Counter(p.payload for p in got)
    assert not errors, errors
    assert not {k: n for k, n in seen.items() if n > 1}
    assert [p for p in sent_a if p not in seen] == []
    wrong = [
        p
        for p in got
        if p.group.split("%")[0] not in p.payload.decode()
        or p.iface_index != idx[net.a.host_if if p.payload.startswith(b"a ") else dev]
    ]
    assert wrong == []


@pytest.mark.parametrize("follow", [False, True])
def test_refresh_interfaces_from_two_threads_while_receiving_and_a_link_is_remade(
    net: Net, own_peer: testing.Peer, port: int, follow: bool
) -> None:
    """Kept: two threads calling refresh_interfaces(), two receiving (recv_packet, recv_batch),
    while own_peer's link is deleted and made again (new index) for 3 s: no exception, then one
    OS socket per (group, interface) and both links deliver."""
    groups = ["239.163.8.1", "239.163.8.2"]
    with quiet():
        rx = me.McastRxSocket(V4, groups, port, follow_interfaces=follow, timeout=0.05)
        rx.open()
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop(step: Callable[[], object]) -> None:
        while not stop.is_set():
            try:
                with quiet():
                    step()
            except BaseException as exc:
                errors.append(exc)
                return

    steps: list[Callable[[], object]] = [
        rx.recv_packet,
        rx.recv_batch,
        rx.refresh_interfaces,
        rx.refresh_interfaces,
    ]
    ts = [threading.Thread(target=loop, args=(s,)) for s in steps]
    for t in ts:
        t.start()
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end:
            testing.ip("link", "del", own_peer.host_if)
            testing.ip(
                "link", "add", own_peer.host_if, "type", "veth", "peer", "name", own_peer.peer_if,
                "netns", str(own_peer.pid),
            )  # fmt: skip
            bring_up(own_peer)
    finally:
        stop.set()
        for t in ts:
            t.join(5)
    try:
        assert not errors, errors
        with quiet():
            rx.refresh_interfaces()
            assert arrives(rx, own_peer, V4, groups[1], port)
            assert arrives(rx, net.a, V4, groups[0], port)
        assert len(rx.sockets) == len(groups) * len(names(rx))
    finally:
        rx.close()


def _send_marked(
    peer: testing.Peer, family: int, group: str, port: int, payloads: list[bytes], ttl: int, tos: int
) -> None:
    ip = peer.peer_ip4 if family == V4 else peer.peer_ip6

    def go() -> None:
        with sender(family, ip, socket.if_nametoindex(peer.peer_if), ttl=ttl) as s:
            if family == V4:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
            else:
                s.setsockopt(socket.IPPROTO_IPV6, 67, tos)  # IPV6_TCLASS
            for p in payloads:
                s.sendto(p, (group, port))

    peer.run(go)


@pytest.mark.parametrize("family", [V4, V6])
@pytest.mark.parametrize("how", ["batch", "packet"])
def test_metadata_of_two_groups_on_two_interfaces(net: Net, port: int, family: int, how: str) -> None:
    """Kept: two groups on one port, each arriving on two interfaces with its own TTL and TOS:
    every packet says its group, arrival interface, TTL, TOS and a plausible timestamp."""
    groups = ["239.163.4.1", "239.163.4.2"] if family == V4 else ["ff15::163:41", "ff15::163:42"]
    idx = {i.machine_name: i.index for i in interfaces.rescan_interfaces()}
    before = time.time()
    with me.McastRxSocket(
        family, groups, port, ifaces=[net.a.host_if, net.b.host_if], timeout=0.5,
        recv_ttl=True, recv_tos=True, timestamps=True,
    ) as rx:  # fmt: skip
        for gi, g in enumerate(groups):
            _send_marked(
                net.a, family, g, port, [b"a%d-%d" % (gi, i) for i in range(5)], 5 + gi, 0x20 + 4 * gi
            )
            _send_marked(
                net.b, family, g, port, [b"b%d-%d" % (gi, i) for i in range(5)], 9 + gi, 0x40 + 4 * gi
            )
        got: list[me.McastPacket] = []
        while batch := (rx.recv_batch(7) if how == "batch" else [p for p in [rx.recv_packet()] if p]):
            got += batch
        after = time.time()
    assert len(got) == 20
    for p in got:
        side, gi = p.payload[:1], int(p.payload[1:2])
        a = side == b"a"
        want = (
            groups[gi],
            idx[net.a.host_if if a else net.b.host_if],
            (5 if a else 9) + gi,
            (0x20 if a else 0x40) + 4 * gi,
        )
        assert (p.group, p.iface_index, p.ttl, p.tos) == want, p
        assert p.timestamp is not None and before - 1 <= p.timestamp <= after + 1


@pytest.mark.parametrize("kind", ["recvfrom", "recv_packet", "recv_batch"])
def test_a_blocked_receive_follows_leaving_every_group_and_joining_another(
    net: Net, port: int, kind: str
) -> None:
    """Kept: a receive waiting with timeout None on a one-group socket; the group is left (no
    socket at all) and another joined: the waiting receive gets the new group's datagram."""
    pool = ["239.163.5.1", "239.163.5.2"]
    rx = me.McastRxSocket(V4, pool[:1], port, iface=net.a.host_if, timeout=None)
    rx.open()
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(getattr(rx, kind)()))
    t.start()
    try:
        time.sleep(0.3)
        rx.leave_group(pool[0])
        time.sleep(0.1)
        rx.join_group(pool[1])
        time.sleep(0.1)
        send_from_peer(net.a, V4, pool[1], port, [b"new"])
        t.join(3)
        assert out and out[0]
    finally:
        rx.close()
        t.join(3)


def test_following_thousands_of_sockets_raises_the_descriptor_limit_for_a_new_interface(
    net: Net, port: int
) -> None:
    """Kept: 600 groups on the default set (2 interfaces) under a soft limit of 1,024: open
    raises it; an interface that appears needs 600 more and is joined (the limit raised again)."""
    groups = [f"239.164.{i // 250}.{i % 250 + 1}" for i in range(600)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    interfaces.rescan_interfaces()
    try:
        rx = following(V4, groups, port, timeout=0.1)
        with quiet():
            rx.open()
        try:
            peer = testing.Peer(163)
            try:
                with quiet():
                    assert wait_for(lambda: (rx.recv_packet(), peer.host_if in names(rx))[1], 5)
                    assert arrives(rx, peer, V4, groups[-1], port)
                assert len(rx.sockets) == 600 * len(names(rx))
            finally:
                peer.close()
        finally:
            rx.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
