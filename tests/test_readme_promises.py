"""README promises an independent audit found unkept (each test failed before its fix): the limit
on blocked sources, a send socket reopened after its interface vanished, MulticastPortError
exported, and the asyncio send socket's ``socket``."""

from __future__ import annotations

import asyncio

import pytest
from helpers import V4, V6, Net, drain, send_from_peer

import multicast_expert as me
from multicast_expert import interfaces, testing


@pytest.mark.parametrize(("family", "limit"), [(V4, 10), (V6, 64)])
def test_blocking_past_the_per_socket_source_limit_names_the_sysctl_and_changes_nothing(
    net: Net, port: int, family: int, limit: int
) -> None:
    a = net.a
    if family == V4:
        srcs = [f"198.18.201.{i + 1}" for i in range(limit + 1)]
        group, iface, hint = "239.16.1.2", a.host_ip4, "net.ipv4.igmp_max_msf"
    else:
        srcs = [f"2001:db8:201::{i + 1:x}" for i in range(limit + 1)]
        group, iface, hint = "ff15::16:2", a.host_ip6, "net.ipv6.mld_max_msf"
    with me.McastRxSocket(family, [group], port, iface=iface, timeout=0.5) as rx:
        for s in srcs[:limit]:
            rx.block_source(group, s)
        with pytest.raises(me.MulticastOSError, match=hint):
            rx.block_source(group, srcs[limit])
        with pytest.raises(me.MulticastExpertError, match="is not blocked"):
            rx.unblock_source(group, srcs[limit])  # (the refused block left nothing behind)
        send_from_peer(a, family, group, port, [b"ok"])  # (from a source not blocked)
        assert [p.payload for p in drain(rx)] == [b"ok"]
        rx.unblock_source(group, srcs[0])
        rx.block_source(group, srcs[limit])  # room again


@pytest.mark.parametrize("family", [V4, V6])
def test_reopening_a_send_socket_whose_interface_vanished_says_it_no_longer_exists(
    net: Net, family: int
) -> None:
    peer = testing.Peer(236)  # (far above the numbers own_peer hands out)
    interfaces.rescan_interfaces()
    group = "239.9.1.11" if family == V4 else "ff15::9:11"
    try:
        tx = me.McastTxSocket(family, [group], iface=peer.host_if)
        tx.open()
    finally:
        peer.close()
    tx.close()
    try:
        with pytest.raises(me.MulticastOSError, match=f"on {peer.host_if}.*the interface no longer exists"):
            tx.open()
        assert not tx.is_opened
    finally:
        interfaces.rescan_interfaces()


def test_multicast_port_error_is_exported() -> None:
    assert me.MulticastPortError.__module__ == "multicast_expert._errors"
    assert "MulticastPortError" in me.__all__
    assert issubclass(me.MulticastPortError, (me.MulticastValueError, OverflowError))


def test_the_asyncio_send_socket_has_the_sync_ones_socket(net: Net) -> None:
    async def main() -> None:
        tx = me.AsyncMcastTxSocket(V4, ["239.9.1.12"], iface="lo")
        assert tx.socket is None
        async with tx:
            assert tx.socket is tx.sync_socket.socket is tx.sockets[0]
        assert tx.socket is None

    asyncio.run(main())
