"""Adversarial review (batch 3): the three newest fixes: the fork lock registry (_fork_locks),
the per-thread namespace check of the interface cache (interfaces._away / _away_now), and
McastTxSocket.open()'s renamed_index check. Its four findings (a fork from a warning hook during
open(), two threads forking at once, a worker thread entering private_network() after a lookup,
enter_private_netns() after a lookup) are fixed; the tests assert the promised behaviour.

Scenarios that can hang run in a child Python process in a fresh network namespace of its own
(``unshare -n``), killed (with its whole process group) after a bounded wait."""

from __future__ import annotations

import os
import threading
import warnings

import pytest
from helpers import V4, recreate, run_script

import multicast_expert as me
from multicast_expert import testing


# ---- _fork_locks -----------------------------------------------------------------------------
def test_fork_from_a_warning_hook_during_open_does_not_hang() -> None:
    """README, Receiving: "After fork() (e.g. multiprocessing on Linux) the child may use or
    close its copy; the parent's socket keeps working and closes cleanly."

    A program whose warning hook forks (a worker started with multiprocessing's fork method, a
    crash reporter...) and a receive socket whose open() warns (here: ``rcvbuf`` larger than
    ``net.core.rmem_max``, the RuntimeWarning README promises). The fork never happens: the
    process hangs for ever. _fork_locks._before_fork (line ~30) acquires every registered
    socket's locks, among them the socket's own ``_open_lock``, a plain (non-reentrant)
    threading.Lock that the forking thread already holds (McastRxSocket.open, rx_socket.py ~313,
    warns under it). (Not tried here: a signal handler that forks while the main thread is
    inside open() or close() would meet the same lock.)"""
    ok, out = run_script(
        """
        def hook(message, category, filename, lineno, file=None, line=None):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            print("forked", flush=True)
        warnings.showwarning = hook
        rx = me.McastRxSocket(socket.AF_INET, ["239.81.0.1"], 40001, iface="lo", rcvbuf=2**30)
        rx.open()
        rx.close()
        print("closed", flush=True)
        """,
        timeout=10,
    )
    assert ok, f"the process hung (fork from a warning hook inside open()); output: {out!r}"
    assert "forked" in out and "closed" in out, out


def test_two_threads_forking_at_once_leave_no_lock_held() -> None:
    """README, Receiving: "After fork() (e.g. multiprocessing on Linux) the child may use or
    close its copy; the parent's socket keeps working and closes cleanly."

    Two threads fork at about the same time (two ``multiprocessing.Process(...).start()`` from
    two threads) while receive sockets are made. _fork_locks keeps ONE module-wide ``_held``
    list for every fork under way: the second fork's _before_fork appends the locks it took
    (of a socket made after the first fork took its snapshot of ``_owners``) to the same list,
    and the first fork's _after_fork pops and releases them too; releasing the second thread's
    RLock (the membership lock) raises RuntimeError ("cannot release un-acquired lock"), which
    ends the release loop (_fork_locks.py ~40), so locks stay held for ever: the second
    thread's fork never returns, and the parent's ``close()`` of the socket hangs.

    Made deterministic here: a refresh of the first socket holds its membership lock (a slow
    interface scan) so the first fork waits inside _before_fork while the second starts."""
    ok, out = run_script(
        """
        import netifaces
        from multicast_expert import _fork_locks
        real = netifaces.interfaces
        entered, release = threading.Event(), threading.Event()
        holder = []
        def slow():
            if holder and threading.get_ident() == holder[0]:
                entered.set()
                release.wait(20)
            return list(real())
        netifaces.interfaces = slow
        b = me.McastRxSocket(socket.AF_INET, ["239.81.0.2"], 40002, iface="lo", timeout=0.1)
        b.open()
        def refresher():
            holder.append(threading.get_ident())
            b.refresh_interfaces()
        def forker():
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        r = threading.Thread(target=refresher, daemon=True); r.start()
        assert entered.wait(5)
        t1 = threading.Thread(target=forker, daemon=True); t1.start()
        deadline = time.monotonic() + 5
        while not _fork_locks._held and time.monotonic() < deadline:  # (first fork waiting)
            time.sleep(0.01)
        made = []  # sockets made meanwhile; until one comes before b in the registry's order
        while [ref() for ref in _fork_locks._owners][0] is b and len(made) < 2000:
            made.append(me.McastRxSocket(socket.AF_INET, ["239.81.0.3"], 40003, iface="lo"))
        t2 = threading.Thread(target=forker, daemon=True); t2.start()
        deadline = time.monotonic() + 5
        while len(_fork_locks._held) < 2 and time.monotonic() < deadline:  # (second one too)
            time.sleep(0.01)
        release.set()
        t1.join(5); t2.join(5); r.join(5)
        print("forks returned:", not t1.is_alive(), not t2.is_alive(), flush=True)
        c = threading.Thread(target=b.close, daemon=True); c.start(); c.join(5)
        print("parent close returned:", not c.is_alive(), flush=True)
        os._exit(0)
        """,
        timeout=30,
    )
    assert ok, out
    assert "forks returned: True True" in out, out
    assert "parent close returned: True" in out, out


