"""The asyncio sockets: many sockets on one loop, cancellation, close while waiting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import V4, V6, Net, open_fds

import multicast_expert as me


# ---- asyncio --------------------------------------------------------------------------------------
def test_async_round_trip_many_sockets_one_loop(net: Net, port: int) -> None:
    async def main() -> None:
        async with (
            me.AsyncMcastRxSocket(V4, ["239.65.0.1", "239.65.0.2"], port, iface="lo") as rx1,
            me.AsyncMcastRxSocket(V6, ["ff15::65"], port, iface="lo") as rx2,
            me.AsyncMcastTxSocket(V4, ["239.65.0.1", "239.65.0.2"], iface="lo") as tx4,
            me.AsyncMcastTxSocket(V6, ["ff15::65"], iface="lo") as tx6,
        ):
            waits: list[asyncio.Task[Any]] = [
                asyncio.create_task(rx1.recv_packet()),
                asyncio.create_task(rx2.recvfrom()),
            ]
            await asyncio.sleep(0.05)
            assert not any(t.done() for t in waits)  # waiting, not returning None
            await tx4.sendto(b"four", ("239.65.0.2", port))
            await tx6.sendto(b"six", ("ff15::65", port))
            await asyncio.wait_for(asyncio.wait(waits), 2)
            p = waits[0].result()
            data, addr = waits[1].result()
            assert p.payload == b"four" and p.group == "239.65.0.2"
            assert data == b"six" and addr[0] == "::1"

    asyncio.run(main())


def test_async_cancel_loses_nothing(net: Net, port: int) -> None:
    async def main() -> None:
        async with (
            me.AsyncMcastRxSocket(V4, ["239.66.0.1"], port, iface="lo") as rx,
            me.AsyncMcastTxSocket(V4, ["239.66.0.1"], iface="lo") as tx,
        ):
            for _ in range(5):
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(rx.recv(), 0.01)
            await tx.sendto(b"kept", ("239.66.0.1", port))
            task = asyncio.create_task(rx.recv())
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await asyncio.wait_for(rx.recv(), 2) == b"kept"
            # two tasks waiting on one socket both get served
            t1, t2 = asyncio.create_task(rx.recv()), asyncio.create_task(rx.recv())
            await asyncio.sleep(0.01)
            await tx.sendto(b"1", ("239.66.0.1", port))
            await tx.sendto(b"2", ("239.66.0.1", port))
            assert sorted(await asyncio.wait_for(asyncio.gather(t1, t2), 2)) == [b"1", b"2"]

    before = open_fds()
    asyncio.run(main())
    assert open_fds() == before


def test_async_close_wakes_waiters(net: Net, port: int) -> None:
    async def main() -> None:
        rx = me.AsyncMcastRxSocket(V4, ["239.67.0.1"], port, iface="lo")
        rx.open()
        task = asyncio.create_task(rx.recv())
        await asyncio.sleep(0.01)
        rx.close()
        with pytest.raises(me.MulticastExpertError, match="closed"):
            await asyncio.wait_for(task, 2)

    asyncio.run(main())


class NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop without add_reader/add_writer, as Windows' default ProactorEventLoop."""

    def add_reader(self, *args: Any) -> None:  # type: ignore[override]
        raise NotImplementedError

    def add_writer(self, *args: Any) -> None:  # type: ignore[override]
        raise NotImplementedError


@pytest.mark.parametrize("loop_kind", ["selector", "no add_reader"])
def test_async_timeouts_as_in_1_6(net: Net, port: int, loop_kind: str) -> None:
    async def main() -> None:
        rx = me.AsyncMcastRxSocket(V4, ["239.66.0.1", "239.66.0.2"], port, iface="lo", timeout=0.2)
        with rx:  # plain `with` works inside a running loop too
            loop = asyncio.get_running_loop()
            begin = loop.time()
            with pytest.raises(TimeoutError):
                await rx.recv()
            assert 0.15 <= loop.time() - begin < 2
            rx.settimeout(0)
            with pytest.raises(TimeoutError):
                await rx.recvfrom()  # nothing queued: at once
            rx.timeout = None
            assert rx.timeout is None
            async with me.AsyncMcastTxSocket(V4, ["239.66.0.2"], iface="lo") as tx:
                waiting = asyncio.create_task(rx.recv_packet())
                await asyncio.sleep(0.3)
                assert not waiting.done()  # None: waits as long as it takes
                await tx.sendto(b"late", ("239.66.0.2", port))
                packet = await asyncio.wait_for(waiting, 3)
                assert packet.payload == b"late" and packet.group == "239.66.0.2"

    run_on(loop_kind, main())


@pytest.mark.parametrize("loop_kind", ["selector", "no add_reader"])
def test_async_on_a_loop_without_add_reader(net: Net, port: int, loop_kind: str) -> None:
    groups = [f"239.67.0.{i}" for i in range(1, 5)]

    async def main() -> None:
        async with (
            me.AsyncMcastRxSocket(V4, groups, port, iface="lo") as rx,
            me.AsyncMcastTxSocket(V4, groups, iface="lo") as tx,
        ):
            for g in groups:
                await tx.sendto(g.encode(), (g, port))
            got = sorted([(await asyncio.wait_for(rx.recv_packet(), 3)).group for _ in groups])
            assert got == groups
            waiting = asyncio.create_task(rx.recv())
            await asyncio.sleep(0.1)
            rx.close()
            with pytest.raises(me.MulticastExpertError, match="closed"):
                await asyncio.wait_for(waiting, 2)  # woken by close(), not by a time slice
            rx.open()  # so that `async with` can close it

    run_on(loop_kind, main())


def run_on(loop_kind: str, coro: Any) -> None:
    factory = NoReaderLoop if loop_kind == "no add_reader" else asyncio.SelectorEventLoop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)
