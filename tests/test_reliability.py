"""Reliability: junk input (hypothesis), faults while open, threads, misuse, secure defaults, load."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import V4, V6, Net, open_fds, run_in_fresh_netns, send_from_peer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import multicast_expert as me
from multicast_expert import testing

ALLOWED = (me.MulticastExpertError, TypeError, ValueError)


junk_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "239.1.2.3",
            "ff15::1",
            "10.0.0.1",
            "2001:db8::5",
            "::",
            "0.0.0.0",
            "256.1.1.1",
            "239.1.2",
            "ff15::1%lo",
            "lo",
            "nosuch0",
            "127.0.0.1",
            "::1",
            "",
            " ",
            "239.1.2.3\x00",
        ]
    ),
    st.binary(max_size=8),
)


junk = st.one_of(junk_scalar, st.lists(junk_scalar, max_size=4), st.tuples(junk_scalar, junk_scalar))


RX_ARGS: dict[str, Any] = {
    "addr_family": V4,
    "mcast_ips": ["239.90.0.1"],
    "port": 30999,
    "iface_ip": "127.0.0.1",
    "source_ips": None,
    "timeout": 0.0,
    "rcvbuf": None,
}


TX_ARGS: dict[str, Any] = {
    "addr_family": V4,
    "mcast_ips": ["239.90.0.1"],
    "iface_ip": "127.0.0.1",
    "ttl": 1,
    "source_port": 0,
}


def mentions(message: str, value: object) -> bool:
    """Whether an error message names the bad value (or one of its elements)."""
    candidates: list[object] = [value]
    if isinstance(value, (list, tuple)):
        candidates += list(value)
    for c in candidates:
        texts = {str(c), repr(c)}
        if isinstance(c, float) and math.isnan(c):
            texts.add("nan")
        if isinstance(c, str):
            texts.add(c.strip())
        if any(t and t in message for t in texts):
            return True
    return False


def check_call(fn: Callable[[], Any], bad: object) -> Any:
    try:
        return fn()
    except ALLOWED as exc:
        assert str(exc), "an error must say something"
        assert mentions(str(exc), bad) or isinstance(exc, me.MulticastExpertError), str(exc)
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(sorted(RX_ARGS)), value=junk)
def test_rx_constructor_with_junk(net: Net, which: str, value: object) -> None:
    before = open_fds()
    args: dict[str, Any] = {**RX_ARGS, which: value}
    rx = check_call(lambda: me.McastRxSocket(**args), value)
    if rx is not None:
        rx.settimeout(0)  # a junk timeout may have been valid but long
        try:
            with rx:
                rx.recvfrom()
                rx.recv_packet()
        except ALLOWED as exc:
            assert str(exc)
    assert open_fds() == before


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(sorted(TX_ARGS)), value=junk)
def test_tx_constructor_with_junk(net: Net, which: str, value: object) -> None:
    before = open_fds()
    args: dict[str, Any] = {**TX_ARGS, which: value}
    tx = check_call(lambda: me.McastTxSocket(**args), value)
    if tx is not None:
        try:
            with tx:
                tx.sendto(b"x", ("239.90.0.1", 30999))
        except ALLOWED as exc:
            assert str(exc)
    assert open_fds() == before


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(
        [
            "recvfrom",
            "recv",
            "recv_packet",
            "settimeout",
            "join_group",
            "leave_group",
            "block_source",
            "unblock_source",
            "setsockopt",
        ]
    ),
    a=junk,
    b=junk,
    opened=st.booleans(),
)
def test_rx_methods_with_junk(net: Net, method: str, a: object, b: object, opened: bool) -> None:
    before = open_fds()
    rx = me.McastRxSocket(V4, ["239.90.0.2"], 30998, iface_ip="127.0.0.1", timeout=0)
    calls: dict[str, Callable[[], object]] = {
        "recvfrom": lambda: rx.recvfrom(a, b),  # type: ignore[arg-type]
        "recv": lambda: rx.recv(a),  # type: ignore[arg-type]
        "recv_packet": lambda: rx.recv_packet(a),  # type: ignore[arg-type]
        "settimeout": lambda: rx.settimeout(a),  # type: ignore[arg-type]
        "join_group": lambda: rx.join_group(a, b),  # type: ignore[arg-type]
        "leave_group": lambda: rx.leave_group(a),  # type: ignore[arg-type]
        "block_source": lambda: rx.block_source(a, b),  # type: ignore[arg-type]
        "unblock_source": lambda: rx.unblock_source(a, b),  # type: ignore[arg-type]
        "setsockopt": lambda: rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a),  # type: ignore[arg-type]
    }
    if opened:
        rx.open()
    try:
        calls[method]()
    except (*ALLOWED, OSError, OverflowError) as exc:
        # OverflowError/OSError may only come from passing junk straight to the OS call
        # (recv flags/bufsize, setsockopt value), as with a plain socket.
        if isinstance(exc, (OSError, OverflowError)) and not isinstance(exc, me.MulticastExpertError):
            assert method in ("recvfrom", "recv", "setsockopt"), f"{method}: {exc!r}"
    finally:
        if rx.is_opened:
            rx.close()
    assert open_fds() == before


def test_tx_sendto_junk(net: Net) -> None:
    with me.McastTxSocket(V4, ["239.90.0.3"], "127.0.0.1") as tx:
        for bad in [
            ("239.90.0.3", 70000),
            ("239.90.0.3", -1),
            ("10.0.0.1", 5),
            ("ff15::1", 5),
            "239.90.0.3",
            None,
        ]:
            with pytest.raises(ALLOWED) as ei:
                tx.sendto(b"x", bad)  # type: ignore[arg-type]
            assert mentions(str(ei.value), bad), str(ei.value)


def test_use_after_close_and_never_opened(net: Net) -> None:
    before = open_fds()
    rx = me.McastRxSocket(V4, ["239.91.0.1", "239.91.0.2"], 31000, iface_ip="127.0.0.1")
    tx = me.McastTxSocket(V4, ["239.91.0.1"], "127.0.0.1")
    for _ in range(2):  # never opened, then opened and closed
        for call in (rx.recvfrom, rx.recv, rx.recv_packet, lambda: rx.join_group("239.91.0.3")):
            with pytest.raises(me.MulticastExpertError, match="closed"):
                call()
        with pytest.raises(me.MulticastExpertError, match="closed"):
            tx.sendto(b"x", ("239.91.0.1", 31000))
        with pytest.raises(me.MulticastExpertError, match="already closed"):
            rx.close()
        with pytest.raises(me.MulticastExpertError, match="already closed"):
            tx.close()
        assert rx.filenos() == [] and rx.fileno() == -1 and tx.fileno() == -1
        with rx, tx:
            with pytest.raises(me.MulticastExpertError, match="already open"):
                rx.open()
            with pytest.raises(me.MulticastExpertError, match="already open"):
                tx.open()
    assert open_fds() == before


@pytest.mark.parametrize("groups", [["239.92.0.1"], ["239.92.0.1", "239.92.0.2"]])
def test_close_from_another_thread_wakes_a_blocked_receiver(net: Net, groups: list[str]) -> None:
    rx = me.McastRxSocket(V4, groups, 31001, iface_ip="127.0.0.1")  # blocking, no timeout
    rx.open()
    outcome: list[BaseException | object] = []

    def receive() -> None:
        try:
            outcome.append(rx.recvfrom())
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=receive)
    t.start()
    time.sleep(0.2)
    rx.close()
    t.join(5)
    assert not t.is_alive(), "receiver hung after close()"
    assert len(outcome) == 1 and isinstance(outcome[0], me.MulticastExpertError)
    assert "closed" in str(outcome[0])


def test_two_threads_receiving_share_without_loss(net: Net, port: int) -> None:
    groups = [f"239.93.0.{i}" for i in range(1, 5)]
    got: list[bytes] = []
    lock = threading.Lock()
    with me.McastRxSocket(V4, groups, port, iface_ip="127.0.0.1", timeout=0.5) as rx:

        def worker() -> None:
            while (data := rx.recv()) is not None:
                with lock:
                    got.append(data)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        with me.McastTxSocket(V4, groups, "127.0.0.1") as tx:
            for i in range(2000):
                tx.sendto(b"%d" % i, (groups[i % 4], port))
                if i % 100 == 0:
                    time.sleep(0.001)
        for t in threads:
            t.join(10)
            assert not t.is_alive()
    assert sorted(int(x) for x in got) == list(range(2000))


# ---- secure defaults ------------------------------------------------------------------------------
def test_ttl_and_hop_limit_default_to_one(net: Net) -> None:
    with (
        me.McastTxSocket(V4, ["239.94.0.1"], "127.0.0.1") as tx4,
        me.McastTxSocket(V6, ["ff15::94"], "::1") as tx6,
    ):
        assert tx4._sock is not None and tx6._sock is not None
        assert tx4._sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 1
        assert tx6._sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS) == 1


@pytest.mark.parametrize("server_first", [True, False])
@pytest.mark.parametrize("family", [V4, V6])
def test_unicast_server_sharing_the_port_keeps_its_traffic(
    net: Net, port: int, server_first: bool, family: int
) -> None:
    group = "239.95.0.1" if family == V4 else "ff15::95"
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.settimeout(0.5)
    rx = me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, "lo"], timeout=0.5)
    if not server_first:
        rx.open()
    server.bind(("0.0.0.0" if family == V4 else "::", port))
    if server_first:
        rx.open()
    with server, contextlib.closing(rx):
        host = net.a.host_ip4 if family == V4 else net.a.host_ip6
        send_from_peer(net.a, family, host, port, [b"u%d" % i for i in range(20)])
        received = []
        while True:
            try:
                received.append(server.recv(100))
            except TimeoutError:
                break
        assert received == [b"u%d" % i for i in range(20)]
        send_from_peer(net.a, family, group, port, [b"m"])
        assert rx.recv() == b"m"
        assert rx.recv() is None


def test_ssm_socket_drops_unlisted_source_despite_any_source_socket(net: Net, port: int) -> None:
    group = "232.96.0.1"
    with (
        me.McastRxSocket(V4, [group], port, iface=net.a.host_if, timeout=0.3) as any_source,
        me.McastRxSocket(
            V4, [group], port, iface=net.a.host_if, source_ips=[net.a.peer_ip4], timeout=0.3
        ) as ssm,
    ):
        send_from_peer(net.a, V4, group, port, [b"stranger"], src_ip="198.18.1.3")
        assert any_source.recv() == b"stranger"
        assert ssm.recv() is None
        send_from_peer(net.a, V4, group, port, [b"listed"])
        assert ssm.recv() == b"listed"


# ---- faults while open ---------------------------------------------------------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_interface_down_and_up(own_peer: testing.Peer, port: int, family: int) -> None:
    group = "239.97.0.1" if family == V4 else "ff15::97"
    with me.McastRxSocket(family, [group], port, iface=own_peer.host_if, timeout=0.3) as rx:
        send_from_peer(own_peer, family, group, port, [b"before"])
        assert rx.recv() == b"before"
        testing.ip("link", "set", own_peer.host_if, "down")
        send_from_peer(own_peer, family, group, port, [b"while down"])
        assert rx.recv() is None  # nothing raises; nothing arrives
        testing.ip("link", "set", own_peer.host_if, "up")
        testing.wait_for_mcast_route(own_peer.host_if)
        testing.wait_for_mcast_route(own_peer.peer_if, ns_pid=own_peer.pid)
        deadline = time.monotonic() + 5
        got = None
        while got is None and time.monotonic() < deadline:  # carrier and addresses come back
            with contextlib.suppress(OSError):  # the route may still be coming back
                send_from_peer(own_peer, family, group, port, [b"after"])
            got = rx.recv()
        assert got == b"after"


def test_address_change(own_peer: testing.Peer, port: int) -> None:
    group = "239.97.0.2"
    with (
        me.McastRxSocket(V4, [group], port, iface=own_peer.host_if, timeout=0.3) as rx,
        me.McastTxSocket(V4, [group], iface=own_peer.host_if, enable_external_loopback=True) as tx,
    ):
        testing.ip("addr", "del", f"{own_peer.host_ip4}/24", "dev", own_peer.host_if)
        testing.ip("addr", "add", f"198.18.{own_peer.n}.99/24", "dev", own_peer.host_if)
        send_from_peer(own_peer, V4, group, port, [b"new address"])
        assert rx.recv() == b"new address"  # memberships are by interface index
        with pytest.raises(OSError, match="no longer has the address") as ei:  # bound to the old address
            tx.sendto(b"x", (group, port))
        print("address change: sendto raised", repr(ei.value))
    me.scan_interfaces()
    with me.McastTxSocket(V4, [group], iface=own_peer.host_if) as tx2:
        assert tx2.getsockname()[0] == f"198.18.{own_peer.n}.99"


def test_veth_peer_disappears(own_peer: testing.Peer, port: int) -> None:
    before = open_fds()
    rx = me.McastRxSocket(V4, ["239.97.0.3"], port, iface=own_peer.host_if, timeout=0.2)
    tx = me.McastTxSocket(V4, ["239.97.0.3"], iface=own_peer.host_if)
    with rx, tx:
        testing.ip("link", "del", own_peer.peer_if, ns_pid=own_peer.pid)  # takes our end with it
        assert rx.recv() is None
        with pytest.raises(OSError, match="reopen the socket") as ei:
            tx.sendto(b"x", ("239.97.0.3", port))
        print("interface gone: sendto raised", repr(ei.value))
    assert open_fds() == before
    with pytest.raises(me.MulticastExpertError, match="interface") as ei2:
        rx.open()
    print("interface gone: reopen raised", repr(ei2.value))
    assert open_fds() == before


def test_load_script_million_datagrams(net: Net) -> None:
    """benchmarks/load.py: 1,000,000 datagrams on 16 groups; no corruption, no mixing, flat memory."""

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "load.py"
    res = run_in_fresh_netns([str(script), "--json"], timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    result = json.loads(res.stdout)
    print(result)
    assert result["sent"] == 1_000_000
    assert result["corrupted"] == 0 and result["cross_group"] == 0
    assert result["delivered"] > 0 and result["groups_delivering"] == 16
    assert result["delivered"] + result["lost"] + result["send_errors"] == 1_000_000
    assert result["rss_growth_kib"] < 4096  # memory stays flat