def test_fork_while_other_threads_wait_in_receives_and_asyncio_kept() -> None:
    """Kept: a fork while one thread waits in recv_packet, another in recv_batch (several
    sockets) and an asyncio task in recvfrom returns at once, the child can close its copies
    and the parent's sockets still close and wake their receivers."""
    ok, out = run_script(
        """
        import asyncio
        a = me.McastRxSocket(socket.AF_INET, ["239.81.0.4"], 40004, iface="lo"); a.open()
        b = me.McastRxSocket(socket.AF_INET, ["239.81.0.5", "239.81.0.6"], 40005, iface="lo"); b.open()
        woke = []
        def wait(f):
            try:
                f()
            except me.MulticastExpertError:
                woke.append(1)
        ts = [threading.Thread(target=wait, args=(f,)) for f in (a.recv_packet, b.recv_batch)]
        for t in ts:
            t.start()
        async def main():
            c = me.AsyncMcastRxSocket(socket.AF_INET, ["239.81.0.7"], 40007, iface="lo"); c.open()
            task = asyncio.ensure_future(c.recvfrom())
            await asyncio.sleep(0.3)
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    a.close(); b.close(); c.sync_socket.close(); code = 0
                finally:
                    os._exit(code)
            _, st = os.waitpid(pid, 0)
            print("child exit", os.waitstatus_to_exitcode(st), flush=True)
            c.close()
            try:
                await task
            except me.MulticastExpertError:
                print("task woke", flush=True)
        asyncio.run(main())
        a.close(); b.close()
        for t in ts:
            t.join(5)
        print("woke", len(woke), flush=True)
        """,
        timeout=20,
    )
    assert ok, out
    assert "child exit 0" in out and "task woke" in out and "woke 2" in out, out


# ---- interfaces._away / the process cache ---------------------------------------------------
def test_private_network_on_a_worker_thread_after_a_lookup_sees_its_own_interfaces(
    own_peer: testing.Peer,
) -> None:
    """README, Testing: "with testing.private_network(peers=2) as network: does the same around
    any block (the calling thread moves in, and back out on exit)"; CHANGELOG: "Threads in
    another network namespace than the process's ... scan interfaces for themselves and never
    write the process's interface cache"; interfaces._away_now: "The process's cache describes
    the main thread's namespace only."

    A worker thread (not the main thread) looks an interface up, then enters
    ``testing.private_network()``. Inside, a lookup of an interface that exists only in the
    namespace it left (the session's ``own_peer`` link) still succeeds, with that namespace's
    index, although a fresh scan in the block does not list it: the thread's ``home`` token
    (interfaces._away, ~line 207) was set by the first lookup and is still current (the rescan
    private_network makes inside is "away" and does not renew the token), so the thread keeps
    reading the process's cache (_lookup / resolve_iface) of the other namespace. A socket
    named by that interface would be opened with an index that means something else (or
    nothing) in the private network."""
    name, ip4 = own_peer.host_if, own_peer.host_ip4
    out: dict[str, object] = {}

    def worker() -> None:
        try:
            me.find_interfaces([name])  # (a lookup before: the thread was at home)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # (other threads exist)
                with testing.private_network():
                    out["scan"] = [i.machine_name for i in me.scan_interfaces()]
                    for spec in (name, ip4):
                        try:
                            out[spec] = me.find_interfaces([spec])
                        except me.MulticastExpertError as exc:
                            out[spec] = exc
        except BaseException as exc:  # (reported below)
            out["error"] = exc

    t = threading.Thread(target=worker)
    t.start()
    t.join(60)
    assert not t.is_alive()
    assert "error" not in out, out.get("error")
    scan = out["scan"]
    assert isinstance(scan, list) and name not in scan  # (the private network has no such link)
    assert isinstance(out[name], me.MulticastExpertError), f"found {name} by name inside: {out[name]}"
    assert isinstance(out[ip4], me.MulticastExpertError), f"found {ip4} inside: {out[ip4]}"


