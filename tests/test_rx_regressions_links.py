"""Regression tests: membership when interfaces vanish or come back (items 9, 10, 11).

Live, in the session's private namespaces. Every link deleted, re-created or moved here is a veth
of the test's own (``own_peer``); the shared ``net`` is only sent from.
"""

from __future__ import annotations

import contextlib
import os
import socket
import warnings
from collections.abc import Iterator

import pytest
from helpers import V4, V6, Net
from wire import arrives, dropped_from

import multicast_expert as me
from multicast_expert import testing

#: A second sender address on peer ``a`` (conftest adds it).
STRANGER: dict[int, str] = {V4: "198.18.1.3", V6: "2001:db8:1::3"}


def groups_for(family: int, n: int) -> list[str]:
    return [f"239.200.{n}.{i}" for i in (1, 2)] if family == V4 else [f"ff15::200:{n}:{i}" for i in (1, 2)]


@contextlib.contextmanager
def quiet_skips() -> Iterator[None]:
    """Opening or following on the default set warns about interfaces it skips; not the point here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# ---- item 9: a failed block_source changes nothing ---------------------------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_failed_block_source_leaves_the_socket_unchanged(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """``ifaces=[a, x]``, x deleted: block_source fails (x is named) and nothing changes: the
    source still arrives on a, unblock_source says it is not blocked, and a retry fails the same
    way as the first attempt (today: the source is blocked on a, and the retry gives EADDRNOTAVAIL)."""
    group = groups_for(family, 9)[0]
    stranger = STRANGER[family]
    rx = me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2)
    with rx:
        assert arrives(rx, net.a, family, group, port, src_ip=stranger)
        own_peer.close()  # x is gone
        with pytest.raises(OSError) as first:
            rx.block_source(group, stranger)
        assert arrives(rx, net.a, family, group, port, src_ip=stranger), (
            f"block_source raised {first.value!r}, yet {stranger} is now blocked on {net.a.host_if}"
        )
        with pytest.raises(me.MulticastExpertError, match="not blocked"):
            rx.unblock_source(group, stranger)
        with pytest.raises(OSError) as second:
            rx.block_source(group, stranger)
        assert (second.value.errno, type(second.value)) == (first.value.errno, type(first.value)), (
            f"the retry failed differently: first {first.value!r}, then {second.value!r}"
        )
        assert arrives(rx, net.a, family, group, port, src_ip=stranger)


def test_failed_unblock_source_leaves_the_socket_unchanged(
    net: Net, own_peer: testing.Peer, port: int
) -> None:
    """Kept apart, the mirror: blocked on [a, x], x deleted, unblock_source fails: the source stays
    blocked on a, and block_source still says it is already blocked."""
    family, group, stranger = V4, groups_for(V4, 10)[0], STRANGER[V4]
    rx = me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2)
    with rx:
        rx.block_source(group, stranger)
        assert dropped_from(rx, net.a, family, group, port, stranger)
        own_peer.close()
        try:
            rx.unblock_source(group, stranger)
        except OSError as exc:  # failed: then nothing may have changed
            assert dropped_from(rx, net.a, family, group, port, stranger), (
                f"unblock_source raised {exc!r}, yet {stranger} is unblocked on {net.a.host_if}"
            )
            with pytest.raises(me.MulticastExpertError, match="already blocked"):
                rx.block_source(group, stranger)
        else:  # succeeded: then it is unblocked where it can be
            assert arrives(rx, net.a, family, group, port, src_ip=stranger)


# ---- item 10: an interface that comes back with the same index ------------------------------------
def bring_up(peer: testing.Peer) -> None:
    """Both ends of ``peer``'s link up, with their addresses and the peer's default routes."""
    testing.ip("link", "set", peer.host_if, "up")
    testing.ip("link", "set", peer.peer_if, "up", ns_pid=peer.pid)
    for dev, ip4, ip6, ns in (
        (peer.host_if, peer.host_ip4, peer.host_ip6, None),
        (peer.peer_if, peer.peer_ip4, peer.peer_ip6, peer.pid),
    ):
        testing.ip("addr", "replace", f"{ip4}/24", "dev", dev, ns_pid=ns)
        testing.ip("-6", "addr", "replace", f"{ip6}/64", "dev", dev, "nodad", ns_pid=ns)
    testing.ip("route", "replace", "default", "dev", peer.peer_if, ns_pid=peer.pid)
    testing.ip("-6", "route", "replace", "default", "dev", peer.peer_if, ns_pid=peer.pid)
    testing.wait_for_mcast_route(peer.host_if)
    testing.wait_for_mcast_route(peer.peer_if, ns_pid=peer.pid)


def recreate_with_same_index(peer: testing.Peer) -> None:
    index = socket.if_nametoindex(peer.host_if)
    testing.ip("link", "del", peer.host_if)  # (takes the peer's end with it)
    testing.ip(
        "link", "add", peer.host_if, "index", str(index), "type", "veth",
        "peer", "name", peer.peer_if, "netns", str(peer.pid),
    )  # fmt: skip
    bring_up(peer)
    assert socket.if_nametoindex(peer.host_if) == index


def move_out_and_back(peer: testing.Peer) -> None:
    index = socket.if_nametoindex(peer.host_if)
    testing.ip("link", "set", peer.host_if, "netns", str(peer.pid))
    testing.ip("link", "set", peer.host_if, "netns", str(os.getpid()), ns_pid=peer.pid)
    bring_up(peer)
    assert socket.if_nametoindex(peer.host_if) == index, "the link did not come back with its index"


def assert_link_works(peer: testing.Peer, family: int, port: int) -> None:
    """The test's own check that the link that came back carries multicast: a fresh socket on it
    receives. (Another group than the one under test: a join of that one would reach the stale
    socket too.)"""
    control_group = groups_for(family, 19)[1]
    with me.McastRxSocket(family, [control_group], port, iface=peer.host_if, timeout=0.2) as control:
        assert arrives(control, peer, family, control_group, port), "the re-made link itself does not work"


@pytest.mark.parametrize(
    ("how", "family", "follow"),
    [
        ("recreate", V4, False),
        ("recreate", V6, False),
        ("recreate", V4, True),
        ("move", V4, False),  # kept apart: moved to another namespace and back
        ("move", V6, True),
    ],
)
def test_interface_back_with_the_same_index_receives_again(
    net: Net, own_peer: testing.Peer, port: int, how: str, family: int, follow: bool
) -> None:
    """The default set; the link goes and comes back with the same index while no receive runs.
    After refresh_interfaces() (or, following, on the next receive), datagrams arrive again."""
    group = groups_for(family, 11)[0]
    with quiet_skips():
        rx = me.McastRxSocket(family, [group], port, follow_interfaces=follow, timeout=0.2)
        rx.open()
    with contextlib.closing(rx):
        assert own_peer.host_if in {i.machine_name for i in rx.network_interfaces}
        assert arrives(rx, own_peer, family, group, port)
        (recreate_with_same_index if how == "recreate" else move_out_and_back)(own_peer)
        if not follow:
            with quiet_skips():
                rx.refresh_interfaces()
        with quiet_skips():
            back = arrives(rx, own_peer, family, group, port)
        names = {i.machine_name for i in rx.network_interfaces}
        assert back, (
            f"nothing arrives on {own_peer.host_if} after it came back (listed: {own_peer.host_if in names})"
        )
        assert arrives(rx, net.a, family, group, port)  # the others still work


def test_named_interface_back_with_the_same_index_receives_after_refresh(
    own_peer: testing.Peer, port: int
) -> None:
    """Kept apart (assumed: a named interface that comes back is the same one): after
    refresh_interfaces() datagrams arrive on it again."""
    group = groups_for(V4, 12)[0]
    with me.McastRxSocket(V4, [group], port, iface=own_peer.host_if, timeout=0.2) as rx:
        assert arrives(rx, own_peer, V4, group, port)
        recreate_with_same_index(own_peer)
        rx.refresh_interfaces()
        assert [i.machine_name for i in rx.network_interfaces] == [own_peer.host_if]
        assert arrives(rx, own_peer, V4, group, port), (
            f"nothing arrives on {own_peer.host_if} after it came back"
        )


# ---- item 11: live membership on a following socket after an unplug, before any receive ----------
def following_socket(family: int, groups: list[str], port: int) -> me.McastRxSocket:
    with quiet_skips():
        rx = me.McastRxSocket(family, groups, port, follow_interfaces=True, timeout=0.2)
        rx.open()
    return rx


@pytest.mark.parametrize("family", [V4, V6])
def test_join_group_after_an_unplug_skips_the_vanished_interface(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    first, second = groups_for(family, 13)
    rx = following_socket(family, [first], port)
    with contextlib.closing(rx):
        assert own_peer.host_if in {i.machine_name for i in rx.network_interfaces}
        own_peer.close()  # unplugged; no receive has run since
        with quiet_skips():
            rx.join_group(second)  # today: "the interface no longer exists"
        assert second in rx.mcast_ips
        assert arrives(rx, net.a, family, second, port)
        assert arrives(rx, net.b, family, first, port)


@pytest.mark.parametrize("family", [V4, V6])
def test_block_source_after_an_unplug_skips_the_vanished_interface(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    group = groups_for(family, 14)[0]
    stranger = STRANGER[family]
    rx = following_socket(family, [group], port)
    with contextlib.closing(rx):
        own_peer.close()
        with quiet_skips():
            rx.block_source(group, stranger)  # today: "the interface no longer exists"
        assert dropped_from(rx, net.a, family, group, port, stranger)
        rx.unblock_source(group, stranger)
        assert arrives(rx, net.a, family, group, port, src_ip=stranger)


def test_unblock_source_after_an_unplug_skips_the_vanished_interface(
    net: Net, own_peer: testing.Peer, port: int
) -> None:
    """Kept apart: blocked before the unplug, unblocked after it (before any receive)."""
    family, group, stranger = V4, groups_for(V4, 15)[0], STRANGER[V4]
    rx = following_socket(family, [group], port)
    with contextlib.closing(rx):
        rx.block_source(group, stranger)
        own_peer.close()
        with quiet_skips():
            rx.unblock_source(group, stranger)
        assert arrives(rx, net.a, family, group, port, src_ip=stranger)
