"""Review 3: README.rst "Receiving", "Source-specific multicast" and "asyncio, trio and anyio",
and the docstrings of rx_socket.py / aio.py, attacked sentence by sentence.

Findings (each test failed on the code reviewed, both ways: accelerated and
MULTICAST_EXPERT_PURE_PYTHON=1):

- ``test_peek_then_recv_batch_returns_the_peeked_datagram``: README "``recvfrom(bufsize,
  socket.MSG_PEEK)`` leaves the datagram queued: the next receive returns it." With several ready
  groups, a ``recv_batch`` after a peek serves the sockets from its own rotation and returns other
  groups' datagrams instead of the peeked one.
- ``test_async_rx_os_sockets_are_non_blocking``: README (asyncio section) "... all but
  ``setblocking()`` (their OS sockets stay non-blocking)". ``AsyncMcastRxSocket.sockets`` are
  blocking.

The other tests are promises checked and found kept.

Live, in the session's private network namespace (``net``); nothing here changes a link.

Every finding here is fixed; a finding's docstring describes the code as the review found it
(its "Cause" is history), and the test asserts the promised behaviour."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Callable

import pytest
from helpers import V4, V6, Net, send_from_peer

import multicast_expert as me
from multicast_expert import testing


def grp(family: int, n: int) -> str:
    return f"239.211.{n}.1" if family == V4 else f"ff15::211:{n}"


def settle() -> None:
    """Let datagrams sent from a peer reach this namespace's socket queues (veth delivery)."""
    time.sleep(0.3)


def waiter(fn: Callable[[], object]) -> tuple[threading.Thread, list[tuple[object, float]]]:
    """Run ``fn`` in a thread; the list gets (result or exception, seconds taken)."""
    out: list[tuple[object, float]] = []

    def body() -> None:
        t0 = time.monotonic()
        try:
            r: object = fn()
        except BaseException as exc:
            r = exc
        out.append((r, time.monotonic() - t0))

    t = threading.Thread(target=body)
    t.start()
    return t, out


# ---- findings ------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", [V4, V6])
@pytest.mark.parametrize("max_packets", [1, 2])
def test_peek_then_recv_batch_returns_the_peeked_datagram(
    net: Net, port: int, family: int, max_packets: int
) -> None:
    """README (Receiving): "``recvfrom(bufsize, socket.MSG_PEEK)`` leaves the datagram queued: the
    next receive returns it." Three groups, six datagrams queued on each; each round peeks, then
    takes a ``recv_batch(1)`` (or ``(2)``). From the second round on the batch holds datagrams of
    other groups and not the peeked one (e.g. peeked b'0-01', batch [b'1-00']): the peek puts its
    socket first in the engine's ready queue, but ``receive_batch`` / ``_ready_now``
    (multicast_expert/_engine.py, ``_ready_now`` sorts the ready sockets by descriptor, and the
    batch starts at ``self._turn``) ignore that order. (recvfrom/recv/recv_packet after a peek do
    return it.) Fixed: the next batch starts at the socket the peek left its datagram in."""
    groups = [grp(family, 60 + i) for i in range(3)]
    with me.McastRxSocket(family, groups, port, iface=net.a.host_if, timeout=2) as rx:
        for i, group in enumerate(groups):
            send_from_peer(net.a, family, group, port, [b"%d-%02d" % (i, k) for k in range(6)])
        settle()
        taken: list[bytes] = []
        for r in range(18):
            peeked = rx.recvfrom(4096, socket.MSG_PEEK)
            if peeked is None:
                break  # (every datagram taken)
            got = [p.payload for p in rx.recv_batch(max_packets)]
            assert peeked[0] in got, f"round {r}: peeked {peeked[0]!r}, the next receive gave {got}"
            taken += got
        assert sorted(taken) == sorted(b"%d-%02d" % (i, k) for i in range(3) for k in range(6))


def test_async_rx_os_sockets_are_non_blocking(net: Net, port: int) -> None:
    """README (asyncio, trio and anyio): "``AsyncMcastRxSocket`` and ``AsyncMcastTxSocket`` ...
    have their whole surface ..., all but ``setblocking()`` (their OS sockets stay
    non-blocking)." ``AsyncMcastRxSocket.sockets`` are blocking (getblocking() is True):
    ``AsyncMcastRxSocket.open()`` (multicast_expert/_async_rx.py, ``open``) only opens the
    synchronous socket, whose OS sockets are blocking on Linux; only AsyncMcastTxSocket.open()
    calls setblocking(False) (aio.py). A program handing them to asyncio's ``loop.sock_recv``
    (which needs non-blocking sockets) or reading one itself would block the event loop."""

    async def main() -> list[bool]:
        async with me.AsyncMcastRxSocket(V4, [grp(V4, 130), grp(V4, 131)], port, iface=net.a.host_if) as rx:
            return [s.getblocking() for s in rx.sockets]

    assert asyncio.run(main()) == [False, False]


