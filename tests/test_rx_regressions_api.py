"""Regression tests: promises of the public receive API that 1.2.0 / 1.6.0 kept (items 16, 17, 19, 20).

Live, over ``lo`` inside the session's private namespace.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable

import pytest
from helpers import V4, V6, Net

import multicast_expert as me


def lo_pair(
    groups: list[str], port: int, timeout: float | None = 0.5, family: int = V4
) -> tuple[me.McastRxSocket, me.McastTxSocket]:
    rx = me.McastRxSocket(family, groups, port, iface="lo", timeout=timeout)
    tx = me.McastTxSocket(family, groups, iface="lo")
    return rx, tx


# ---- item 16: the asyncio receive never blocks the loop, whatever the inner socket's timeout -------
async def max_loop_gap(work: Callable[[], Awaitable[object]]) -> tuple[float, object]:
    """Run ``work`` while a ticker task measures the longest gap between its ticks (10 ms apart)."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = loop.time()
            gaps.append(now - last)
            last = now

    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.05)
    try:
        result: object = await work()
    except BaseException as exc:  # the outcome is checked by the caller
        result = exc
    stop.set()
    await tick
    return max(gaps), result


@pytest.mark.parametrize("method", ["recv", "recvfrom", "recv_packet", "recv_batch"])
def test_async_receive_ignores_the_sync_sockets_timeout(net: Net, port: int, method: str) -> None:
    """After ``rx.sync_socket.settimeout(1.0)``, ``wait_for(rx.recv(), 0.2)`` times out after about
    0.2 s and the loop keeps running (today it froze for 1.0 s)."""
    group = "239.180.0.1"

    async def main() -> tuple[float, object]:
        async with me.AsyncMcastRxSocket(V4, [group], port, iface="lo", timeout=5) as rx:
            rx.sync_socket.settimeout(1.0)
            receive: Callable[[], Awaitable[object]] = getattr(rx, method)
            return await max_loop_gap(lambda: asyncio.wait_for(receive(), 0.2))

    gap, result = asyncio.run(main())
    assert isinstance(result, TimeoutError), f"expected the 0.2 s wait_for to time out, got {result!r}"
    assert gap < 0.5, f"the event loop was blocked for {gap:.2f} s"


def test_async_receive_with_two_groups_and_sync_timeout_still_receives(net: Net, port: int) -> None:
    """Kept apart: two groups (several OS sockets), the sync socket's timeout set; a datagram sent
    while the receive waits arrives and the loop never stalls."""
    groups = ["239.180.1.1", "239.180.1.2"]

    async def main() -> tuple[float, object]:
        async with (
            me.AsyncMcastRxSocket(V4, groups, port, iface="lo", timeout=5) as rx,
            me.AsyncMcastTxSocket(V4, groups, iface="lo") as tx,
        ):
            rx.sync_socket.settimeout(1.0)

            async def work() -> object:
                waiting = asyncio.ensure_future(rx.recv())
                await asyncio.sleep(0.3)
                await tx.sendto(b"late", (groups[1], port))
                return await asyncio.wait_for(waiting, 3)

            return await max_loop_gap(work)

    gap, result = asyncio.run(main())
    assert result == b"late"
    assert gap < 0.5, f"the event loop was blocked for {gap:.2f} s"


# ---- item 17: leaving ``with`` after another thread closed the socket ---------------------------
@pytest.mark.parametrize("groups", [["239.181.0.1"], ["239.181.0.1", "239.181.0.2"]])
def test_with_block_exits_quietly_after_a_close_from_another_thread(
    net: Net, port: int, groups: list[str]
) -> None:
    rx = me.McastRxSocket(V4, groups, port, iface="lo")  # blocking: only the close ends the receive

    def close_soon() -> None:
        time.sleep(0.2)
        rx.close()

    closer = threading.Thread(target=close_soon)
    with rx:  # leaving it must raise nothing
        closer.start()
        with pytest.raises(me.MulticastExpertError, match="closed"):
            rx.recv()
        closer.join(5)
    assert not rx.is_opened
    with pytest.raises(me.MulticastExpertError, match="already closed"):  # an explicit close: 1.2.0's error
        rx.close()


def test_with_block_exits_quietly_when_closed_elsewhere_without_a_receive(net: Net, port: int) -> None:
    """Kept apart: no receive running; another thread closes; the with block then ends quietly."""
    rx = me.McastRxSocket(V4, ["239.181.1.1"], port, iface="lo", timeout=0.2)
    with rx:
        t = threading.Thread(target=rx.close)
        t.start()
        t.join(5)
        assert not rx.is_opened
    with pytest.raises(me.MulticastExpertError, match="already closed"):
        rx.close()


