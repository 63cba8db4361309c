"""Races on the send side and in the asyncio wrappers (found by review; the first three failed
before their fixes), and the cases that held up: fork() while a thread receives, and
follow_interfaces with links coming and going while threads close, open, join and leave.

- A send on several interfaces overtaken by close() in another thread raised AttributeError;
  it raises SocketClosedError.
- AsyncMcastTxSocket.close() from another thread failed its waiting reply receives from the
  wrong thread: they woke late or never (asyncio debug mode: close() raised and the task hung).
  The loop's own thread now does it.
- The asyncio wrappers watched the socket's own descriptor number: closed from another thread,
  the number could be taken by another socket before the loop unregistered it, and the late
  unregistration deafened that socket. They now watch a duplicate, closed on the loop.

Live, in the session's private namespace (the ``net`` fixture); both ways.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable

import pytest
from helpers import V4, Net, fill_holes_below, open_fds, send_from_peer

import multicast_expert as me
from multicast_expert import interfaces, testing

LO4 = "127.0.0.1"
OK = (me.MulticastExpertError, OSError)


def stress(seconds: float, *work: Callable[[], object]) -> list[BaseException]:
    """Run each of ``work`` over and over in a thread of its own for ``seconds``; the exceptions
    that are not the documented ones (MulticastExpertError, OSError)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(f: Callable[[], object]) -> None:
        while not stop.is_set():
            try:
                f()
            except OK:
                pass
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,)) for f in work]
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    return errors


# ---- (a) McastTxSocket on several interfaces: sendto racing close() ------------------------------
def test_multi_iface_sendto_racing_close_raises_only_closed_errors(net: Net, port: int) -> None:
    """_sendto checks self._sock, then _send_on reads out.sock for each interface; close() sets
    every out.sock to None in between: AttributeError ('NoneType' object has no attribute 'sendto')."""
    group = "239.186.0.1"
    tx = me.McastTxSocket(V4, [group], ifaces=[net.a.host_if, net.b.host_if])
    tx.open()

    def send() -> None:
        tx.sendto(b"x", (group, port))

    def send_iface() -> None:
        tx.sendto(b"y", (group, port), iface=net.b.host_if)

    def flip() -> None:
        try:
            tx.close()
        finally:
            tx.open()

    errors = stress(2.0, send, send, send_iface, flip)
    tx.close()
    assert [repr(e) for e in errors][:3] == []


# ---- (b) AsyncMcastTxSocket: close() from another thread while a reply receive waits --------------
def test_async_tx_reply_receive_is_woken_by_close_from_another_thread(net: Net, port: int) -> None:
    """AsyncMcastTxSocket.close() from another thread: AsyncWaiter.close() called
    loop.remove_reader and Future.set_exception from the closing thread, neither of which wakes
    the loop, so the waiting receive hung until something else woke it (here the 3 s guard
    timer). The loop's own thread now does both, woken at once."""
    group = "239.186.0.2"

    async def main() -> float:
        tx = me.AsyncMcastTxSocket(V4, [group], iface=net.a.host_if)
        tx.open()
        task = asyncio.create_task(tx.recv_packet())
        await asyncio.sleep(0.1)  # waiting now
        closed_at: list[float] = []

        def close_elsewhere() -> None:
            closed_at.append(time.monotonic())  # (before: the woken task may look at it at once)
            tx.close()

        threading.Timer(0.1, close_elsewhere).start()
        done, _ = await asyncio.wait([task], timeout=3.0)
        assert done, "the receive was never woken"
        with pytest.raises(me.MulticastExpertError):
            task.result()
        return time.monotonic() - closed_at[0]

    late = asyncio.run(main())
    assert late < 0.5, f"woken {late:.2f} s after close()"


# ---- (b) AsyncMcastRxSocket: close() from another thread; the descriptor number is reused ---------
def test_async_rx_close_elsewhere_does_not_unwatch_another_sockets_descriptor(net: Net, port: int) -> None:
    """close() from another thread closes the engine's epoll descriptor at once but leaves the
    loop's registration of that number until _after_close_elsewhere runs on the loop. A socket
    opened meanwhile takes the number; its receive's add_reader finds the stale key (same
    events: no epoll_ctl), and the late remove_reader then drops it: the second socket's receive
    never wakes although its datagram is queued."""
    g1, g2 = "239.186.0.3", "239.186.0.4"

    async def main() -> bytes:
        x = me.AsyncMcastRxSocket(V4, [g1], port, iface_ip=LO4, timeout=None)
        x.open()
        tx_wait = asyncio.create_task(x.recv())
        await asyncio.sleep(0.05)
        y = me.AsyncMcastRxSocket(V4, [g2], port + 1, iface_ip=LO4, timeout=2.0)
        fds: list[int] = []

        async def y_receives() -> bytes:
            y.open()
            fds.append(y.fileno())
            return await y.recv()

        ty = asyncio.create_task(y_receives())  # (runs first in the next iteration)
        x_fd = x.fileno()
        held = fill_holes_below(x_fd)  # (a number freed earlier in the session would come first)
        t = threading.Thread(target=x.close)
        t.start()
        t.join()  # (blocks the loop on purpose: its callback is queued behind ty)
        await asyncio.sleep(0.05)
        for fd in held:
            os.close(fd)
        assert fds == [x_fd], "the descriptor number was not reused; the test needs it"
        with me.McastTxSocket(V4, [g2], iface=LO4) as tx:
            tx.sendto(b"for y", (g2, port + 1))
        try:
            return await ty
        finally:
            y.close()
            with pytest.raises(me.SocketClosedError):
                await tx_wait

    assert asyncio.run(main()) == b"for y"


