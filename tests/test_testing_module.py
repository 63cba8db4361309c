"""``multicast_expert.testing`` and its pytest fixture: private networks users can test in."""

from __future__ import annotations

import socket
import sys
import threading

import pytest
from helpers import V4, V6, Net

import multicast_expert as me
from multicast_expert import testing


@pytest.mark.parametrize("family", [V4, V6])
def test_mcast_network_fixture_gives_a_private_network_with_a_default_route(
    net: Net, mcast_network: testing.Network, family: int, port: int
) -> None:
    peer = mcast_network.default_peer
    names = sorted(i.machine_name for i in me.scan_interfaces())
    assert names == sorted(["lo", peer.host_if])  # nothing of the session's network, nor the machine's
    default = me.get_default_gateway_iface(family)
    assert default is not None and default.machine_name == peer.host_if
    group = "239.110.0.1" if family == V4 else "ff15::110"
    ready: list[bool] = []

    def receive() -> bytes | None:
        with me.McastRxSocket(family, [group], port, iface=peer.peer_if, timeout=3) as rx:
            ready.append(True)
            return rx.recv()

    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(peer.run(receive)))
    t.start()
    while not ready and t.is_alive():
        t.join(0.01)
    me.scan_interfaces()  # the peer thread's lookups scanned the peer's namespace
    with me.McastTxSocket(family, [group]) as tx:  # "the default interface": the peer's link
        tx.sendto(b"to the default peer", (group, port))
    t.join(5)
    assert got == [b"to the default peer"]


def test_private_network_returns_to_the_namespace_it_came_from(net: Net) -> None:
    before = {i.machine_name for i in me.scan_interfaces()}
    with testing.private_network(peers=2) as inner:
        inside = {i.machine_name for i in me.scan_interfaces()}
        assert inside == {"lo", inner.peers[0].host_if, inner.peers[1].host_if}
        s = socket.socket(V4, socket.SOCK_DGRAM)  # a socket opened inside stays inside
    with s:
        assert {i.machine_name for i in me.scan_interfaces()} == before
        assert net.a.host_if in before


def test_private_network_refuses_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="peers must be at least 1"), testing.private_network(peers=0):
        pass
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(testing.NetnsError, match="need Linux network namespaces"), testing.private_network():
        pass
