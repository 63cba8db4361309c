"""Adversarial tests: the receive side when a second interface fails (bugs found by probing).

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


# ---- 1. a failed refresh_interfaces() on a named set drops the named interface for good ---------
@pytest.mark.parametrize("family", [V4, V6])
def test_named_interface_survives_a_refresh_while_it_is_gone(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """``ifaces=[a, x]``; x is deleted; refresh_interfaces() is called (it may raise: x is gone).
    Named interfaces "stay the same ones", and an interface "that went away and came back under the
    same index is joined again" by refresh_interfaces(). Today the failed refresh has already taken
    x out of the socket's interface list, so x is never joined again (and a reopen would silently
    open on a only)."""
    group = groups_for(family, 1)
    rx = me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2)
    with rx:
        assert arrives(rx, own_peer, family, group, port)
        index = socket.if_nametoindex(own_peer.host_if)
        testing.ip("link", "del", own_peer.host_if)
        with contextlib.suppress(me.MulticastExpertError):
            rx.refresh_interfaces()  # x is gone: an error here is fair
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
    must fail as any open of a named set with a vanished interface does ("the interface no longer
    exists"); today it succeeds, listening on a alone."""
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


# ---- 2. the limit named in a refused source-specific join ---------------------------------------
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


def test_ssm_join_refused_by_igmp_max_memberships_names_that_limit(net: Net, port: int) -> None:
    """net.ipv4.igmp_max_memberships=0 (per namespace): the any-source open names it, but a
    source-specific one (MCAST_JOIN_SOURCE_GROUP fails the same way, ENOBUFS from the membership
    count, on its first source) tells the user to raise net.ipv4.igmp_max_msf, which cannot help."""
    before = open_fds()
    with sysctl_set("net.ipv4.igmp_max_memberships", "0"):
        rx = me.McastRxSocket(V4, ["232.210.3.1"], port, ifaces=[net.a.host_if, net.b.host_if],
                              source_ips=[net.a.peer_ip4])  # fmt: skip
        with pytest.raises(me.MulticastExpertError) as err:
            rx.open()
    assert open_fds() == before
    assert "igmp_max_memberships" in str(err.value), str(err.value)


def test_ipv6_ssm_join_out_of_option_memory_names_optmem_max(net: Net, port: int) -> None:
    """net.core.optmem_max=0 (per namespace on Linux 6.9+): the any-source IPv6 open names
    optmem_max, but a source-specific one (ENOMEM from sock_kmalloc) names net.ipv6.mld_max_msf,
    which is about ENOBUFS after 64 sources, not memory (and is not even a per-namespace sysctl)."""
    before = open_fds()
    with sysctl_set("net.core.optmem_max", "0"):
        rx = me.McastRxSocket(V6, ["ff35::210:4"], port, ifaces=[net.a.host_if, net.b.host_if],
                              source_ips=[net.a.peer_ip6])  # fmt: skip
        with pytest.raises(me.MulticastExpertError) as err:
            rx.open()
    assert open_fds() == before
    assert "optmem_max" in str(err.value), str(err.value)


# ---- 3. iface_ips raises once a named interface has lost its address ----------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_iface_ips_after_a_named_interface_lost_its_address(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """``ifaces=[a, x]``; x's addresses are flushed; refresh_interfaces() succeeds (it keeps x, as
    named interfaces stay, and x still receives: memberships are by index). Reading the property
    ``iface_ips`` then raises MulticastExpertError ("has no AF_INET address") instead of
    describing the socket."""
    group = groups_for(family, 5)
    with me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2) as rx:
        testing.ip("addr", "flush", "dev", own_peer.host_if)
        rx.refresh_interfaces()
        assert [i.machine_name for i in rx.network_interfaces] == [net.a.host_if, own_peer.host_if]
        ips = rx.iface_ips  # today: MulticastExpertError ("... has no AF_INET address")
        assert (net.a.host_ip4 if family == V4 else net.a.host_ip6) in ips


# ---- 4. a named interface's index taken by another interface --------------------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_named_socket_never_listens_on_an_interface_that_took_the_index(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """``ifaces=[a, x]``; x is deleted and another interface z (never named) is made with x's old
    index; refresh_interfaces(). Named interfaces "stay the same ones" and a socket gets "only
    datagrams that arrived on the interfaces you chose". Today refresh looks named interfaces up by
    index alone, swaps x for z and joins there: z is listed and its traffic is delivered."""
    group = groups_for(family, 6)
    other = testing.Peer(70 + (family == V6))
    try:
        rx = me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2)
        with rx:
            index = socket.if_nametoindex(own_peer.host_if)
            testing.ip("link", "del", own_peer.host_if)
            testing.ip("link", "del", other.host_if)  # z: the other peer's link, re-made under x's index
            recreate_with_index(other, index)
            with contextlib.suppress(me.MulticastExpertError):
                rx.refresh_interfaces()  # x is gone: an error here is fair
            names = [i.machine_name for i in rx.network_interfaces]
            assert other.host_if not in names, f"the socket now lists {names}"
            assert not arrives(rx, other, family, group, port, limit=1.0), (
                f"datagrams arriving on {other.host_if}, never named, are delivered"
            )
    finally:
        other.close()
