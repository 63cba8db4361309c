"""The asyncio sockets: many sockets on one loop, cancellation, close while waiting, the whole
synchronous surface (typed constructors, properties, live membership), SocketClosedError, reprs
and logging."""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from helpers import V4, V6, Net, open_fds, send_from_peer

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


# ---- issue 23: the whole synchronous surface, typed -------------------------------------------
@pytest.mark.parametrize(
    ("async_cls", "sync_cls"),
    [(me.AsyncMcastRxSocket, me.McastRxSocket), (me.AsyncMcastTxSocket, me.McastTxSocket)],
)
def test_async_constructors_take_exactly_the_sync_parameters(async_cls: type, sync_cls: type) -> None:
    a = inspect.signature(async_cls).parameters
    s = inspect.signature(sync_cls).parameters
    assert [(p.name, p.kind, p.default) for p in a.values()] == [
        (p.name, p.kind, p.default) for p in s.values()
    ]
    assert all(p.kind is not p.VAR_KEYWORD for p in a.values())  # a misspelt keyword is an error
    assert a["addr_family"].annotation == s["addr_family"].annotation != inspect.Parameter.empty


def test_a_misspelt_keyword_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="timout"):
        me.AsyncMcastRxSocket(V4, ["239.70.0.1"], 5000, iface="lo", timout=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="tll"):
        me.AsyncMcastTxSocket(V4, ["239.70.0.1"], iface="lo", tll=2)  # type: ignore[call-arg]


#: Public names of the sync classes the async ones leave out on purpose (the async class keeps
#: its OS sockets non-blocking itself).
NOT_ON_ASYNC = {"setblocking"}


@pytest.mark.parametrize(
    ("async_cls", "sync_cls"),
    [(me.AsyncMcastRxSocket, me.McastRxSocket), (me.AsyncMcastTxSocket, me.McastTxSocket)],
)
def test_async_classes_have_every_public_method_and_property_of_the_sync_ones(
    async_cls: type, sync_cls: type
) -> None:
    sync_names = {n for n in dir(sync_cls) if not n.startswith("_")}
    probe = sync_cls(V4, ["239.70.0.1"], 5000, iface="lo") if sync_cls is me.McastRxSocket else None
    instance_attrs = set(vars(probe)) if probe is not None else set()
    tx = me.McastTxSocket(V4, ["239.70.0.1"], iface="lo")
    instance_attrs |= set(vars(tx)) if sync_cls is me.McastTxSocket else set()
    wanted = (sync_names | {a for a in instance_attrs if not a.startswith("_")}) - NOT_ON_ASYNC
    missing = sorted(n for n in wanted if not hasattr(async_cls, n))
    assert not missing, f"{async_cls.__name__} lacks {missing}"
    for name in ("recvfrom", "recv", "recv_packet", "recv_batch", "sendto", "send_batch"):
        if hasattr(async_cls, name):  # whatever may wait is awaitable
            assert inspect.iscoroutinefunction(getattr(async_cls, name)), f"{name} must be awaitable"
    for name in ("join_group", "leave_group", "block_source", "unblock_source", "refresh_interfaces"):
        if hasattr(async_cls, name):
            assert not inspect.iscoroutinefunction(getattr(async_cls, name)), f"{name} returns at once"


def test_async_rx_properties_mirror_the_sync_socket(net: Net, port: int) -> None:
    async def main() -> None:
        rx = me.AsyncMcastRxSocket(V4, ["239.71.0.1"], port, iface="lo", timeout=0.5, rcvbuf=200_000)
        assert not rx.is_opened and rx.fileno() == -1 and rx.filenos() == []
        async with rx:
            sync = rx.sync_socket
            assert rx.is_opened
            assert rx.mcast_ips == sync.mcast_ips == ["239.71.0.1"]
            assert [i.machine_name for i in rx.network_interfaces] == ["lo"]
            assert [(ip, i.iface_name) for ip, i in rx.iface_infos.items()] == [("127.0.0.1", "lo")]
            assert rx.iface_ips == ["127.0.0.1"] and rx.port == port and rx.addr_family == V4
            assert rx.skipped_interfaces == {} and rx.sources_by_group == {} and rx.source_ips is None
            assert rx.granted_rcvbuf is not None and rx.granted_rcvbuf >= 200_000 and rx.rcvbuf == 200_000
            assert rx.timeout == 0.5 == sync.timeout and rx.blocking and not rx.is_source_specific
            assert rx.fileno() == sync.fileno() >= 0 and rx.filenos() == sync.filenos() != []
            assert len(rx.sockets) == 1 and not rx.enable_external_loopback
            rx.join_group("232.71.0.2", source_ips=["127.0.0.1"])
            assert rx.sources_by_group == {"232.71.0.2": ["127.0.0.1"]}
            rx.refresh_interfaces()  # named interfaces stay the same ones
            assert [i.machine_name for i in rx.network_interfaces] == ["lo"]
            rx.leave_group("232.71.0.2")
            assert rx.mcast_ips == ["239.71.0.1"]
        assert not rx.is_opened

    asyncio.run(main())


