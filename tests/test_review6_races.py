"""Review 6 (races): interface lookup caches under concurrent rescans, the engine's close
counting under close + reopen, fork safety.

A test that demonstrates a bug fails on the code as reviewed; its docstring quotes the promise and
says what happens instead. Where a race window is tiny, the test widens it with a hook at the
exact point the window lies (the interleaving itself is possible without the hook: the GIL is
released by system calls inside each window).

Every finding here is fixed; a finding's docstring describes the code as the review found it
(its "Cause" is history), and the test asserts the promised behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import V4, Net

import multicast_expert as me
from multicast_expert import interfaces, testing

# ---- interface lookup caches ------------------------------------------------------------------


def _move_addr(addr: str, src: str, dst: str) -> None:
    testing.ip("addr", "del", f"{addr}/32", "dev", src)
    testing.ip("addr", "add", f"{addr}/32", "dev", dst)


def test_lookup_after_scan_interfaces_finds_moved_address_despite_a_concurrent_lookup(
    two_peers: tuple[testing.Peer, testing.Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """README, interfaces: "an address that moved to another interface is found there within a
    second (``scan_interfaces()`` refreshes the cache at once)".

    Thread A looks an address up while thread B moves the address to another interface and calls
    ``scan_interfaces()``. ``_lookup`` in A took the table before B's rescan and the lookup
    dictionary after it (interfaces.py:357-358, stored at :365), so it stores its match from the
    old table into
    the dictionary of B's new scan. After B's ``scan_interfaces()`` has returned (showing the
    address on the new interface), B's own ``find_interfaces([addr])`` returns the OLD interface
    (and keeps doing so until the next rescan, up to a second later; a socket opened with
    ``iface=addr`` meanwhile joins on the wrong interface). The hook only places B's move + rescan
    inside A's window."""
    p1, p2 = two_peers
    addr = f"198.18.{p1.n}.78"
    testing.ip("addr", "add", f"{addr}/32", "dev", p1.host_if)
    interfaces.scan_interfaces()

    real = interfaces.cached_interfaces
    a_in_window, b_done = threading.Event(), threading.Event()
    a_thread: list[threading.Thread] = []

    def cached_interfaces(max_age: float | None = None) -> tuple[interfaces.IfaceInfo, ...]:
        table = real(max_age)
        if threading.current_thread() in a_thread:
            a_in_window.set()
            b_done.wait(5)
        return table

    monkeypatch.setattr(interfaces, "cached_interfaces", cached_interfaces)
    t = threading.Thread(target=lambda: interfaces.find_interfaces([addr]))
    a_thread.append(t)
    t.start()
    assert a_in_window.wait(5)
    # B (this thread): move the address and refresh the cache at once, as the README says.
    _move_addr(addr, p1.host_if, p2.host_if)
    interfaces.scan_interfaces()
    b_done.set()
    t.join(5)
    monkeypatch.setattr(interfaces, "cached_interfaces", real)
    found = [i.machine_name for i in interfaces.find_interfaces([addr])]
    assert found == [p2.host_if], f"after scan_interfaces() the moved address was found on {found}"


