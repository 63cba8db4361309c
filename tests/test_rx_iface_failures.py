"""The receive side when a second interface fails (each test failed before its fix).

Live, in the session's private namespaces; every link deleted or re-made here is a veth of the
test's own (``own_peer``); the shared ``net`` is only sent from.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest
from helpers import V4, V6, Net, open_fds
from test_rx_regressions_links import bring_up
from wire import arrives

import multicast_expert as me
from multicast_expert import testing


def groups_for(family: int, n: int) -> str:
    return f"239.210.{n}.1" if family == V4 else f"ff15::210:{n}"


def recreate_with_index(peer: testing.Peer, index: int) -> None:
    testing.ip(
        "link", "add", peer.host_if, "index", str(index), "type", "veth",
        "peer", "name", peer.peer_if, "netns", str(peer.pid),
    )  # fmt: skip
    bring_up(peer)


# ---- a named interface that is gone stays named, and is joined when it is back ---------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_named_interface_survives_a_refresh_while_it_is_gone(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """``ifaces=[a, x]``; x is deleted: refresh_interfaces() raises ENODEV naming x, which stays
    one of the socket's interfaces; x is made again under the same index: the next refresh joins
    it there. (Before the fix the failed refresh dropped x for good.)"""
    group = groups_for(family, 1)
    rx = me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2)
    with rx:
        assert arrives(rx, own_peer, family, group, port)
        index = socket.if_nametoindex(own_peer.host_if)
        testing.ip("link", "del", own_peer.host_if)
        with pytest.raises(
            me.MulticastOSError, match=f"{own_peer.host_if} failed: the interface no longer exists"
        ):
            rx.refresh_interfaces()
        assert [i.machine_name for i in rx.network_interfaces] == [net.a.host_if, own_peer.host_if]
        assert arrives(rx, net.a, family, group, port)  # (the rest still applied)
        recreate_with_index(own_peer, index)
        rx.refresh_interfaces()
        names = [i.machine_name for i in rx.network_interfaces]
        assert arrives(rx, own_peer, family, group, port), (
            f"nothing arrives on {own_peer.host_if} after it came back under index {index} "
            f"(the socket now lists {names})"
        )
        assert arrives(rx, net.a, family, group, port)


def test_named_set_reopen_after_a_failed_refresh_is_still_all_or_nothing(
    net: Net, own_peer: testing.Peer, port: int
) -> None:
    """Same start (named [a, x], x deleted, refresh_interfaces() raises). Closing and opening again
    fails as any open of a named set with a vanished interface does ("the interface no longer
    exists"), all or nothing (before the fix it opened on a alone)."""
    group = groups_for(V4, 2)
    rx = me.McastRxSocket(V4, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2)
    rx.open()
    testing.ip("link", "del", own_peer.host_if)
    with contextlib.suppress(me.MulticastExpertError):
        rx.refresh_interfaces()
    rx.close()
    try:
        with pytest.raises(me.MulticastExpertError, match="no longer exists"):
            rx.open()
    finally:
        if rx.is_opened:
            rx.close()


# ---- the limit named in a refused source-specific join ----------------------------------------------
def _read_sysctl(name: str) -> str:
    return Path("/proc/sys/" + name.replace(".", "/")).read_text().strip()


@contextlib.contextmanager
def sysctl_set(name: str, value: str):  # type: ignore[no-untyped-def]
    old = _read_sysctl(name)
    testing.sysctl(name, value)
    try:
        yield
    finally:
        testing.sysctl(name, old)


@pytest.mark.parametrize(
    ("family", "sysctl", "group"),
    [(V4, "net.ipv4.igmp_max_memberships", "232.210.3.1"), (V6, "net.core.optmem_max", "ff35::210:4")],
)
def test_a_refused_source_specific_join_names_the_limit_of_the_membership(
    net: Net, port: int, family: int, sysctl: str, group: str
) -> None:
    """The first source's join makes the membership: refused by the membership count (IPv4,
    ENOBUFS; net.ipv4.igmp_max_memberships is per namespace) or by socket option memory (IPv6,
    ENOMEM; net.core.optmem_max, per namespace on Linux 6.9+), the error names that limit, not the
    per-group source limit (igmp_max_msf / mld_max_msf), which cannot help; no descriptor leaks."""
    before = open_fds()
    source = net.a.peer_ip4 if family == V4 else net.a.peer_ip6
    with sysctl_set(sysctl, "0"):
        rx = me.McastRxSocket(
            family, [group], port, ifaces=[net.a.host_if, net.b.host_if], source_ips=[source]
        )
        with pytest.raises(me.MulticastExpertError) as err:
            rx.open()
    assert open_fds() == before
    assert sysctl in str(err.value), str(err.value)


# ---- iface_ips once a named interface has lost its address ------------------------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_iface_ips_after_a_named_interface_lost_its_address(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """``ifaces=[a, x]``; x's addresses are flushed; refresh_interfaces() succeeds (it keeps x, as
    named interfaces stay, and x still receives: memberships are by index). ``iface_ips`` lists
    the addresses there are: a's (before the fix it raised "has no AF_INET address")."""
    group = groups_for(family, 5)
    with me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2) as rx:
        testing.ip("addr", "flush", "dev", own_peer.host_if)
        rx.refresh_interfaces()
        assert [i.machine_name for i in rx.network_interfaces] == [net.a.host_if, own_peer.host_if]
        assert rx.iface_ips == [net.a.host_ip4 if family == V4 else net.a.host_ip6]


# ---- a named interface's index taken by another interface -------------------------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_named_socket_never_listens_on_an_interface_that_took_the_index(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """``ifaces=[a, x]``; x is deleted and another interface z (never named) is made with x's old
    index; refresh_interfaces() raises for x and never joins z (before the fix it looked named
    interfaces up by index, listed z and delivered its traffic)."""
    group = groups_for(family, 6)
    other = testing.Peer(234 + (family == V6))  # (far above own_peer's numbers)
    try:
        rx = me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2)
        with rx:
            index = socket.if_nametoindex(own_peer.host_if)
            testing.ip("link", "del", own_peer.host_if)
            testing.ip("link", "del", other.host_if)  # z: the other peer's link, re-made under x's index
            recreate_with_index(other, index)
            with pytest.raises(me.MulticastOSError, match="no longer exists"):
                rx.refresh_interfaces()
            names = [i.machine_name for i in rx.network_interfaces]
            assert names == [net.a.host_if, own_peer.host_if], f"the socket now lists {names}"
            assert not arrives(rx, other, family, group, port, limit=1.0), (
                f"datagrams arriving on {other.host_if}, never named, are delivered"
            )
    finally:
        other.close()
