"""Review 3: the asyncio sockets and source-specific multicast, attacked against README.rst.

Findings (each shown by a test below that failed before the fix; all fixed):

- ``AsyncMcastTxSocket``: a send waiting for room watches the OS socket's own descriptor number
  (``add_writer``) and lets go of it only when the waiting task next runs. close() frees the number
  at once, so a socket opened meanwhile that gets the number meets the loop's stale registration:
  its own send waits forever, or another socket's receive raises FileNotFoundError.
- ``AsyncMcastTxSocket``: a reply receive waiting when the socket is closed raises a plain
  ``MulticastExpertError``, not ``SocketClosedError``.
- ``AsyncMcastRxSocket``: close() and open() from another thread; the late
  ``_after_close_elsewhere`` fails a receive begun on the reopened socket.
- ``AsyncMcastRxSocket``: after a loop closed while a receive was pending on it, receives on a
  new loop are never woken and close() raises RuntimeError.

Promises checked and kept: exactly-once delivery to many tasks with cancellations; the kernel's
per-socket source filter (SSM beside an any-source socket on one port, IPv4 and IPv6); blocking
one source too many is all or nothing over two interfaces; a source-specific join that runs out
of descriptors halfway leaves no descriptor and no membership behind; the trio/anyio ``fileno()``
way (level-triggered, drained by reading until None, also after interface notifications).

Live, in the session's private network namespace (``net``, ``own_peer``); both ways (accelerated
and MULTICAST_EXPERT_PURE_PYTHON=1).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import os
import resource
import select
import socket
import threading
import time

import pytest
from helpers import V4, V6, Net, drain, fill_holes_below, open_fds, send_from_peer
from udp_capture import slow_link

import multicast_expert as me
from multicast_expert import testing

LO4 = "127.0.0.1"


async def a_send_waiting_for_room(tx: me.AsyncMcastTxSocket, group: str, port: int) -> asyncio.Task[None]:
    """A task sending to ``group`` until a send waits for room in the (small, slow) send buffer."""

    async def flood() -> None:
        while True:
            await tx.sendto(b"X" * 1000, (group, port))

    task = asyncio.create_task(flood())
    for _ in range(200):
        await asyncio.sleep(0.02)
        if tx._waiters:  # (waiting for room now)
            return task
    raise AssertionError("the send never waited for room; the test needs it to")


def slow_sender(peer: testing.Peer, group: str) -> me.AsyncMcastTxSocket:
    """An asyncio sender on ``peer``'s link with a 4 KiB send buffer."""
    tx = me.AsyncMcastTxSocket(V4, [group], iface=peer.host_if)
    tx.open()
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return tx


# ---- AsyncMcastTxSocket: close() while a send waits for room ----------------------------------
def test_async_tx_closed_while_a_send_waits_a_new_socket_on_that_number_still_sends(
    own_peer: testing.Peer, port: int
) -> None:
    """README (asyncio): "``close()``, from the loop or from any other thread, wakes every waiting
    task, which raises ``SocketClosedError``"; "one loop may serve many sockets"; an interface
    whose send buffer is full "is waited for without blocking the loop".

    Before the fix: a task's send waits for room on socket A (``aio.py`` ``_writable`` calls
    ``loop.add_writer`` on A's own descriptor number N). Another task closes A and opens socket B
    in its place, on the same loop; B's OS socket gets number N. close() failed the waiter but the
    loop still holds A's registration of N until the waiting task runs its ``finally``. B's first
    send that waits calls ``add_writer(N)``: asyncio finds the stale key with the same events and
    only swaps the callback (no epoll_ctl, so the kernel does not watch B's socket), then A's task
    removes N altogether. B's send never wakes: here it is still waiting after 5 s on a link that
    drains its 4 KiB buffer in about 40 ms."""
    slow_link(own_peer.host_if, "1mbit", "5s")
    group = "239.230.0.1"

    async def main() -> None:
        a = slow_sender(own_peer, group)
        sending = await a_send_waiting_for_room(a, group, port)
        number = a.fileno()
        held = fill_holes_below(number)
        try:
            a.close()  # (from the loop: the waiting task wakes later, with SocketClosedError)
            b = slow_sender(own_peer, group)
            assert b.fileno() == number, "B did not get A's number; the test needs it"
            try:
                async with asyncio.timeout(5):  # (not wait_for: no task switch before B's send)
                    for _ in range(30):
                        await b.sendto(b"Y" * 1000, (group, port))
            finally:
                b.close()
                with pytest.raises(me.SocketClosedError):
                    await sending
        finally:
            for fd in held:
                os.close(fd)

    asyncio.run(main())