def test_async_tx_properties_mirror_the_sync_socket(net: Net) -> None:
    async def main() -> None:
        tx = me.AsyncMcastTxSocket(V6, ["ff15::72", "ff15::73"], iface="lo", ttl=3, source_port=0)
        assert not tx.is_opened and tx.fileno() == -1
        async with tx:
            sync = tx.sync_socket
            assert tx.mcast_ips == ["ff15::72", "ff15::73"] and tx.mcast_ips_set == frozenset(tx.mcast_ips)
            assert tx.ttl == 3 and tx.addr_family == V6 and tx.source_port == 0
            assert tx.network_interface.machine_name == "lo" == tx.iface_info.iface_name
            assert [i.machine_name for i in tx.network_interfaces] == ["lo"] and tx.iface_ip == "::1"
            assert tx.fileno() == sync.fileno() >= 0 and tx.getsockname()[0] == "::1"
            assert [s.getblocking() for s in tx.sockets] == [False]
            tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 4)
            assert tx.sockets[0].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS) == 4

    asyncio.run(main())


def test_async_join_while_a_receive_waits_and_block_source(net: Net, port: int) -> None:
    """A task already waiting receives a group joined after it started waiting; a blocked sender
    is dropped while another sender on the same group still arrives."""
    first, later = "239.73.0.1", "239.73.0.2"

    async def main() -> None:
        async with me.AsyncMcastRxSocket(V4, [first], port, iface=net.a.host_if, timeout=5) as rx:
            waiting = asyncio.create_task(rx.recv_packet())
            await asyncio.sleep(0.05)
            rx.join_group(later)
            await asyncio.to_thread(send_from_peer, net.a, V4, later, port, [b"joined late"])
            packet = await asyncio.wait_for(waiting, 3)
            assert packet.group == later and packet.payload == b"joined late"
            rx.block_source(first, "198.18.1.3")
            await asyncio.to_thread(send_from_peer, net.a, V4, first, port, [b"blocked"], "198.18.1.3")
            await asyncio.to_thread(send_from_peer, net.a, V4, first, port, [b"allowed"])
            got = await asyncio.wait_for(rx.recv_packet(), 3)
            assert got.payload == b"allowed" and got.src[0] == net.a.peer_ip4
            rx.unblock_source(first, "198.18.1.3")
            await asyncio.to_thread(send_from_peer, net.a, V4, first, port, [b"unblocked"], "198.18.1.3")
            assert (await asyncio.wait_for(rx.recv(), 3)) == b"unblocked"

    asyncio.run(main())


@pytest.mark.parametrize("method", ["recv", "recvfrom", "recv_packet", "recv_batch"])
def test_close_from_another_thread_wakes_a_waiting_task(net: Net, port: int, method: str) -> None:
    async def main() -> float:
        rx = me.AsyncMcastRxSocket(V4, ["239.74.0.1", "239.74.0.2"], port, iface="lo")  # timeout None
        rx.open()
        task = asyncio.create_task(getattr(rx, method)())
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        threading.Timer(0.05, rx.close).start()
        with pytest.raises(me.SocketClosedError, match="closed"):
            await asyncio.wait_for(task, 3)
        return loop.time() - begin

    assert asyncio.run(main()) < 1.0


def test_every_operation_on_a_closed_socket_raises_socket_closed_error(port: int) -> None:
    rx = me.AsyncMcastRxSocket(V4, ["239.75.0.1"], port, iface="lo")
    tx = me.AsyncMcastTxSocket(V4, ["239.75.0.1"], iface="lo")
    sync_rx, sync_tx = rx.sync_socket, tx.sync_socket
    calls: list[tuple[str, Callable[[], object]]] = [
        ("join_group", lambda: rx.join_group("239.75.0.2")),
        ("leave_group", lambda: rx.leave_group("239.75.0.1")),
        ("block_source", lambda: rx.block_source("239.75.0.1", "127.0.0.2")),
        ("unblock_source", lambda: rx.unblock_source("239.75.0.1", "127.0.0.2")),
        ("refresh_interfaces", rx.refresh_interfaces),
        ("rx.setsockopt", lambda: rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)),
        ("recvfrom", lambda: asyncio.run(rx.recvfrom())),
        ("recv", lambda: asyncio.run(rx.recv())),
        ("recv_packet", lambda: asyncio.run(rx.recv_packet())),
        ("recv_batch", lambda: asyncio.run(rx.recv_batch())),
        ("sync recvfrom", sync_rx.recvfrom),
        ("sync recv_batch", sync_rx.recv_batch),
        ("sync join_group", lambda: sync_rx.join_group("239.75.0.3")),
        ("sync rx.setsockopt", lambda: sync_rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)),
        ("sendto", lambda: asyncio.run(tx.sendto(b"x", ("239.75.0.1", port)))),
        ("send_batch", lambda: asyncio.run(tx.send_batch([(b"x", ("239.75.0.1", port))]))),
        ("getsockname", tx.getsockname),
        ("tx.setsockopt", lambda: tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)),
        ("sync sendto", lambda: sync_tx.sendto(b"x", ("239.75.0.1", port))),
        ("sync setblocking", lambda: sync_tx.setblocking(False)),
    ]
    for what, call in calls:
        with pytest.raises(me.SocketClosedError) as caught:
            call()
        assert isinstance(caught.value, me.MulticastExpertError), what
        assert "closed" in str(caught.value) and "open it first" in str(caught.value), what


