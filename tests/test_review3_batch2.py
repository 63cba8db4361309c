"""Adversarial review (batch 2): the newest fixes under change and concurrency: open()'s one
retry after re-resolving the interfaces, own_interface_scans and Peer.run, fork handling,
asyncio send waits, sendto's tx_bytes / bool-port handling, the 1.2.0 shapes. Its three findings
(a reopen by a stale index, threads started inside peer.run, a fork during a refresh) are fixed;
the tests assert the promised behaviour."""

from __future__ import annotations

import os
import threading
import time

import netifaces
import pytest
from helpers import V4, V6, recreate
from udp_capture import Capture

import multicast_expert as me
from multicast_expert import testing


def group_of(family: int, n: int) -> str:
    return f"239.78.0.{n}" if family == V4 else f"ff15::78:{n}"


@pytest.mark.parametrize("family", [V4, V6])
@pytest.mark.parametrize("by", ["name", "ip"])
def test_reopen_after_the_interface_was_remade_while_another_took_its_old_index(
    two_peers: tuple[testing.Peer, testing.Peer], port: int, family: int, by: str
) -> None:
    """README, "The veth peer disappears": "so reopen send sockets after an interface is deleted
    (a reopened one looks it up by name)"; open()'s docstring: the interfaces are looked up again.

    The interface comes back under a new index (same name, same addresses) while another
    interface has taken its old index. Reopened as README advises, the socket does not look its
    interface up again: the first open with the old index and address succeeds (the address is
    there, the old index names the other interface), so no retry happens and the datagram goes
    out of the other interface."""
    a, b = two_peers
    group = group_of(family, 1)
    spec = a.host_if if by == "name" else (a.host_ip4 if family == V4 else a.host_ip6)
    tx = me.McastTxSocket(family, [group], iface=spec)
    tx.open()
    index = tx.network_interface.index
    other, other_peer = f"mxr{a.n}h", f"mxr{a.n}p"
    try:
        tx.close()
        testing.ip("link", "del", a.host_if)
        testing.ip("link", "add", other, "index", str(index), "type", "veth", "peer", "name", other_peer,
                   "netns", str(b.pid))  # fmt: skip
        testing.ip("link", "set", other_peer, "up", ns_pid=b.pid)
        testing.ip("link", "set", other, "up")
        testing.wait_for_mcast_route(other)
        recreate(a)

        class Other:  # (what Capture needs: the far end and a way into its namespace)
            peer_if = other_peer
            run = staticmethod(b.run)

        leak, right = Capture(Other()), Capture(a)  # type: ignore[arg-type]
        try:
            tx.open()
            tx.sendto(b"after", (group, port))
            on_other, on_right = leak.drain(), right.drain()
        finally:
            leak.close()
            right.close()
        where = tx.network_interface.index
    finally:
        if tx.is_opened:
            tx.close()
        testing.ip("link", "del", other)
    assert [f.payload for f in on_other] == [], f"sent by the interface that took index {index}"
    assert [f.payload for f in on_right] == [b"after"]
    assert where != index


def test_a_thread_started_by_a_peer_run_function_looks_up_the_peers_interfaces(
    own_peer: testing.Peer, port: int
) -> None:
    """README, Testing: ``peer.run(lambda: ...)  # runs a function inside the peer host (its
    interface lookups see the peer's interfaces)``; CHANGELOG: "the process's cache stays its own
    namespace's".

    A function run in the peer that starts a thread (a server with a receive thread: the new
    thread is in the peer's namespace too, as Linux threads inherit it) gets the process's cached
    interface list: its default-set receive socket lists the host's interfaces (names the peer
    does not have), not the peer's ``peer_if``. Cause (since fixed): the mark that a thread was in
    another namespace was per thread (a threading.local, interfaces.py ``_thread``), set only on
    the thread ``run`` starts."""

    me.scan_interfaces()  # (the process's cache: fresh, of the test's own namespace)
    seen: list[list[str]] = []

    def server() -> None:
        def body() -> None:
            rx = me.McastRxSocket(V4, [group_of(V4, 2)], port)
            seen.append([i.machine_name for i in rx.network_interfaces])

        t = threading.Thread(target=body)
        t.start()
        t.join()

    own_peer.run(server)
    assert seen == [[own_peer.peer_if]]