# ---- (d) follow_interfaces: links come and go while threads close/open, join/leave, receive -------
@pytest.mark.filterwarnings("ignore:skipping interface:RuntimeWarning")  # (links vanish by design here)
def test_follow_interfaces_racing_close_open_and_links(net: Net, port: int) -> None:
    g, extra = "239.186.1.1", "239.186.1.2"
    rx = me.McastRxSocket(V4, [g], port, follow_interfaces=True, timeout=0.05)
    fds0 = open_fds()
    rx.open()
    n = [0]

    def links() -> None:
        name = f"r3d{n[0] % 2}"
        n[0] += 1
        testing.ip("link", "add", name, "type", "veth", "peer", "name", name + "p")
        testing.ip("link", "set", name + "p", "up")
        testing.ip("link", "set", name, "up")
        testing.ip("addr", "add", f"198.18.{200 + n[0] % 2}.1/24", "dev", name)
        time.sleep(0.02)
        testing.ip("link", "del", name)

    def receive() -> None:
        rx.recv_packet()

    def flip() -> None:
        try:
            rx.close()
        finally:
            rx.open()
        time.sleep(0.01)

    def churn() -> None:
        if extra in rx.mcast_ips:
            rx.leave_group(extra)
        else:
            rx.join_group(extra)

    errors = stress(3.0, links, receive, receive, flip, churn)
    assert [repr(e) for e in errors][:3] == []
    interfaces.rescan_interfaces()
    rx.refresh_interfaces()
    if extra in rx.mcast_ips:
        rx.leave_group(extra)
    names = {i.machine_name for i in rx.network_interfaces}
    assert not any(x.startswith("r3d") for x in names)
    assert len(rx.sockets) == len(names), (names, rx.sockets)
    rx.timeout = 0.5
    send_from_peer(net.a, V4, g, port, [b"one"])
    got = [p.payload for p in iter(rx.recv_packet, None)]
    rx.close()
    assert got == [b"one"]
    assert open_fds() == fds0


# ---- (c) fork() while another thread is waiting in a receive -------------------------------------
@pytest.mark.parametrize("child_closes", [False, True])
def test_fork_while_a_thread_receives(net: Net, port: int, child_closes: bool) -> None:
    g = "239.186.2.1"
    rx = me.McastRxSocket(V4, [g], port, iface=net.a.host_if, timeout=3.0)
    rx.open()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(rx.recv_packet()))
    t.start()
    time.sleep(0.2)
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            if child_closes:
                rx.close()
            else:
                rx.timeout = 0.1
                code = 0 if rx.recv_packet() is None else 3
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    send_from_peer(net.a, V4, g, port, [b"after fork"])
    t.join(5)
    assert not t.is_alive()
    assert got and got[0] is not None and got[0].payload == b"after fork"  # type: ignore[attr-defined]
    rx.timeout = 0.3
    send_from_peer(net.a, V4, g, port, [b"again"])
    assert rx.recv_packet().payload == b"again"  # type: ignore[union-attr]
    rx.close()


def test_one_iface_sends_and_replies_racing_close_open(net: Net, port: int) -> None:
    """(held up) one interface: sendto (C TxHot), send_batch, iface=, reply receives vs close/open."""
    group = "239.186.3.1"
    tx = me.McastTxSocket(V4, [group], iface=net.a.host_if, timeout=0.01)
    tx.open()
    dest = (group, port)

    def flip() -> None:
        try:
            tx.close()
        finally:
            tx.open()

    errors = stress(
        2.0,
        lambda: tx.sendto(b"a", dest),
        lambda: tx.sendto(b"b", dest, iface=net.a.host_if),
        lambda: tx.send_batch([(b"c", dest)] * 4),
        tx.recv_batch,
        tx.recv_packet,
        flip,
    )
    tx.close()
    assert [repr(e) for e in errors][:3] == []


@pytest.mark.parametrize("debug", [False, True])
def test_async_tx_close_from_another_thread_in_debug_mode(net: Net, port: int, debug: bool) -> None:
    """With asyncio debug on, AsyncWaiter.close() (run first by AsyncMcastTxSocket.close) calls
    Future.set_exception from a foreign thread: RuntimeError, and the socket stays open."""
    group = "239.186.3.2"
    result: list[object] = []

    async def main() -> None:
        tx = me.AsyncMcastTxSocket(V4, [group], iface=net.a.host_if, timeout=1.0)
        tx.open()
        task = asyncio.create_task(tx.recv_packet())
        await asyncio.sleep(0.05)

        def close() -> None:
            try:
                tx.close()
                result.append("closed")
            except BaseException as exc:
                result.append(exc)

        t = threading.Thread(target=close)
        t.start()
        await asyncio.sleep(0.2)
        t.join()
        done, _ = await asyncio.wait([task], timeout=3.0)  # (its own timeout is 1 s)
        opened = tx.is_opened
        if opened:
            tx.sync_socket.close()
        assert done, f"the receive hangs past its timeout; close() gave {result}"
        with pytest.raises((me.MulticastExpertError, TimeoutError)):
            task.result()
        assert not opened

    loop = asyncio.new_event_loop()  # (not asyncio.run: it would wait forever on the stuck task)
    loop.set_debug(debug)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert result == ["closed"]