def test_async_tx_closed_elsewhere_while_a_send_waits_another_sockets_receive_still_works(
    own_peer: testing.Peer, port: int
) -> None:
    """README (asyncio): "``close()``, from the loop or from any other thread, wakes every waiting
    task, which raises ``SocketClosedError``" and "one loop may serve many sockets".

    Before the fix: as above, a send waits for room on descriptor number N (``add_writer`` on the OS
    socket itself, ``aio.py`` ``_writable``) and another thread closes the socket. Before the
    waiting task runs its ``finally``, an ``AsyncMcastRxSocket`` on the same loop starts a
    receive; its watch (a duplicate of its poller's descriptor) gets number N, and ``add_reader``
    meets the stale key: asyncio's epoll_ctl(MOD) on a number the kernel no longer watches raises
    FileNotFoundError out of ``rx.recv()``. (The receive side was fixed for exactly this, by
    watching duplicates; the send side was not.)"""
    slow_link(own_peer.host_if, "1mbit", "5s")
    group, other = "239.230.1.1", "239.230.1.2"

    async def main() -> bytes:
        tx = slow_sender(own_peer, group)
        sending = await a_send_waiting_for_room(tx, group, port)
        rx = me.AsyncMcastRxSocket(V4, [other], port, iface_ip=LO4, timeout=3.0)
        rx.open()
        rx.fileno()  # (its poller exists now: the watch's duplicate is the next new number)
        held = fill_holes_below(tx.fileno())
        try:
            t = threading.Thread(target=tx.close)
            t.start()
            t.join()  # (blocks the loop on purpose: the waiting task runs after rx's watch)
            receiving = asyncio.create_task(rx.recv())
            await asyncio.sleep(0.05)
            with me.McastTxSocket(V4, [other], iface=LO4) as plain:
                plain.sendto(b"for rx", (other, port))
            try:
                return await receiving
            finally:
                rx.close()
                with pytest.raises(me.SocketClosedError):
                    await sending
        finally:
            for fd in held:
                os.close(fd)

    assert asyncio.run(main()) == b"for rx"


# ---- AsyncMcastTxSocket: a reply receive waiting when the socket closes ------------------------
@pytest.mark.parametrize("closer", ["loop", "thread"])
def test_async_tx_reply_receive_closed_while_waiting_raises_socket_closed_error(
    net: Net, closer: str
) -> None:
    """README (asyncio): "``close()``, from the loop or from any other thread, wakes every waiting
    task, which raises ``SocketClosedError``"; CHANGELOG: ``SocketClosedError`` is raised "by a
    receive or send that was waiting when the socket was closed".

    Before the fix: ``await tx.recvfrom()`` on an ``AsyncMcastTxSocket`` waiting for a reply raises a
    plain ``MulticastExpertError`` ("The AsyncMcastTxSocket was closed while receiving",
    ``_tx_replies.py`` ``AsyncWaiter._close_here``), so ``except SocketClosedError`` misses it.
    (On a loop without add_reader, and on the synchronous McastTxSocket, it is SocketClosedError.)"""

    async def main() -> BaseException | None:
        tx = me.AsyncMcastTxSocket(V4, ["239.230.2.1"], iface=LO4)
        tx.open()
        waiting = asyncio.create_task(tx.recvfrom())
        await asyncio.sleep(0.05)
        if closer == "loop":
            tx.close()
        else:
            t = threading.Thread(target=tx.close)
            t.start()
            t.join()
        try:
            await asyncio.wait_for(waiting, 3)
        except BaseException as exc:
            return exc
        return None

    error = asyncio.run(main())
    assert isinstance(error, me.SocketClosedError), repr(error)