def test_a_thread_started_by_a_peer_run_function_leaves_the_process_cache_alone(
    own_peer: testing.Peer, port: int
) -> None:
    """CHANGELOG (Fixed): "testing.Peer.run's function looks interfaces up in the peer's
    namespace"; the fix's commit: "the process's cache stays its own namespace's".

    A thread that the peer function starts and that scans interfaces (scan_interfaces, or any
    lookup that rescans) writes the peer's interfaces into the process-wide cache; for the next
    second the test's own default-set receive socket, made in the main thread, uses the peer's
    interface list (``peer_if``, which this namespace does not have) instead of its own."""

    def server() -> None:
        t = threading.Thread(target=me.scan_interfaces)
        t.start()
        t.join()

    own_peer.run(server)
    rx = me.McastRxSocket(V4, [group_of(V4, 3)], port)
    names = [i.machine_name for i in rx.network_interfaces]
    assert own_peer.peer_if not in names
    assert own_peer.host_if in names


def test_fork_while_another_thread_refreshes_the_interfaces_child_can_close(
    own_peer: testing.Peer, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README, Receiving: "After fork() (e.g. multiprocessing on Linux) the child may use or
    close its copy; the parent's socket keeps working and closes cleanly."

    The parent forks while another of its threads is applying an interface refresh (here
    ``refresh_interfaces()``; a following socket's receive does the same on every rtnetlink
    notification). The interface scan is made slow so the fork lands inside it. The child's
    ``close()`` never returns: the membership's RLock (_membership.py ``self.lock``, held for the
    whole refresh, line ~253) is held in the child by a thread that does not exist there; the
    fork handlers (_follow.py, _engine.py register_at_fork) neither take it before the fork nor
    reset it after."""

    rx = me.McastRxSocket(V4, [group_of(V4, 4)], port, iface=own_peer.host_if, timeout=0.1)
    rx.open()
    entered, release = threading.Event(), threading.Event()
    real = netifaces.interfaces
    holder: list[int] = []

    def slow_interfaces() -> list[str]:
        if holder and threading.get_ident() == holder[0]:
            entered.set()
            release.wait(10)
        return list(real())

    monkeypatch.setattr(netifaces, "interfaces", slow_interfaces)

    def refresher() -> None:
        holder.append(threading.get_ident())
        rx.refresh_interfaces()

    t = threading.Thread(target=refresher)
    t.start()
    pid = -1
    try:
        assert entered.wait(5)
        pid = os.fork()
        if pid == 0:  # child: close its copy, and say so by the exit status
            code = 1
            try:
                rx.close()
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status, pid = os.waitstatus_to_exitcode(st), -1
                break
            time.sleep(0.05)
    finally:
        release.set()
        t.join()
        if pid > 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        rx.close()
    assert status == 0, "the child's close() did not return within 5 s"


def test_reopen_under_a_new_index_checks_scope_ids_against_it_and_leaks_nothing(
    own_peer: testing.Peer, port: int
) -> None:
    """Kept: README, "The veth peer disappears": reopening "then works, under its new index too";
    Sending: an IPv6 scope id must be 0 or the index of the interface sent on. After the retry in
    open() the socket reports the new index (network_interface, iface_info), takes a scope id of
    the new index and refuses the old one (accelerated C sendto too: it forgets what it knew), and
    a failed reopen while the interface is gone leaves no descriptor behind."""

    group = group_of(V6, 5)
    tx = me.McastTxSocket(V6, [group], iface=own_peer.host_if)
    tx.open()
    old = tx.network_interface.index
    tx.sendto(b"warm", (group, port, 0, old))  # (remembered by the C sendto)
    tx.close()
    testing.ip("link", "del", own_peer.host_if)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(me.MulticastExpertError):
        tx.open()
    assert len(os.listdir("/proc/self/fd")) == before
    recreate(own_peer)
    cap = Capture(own_peer)
    try:
        tx.open()
        try:
            new = tx.network_interface.index
            assert new != old and tx.iface_info.iface_idx == new
            with pytest.raises(me.MulticastValueError):
                tx.sendto(b"old", (group, port, 0, old))
            tx.sendto(b"new", (group, port, 0, new))
        finally:
            tx.close()
        got = [f.payload for f in cap.drain()]
    finally:
        cap.close()
    assert got == [b"new"]