def test_reprs_name_family_groups_port_interfaces_and_state(net: Net, port: int) -> None:
    rx = me.McastRxSocket(V4, ["239.76.0.1"], port, iface="lo")
    assert repr(rx) == f"<McastRxSocket AF_INET 239.76.0.1:{port} on lo closed>"
    with rx:
        assert repr(rx) == f"<McastRxSocket AF_INET 239.76.0.1:{port} on lo open>"
    many = me.AsyncMcastRxSocket(V6, [f"ff15::76:{i}" for i in range(40)], port, iface="lo")
    text = repr(many)
    assert text.startswith("<AsyncMcastRxSocket AF_INET6 {ff15::76:0, ff15::76:1, ff15::76:2 (+37 more)}:")
    assert text.endswith(f":{port} on lo closed>") and len(text) < 120
    one6 = me.McastRxSocket(V6, ["ff15::77"], port, iface="lo")
    assert f"[ff15::77]:{port}" in repr(one6)
    tx = me.AsyncMcastTxSocket(V4, ["239.76.0.1", "239.76.0.2"], iface="lo")
    assert repr(tx) == "<AsyncMcastTxSocket AF_INET to 239.76.0.1, 239.76.0.2 on lo closed>"
    assert repr(tx.sync_socket) == "<McastTxSocket AF_INET to 239.76.0.1, 239.76.0.2 on lo closed>"
    with tx.sync_socket:
        assert repr(tx.sync_socket).endswith(" open>")


def test_logging_one_debug_line_per_os_socket_and_nothing_on_receives(
    net: Net, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    groups = ["239.77.0.1", "239.77.0.2", "239.77.0.3"]
    with caplog.at_level(logging.DEBUG, logger="multicast_expert"):
        rx = me.McastRxSocket(V4, groups, port, iface="lo", timeout=1)
        rx.open()
        opened = [r for r in caplog.records if r.name == "multicast_expert.rx" and r.levelno == logging.DEBUG]
        assert len(opened) == len(groups)
        assert all("opened fd" in r.getMessage() and " on lo " in r.getMessage() for r in opened)
        assert {g for g in groups if any(g in r.getMessage() for r in opened)} == set(groups)
        assert any(r.levelno == logging.INFO and "['lo']" in r.getMessage() for r in caplog.records)
        with me.McastTxSocket(V4, groups, iface="lo") as tx:
            assert any(
                r.name == "multicast_expert.tx" and "sending from 127.0.0.1" in r.getMessage()
                for r in caplog.records
            )
            caplog.clear()
            for g in groups:
                tx.sendto(b"x", (g, port))
            assert len([rx.recv_packet() for _ in groups]) == 3
            rx.timeout = 0
            assert rx.recv_batch(8) == []  # nothing is left
        assert caplog.records == [], "nothing is logged on the send and receive paths"
        rx.close()


def test_multicast_expert_testing_is_an_attribute_after_a_plain_import() -> None:
    code = (
        "import multicast_expert, sys; t = multicast_expert.testing; "
        "print(t.__name__, 'multicast_expert.testing' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["multicast_expert.testing", "True"]
    plain = "import multicast_expert, sys; print('multicast_expert.testing' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", plain], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )
    with pytest.raises(AttributeError, match="no attribute 'tesing'"):
        me.tesing  # type: ignore[attr-defined]  # noqa: B018


def test_close_from_a_thread_while_the_loop_closes_raises_nothing(net: Net, port: int) -> None:
    # The race of the test above: the woken task ends and asyncio.run() closes the loop between
    # close()'s check of the loop and its call into it (made certain here: a closed loop that
    # says it is open). close() must still close, and raise nothing in the closing thread.
    rx = me.AsyncMcastRxSocket(V4, ["239.74.0.9"], port, iface="lo")
    rx.open()
    loop = asyncio.new_event_loop()
    loop.close()
    loop.is_closed = lambda: False  # type: ignore[method-assign]
    rx._loop = loop  # (the loop a receive was waiting on)
    errors: list[BaseException] = []

    def close() -> None:
        try:
            rx.close()
        except BaseException as exc:  # (the thread's error, for the assertion below)
            errors.append(exc)

    t = threading.Thread(target=close)
    t.start()
    t.join(5)
    del loop.is_closed  # (the loop's own again, for its finalizer)
    assert errors == [] and not rx.is_opened