# ---- AsyncMcastRxSocket: close() and open() from another thread ---------------------------------
def test_async_rx_reopened_by_another_thread_a_receive_begun_after_it_is_served(net: Net, port: int) -> None:
    """README (asyncio): "``close()``, from the loop or from any other thread, wakes every waiting
    task, which raises ``SocketClosedError``", i.e. the tasks waiting *when it closes*; a receive on
    an open socket waits for its datagram.

    Before the fix: another thread closes and reopens the socket. close() from another thread leaves the
    loop a callback (``_async_rx.py`` ``_after_close_elsewhere``) that, whenever it runs, unwatches
    and fails whatever waits then. A receive that began on the reopened socket (it checks
    ``is_opened`` first) before that callback ran is failed with SocketClosedError, though the
    socket is open and its datagram arrives."""
    g = "239.230.3.1"

    async def main() -> bytes:
        rx = me.AsyncMcastRxSocket(V4, [g], port, iface=LO4, timeout=3)
        rx.open()
        with me.McastTxSocket(V4, [g], iface=LO4) as tx:
            first = asyncio.create_task(rx.recv())  # (a receive that waited: the loop is known)
            await asyncio.sleep(0.05)
            tx.sendto(b"first", (g, port))
            assert await first == b"first"

            async def receive_on_the_open_socket() -> bytes:
                assert rx.is_opened
                return await rx.recv()

            later = asyncio.create_task(receive_on_the_open_socket())  # (runs next iteration)

            def restart() -> None:
                rx.close()
                rx.open()

            t = threading.Thread(target=restart)
            t.start()
            t.join()  # (close+open done before the receive begins; their callback runs after it)
            await asyncio.sleep(0.1)
            tx.sendto(b"after reopening", (g, port))
            try:
                return await later
            finally:
                rx.close()

    assert asyncio.run(main()) == b"after reopening"


# ---- AsyncMcastRxSocket: a loop closed while a receive was pending -----------------------------
def _loop_closed_with_a_receive_pending(rx: me.AsyncMcastRxSocket) -> None:
    loop = asyncio.new_event_loop()
    pending = loop.create_task(rx.recv())
    loop.run_until_complete(asyncio.sleep(0.05))  # (the receive now waits on this loop)
    loop.close()  # (its task never finished: asyncio just drops it)
    assert not pending.done()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_async_rx_receive_on_a_new_loop_after_the_old_loop_closed(net: Net, port: int) -> None:
    """README (asyncio): "Receives wait without blocking the loop ... They read the OS sockets
    only when the loop reports one readable"; "one loop may serve many sockets".

    Before the fix: once a loop closed while a receive waited on it (the task dropped, not cancelled),
    the socket is deaf on every later loop: ``_readable`` watches only when ``_watching`` is
    empty, and it still holds the closed loop's watch (``_async_rx.py`` ``_readable``), so no
    new loop ever watches the socket. A receive with a datagram arriving 0.2 s after it began
    raises TimeoutError after 2 s."""
    g = "239.230.4.1"
    rx = me.AsyncMcastRxSocket(V4, [g], port, iface=LO4, timeout=2)
    rx.open()
    try:
        _loop_closed_with_a_receive_pending(rx)

        def send_later() -> None:
            time.sleep(0.2)
            with me.McastTxSocket(V4, [g], iface=LO4) as tx:
                tx.sendto(b"on the new loop", (g, port))

        async def main() -> bytes:
            threading.Thread(target=send_later).start()
            return await rx.recv()

        assert asyncio.run(main()) == b"on the new loop"
    finally:
        rx._waiters.clear()  # (so that the cleanup closes without the bug of the next test)
        rx.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_async_rx_close_after_the_loop_closed_raises_nothing(net: Net, port: int) -> None:
    """``AsyncMcastRxSocket.close()`` docstring: "Raises: MulticastExpertError: already closed"
    and "May be called from the event loop's thread or from any other thread"; README: leaving a
    ``with`` block closes the socket.

    Before the fix: after a loop closed while a receive was pending on it, close() (here from the plain
    thread, as a ``with`` block or a ``finally`` would) closes the OS sockets and then raises
    RuntimeError("Event loop is closed"): ``_fail_waiters`` sets an exception on the dead loop's
    future (``_async_rx.py`` ``close`` -> ``_fail_waiters``)."""
    rx = me.AsyncMcastRxSocket(V4, ["239.230.5.1"], port, iface=LO4)
    rx.open()
    _loop_closed_with_a_receive_pending(rx)
    rx.close()
    assert not rx.is_opened


