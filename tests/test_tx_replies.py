"""Replies to a sending socket (issue 25), live in private namespaces: responders in peer namespaces
answer by unicast to the sender's own address and port, and McastTxSocket (and its asyncio class)
receives them: several responders, timeouts, close from another thread, two interfaces, isolation
from a receive socket on the same port, IPv6, reads that never block, bad input; and the SSDP and
mDNS examples against our own responders and python-zeroconf."""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import V4, V6, Net, send_from_peer

import multicast_expert as me
from multicast_expert import _platform, testing
from multicast_expert._platform import DatagramIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import mdns_query  # noqa: E402 (the examples folder, added above)
import ssdp_search  # noqa: E402

FAMILIES = [pytest.param(V4, id="v4"), pytest.param(V6, id="v6")]
Answer = Callable[[bytes], list[bytes]]


def peer_ips(peer: testing.Peer, family: int) -> tuple[str, str]:
    """The peer's veth address and the host's, of ``family``."""
    return (peer.peer_ip4, peer.host_ip4) if family == V4 else (peer.peer_ip6, peer.host_ip6)


def group_for(family: int, port: int) -> str:
    """A group of this test's own (by its port)."""
    return f"239.77.{port // 256 % 256}.{port % 256}" if family == V4 else f"ff12::77:{port:x}"


def joined_socket(peer: testing.Peer, family: int, group: str, port: int) -> socket.socket:
    """A bare socket inside ``peer``, joined to ``group`` on its veth end (0.1 s timeout)."""

    def make() -> socket.socket:
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        index = socket.if_nametoindex(peer.peer_if)
        if family == V4:
            s.bind((group, port))
            s.setsockopt(
                socket.IPPROTO_IP,
                socket.IP_ADD_MEMBERSHIP,
                socket.inet_aton(group) + bytes(4) + struct.pack("=i", index),
            )
        else:
            s.bind((group, port, 0, index))
            mreq = socket.inet_pton(V6, group) + struct.pack("=I", index)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        s.settimeout(0.1)
        return s

    return peer.run(make)


