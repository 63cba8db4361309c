"""Regression tests for bugs found running real programs side by side with 1.2.0 and 1.6.0."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import io
import ipaddress
import os
import socket
import struct
import threading
import warnings

import pytest
from helpers import V4, V6, Net, drain, open_fds, send_from_peer, sender

import multicast_expert as me
from multicast_expert import cli, interfaces, testing
from multicast_expert.os_multicast import IfaceInfo as LegacyIfaceInfo

LO = me.IfaceInfo(
    "lo", 1, None, (ipaddress.IPv4Interface("127.0.0.1/8"),), (ipaddress.IPv6Interface("::1/128"),)
)


def _in_bare_netns(fn: object) -> list[object]:
    """Run ``fn`` on a thread in a new namespace whose lo is up but has no extra routes."""
    out: list[object] = []

    def body() -> None:
        try:
            testing.enter_new_netns_on_this_thread()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # SIOCSIFFLAGS: lo up
                fcntl.ioctl(s.fileno(), 0x8914, struct.pack("16sH14x", b"lo", 0x1 | 0x8 | 0x40))
            interfaces.rescan_interfaces()
            out.append(fn())  # type: ignore[operator]
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    interfaces.rescan_interfaces()
    return out


@pytest.mark.parametrize("family", [V4, V6])
def test_tx_sends_from_the_address_it_was_given(own_peer: testing.Peer, port: int, family: int) -> None:
    second = f"198.18.{own_peer.n}.11" if family == V4 else f"2001:db8:{own_peer.n}::11"
    plen = 24 if family == V4 else 64
    testing.ip(
        *([] if family == V4 else ["-6"]),
        "addr",
        "add",
        f"{second}/{plen}",
        "dev",
        own_peer.host_if,
        *([] if family == V4 else ["nodad"]),
    )
    me.scan_interfaces()
    group = "239.100.0.1" if family == V4 else "ff15::100"
    listener = socket.socket(family, socket.SOCK_DGRAM)
    with listener:

        def receive() -> tuple[bytes, object]:
            listener.bind((group, port) if family == V4 else (group, port, 0, 0))
            with me.McastRxSocket(family, [group], port, iface=own_peer.peer_if, timeout=2) as rx:
                ready.set()
                got = rx.recvfrom()
            assert got is not None
            return got

        ready = threading.Event()
        result: list[object] = []
        t = threading.Thread(target=lambda: result.append(own_peer.run(receive)))
        t.start()
        ready.wait(3)
        with me.McastTxSocket(family, [group], iface_ip=second) as tx:
            assert tx.iface_ip == second
            assert tx.getsockname()[0] == second
            tx.sendto(b"from second", (group, port))
        t.join(5)
    got = result[0]
    assert isinstance(got, tuple) and got[0] == b"from second" and got[1][0] == second


def test_fork_child_closing_does_not_deafen_the_parent(net: Net, port: int) -> None:
    groups = ["239.101.0.1", "239.101.0.2"]
    before = open_fds()
    rx = me.McastRxSocket(V4, groups, port, iface=net.a.host_if, timeout=1)
    rx.open()
    assert rx.fileno() >= 0  # the poller exists before the fork, so the child inherits it
    pid = os.fork()
    if pid == 0:  # child: close its copy and leave at once
        code = 0
        try:
            rx.close()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for g in groups:
        send_from_peer(net.a, V4, g, port, [g.encode()])
    got = sorted(p.payload for p in drain(rx, 10) if p)
    assert got == [g.encode() for g in groups]
    rx.close()
    assert open_fds() == before


@pytest.mark.parametrize("bufsize", [0, -1, 2**40])
def test_recvfrom_and_recv_validate_bufsize(net: Net, port: int, bufsize: int) -> None:
    with me.McastRxSocket(V4, ["239.102.0.1"], port, iface=LO, timeout=0.2) as rx:
        tx = sender(V4, "127.0.0.1", 1)
        with tx:
            tx.sendto(b"kept", ("239.102.0.1", port))
        for call in (rx.recvfrom, rx.recv):
            with pytest.raises(ValueError, match=f"bufsize {bufsize} is out of range"):
                call(bufsize)
        assert rx.recv() == b"kept"  # nothing was consumed by the bad calls


def test_rx_port_zero_is_rejected() -> None:
    with pytest.raises(ValueError, match="port 0 would give each group"):
        me.McastRxSocket(V4, ["239.1.1.1"], 0, iface=LO)


def test_async_sockets_let_other_tasks_run(net: Net, port: int) -> None:
    group = "239.103.0.1"
    count = 2000

    async def main() -> tuple[int, int]:
        ticks = 0
        stop = False

        async def heartbeat() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        async with (
            me.AsyncMcastRxSocket(V4, [group], port, iface=LO, rcvbuf=8_000_000) as rx,
            me.AsyncMcastTxSocket(V4, [group], LO) as tx,
        ):
            beat = asyncio.ensure_future(heartbeat())
            await asyncio.sleep(0)
            ticks = 0
            for i in range(count):
                await tx.sendto(b"%d" % i, (group, port))
            send_ticks, ticks = ticks, 0
            for _ in range(count):
                await rx.recv()
            recv_ticks = ticks
            stop = True
            await beat
        return send_ticks, recv_ticks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rcvbuf may be capped
        send_ticks, recv_ticks = asyncio.run(main())
    assert send_ticks >= count // me.aio.YIELD_EVERY // 2
    assert recv_ticks >= count // me.aio.YIELD_EVERY // 2


def test_ipv6_send_without_route_names_the_route() -> None:
    def send() -> object:
        with me.McastTxSocket(V6, ["ff15::104"], iface="::1") as tx:
            tx.sendto(b"x", ("ff15::104", 9))
        return "sent"

    (outcome,) = _in_bare_netns(send)
    assert isinstance(outcome, me.MulticastOSError), outcome
    assert outcome.errno == errno.ENETUNREACH
    assert "no route for this group" in str(outcome)
    assert "ip -6 route add table local local ff00::/8 dev lo" in str(outcome)


def test_demo_here_fails_when_the_ipv6_half_fails() -> None:
    def demo() -> object:
        out = io.StringIO()
        return cli.main(["demo", "--here"], out), out.getvalue()

    (outcome,) = _in_bare_netns(demo)
    assert isinstance(outcome, tuple), outcome
    code, text = outcome
    assert "IPv4: received" in text
    assert code == 1 and "Demo failed" in text and "multicast works" not in text


@pytest.mark.parametrize("kwarg", ["enable_external_loopback", "blocking"])
def test_booleans_must_be_booleans(kwarg: str) -> None:
    with pytest.raises(TypeError, match=f"{kwarg} must be True or False, not str 'no'"):
        me.McastRxSocket(V4, ["239.1.1.1"], 5000, iface=LO, **{kwarg: "no"})  # type: ignore[arg-type]
    if kwarg == "enable_external_loopback":
        with pytest.raises(TypeError, match="must be True or False"):
            me.McastTxSocket(V4, ["239.1.1.1"], LO, enable_external_loopback="no")  # type: ignore[arg-type]


def test_rcvbuf_warning_points_at_the_callers_line(net: Net, port: int) -> None:
    rx = me.McastRxSocket(V4, ["239.105.0.1"], port, iface=LO, rcvbuf=2**30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rx.open()
    rx.close()
    assert caught and caught[0].filename == __file__


def test_drop_in_attributes_of_1_2_0_and_1_6_0(net: Net, port: int) -> None:
    with me.McastRxSocket(V4, ["239.106.0.1"], port, iface=LO) as rx:
        rx.timeout = 0.2
        assert rx.timeout == 0.2 and rx.recv() is None
        lo = rx.network_interfaces[0]  # (1.2.0's records, by interface IP)
        assert rx.iface_infos == {"127.0.0.1": LegacyIfaceInfo("127.0.0.1", "lo", lo.index)}
        assert not rx.is_source_specific
    with me.McastTxSocket(V6, ["ff15::106"], "::1") as tx6:
        assert isinstance(tx6.socket, socket.socket) and tx6.socket.fileno() == tx6.fileno()
        assert tx6.iface_info == LegacyIfaceInfo("::1", "lo", lo.index)
        assert tx6.mcast_ips_set == frozenset({"ff15::106"})
        name = tx6.getsockname()
        assert len(name) == 4 and name[0] == "::1"
    assert tx6.socket is None


def test_empty_lists_mean_any_source_and_no_groups_yet(net: Net, port: int) -> None:
    with me.McastRxSocket(V4, ["239.107.0.1"], port, iface=LO, source_ips=[], timeout=0.5) as rx:
        assert rx.source_ips is None and not rx.sources_by_group
    with me.McastRxSocket(V4, [], port, iface=LO, timeout=0.3) as rx:
        assert rx.filenos() == [] and rx.recv() is None
        rx.join_group("239.107.0.2")
        with sender(V4, "127.0.0.1", 1) as tx:
            tx.sendto(b"joined later", ("239.107.0.2", port))
        assert rx.recv() == b"joined later"


def test_seventh_positional_argument_is_1_6_timeout_when_not_a_bool(net: Net, port: int) -> None:
    rx = me.McastRxSocket(V4, ["239.108.0.1"], port, "127.0.0.1", None, None, 0.2)
    assert rx.timeout == 0.2 and rx.blocking
    assert me.McastRxSocket(V4, ["239.108.0.1"], port, LO, None, None, False).timeout == 0.0
    assert me.McastRxSocket(V4, ["239.108.0.1"], port, LO, timeout=3, blocking=None).timeout == 3.0


def test_error_types_1_2_0_users_catch() -> None:
    with pytest.raises(OverflowError):
        me.McastRxSocket(V4, ["239.1.1.1"], 70000, iface=LO)
    with pytest.raises(socket.gaierror):
        me.McastRxSocket(V4, ["ff15::1"], 5000, iface=LO)
    with pytest.raises(OSError, match="ttl 300 is out of range"):
        me.McastTxSocket(V4, ["239.1.1.1"], LO, ttl=300)
    assert me.get_default_gateway_iface_ip(12345) is None
    with pytest.raises(ValueError, match="'garbage' does not appear to be an IPv4 or IPv6 address"):
        me.validate_mcast_ip("garbage", V4)
    with pytest.raises(KeyError):
        LO.ip_addrs(99)
    assert me.find_interfaces(["lo", "lo"], [LO]) == [LO]


def test_tx_fifth_positional_argument_is_1_6_enable_external_loopback(net: Net) -> None:
    with me.McastTxSocket(V4, ["239.109.0.1"], net.a.host_if, 1, True) as tx:
        assert tx.enable_external_loopback
        assert tx.socket is not None
        assert tx.socket.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP) == 1
    with me.McastTxSocket(V4, ["239.109.0.1"], net.a.host_if, 1) as tx:
        assert tx.socket is not None
        assert tx.socket.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP) == 0