# ---- promises kept --------------------------------------------------------------------------------
@pytest.mark.parametrize("groups", [1, 3])
def test_async_many_tasks_with_cancellations_get_each_datagram_exactly_once(
    net: Net, port: int, groups: int
) -> None:
    """README: "Cancelling a waiting receive loses no datagram. Many tasks may wait on one
    socket". 20 tasks receive with 1-5 ms timeouts (cancelled over and over) while 600
    datagrams arrive; each is received exactly once, and no descriptor is left behind."""
    names = [f"239.230.6.{i + 1}" for i in range(groups)]
    count = 600

    async def main() -> None:
        async with (
            me.AsyncMcastRxSocket(V4, names, port, iface=LO4, rcvbuf=1 << 22) as rx,
            me.AsyncMcastTxSocket(V4, names, iface=LO4) as tx,
        ):
            got: list[bytes] = []
            stop = asyncio.Event()

            async def worker(k: int) -> None:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        got.append(await asyncio.wait_for(rx.recv(), 0.001 * (k % 5 + 1)))

            workers = [asyncio.create_task(worker(k)) for k in range(20)]
            for i in range(count):
                await tx.sendto(b"%d" % i, (names[i % groups], port))
                if i % 7 == 0:
                    await asyncio.sleep(0)
            deadline = time.monotonic() + 5
            while len(got) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*workers)
            assert sorted(got, key=int) == [b"%d" % i for i in range(count)]

    before = open_fds()
    asyncio.run(main())
    assert open_fds() == before


def _senders(family: int, net: Net) -> tuple[str, str]:
    return (net.a.peer_ip4, "198.18.1.3") if family == V4 else (net.a.peer_ip6, "2001:db8:1::3")


def _mcfilter(family: int) -> list[str]:
    with open("/proc/net/mcfilter" if family == V4 else "/proc/net/mcfilter6") as f:
        return sorted(f.read().splitlines()[1:])


@pytest.mark.parametrize("family", [V4, V6], ids=["v4", "v6"])
def test_ssm_socket_beside_an_any_source_socket_on_the_port_gets_only_its_source(
    net: Net, port: int, family: int
) -> None:
    """README: "Pass ``source_ips`` and only those senders get through, filtered by the kernel"
    and "only the groups you joined (never another socket's group on the same port)": with an
    any-source socket on the same group and port (which lets the interface take every sender),
    the source-specific one still gets only its source."""
    g = "232.230.7.1" if family == V4 else "ff35::230:7:1"
    s1, s2 = _senders(family, net)
    with (
        me.McastRxSocket(family, [g], port, iface=net.a.host_if, source_ips=[s1], timeout=0.5) as ssm,
        me.McastRxSocket(family, [g], port, iface=net.a.host_if, timeout=0.5) as asm,
    ):
        send_from_peer(net.a, family, g, port, [b"listed"], s1)
        send_from_peer(net.a, family, g, port, [b"not listed"], s2)
        time.sleep(0.2)
        assert sorted(p.payload for p in drain(asm)) == [b"listed", b"not listed"]
        assert [p.payload for p in drain(ssm)] == [b"listed"]


