"""Sending: interface choice, default route, destinations, source port, options (live)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable

import pytest
from helpers import V4, Net, sender

import multicast_expert as me
from multicast_expert import testing


def test_default_interface_tx_uses_default_route(net: Net, port: int) -> None:
    assert me.get_default_gateway_iface_ip_v4() == net.a.host_ip4
    assert me.get_default_gateway_iface_ip_v6() == net.a.host_ip6
    assert me.get_default_gateway_iface_ip(V4) == net.a.host_ip4
    received: list[bytes] = []

    def listen_in_peer() -> Callable[[], None]:
        rx = me.McastRxSocket(V4, ["239.5.0.1"], port, iface=net.a.peer_if, timeout=2)
        rx.open()

        def finish() -> None:
            got = rx.recv()
            received.append(got or b"")
            rx.close()

        return finish

    finish = net.a.run(listen_in_peer)
    with me.McastTxSocket(V4, ["239.5.0.1"]) as tx:
        assert tx.network_interface.machine_name == net.a.host_if
        tx.sendto(b"via default", ("239.5.0.1", port))
    net.a.run(finish)
    assert received == [b"via default"]


def test_no_default_gateway_is_a_clear_error(net: Net) -> None:
    """In a namespace of its own with no default route (the shared one keeps its route)."""
    outcome: list[object] = []

    def body() -> None:
        testing.enter_new_netns_on_this_thread()
        try:
            outcome.append(me.get_default_gateway_iface_ip_v4())
            with pytest.raises(me.MulticastExpertError, match="unable to determine the default gateway"):
                me.McastTxSocket(V4, ["239.5.0.2"])
            outcome.append("raised")
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert outcome == [None, "raised"]
    assert me.get_default_gateway_iface_ip_v4() == net.a.host_ip4  # the shared namespace's route


def test_sendto_wrong_group(net: Net) -> None:
    with (
        me.McastTxSocket(V4, ["239.8.0.1"], "127.0.0.1") as tx,
        pytest.raises(me.MulticastExpertError, match="was not one of the addresses given"),
    ):
        tx.sendto(b"x", ("239.8.0.2", 1234))


def test_plain_sender_helper_reaches_lo(net: Net, port: int) -> None:
    """The bare-socket sender used by other tests works (so their negative results mean something)."""
    with me.McastRxSocket(V4, ["239.12.0.1"], port, iface_ip="127.0.0.1", timeout=2) as rx:
        with sender(V4, "127.0.0.1", 1) as s:
            s.sendto(b"bare", ("239.12.0.1", port))
        assert rx.recv() == b"bare"


def test_source_port_and_setsockopt(net: Net, port: int) -> None:
    with me.McastTxSocket(V4, [ipaddress.IPv4Address("239.62.0.1")], iface="lo", source_port=port + 1) as tx:
        assert tx.getsockname() == ("127.0.0.1", port + 1)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 7)
        assert tx._sock is not None
        assert tx._sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 7
        with me.McastRxSocket(V4, ["239.62.0.1", "239.62.0.2"], port, iface="lo", timeout=1) as rx:
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 50000)
            assert {s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) for s in rx.sockets} == {100000}
            tx.sendto(b"fixed port", ("239.62.0.1", port))
            assert rx.recvfrom() == (b"fixed port", ("127.0.0.1", port + 1))
    with pytest.raises(me.MulticastExpertError, match="open"):
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 7)