class Responder:
    """A responder inside ``peer``: every datagram to ``group``:``port`` is answered by unicast to
    its sender, from ``reply_ip`` (an address of the peer), with ``answer(query)``, after ``delay``."""

    def __init__(
        self,
        peer: testing.Peer,
        family: int,
        group: str,
        port: int,
        answer: Answer,
        reply_ip: str | None = None,
        delay: float = 0.0,
    ) -> None:
        self.ip = reply_ip or peer_ips(peer, family)[0]
        self.listen = joined_socket(peer, family, group, port)
        self.reply = peer.run(lambda: _bound(family, self.ip))
        self.answer, self.delay = answer, delay
        self.queries: list[tuple[bytes, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, src = self.listen.recvfrom(65535)
            except TimeoutError:
                continue
            self.queries.append((data, src))
            if self.delay:
                time.sleep(self.delay)
            for payload in self.answer(data):
                self.reply.sendto(payload, src)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listen.close()
        self.reply.close()

    def __enter__(self) -> Responder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bound(family: int, ip: str) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    return s


def echo(n: int, tag: str) -> Answer:
    """Answer each query with ``n`` datagrams ``tag i query``."""
    return lambda q: [f"{tag} {i} ".encode() + q for i in range(n)]


def collect(tx: me.McastTxSocket, count: int, limit: float = 3.0) -> list[me.McastPacket]:
    """Replies (by recv_packet) until ``count`` arrived or ``limit`` seconds passed."""
    got: list[me.McastPacket] = []
    end = time.monotonic() + limit
    while len(got) < count and (left := end - time.monotonic()) > 0:
        tx.settimeout(left)
        packet = tx.recv_packet()
        if packet is not None:
            got.append(packet)
    return got


def collect_batches(tx: me.McastTxSocket, count: int, limit: float = 3.0) -> list[me.McastPacket]:
    """Replies (by recv_batch) until ``count`` arrived or ``limit`` seconds passed."""
    got: list[me.McastPacket] = []
    end = time.monotonic() + limit
    while len(got) < count and (left := end - time.monotonic()) > 0:
        tx.settimeout(left)
        got += tx.recv_batch()
    return got


def index_of(name: str) -> int:
    return socket.if_nametoindex(name)


# ---- replies ------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_replies_from_several_responders(net: Net, port: int, family: int) -> None:
    a, group = net.a, group_for(family, port)
    second = "198.18.1.3" if family == V4 else "2001:db8:1::3"  # the net fixture's second address
    with (
        Responder(a, family, group, port, echo(2, "one")) as r1,
        Responder(a, family, group, port, echo(2, "two"), reply_ip=second) as r2,
        me.McastTxSocket(family, [group], iface=a.host_if) as tx,
    ):
        assert tx.timeout is None  # blocking by default, as a bare socket
        tx.sendto(b"who is there?", (group, port))
        got = collect(tx, 4)
        local = tx.getsockname()
        assert r1.queries and r1.queries[0][1][1] == local[1]  # the query came from tx's own port
    by_payload = {p.payload: p for p in got}
    assert sorted(by_payload) == sorted(
        f"{tag} {i} who is there?".encode() for tag in ("one", "two") for i in range(2)
    )
    for p in got:
        expected = r1.ip if p.payload.startswith(b"one") else r2.ip
        assert p.src[0] == expected
        assert p.group == peer_ips(a, family)[1] == local[0]  # the local address it was sent to
        assert p.iface_index == index_of(a.host_if)
        assert not p.truncated
    assert r1.ip != r2.ip


@pytest.mark.parametrize("family", FAMILIES)
def test_replies_on_the_default_interface(net: Net, port: int, family: int) -> None:
    a, group = net.a, group_for(family, port)  # the test network's default routes point at peer a
    with (
        Responder(a, family, group, port, echo(1, "default")),
        me.McastTxSocket(family, [group]) as tx,
    ):
        assert tx.network_interface.machine_name == a.host_if
        tx.sendto(b"q", (group, port))
        (packet,) = collect(tx, 1)
    assert packet.payload == b"default 0 q"
    assert (packet.src[0], packet.group, packet.iface_index) == (
        *peer_ips(a, family),
        index_of(a.host_if),
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_recvfrom_recv_and_batch_return_each_reply_once(net: Net, port: int, family: int) -> None:
    a, group = net.a, group_for(family, port)
    with (
        Responder(a, family, group, port, echo(4, "r")) as r,
        me.McastTxSocket(family, [group], iface=a.host_if) as tx,
    ):
        tx.settimeout(2)
        tx.sendto(b"q", (group, port))
        first = tx.recvfrom()
        assert first is not None
        assert first[0] == b"r 0 q"
        assert first[1][0] == r.ip and first[1][1] == r.reply.getsockname()[1]
        assert tx.recv() == b"r 1 q"
        rest = collect_batches(tx, 2)
        assert [p.payload for p in rest] == [b"r 2 q", b"r 3 q"]  # in order, none twice
        tx.settimeout(0)
        assert tx.recv_batch() == [] and tx.recvfrom() is None


@pytest.mark.parametrize("family", FAMILIES)
def test_a_timeout_with_no_reply(net: Net, port: int, family: int) -> None:
    group = group_for(family, port)
    with me.McastTxSocket(family, [group], iface=net.a.host_if) as tx:
        tx.sendto(b"anyone?", (group, port))  # nobody listens
        tx.settimeout(0.3)
        for call in (tx.recvfrom, tx.recv, tx.recv_packet):
            start = time.monotonic()
            assert call() is None
            assert 0.25 <= time.monotonic() - start < 1.5
        start = time.monotonic()
        assert tx.recv_batch() == []
        assert 0.25 <= time.monotonic() - start < 1.5
        tx.timeout = 0
        start = time.monotonic()
        assert tx.recvfrom() is None and tx.recv_batch() == []
        assert time.monotonic() - start < 0.1


@pytest.mark.parametrize("method", ["recvfrom", "recv", "recv_packet", "recv_batch"])
def test_close_from_another_thread_wakes_a_waiting_receive(net: Net, port: int, method: str) -> None:
    tx = me.McastTxSocket(V4, [group_for(V4, port)], iface=net.a.host_if)
    tx.open()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            getattr(tx, method)()  # timeout None: waits until the close
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)
    assert t.is_alive()  # really waiting
    start = time.monotonic()
    tx.close()
    t.join(3)
    assert not t.is_alive() and time.monotonic() - start < 1.0
    assert len(errors) == 1 and isinstance(errors[0], me.MulticastExpertError)
    assert "on a closed McastTxSocket" in str(errors[0])


@pytest.mark.parametrize("family", FAMILIES)
def test_two_interfaces_each_reply_says_which(net: Net, port: int, family: int) -> None:
    a, b, group = net.a, net.b, group_for(family, port)
    with (
        Responder(a, family, group, port, echo(1, "a")),
        Responder(b, family, group, port, echo(1, "b")),
        me.McastTxSocket(family, [group], ifaces=[a.host_if, b.host_if]) as tx,
    ):
        tx.sendto(b"q", (group, port))  # on both interfaces
        got = collect(tx, 2)
        locals_ = [s.getsockname()[0] for s in tx.sockets]
    assert sorted(p.payload for p in got) == [b"a 0 q", b"b 0 q"]
    for p in got:
        peer = a if p.payload.startswith(b"a") else b
        assert p.iface_index == index_of(peer.host_if)
        assert p.src[0] == peer_ips(peer, family)[0]
        assert p.group == peer_ips(peer, family)[1]
    assert sorted(locals_) == sorted(p.group for p in got)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_unicast_reply_never_reaches_an_rx_socket_on_the_same_port(
    net: Net, port: int, family: int
) -> None:
    a, group = net.a, group_for(family, port)
    with (
        me.McastRxSocket(family, [group], port, iface=a.host_if, timeout=0.3) as rx,
        me.McastTxSocket(family, [group], iface=a.host_if, source_port=port) as tx,
        Responder(a, family, group, port, echo(3, "reply")),
    ):
        assert tx.getsockname()[1] == port
        tx.sendto(b"q", (group, port))
        got = collect(tx, 3)
        assert len(got) == 3 and all(p.payload.startswith(b"reply") for p in got)
        assert rx.recv_packet() is None  # the replies went to tx only
        # Control: the receive socket does hear the group on that port, and the sender does not.
        send_from_peer(a, family, group, port, [b"multicast"])
        packet = rx.recv_packet()
        assert packet is not None and packet.payload == b"multicast"
        tx.settimeout(0.3)
        assert tx.recv_packet() is None


def test_non_blocking_send_sockets_still_wait_by_the_timeout(net: Net, port: int) -> None:
    a, group = net.a, group_for(V4, port)
    with (
        Responder(a, V4, group, port, echo(1, "late"), delay=0.3),
        me.McastTxSocket(V4, [group], iface=a.host_if) as tx,
    ):
        tx.setblocking(False)
        assert tx.socket is not None and tx.socket.gettimeout() == 0.0
        tx.sendto(b"q", (group, port))
        start = time.monotonic()
        got = tx.recvfrom()  # timeout None: waits for the reply, never raises BlockingIOError
        assert got is not None and got[0] == b"late 0 q" and time.monotonic() - start >= 0.25
        tx.settimeout(0.2)
        assert tx.recvfrom() is None
        tx.setblocking(True)
        tx.socket.settimeout(5)  # a timeout set on the exposed OS socket never slows the library
        tx.settimeout(0)
        start = time.monotonic()
        assert tx.recv_packet() is None and time.monotonic() - start < 0.1


def test_peek_and_truncation(net: Net, port: int) -> None:
    a, group = net.a, group_for(V4, port)
    with (
        Responder(a, V4, group, port, lambda q: [b"x" * 100]),
        me.McastTxSocket(V4, [group], iface=a.host_if, timeout=None) as tx,
    ):
        tx.settimeout(2)
        tx.sendto(b"q", (group, port))
        peeked = tx.recvfrom(10, socket.MSG_PEEK)
        assert peeked is not None and peeked[0] == b"x" * 10
        packet = tx.recv_packet(10)  # still queued after the peek
        assert packet is not None and packet.payload == b"x" * 10 and packet.truncated
        tx.settimeout(0.2)
        assert tx.recv_packet() is None


@pytest.mark.parametrize("family", FAMILIES)
def test_batches_from_two_interfaces(net: Net, port: int, family: int) -> None:
    a, b, group = net.a, net.b, group_for(family, port)
    with (
        Responder(a, family, group, port, echo(3, "a")),
        Responder(b, family, group, port, echo(3, "b")),
        me.McastTxSocket(family, [group], ifaces=[a.host_if, b.host_if]) as tx,
    ):
        tx.sendto(b"q", (group, port))
        time.sleep(0.3)  # all six queued: one batch call shares max_packets between the interfaces
        tx.settimeout(0)
        first = tx.recv_batch(4)
        rest = collect_batches(tx, 2)
    assert len(first) == 4 and {p.payload[:1] for p in first} == {b"a", b"b"}
    got = first + rest
    for tag, peer in ((b"a", a), (b"b", b)):
        mine = [p for p in got if p.payload[:1] == tag]
        assert [p.payload for p in mine] == [tag + f" {i} q".encode() for i in range(3)]
        assert {(p.iface_index, p.group) for p in mine} == {
            (index_of(peer.host_if), peer_ips(peer, family)[1])
        }


def test_batch_sources_are_whole_after_an_ipv4_batch_on_the_same_thread(net: Net, port: int) -> None:
    a = net.a
    sources: list[str] = []

    def run() -> None:  # a fresh thread: its own recvmmsg buffers, IPv4 first
        for family in (V4, V6):
            group = group_for(family, port)
            with (
                Responder(a, family, group, port, echo(1, "r")),
                me.McastTxSocket(family, [group], iface=a.host_if) as tx,
            ):
                tx.sendto(b"q", (group, port))
                sources.extend(p.src[0] for p in collect_batches(tx, 1))

    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    assert sources == [a.peer_ip4, a.peer_ip6]


class _NoDontwaitIO(DatagramIO):
    """POSIX I/O as an OS without MSG_DONTWAIT (Windows) would do it: plain reads, select poller."""

    DONTWAIT = 0


def test_without_msg_dontwait_two_threads_never_block_on_one_reply(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_platform, "IO", _NoDontwaitIO())
    a, group = net.a, group_for(V4, port)
    with (
        Responder(a, V4, group, port, echo(1, "only")),
        me.McastTxSocket(V4, [group], iface=a.host_if, timeout=None) as tx,
    ):
        assert tx.socket is not None and tx.socket.getblocking()  # the socket stays blocking
        results: list[bytes | None] = []
        tx.settimeout(1.0)
        threads = [threading.Thread(target=lambda: results.append(tx.recv())) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.1)
        tx.sendto(b"q", (group, port))
        for t in threads:
            t.join(4)
        assert not any(t.is_alive() for t in threads)  # neither read waited in the OS
        assert sorted(results, key=lambda r: r is None) == [b"only 0 q", None]
        tx.sendto(b"q2", (group, port))
        assert [p.payload for p in collect(tx, 1)] == [b"only 0 q2"]  # batches read one by one


def test_bad_input_is_refused_clearly(net: Net, port: int) -> None:
    with pytest.raises(ValueError, match="timeout"):
        me.McastTxSocket(V4, [group_for(V4, port)], iface="lo", timeout=-1)
    assert me.McastTxSocket(V4, [group_for(V4, port)], iface="lo", timeout=2).timeout == 2.0
    assert me.AsyncMcastTxSocket(V4, [group_for(V4, port)], iface="lo", timeout=2).timeout == 2.0
    tx = me.McastTxSocket(V4, [group_for(V4, port)], iface="lo")
    with pytest.raises(me.MulticastExpertError, match=r"recvfrom\(\) on a closed McastTxSocket"):
        tx.recvfrom()  # never opened
    with tx:
        tx.settimeout(0)
        for bad in (0, -1, 2**31):
            with pytest.raises(ValueError, match="bufsize"):
                tx.recvfrom(bad)
            with pytest.raises(ValueError, match="bufsize"):
                tx.recv_packet(bad)
            with pytest.raises(ValueError, match="bufsize"):
                tx.recv_batch(bufsize=bad)
        for wrong in ("64", 1.5, True, None):
            with pytest.raises(TypeError, match="bufsize"):
                tx.recv(wrong)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="max_packets"):
                tx.recv_batch(wrong)  # type: ignore[arg-type]
        for n in (0, 1025):
            with pytest.raises(ValueError, match="max_packets"):
                tx.recv_batch(n)
        with pytest.raises(TypeError, match="flags"):
            tx.recvfrom(100, "peek")  # type: ignore[arg-type]
        for t in (-1, 3e6, float("nan")):
            with pytest.raises(ValueError, match="timeout"):
                tx.settimeout(t)
        for t2 in ("1", True):
            with pytest.raises(TypeError, match="timeout"):
                tx.timeout = t2  # type: ignore[assignment]
        assert tx.timeout == 0
    for name in ("recvfrom", "recv", "recv_packet", "recv_batch"):
        with pytest.raises(me.MulticastExpertError, match="on a closed McastTxSocket"):
            getattr(tx, name)()


# ---- asyncio ------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_async_awaits_replies_without_blocking_the_loop(net: Net, port: int, family: int) -> None:
    a, b, group = net.a, net.b, group_for(family, port)

    async def main() -> tuple[list[me.McastPacket], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async with me.AsyncMcastTxSocket(family, [group], ifaces=[a.host_if, b.host_if]) as tx:
            assert tx.timeout is None
            tick = asyncio.create_task(ticker())
            await tx.sendto(b"q", (group, port))
            got = [await tx.recv_packet()]
            tx.settimeout(3)
            while len(got) < 2:
                got += await tx.recv_batch()
            tick.cancel()
        return got, ticks

    with (
        Responder(a, family, group, port, echo(1, "a"), delay=0.3),
        Responder(b, family, group, port, echo(1, "b"), delay=0.3),
    ):
        got, ticks = asyncio.run(main())
    assert ticks >= 10  # the loop kept running while the receive waited
    assert {(p.payload, p.iface_index) for p in got} == {
        (b"a 0 q", index_of(a.host_if)),
        (b"b 0 q", index_of(b.host_if)),
    }


def test_async_timeouts_close_and_cancel(net: Net, port: int) -> None:
    a, group = net.a, group_for(V4, port)

    async def main() -> None:
        tx = me.AsyncMcastTxSocket(V4, [group], iface=a.host_if)
        tx.open()
        tx.settimeout(0)
        with pytest.raises(TimeoutError):
            await tx.recv()
        tx.settimeout(0.2)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await tx.recvfrom()
        assert time.monotonic() - start >= 0.15
        tx.settimeout(None)
        # A cancelled receive loses no reply: the next one gets it.
        task = asyncio.create_task(tx.recv())
        await asyncio.sleep(0.05)
        task.cancel()
        await tx.sendto(b"q", (group, port))
        await asyncio.sleep(0.3)
        assert await tx.recv() == b"r 0 q"
        # close() wakes every task waiting.
        waiting = [asyncio.create_task(tx.recv_packet()) for _ in range(2)]
        await asyncio.sleep(0.05)
        tx.close()
        for w in waiting:
            with pytest.raises(me.MulticastExpertError, match="closed"):
                await w
        with pytest.raises(me.MulticastExpertError, match="on a closed McastTxSocket"):
            await tx.recv()

    with Responder(a, V4, group, port, echo(1, "r")):
        asyncio.run(main())


class _NoReaderLoop(asyncio.SelectorEventLoop):
    """An event loop without add_reader, as Windows' ProactorEventLoop."""

    def add_reader(self, *args: Any) -> None:  # type: ignore[override]
        raise NotImplementedError


def test_async_on_a_loop_without_add_reader(net: Net, port: int) -> None:
    a, group = net.a, group_for(V4, port)

    async def main() -> bytes:
        async with me.AsyncMcastTxSocket(V4, [group], iface=a.host_if) as tx:
            tx.settimeout(3)
            await tx.sendto(b"q", (group, port))
            return await tx.recv()

    loop = _NoReaderLoop(selectors.DefaultSelector())
    try:
        with Responder(a, V4, group, port, echo(1, "t"), delay=0.2):
            assert loop.run_until_complete(main()) == b"t 0 q"
    finally:
        loop.close()


# ---- the examples -------------------------------------------------------------------------------
def ssdp_answer(query: bytes) -> list[bytes]:
    text = query.decode()
    if not text.startswith("M-SEARCH * HTTP/1.1") or '"ssdp:discover"' not in text:
        return []
    return [b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nST: upnp:rootdevice\r\n"
            b"USN: uuid:mx-test::upnp:rootdevice\r\nLOCATION: http://198.18.1.2:80/desc.xml\r\n"
            b"SERVER: test/1.0 UPnP/2.0 mx/1\r\n\r\n"]  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_ssdp_example_finds_a_device(net: Net, family: int) -> None:
    a = net.a
    with Responder(a, family, ssdp_search.GROUPS[family], ssdp_search.PORT, ssdp_answer) as r:
        answers = ssdp_search.search(a.host_if, family, mx=1)
        query = r.queries[0][0].decode()
    assert f"HOST: {ssdp_search.HOSTS[family]}\r\n" in query and "MX: 1\r\n" in query
    assert [(src[0], h["LOCATION"], h["ST"]) for src, h in answers] == [
        (r.ip, "http://198.18.1.2:80/desc.xml", "upnp:rootdevice")
    ]


def mdns_answer(query: bytes) -> list[bytes]:
    """A legacy-unicast answer (RFC 6762 6.7): same ID, the question repeated, two PTR records."""
    qid, _flags, qdcount = struct.unpack_from(">3H", query)
    name, end = mdns_query.read_name(query, 12)
    question = query[12 : end + 4]  # the name, type and class
    if qdcount != 1 or name != "_services._dns-sd._udp.local.":
        return []
    header = struct.pack(">6H", qid, 0x8400, 1, 2, 0, 0)
    records = b""
    for target in ("_http._tcp.local", "_ipp._tcp.local"):
        rdata = mdns_query.encode_name(target)
        records += b"\xc0\x0c" + struct.pack(">HHIH", 12, 1, 10, len(rdata)) + rdata  # name: a pointer
    return [header + question + records]


@pytest.mark.parametrize("family", FAMILIES)
def test_mdns_example_parses_a_legacy_answer(net: Net, family: int) -> None:
    a = net.a
    with Responder(a, family, mdns_query.GROUPS[family], mdns_query.PORT, mdns_answer) as r:
        answers = mdns_query.query(a.host_if, family=family, timeout=1.0)
        (_query, src), *_ = r.queries
    assert src[1] != mdns_query.PORT  # an ephemeral port: a legacy query
    assert [(s[0], [(x.name, x.type, x.data) for x in recs]) for s, recs in answers] == [
        (
            r.ip,
            [
                ("_services._dns-sd._udp.local.", "PTR", "_http._tcp.local."),
                ("_services._dns-sd._udp.local.", "PTR", "_ipp._tcp.local."),
            ],
        )
    ]


def test_mdns_parser_refuses_other_ids_and_queries() -> None:
    q = mdns_query.build_query("_x._udp.local", query_id=7)
    assert mdns_query.parse_response(q, 7) is None  # a query, not a response
    answer = mdns_answer(mdns_query.build_query("_services._dns-sd._udp.local", query_id=7))[0]
    assert mdns_query.parse_response(answer, 8) is None
    records = mdns_query.parse_response(answer, 7)
    assert records is not None and [r.data for r in records] == ["_http._tcp.local.", "_ipp._tcp.local."]
    with pytest.raises(ValueError, match="label"):
        mdns_query.encode_name("a..b")


@pytest.fixture
def zeroconf_in_peer(net: Net) -> Iterator[Any]:
    """python-zeroconf (optional) inside peer a, announcing one service on IPv4 and IPv6."""
    zc_mod = pytest.importorskip("zeroconf")
    a = net.a

    def start() -> Any:
        zc = zc_mod.Zeroconf(interfaces=[a.peer_ip4, a.peer_ip6], ip_version=zc_mod.IPVersion.All)
        info = zc_mod.ServiceInfo(
            "_mxtest._udp.local.",
            "Box._mxtest._udp.local.",
            port=4242,
            addresses=[socket.inet_aton(a.peer_ip4)],
            properties={"k": "v"},
            server="box.local.",
        )
        zc.register_service(info)
        return zc

    zc = a.run(start)
    try:
        yield zc
    finally:
        zc.close()


@pytest.mark.parametrize("family", FAMILIES)
def test_mdns_example_against_python_zeroconf(net: Net, zeroconf_in_peer: Any, family: int) -> None:
    a = net.a
    types = mdns_query.query(a.host_if, family=family, timeout=1.0)
    (src, recs), *more = types
    assert not more and [(r.type, r.data) for r in recs] == [("PTR", "_mxtest._udp.local.")]
    # (zeroconf answers from the address the kernel picks: either of the peer's two)
    assert src[0] in {peer_ips(a, family)[0], "198.18.1.3" if family == V4 else "2001:db8:1::3"}
    (_, records), *more = mdns_query.query(a.host_if, "_mxtest._udp.local", family=family, timeout=1.0)
    assert not more
    found = {(r.name, r.type, r.data) for r in records}
    assert ("_mxtest._udp.local.", "PTR", "Box._mxtest._udp.local.") in found
    assert ("Box._mxtest._udp.local.", "SRV", "box.local.:4242 (priority 0, weight 0)") in found
    assert ("box.local.", "A", a.peer_ip4) in found


def test_examples_run_from_the_command_line(net: Net) -> None:
    a = net.a
    env = {k: v for k, v in os.environ.items() if k != testing.MARKER_ENV}
    with (
        Responder(a, V6, "ff02::c", 1900, ssdp_answer),
        Responder(a, V4, "224.0.0.251", 5353, mdns_answer),
    ):
        ssdp = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "ssdp_search.py"), a.host_if, "-6", "--mx", "1"],
            capture_output=True, text=True, timeout=30, env=env, check=True,
        )  # fmt: skip
        mdns = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "mdns_query.py"), a.host_if, "--timeout", "1"],
            capture_output=True, text=True, timeout=30, env=env, check=True,
        )  # fmt: skip
    where = "http://198.18.1.2:80/desc.xml"
    assert ssdp.stdout == f"{a.peer_ip6}: upnp:rootdevice at {where} (test/1.0 UPnP/2.0 mx/1)\n"
    assert mdns.stdout.splitlines() == [
        f"{a.peer_ip4}: _services._dns-sd._udp.local. PTR _http._tcp.local. (ttl 10)",
        f"{a.peer_ip4}: _services._dns-sd._udp.local. PTR _ipp._tcp.local. (ttl 10)",
    ]