@pytest.mark.parametrize("family", [V4, V6], ids=["v4", "v6"])
def test_blocking_one_source_too_many_is_all_or_nothing_on_two_interfaces(
    net: Net, port: int, family: int
) -> None:
    """README: "blocking an 11th IPv4 / 65th IPv6 source on one group raises
    ``MulticastOSError`` naming ``net.ipv4.igmp_max_msf`` / ``net.ipv6.mld_max_msf``" and "Each
    operation is all or nothing ... so a retry meets the same state"."""
    g = "239.230.8.1" if family == V4 else "ff15::230:8:1"
    _, s2 = _senders(family, net)
    limit, sysctl = (10, "igmp_max_msf") if family == V4 else (64, "mld_max_msf")
    fill = [
        str(ipaddress.ip_address("198.18.5.1" if family == V4 else "2001:db8:5::1") + i) for i in range(limit)
    ]
    with me.McastRxSocket(family, [g], port, ifaces=[net.a.host_if, net.b.host_if], timeout=0.5) as rx:
        for f in fill:
            rx.block_source(g, f)
        before = _mcfilter(family)
        with pytest.raises(me.MulticastOSError, match=sysctl):
            rx.block_source(g, s2)
        assert _mcfilter(family) == before
        with pytest.raises(me.MulticastExpertError, match="not blocked"):
            rx.unblock_source(g, s2)
        send_from_peer(net.a, family, g, port, [b"still arrives"], s2)
        time.sleep(0.2)
        assert [p.payload for p in drain(rx)] == [b"still arrives"]
    assert _mcfilter(family) == []


@pytest.mark.parametrize("family", [V4, V6], ids=["v4", "v6"])
def test_source_specific_join_out_of_descriptors_halfway_leaves_nothing_behind(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """README: "A failure halfway through opening, joining or blocking undoes everything done so
    far". A join whose sources need two OS sockets per interface, on two interfaces, runs out of
    descriptors on the second interface: no descriptor, membership or source filter is left."""
    g = "232.230.9.1" if family == V4 else "ff35::230:9:1"
    n = 12 if family == V4 else 70  # (more than one socket holds: two sockets per interface)
    first = ipaddress.ip_address("198.18.6.1" if family == V4 else "2001:db8:6::1")
    sources = [str(first + i) for i in range(n)]
    kept = "232.230.9.2" if family == V4 else "ff35::230:9:2"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with me.McastRxSocket(
        family, [kept], port, ifaces=[net.a.host_if, own_peer.host_if], raise_fd_limit=False
    ) as rx:
        rx.fileno()
        gc.collect()
        fds, filters = sorted(os.listdir("/proc/self/fd")), _mcfilter(family)
        filler: list[int] = []
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(fds) + 30, hard))
        try:
            while True:
                try:
                    filler.append(os.open("/dev/null", os.O_RDONLY))
                except OSError:
                    break
            for _ in range(3):  # (room for the first interface's two sockets and one more)
                os.close(filler.pop())
            with pytest.raises(me.MulticastOSError, match="too many open files"):
                rx.join_group(g, sources)
        finally:
            for fd in filler:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        gc.collect()
        assert sorted(os.listdir("/proc/self/fd")) == fds
        assert _mcfilter(family) == filters
        assert g not in rx.mcast_ips
        rx.join_group(g, sources)  # (a retry meets the same state and succeeds)
        assert rx.sources_by_group[g] == sources


def test_trio_fileno_way_is_drained_by_reading_until_none(
    net: Net, own_peer: testing.Peer, port: int
) -> None:
    """README (trio and anyio): wait for readiness on ``fileno()``, then "read until a receive
    returns None (a wake may find nothing: a live membership change or an interface notification
    also wakes it)". After such reads the descriptor is not readable (a trio loop would spin
    otherwise), also after an interface notification and a join."""
    groups = ["239.230.10.1", "239.230.10.2"]
    with me.McastRxSocket(V4, groups, port, timeout=0, follow_interfaces=True) as rx:
        fd = rx.fileno()

        def read_all() -> list[bytes]:
            got = []
            while (p := rx.recv_packet()) is not None:
                got.append(p.payload)
            return got

        send_from_peer(own_peer, V4, groups[1], port, [b"x", b"y"])
        assert select.select([fd], [], [], 2)[0] == [fd]
        assert read_all() == [b"x", b"y"]
        assert select.select([fd], [], [], 0)[0] == []
        testing.ip("addr", "add", "198.18.77.1/24", "dev", own_peer.host_if)
        select.select([fd], [], [], 1.5)
        assert read_all() == []
        assert select.select([fd], [], [], 0)[0] == []
        rx.join_group("239.230.10.9")
        read_all()
        send_from_peer(own_peer, V4, "239.230.10.9", port, [b"z"])
        assert select.select([fd], [], [], 2)[0] == [fd]
        assert read_all() == [b"z"]
    assert rx.fileno() == -1