# ---- promises kept -------------------------------------------------------------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_batch_returns_every_queued_datagram_up_to_max_packets(net: Net, port: int, family: int) -> None:
    """README: "returns every one already queued, up to max_packets": one group with 1 datagram and one
    with 10; recv_batch(8) gives 8 (the first socket's unused share goes to the other)."""
    ga, gb = grp(family, 1), grp(family, 2)
    with me.McastRxSocket(family, [ga, gb], port, iface=net.a.host_if, timeout=2) as rx:
        send_from_peer(net.a, family, ga, port, [b"a0"])
        send_from_peer(net.a, family, gb, port, [b"b%d" % i for i in range(10)])
        settle()
        got = rx.recv_batch(max_packets=8)
        assert len(got) == 8, [p.payload for p in got]
        assert [p.payload for p in got if p.group == gb] == [b"b%d" % i for i in range(7)]


@pytest.mark.parametrize("family", [V4, V6])
def test_fileno_is_readable_while_any_group_has_data(net: Net, port: int, family: int) -> None:
    """README: "fileno() ... becomes readable when any group has data": still readable after taking one of
    three queued datagrams (level-triggered), until every one was read."""
    ga, gb = grp(family, 6), grp(family, 7)
    with me.McastRxSocket(family, [ga, gb], port, iface=net.a.host_if, timeout=0) as rx:
        send_from_peer(net.a, family, ga, port, [b"a", b"a2"])
        send_from_peer(net.a, family, gb, port, [b"b"])
        settle()
        for i in range(3):
            ready, _, _ = select.select([rx.fileno()], [], [], 2)
            assert ready, f"not readable with {3 - i} datagram(s) queued"
            assert rx.recv_packet() is not None
        assert rx.recv_packet() is None


class NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop without add_reader (as Windows' ProactorEventLoop), on Linux."""

    def add_reader(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError


@pytest.mark.parametrize("closer", ["loop", "thread"])
def test_loop_without_add_reader_join_timeout_and_close(net: Net, port: int, closer: str) -> None:
    """README: "Loops without add_reader ... are served by a worker thread that waits on the socket's
    poller, which close() wakes at once": a join while waiting is received, the timeout raises
    TimeoutError, and close() (from the loop or another thread) wakes every waiting task with
    SocketClosedError well before the worker's 0.5 s slice."""

    async def main() -> None:
        rx = me.AsyncMcastRxSocket(V4, [grp(V4, 70), grp(V4, 71)], port, iface=net.a.host_if)
        rx.open()
        task = asyncio.create_task(rx.recv_packet())
        await asyncio.sleep(0.2)
        rx.join_group(grp(V4, 79))
        await asyncio.to_thread(send_from_peer, net.a, V4, grp(V4, 79), port, [b"x"])
        assert (await asyncio.wait_for(task, 5)).payload == b"x"
        rx.timeout = 0.3
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(rx.recv(), 5)
        rx.timeout = None
        tasks = [asyncio.create_task(rx.recv_batch()) for _ in range(2)]
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        if closer == "loop":
            rx.close()
        else:
            threading.Thread(target=rx.close).start()
        res = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        assert all(isinstance(r, me.SocketClosedError) for r in res), res
        assert time.monotonic() - t0 < 0.4

    loop = NoReaderLoop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.mark.parametrize("kind", ["recvfrom", "recv_batch"])
@pytest.mark.parametrize("ngroups", [1, 2])
def test_a_timeout_is_neither_cut_short_nor_deaf_to_live_membership(
    net: Net, port: int, kind: str, ngroups: int
) -> None:
    """README: "a number waits that many seconds" and "A receive waiting in any thread follows live
    join_group/leave_group at once": joins and leaves (of the waited-on group too) during a 2 s
    wait neither end it early nor make it miss a group joined during the wait."""
    groups = [grp(V4, 100 + i) for i in range(ngroups)]
    with me.McastRxSocket(V4, groups, port, iface=net.a.host_if, timeout=2.0) as rx:
        fn = getattr(rx, kind)
        t, out = waiter(fn)
        time.sleep(0.3)
        rx.join_group(grp(V4, 110))
        rx.leave_group(grp(V4, 110))
        time.sleep(0.2)
        rx.leave_group(groups[0])
        rx.join_group(groups[0])
        t.join(5)
        got, took = out[0]
        assert got in (None, []) and took > 1.8, (got, took)
        t, out = waiter(fn)
        time.sleep(0.3)
        rx.join_group(grp(V4, 111))
        send_from_peer(net.a, V4, grp(V4, 111), port, [b"late"])
        t.join(5)
        got, took = out[0]
        assert got not in (None, []) and took < 1.8, (got, took)


@pytest.mark.parametrize("family", [V4, V6])
@pytest.mark.parametrize("ssm", [False, True])
def test_live_joined_groups_get_rcvbuf_and_metadata(net: Net, port: int, family: int, ssm: bool) -> None:
    """README: "rcvbuf: SO_RCVBUF ..." and recv_ttl/recv_tos/timestamps also hold for a group joined live
    (any-source and source-specific), in recv_packet and recv_batch."""
    base, new = grp(family, 120), grp(family, 121)
    sources = [net.a.peer_ip4 if family == V4 else net.a.peer_ip6] if ssm else None
    with me.McastRxSocket(
        family, [base], port, iface=net.a.host_if, timeout=2, rcvbuf=50000,
        recv_ttl=True, recv_tos=True, timestamps=True,
    ) as rx:  # fmt: skip
        first = rx.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        rx.join_group(new, source_ips=sources)
        assert {s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) for s in rx.sockets} == {first}
        send_from_peer(net.a, family, new, port, [b"n1", b"n2"])
        p = rx.recv_packet()
        assert p is not None and p.group == new and p.ttl == 1 and p.tos == 0 and p.timestamp is not None
        batch = rx.recv_batch()
        assert batch and batch[0].ttl == 1 and batch[0].tos == 0 and batch[0].timestamp is not None


@pytest.mark.parametrize("ngroups", [1, 2])
def test_ipv6_sender_address_is_the_same_in_every_receive(net: Net, port: int, ngroups: int) -> None:
    """README: "(bytes, (ip, port, flowinfo, scope_id)) for IPv6"; McastPacket.src is "as recvfrom()
    returns it": a link-local sender's scope id is the arrival interface in recvfrom, recv_packet
    (also truncated) and recv_batch alike."""
    group = grp(V6, 90)
    link_local = testing.ip(
        "-6", "-o", "addr", "show", "dev", net.a.peer_if, "scope", "link", ns_pid=net.a.pid
    )  # fmt: skip
    ll = link_local.split("inet6 ")[1].split("/")[0]

    def send() -> int:
        s = socket.socket(V6, socket.SOCK_DGRAM)
        index = socket.if_nametoindex(net.a.peer_if)
        s.bind((ll, 0, 0, index))
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        with s:
            for i in range(4):
                s.sendto(b"ll%d" % i, (group, port))
            return int(s.getsockname()[1])

    with me.McastRxSocket(V6, [group, grp(V6, 91)][:ngroups], port, iface=net.a.host_if, timeout=2) as rx:
        want = (ll, net.a.run(send), 0, socket.if_nametoindex(net.a.host_if))
        got = rx.recvfrom()
        assert got is not None and got[1] == want
        p1, batch, p2 = rx.recv_packet(), rx.recv_batch(1), rx.recv_packet(2)
        assert p1 is not None and p2 is not None
        assert p1.src == batch[0].src == p2.src == want and p2.truncated


@pytest.mark.parametrize("kind", ["recvfrom", "recv_packet", "recv_batch"])
def test_close_wakes_a_waiting_receive_when_following_interfaces(net: Net, port: int, kind: str) -> None:
    """README: "close() from another thread wakes every waiting receive at once ... whatever its
    timeout", also with follow_interfaces=True (an rtnetlink descriptor in the poller)."""
    rx = me.McastRxSocket(V4, [grp(V4, 140), grp(V4, 141)], port, follow_interfaces=True, timeout=30)
    rx.open()
    t, out = waiter(getattr(rx, kind))
    time.sleep(0.3)
    rx.close()
    t.join(5)
    assert not t.is_alive()
    got, took = out[0]
    assert isinstance(got, me.SocketClosedError) and took < 1.5, out