def test_async_with_exits_quietly_after_a_close_from_another_thread(net: Net, port: int) -> None:
    """Kept apart (assumed the same rule): AsyncMcastRxSocket closed by another thread inside
    ``async with``; a waiting task gets the documented error, leaving the block raises nothing."""

    async def main() -> BaseException | bytes:
        async with me.AsyncMcastRxSocket(V4, ["239.181.2.1"], port, iface="lo", timeout=5) as rx:
            await asyncio.to_thread(rx.close)
            try:
                return await rx.recv()
            except me.MulticastExpertError as exc:
                return exc

    outcome = asyncio.run(main())
    assert isinstance(outcome, me.MulticastExpertError) and "closed" in str(outcome)


# ---- item 19: MSG_PEEK never advances the rotation ----------------------------------------------
def test_peek_then_receive_returns_the_peeked_datagram(net: Net, port: int) -> None:
    groups = ["239.182.0.1", "239.182.0.2"]
    rx, tx = lo_pair(groups, port)
    with rx, tx:
        for i in range(4):
            for g in groups:
                tx.sendto(b"%s %d" % (g.encode(), i), (g, port))
        time.sleep(0.1)
        for _ in range(8):
            peeked = rx.recvfrom(4096, socket.MSG_PEEK)
            got = rx.recvfrom()
            assert peeked is not None and got is not None
            assert got == peeked, f"peeked {peeked[0]!r}, then recvfrom() gave {got[0]!r}"
        assert rx.recvfrom(4096, socket.MSG_PEEK) is None


@pytest.mark.parametrize("family", [V4, V6])
def test_repeated_peeks_see_the_same_datagram(net: Net, port: int, family: int) -> None:
    """Kept apart: recv(MSG_PEEK) twice gives the same payload, then recv() takes it; IPv6 too."""
    groups = ["239.182.1.1", "239.182.1.2"] if family == V4 else ["ff15::182:1", "ff15::182:2"]
    rx, tx = lo_pair(groups, port, family=family)
    with rx, tx:
        tx.sendto(b"first", (groups[0], port))
        tx.sendto(b"second", (groups[1], port))
        time.sleep(0.1)
        taken: list[bytes] = []
        for _ in range(2):
            a = rx.recv(4096, socket.MSG_PEEK)
            b = rx.recv(4096, socket.MSG_PEEK)
            c = rx.recv()
            assert c is not None and a == b == c, f"peek, peek, recv gave {a!r}, {b!r}, {c!r}"
            taken.append(c)
        assert sorted(taken) == [b"first", b"second"]


# ---- item 20: the exposed OS sockets are blocking, as in 1.2.0 and 1.6.0 ----------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_exposed_os_sockets_are_blocking(net: Net, port: int, family: int) -> None:
    groups = ["239.183.0.1", "239.183.0.2"] if family == V4 else ["ff15::183:1", "ff15::183:2"]
    rx, tx = lo_pair(groups, port, family=family)
    with rx, tx:
        assert rx.sockets, "an open socket exposes its OS sockets"
        modes = [(s.getblocking(), s.gettimeout()) for s in rx.sockets]
        assert modes == [(True, None)] * len(rx.sockets), f"(getblocking(), gettimeout()) per socket: {modes}"


def test_reading_an_exposed_socket_blocks_and_honours_a_user_timeout(net: Net, port: int) -> None:
    group = "239.183.1.1"
    rx, tx = lo_pair([group], port)
    with rx, tx:
        (os_sock,) = rx.sockets
        got: list[bytes | BaseException] = []

        def read() -> None:
            try:
                got.append(os_sock.recv(100))
            except BaseException as exc:
                got.append(exc)

        reader = threading.Thread(target=read)  # as in 1.2.0: a plain recv() waits for a datagram
        reader.start()
        time.sleep(0.2)
        tx.sendto(b"waited for", (group, port))
        reader.join(5)
        assert got == [b"waited for"], f"a plain recv() on rx.sockets[0] gave {got}"
        os_sock.settimeout(3.0)
        tx.sendto(b"direct", (group, port))
        assert os_sock.recv(100) == b"direct"
        os_sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            os_sock.recv(100)


def test_user_timeout_on_an_os_socket_does_not_stretch_the_sockets_own_timeout(net: Net, port: int) -> None:
    """Kept apart (assumed): the McastRxSocket's timeout governs its own receives even after the
    user gave an exposed OS socket a long timeout: timeout 0 returns None at once."""
    group = "239.183.2.1"
    rx, tx = lo_pair([group], port, timeout=0)
    with rx, tx:
        (os_sock,) = rx.sockets
        os_sock.settimeout(3.0)
        for receive in (rx.recv, rx.recv_packet, rx.recv_batch):
            start = time.monotonic()
            assert not receive()
            assert time.monotonic() - start < 1.5, f"{receive.__name__} waited the OS socket's 3 s"
        tx.sendto(b"still works", (group, port))
        time.sleep(0.1)
        assert rx.recv() == b"still works"