def test_private_network_on_the_main_thread_after_a_lookup_kept(own_peer: testing.Peer) -> None:
    """Kept: ``testing.private_network()`` from the main thread (as the ``mcast_network`` fixture
    uses it), after a lookup: inside, the session's link is unknown by name and by IP; after the
    block it is found again."""
    assert threading.current_thread() is threading.main_thread()
    name, ip4 = own_peer.host_if, own_peer.host_ip4
    me.find_interfaces([name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with testing.private_network():
            for spec in (name, ip4):
                with pytest.raises(me.MulticastExpertError):
                    me.find_interfaces([spec])
    assert [i.machine_name for i in me.find_interfaces([ip4])] == [name]


def test_enter_private_netns_after_a_lookup_forgets_the_old_interfaces() -> None:
    """README, Testing: "enter_private_netns() moves a whole process (a script, a demo) into a
    new namespace"; interfaces._away_now: "The process's cache describes the main thread's
    namespace only."

    A script looks up an interface, then moves the whole process (main thread, no other thread)
    into a private namespace with ``enter_private_netns()``. Lookups there (before anything
    rescans) still find the interface of the namespace it left, with that namespace's index (a
    scan made afterwards lists only ``lo``): nothing drops the process cache when the main
    thread changes namespace (enter_private_netns, testing/_netns.py ~62, never rescans, and
    _away_now compares the thread with the main thread, which moved too). The same holds after
    ``enter_new_netns_on_this_thread()`` on the main thread."""
    ok, out = run_script(
        """
        p = testing.Peer(250)
        try:
            print("before", [i.machine_name for i in me.find_interfaces([p.host_if])], flush=True)
            testing.enter_private_netns()
            for spec in (p.host_if, p.host_ip4):
                try:
                    found = me.find_interfaces([spec])
                    print("STALE", spec, [(i.machine_name, i.index) for i in found], flush=True)
                except me.MulticastExpertError:
                    print("gone", spec, flush=True)
            # (a scan made now, after the lookups above: it lists only lo)
            names = [i.machine_name for i in me.scan_interfaces()]
            print("private", testing.in_private_netns(), names, flush=True)
        finally:
            p.close()
        """,
        timeout=30,
    )
    assert ok, out
    assert "private True ['lo']" in out, out
    assert "STALE" not in out, out


# ---- McastTxSocket.open(): renamed_index / looked_up_again ------------------------------------
@pytest.mark.parametrize("by", ["name", "ip"])
def test_reopen_on_two_interfaces_after_one_was_remade_kept(
    two_peers: tuple[testing.Peer, testing.Peer], by: str
) -> None:
    """Kept: README, "The veth peer disappears": reopening "then works, under its new index too".
    On two interfaces (by name or by IP), one deleted and made again under a new index while
    another link took its old index: the reopened socket sends on the new index and leaves no
    descriptor behind from the failed reopen while it was gone."""
    a, b = two_peers
    specs = [a.host_if, b.host_if] if by == "name" else [a.host_ip4, b.host_ip4]
    tx = me.McastTxSocket(V4, ["239.81.0.9"], ifaces=specs)
    tx.open()
    old = tx.network_interfaces[1].index
    tx.close()
    testing.ip("link", "del", b.host_if)
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(me.MulticastExpertError):
        tx.open()
    assert len(os.listdir("/proc/self/fd")) == fds
    taker = f"mxr{b.n}h"
    testing.ip("link", "add", taker, "index", str(old), "type", "veth", "peer", "name", f"mxr{b.n}p")
    try:
        recreate(b)
        tx.open()
        try:
            idx = [i.index for i in tx.network_interfaces]
            assert idx[1] != old and idx[1] == me.find_interfaces([b.host_if])[0].index
        finally:
            tx.close()
    finally:
        testing.ip("link", "del", taker)