def test_rescan_that_began_earlier_does_not_overwrite_a_newer_scan(
    two_peers: tuple[testing.Peer, testing.Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """README, interfaces: "an address that moved to another interface is found there within a
    second (``scan_interfaces()`` refreshes the cache at once)".

    ``rescan_interfaces`` reads the interfaces outside ``_lock`` and then installs them as the
    cache with ``_cache_time = now`` (interfaces.py:270-279), with no check that a newer scan was
    installed meanwhile. Thread A's rescan read before the move; thread B moves the address,
    ``scan_interfaces()`` returns the new state; then A installs its older scan, stamped as the
    freshest. B's next ``find_interfaces([addr])`` returns the interface the address left (for
    up to a second). The hook only holds A between its read and its install."""
    p1, p2 = two_peers
    addr = f"198.18.{p1.n}.79"
    testing.ip("addr", "add", f"{addr}/32", "dev", p1.host_if)
    interfaces.scan_interfaces()

    real_away_now = interfaces._away_now
    a_read, b_done = threading.Event(), threading.Event()
    a_thread: list[threading.Thread] = []

    def away_now() -> bool:  # (called by rescan_interfaces between its read and its install)
        if threading.current_thread() in a_thread:
            a_read.set()
            b_done.wait(5)
        return real_away_now()

    monkeypatch.setattr(interfaces, "_away_now", away_now)
    t = threading.Thread(target=interfaces.rescan_interfaces)
    a_thread.append(t)
    t.start()
    assert a_read.wait(5)
    _move_addr(addr, p1.host_if, p2.host_if)
    assert [i.machine_name for i in interfaces.scan_interfaces() if i.has_ip(ipaddress.ip_address(addr))] == [
        p2.host_if
    ]
    b_done.set()
    t.join(5)
    monkeypatch.setattr(interfaces, "_away_now", real_away_now)
    found = [i.machine_name for i in interfaces.find_interfaces([addr])]
    assert found == [p2.host_if], f"after scan_interfaces() the moved address was found on {found}"


# ---- receive engine: close + reopen -----------------------------------------------------------


@pytest.mark.parametrize("how", ["recv_batch", "peek"])
@pytest.mark.parametrize("groups", [1, 2])
def test_receive_entering_its_wait_across_a_close_and_reopen_raises(
    net: Net, port: int, how: str, groups: int
) -> None:
    """CHANGELOG Unreleased, Fixed: "A receive waiting when another thread closed the socket and
    opened it again at once went on waiting on the new socket (then returned None at its timeout,
    or a datagram of the new one); it raises ``SocketClosedError``, as for a close alone. Both
    socket classes, every receive."

    The general loops (``_receive``, ``receive_batch``) compare ``closes`` at the top of each
    round, then (after reads and non-waiting polls, which release the GIL) wait in ``_wait``,
    which takes the poller afresh with ``self.poller()`` (_engine.py:390 -> :430 -> :435;
    receive_batch :492 -> :518/:539 -> :435). If the
    close and the reopen both happen in between, the close woke the *old* poller, nobody is
    waiting on it, and ``poller()`` makes the *new* socket's poller (it only refuses when the mode
    is CLOSED, not when ``closes`` moved): the receive (timeout None) goes on waiting on the new
    socket until a datagram arrives there, instead of raising. For a close alone ``poller()``
    raises EngineClosedError at once. The hook only makes the close + reopen happen at that point
    (just before the receiving thread's ``poller()`` call)."""
    group_list = [f"239.166.1.{i + 1}" for i in range(groups)]
    rx = me.McastRxSocket(V4, group_list, port, iface="lo", timeout=None)
    rx.open()
    engine = rx._engine
    real_poller = engine.poller
    in_window, reopened = threading.Event(), threading.Event()
    receiver: list[threading.Thread] = []

    def poller() -> object:
        if threading.current_thread() in receiver and not in_window.is_set():
            in_window.set()
            reopened.wait(5)
        return real_poller()

    engine.poller = poller  # type: ignore[method-assign,assignment]
    outcome: list[str] = []

    def run() -> None:
        try:
            if how == "recv_batch":
                got: object = rx.recv_batch(8)
            else:
                got = rx.recvfrom(4096, socket.MSG_PEEK)
            outcome.append(f"returned {got!r}")
        except me.SocketClosedError:
            outcome.append("SocketClosedError")
        except Exception as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    t = threading.Thread(target=run, daemon=True)
    receiver.append(t)
    t.start()
    try:
        assert in_window.wait(5)
        rx.close()
        rx.open()
        reopened.set()
        t.join(3)
        still_waiting = t.is_alive()
    finally:
        rx.close()  # (wakes a receive left waiting on the new socket's poller)
        t.join(5)
    assert not still_waiting and outcome == ["SocketClosedError"], (
        f"still waiting on the reopened socket 3 s after the close: {still_waiting}; then: {outcome}"
    )


# ---- AsyncMcastTxSocket replies: close + reopen from another thread -------------------------


def test_async_tx_reply_receive_begun_after_reopen_while_another_waits_gets_its_reply(
    net: Net, port: int
) -> None:
    """CHANGELOG Unreleased, Fixed: "``AsyncMcastTxSocket``'s reply receives begun after such a
    reopen are no longer failed by it"; README: ``close()`` fails only the receives that were
    waiting.

    Task R1 waits for a reply (it made the loop's watch, ``_watch_closes`` 0). Another thread
    closes and reopens the socket; its ``_close_here(1)`` is queued on the loop. Before the loop
    runs it, R2 begins (after the reopen: ``began`` 1): ``_readable`` sees ``_watching``
    non-empty (R1's watch of the closed socket) and makes no watch of its own, only queues its
    future. Then ``_close_here(1)`` unwatches (``_watch_closes`` 0 < 1) and fails R1, leaving R2
    waiting with nothing watching the reopened socket: the reply that arrives is never noticed
    and R2 ends in TimeoutError (with no timeout it would wait forever). (_tx_replies.py:238-240,
    :264-265.) No hook: the coroutine begins R2 in the same loop step as it sees the reopen."""
    group = "239.166.2.1"

    async def main() -> str:
        tx = me.AsyncMcastTxSocket(V4, [group], iface="lo", timeout=2)
        tx.open()
        try:
            r1 = asyncio.ensure_future(tx.recvfrom())
            await asyncio.sleep(0.05)  # R1 waits, watched

            def reset_tx() -> None:
                tx.close()
                tx.open()

            t = threading.Thread(target=reset_tx)
            t.start()
            t.join(5)  # (the loop is blocked here: _close_here is queued, not yet run)
            here = tx.getsockname()

            def reply() -> None:
                time.sleep(0.3)
                with socket.socket(V4, socket.SOCK_DGRAM) as s:
                    s.sendto(b"reply", here)

            threading.Thread(target=reply, daemon=True).start()
            try:
                data, _src = await tx.recvfrom()  # R2: begun after the reopen
                result = data.decode()
            except me.SocketClosedError as exc:
                result = f"SocketClosedError: {exc}"
            except TimeoutError:
                again = (await tx.recvfrom())[0]  # (the reply was queued all along)
                result = f"TimeoutError; the next receive returned {again!r} at once"
            with contextlib.suppress(me.SocketClosedError):
                await r1
            return result
        finally:
            tx.close()

    assert asyncio.run(main()) == "reply"


# ---- fork while sockets open, close and receive in threads ------------------------------------

_FORK_SCRIPT = textwrap.dedent(
    """
    import os, signal, socket, sys, threading, time
    import multicast_expert as me

    V4 = socket.AF_INET
    PORT = int(sys.argv[1])
    stop = threading.Event()
    rxs = [me.McastRxSocket(V4, [f"239.166.3.{i}", "239.166.3.9"], PORT + i, iface="lo", timeout=0.05)
           for i in range(1, 3)]
    for rx in rxs:
        rx.open()
    tx = me.McastTxSocket(V4, ["239.166.3.1"], iface="lo")
    tx.open()

    def receiver(rx):
        while not stop.is_set():
            try:
                rx.recv_batch(4)
                rx.recvfrom(4096, socket.MSG_PEEK)
                rx.recv_packet()
            except me.SocketClosedError:
                pass

    def churner(rx):
        while not stop.is_set():
            try:
                rx.close(); rx.open()
                rx.join_group("239.166.3.20"); rx.leave_group("239.166.3.20")
            except me.SocketClosedError:
                pass

    def tx_churner():
        while not stop.is_set():
            tx.close(); tx.open()

    threads = [threading.Thread(target=receiver, args=(rx,), daemon=True) for rx in rxs]
    threads += [threading.Thread(target=churner, args=(rxs[0],), daemon=True),
                threading.Thread(target=tx_churner, daemon=True)]
    for t in threads:
        t.start()

    bad = []
    for n in range(int(sys.argv[2])):
        time.sleep(0.02)
        pid = os.fork()
        if pid == 0:
            signal.alarm(8)
            try:
                for rx in rxs:
                    if rx.is_opened:
                        rx.close()
                if tx.is_opened:
                    tx.close()
                rx = me.McastRxSocket(V4, ["239.166.3.30"], PORT + 10, iface="lo", timeout=2)
                rx.open()
                t2 = me.McastTxSocket(V4, ["239.166.3.30"], iface="lo")
                t2.open()
                t2.sendto(b"child", ("239.166.3.30", PORT + 10))
                got = rx.recvfrom()
                rx.close(); t2.close()
                os._exit(0 if got and got[0] == b"child" else 3)
            except BaseException as exc:
                print("child", n, type(exc).__name__, exc, flush=True)
                os._exit(4)
        for _ in range(200):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
            status = "hung"
        if status != 0:
            bad.append((n, status))
    stop.set()
    for t in threads:
        t.join(5)
    print("BAD", bad, flush=True)
    """
)


def test_fork_children_can_close_and_use_sockets_while_threads_churn(net: Net, port: int) -> None:
    """CHANGELOG Unreleased, Fixed: "A fork no longer leaves the child a receive socket whose
    ``close()`` waits forever" (and the send socket's open lock is taken before a fork). Forks
    while other threads receive (batch, peek, packet), close/reopen/join/leave a receive socket
    and close/reopen a send socket: every child closes its copies, opens new sockets and
    receives its own datagram."""
    proc = subprocess.run(
        [sys.executable, "-c", _FORK_SCRIPT, str(port), "12"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "BAD []" in proc.stdout, (proc.stdout[-3000:], proc.stderr[-3000:])


def test_async_rx_sockets_stay_nonblocking_across_reopen_join_and_refresh(net: Net, port: int) -> None:
    """CHANGELOG Unreleased, Fixed: "``AsyncMcastRxSocket``'s OS sockets were blocking; they are
    non-blocking, also those a live join or a refresh adds." Checked across a close and reopen
    from another thread too."""
    arx = me.AsyncMcastRxSocket(V4, ["239.166.4.1"], port, iface="lo", timeout=1)
    arx.open()
    try:
        arx.join_group("239.166.4.2")

        def reset() -> None:
            arx.close()
            arx.open()

        t = threading.Thread(target=reset)
        t.start()
        t.join(5)
        arx.join_group("239.166.4.3")
        arx.refresh_interfaces()
        assert arx.sockets and [s.getblocking() for s in arx.sockets] == [False] * len(arx.sockets)
    finally:
        arx.close()


def test_sockets_of_ordinary_and_peer_threads_work_from_their_own_namespace(net: Net, port: int) -> None:
    """CHANGELOG Unreleased, Changed: "A socket belongs to the network namespace of the thread
    that made it": sockets made by ordinary threads are usable from other ordinary threads (also
    across a rescan), and one made in ``Peer.run`` from a thread the peer's thread starts; from the
    main namespace the peer's socket refuses ``join_group`` with MulticastExpertError."""
    made: list[me.McastRxSocket] = []
    t = threading.Thread(target=lambda: made.append(me.McastRxSocket(V4, ["239.166.5.1"], port, iface="lo")))
    t.start()
    t.join(5)
    rx = made[0]
    errors: list[BaseException] = []

    def use() -> None:
        try:
            rx.open()
            interfaces.rescan_interfaces()
            rx.join_group("239.166.5.2")
            rx.refresh_interfaces()
            rx.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=use)]
    threads[0].start()
    threads[0].join(10)
    assert errors == []

    def in_peer() -> tuple[me.McastRxSocket, list[BaseException]]:
        prx = me.McastRxSocket(V4, ["239.166.5.3"], port, iface=net.a.peer_if)
        errs: list[BaseException] = []

        def sub() -> None:
            try:
                prx.open()
                prx.join_group("239.166.5.4")
                prx.refresh_interfaces()
            except BaseException as exc:
                errs.append(exc)

        s = threading.Thread(target=sub)
        s.start()
        s.join(10)
        return prx, errs

    prx, errs = net.a.run(in_peer)
    assert errs == []
    try:
        with pytest.raises(me.MulticastExpertError, match="another network namespace"):
            prx.join_group("239.166.5.5")
        assert prx.mcast_ips == ["239.166.5.3", "239.166.5.4"]
    finally:
        prx.close()
