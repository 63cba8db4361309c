"""Named interfaces that went away and came back (each test failed before its fix): open() and
join_group() find a named interface by name, never under the index it had (another interface may
have it by then); iface_ips leaves out one that is gone; and the pure-Python receive methods hand
a call they do not serve to the class's method with the arguments as given.

Live tests run in the session's private namespaces; every link deleted or made here is a veth of
the test's own (``own_peer``, or a ``testing.Peer`` made and closed here).
"""

from __future__ import annotations

import socket
from unittest import mock

import pytest
from helpers import V4, V6, Net
from test_rx_iface_failures import groups_for, recreate_with_index
from test_rx_regressions_links import bring_up
from wire import arrives

import multicast_expert as me
from multicast_expert import _platform, testing


def recreate_with_a_new_index(peer: testing.Peer) -> None:
    testing.ip(
        "link", "add", peer.host_if, "type", "veth", "peer", "name", peer.peer_if, "netns", str(peer.pid)
    )  # fmt: skip
    bring_up(peer)


def interfaces_joined(group: str) -> set[str]:
    """The interfaces the kernel lists ``group`` as joined on (/proc/net/igmp, igmp6)."""
    return {dev for dev, g in (_platform.HOST.memberships() or []) if g == group}


def gone_and_refreshed(rx: me.McastRxSocket, peer: testing.Peer) -> int:
    """Delete ``peer``'s link; refresh_interfaces() raises ENODEV (documented). Its old index."""
    index = socket.if_nametoindex(peer.host_if)
    testing.ip("link", "del", peer.host_if)
    with pytest.raises(me.MulticastOSError):
        rx.refresh_interfaces()
    return index


# ---- reopening after the named interface came back under a new index ------------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_reopen_after_a_gone_named_interface_came_back_under_a_new_index(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """named [a, x]; x deleted; refresh_interfaces() (ENODEV: x stays named); close(); x comes
    back (new index); open(). x exists again, yet open() fails "the interface no longer exists":
    open() joins with the index x had. refresh_interfaces() refuses a closed socket, so the socket
    can never be opened again."""
    group = groups_for(family, 61)
    rx = me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2)
    rx.open()
    try:
        gone_and_refreshed(rx, own_peer)
        rx.close()
        recreate_with_a_new_index(own_peer)
        rx.open()  # (before the fix: "Joining ... failed: the interface no longer exists")
        assert arrives(rx, own_peer, family, group, port)
    finally:
        if rx.is_opened:
            rx.close()


# ---- ... while a never-named interface took its old index: that one is never joined ----------------
@pytest.mark.parametrize("family", [V4, V6])
def test_reopen_never_joins_the_interface_that_took_a_gone_named_interfaces_index(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """Same, but z (never named) took x's old index before x came back. README: "another
    interface that takes a gone one's index is never joined". open() succeeds and the kernel lists
    the group joined on z (a report goes out there), while x (tied by name) gets nothing."""
    group = groups_for(family, 62)
    z = testing.Peer(230 + (family == V6))  # (far above own_peer's numbers)
    rx = me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2)
    try:
        rx.open()
        old = gone_and_refreshed(rx, own_peer)
        rx.close()
        testing.ip("link", "del", z.host_if)
        recreate_with_index(z, old)
        recreate_with_a_new_index(own_peer)
        rx.open()
        assert z.host_if not in interfaces_joined(group), f"joined on {interfaces_joined(group)}"
        assert arrives(rx, own_peer, family, group, port), f"nothing arrives on {own_peer.host_if}"
    finally:
        if rx.is_opened:
            rx.close()
        z.close()


@pytest.mark.parametrize("family", [V4, V6])
def test_join_group_never_joins_the_interface_that_took_a_gone_named_interfaces_index(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """The same through join_group() on the open socket: x gone (refresh raised), z takes x's
    index, x comes back; join_group(g) before the next refresh joins g on a and x, never on z."""
    group, more = groups_for(family, 63), groups_for(family, 64)
    z = testing.Peer(232 + (family == V6))
    rx = me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2)
    try:
        rx.open()
        old = gone_and_refreshed(rx, own_peer)
        testing.ip("link", "del", z.host_if)
        recreate_with_index(z, old)
        recreate_with_a_new_index(own_peer)
        rx.join_group(more)  # (x is found by name where it is now)
        assert interfaces_joined(more) == {net.a.host_if, own_peer.host_if}, interfaces_joined(more)
        assert arrives(rx, own_peer, family, more, port)
    finally:
        if rx.is_opened:
            rx.close()
        z.close()


# ---- iface_ips leaves out a named interface that is gone ---------------------------------------------
@pytest.mark.parametrize("family", [V4, V6])
def test_iface_ips_does_not_list_a_gone_named_interface(
    net: Net, own_peer: testing.Peer, port: int, family: int
) -> None:
    """iface_ips: "Address of each interface listened on that has one of the family now"
    (Membership.iface_ips: one "gone for the moment has none to list"). While x is gone it still
    lists x's old address (the kept record's)."""
    group = groups_for(family, 65)
    with me.McastRxSocket(family, [group], port, ifaces=[net.a.host_if, own_peer.host_if], timeout=0.2) as rx:
        gone_and_refreshed(rx, own_peer)
        assert rx.iface_ips == [net.a.host_ip4 if family == V4 else net.a.host_ip6]


# ---- the pure-Python receive methods hand calls on as given ------------------------------------------
def test_recv_packet_with_a_flags_keyword_fails_as_the_method_does(net: Net, port: int) -> None:
    """recv_packet has no flags. The class method and the C method say "got an unexpected keyword
    argument 'flags'"; the pure-Python closure (MULTICAST_EXPERT_PURE_PYTHON=1) forwards it
    positionally: "takes from 1 to 2 positional arguments but 3 were given" (none were given)."""
    with me.McastRxSocket(V4, ["239.211.9.1"], port, ifaces=[net.a.host_if], timeout=0.01) as rx:
        with pytest.raises(TypeError, match="unexpected keyword argument 'flags'"):
            rx.recv_packet(flags=0)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="unexpected keyword argument 'flags'"):
            rx.recv_packet(bufsize=10, flags=0)  # type: ignore[call-arg]


def test_a_class_patched_after_open_gets_the_callers_arguments(net: Net, port: int) -> None:
    """A class patched after open is called "instead" (README/install docstring); with the C
    methods it gets the caller's arguments as given. The pure-Python closures pass their own
    defaults (call(65535), call(4096, 0)) and turn a flags keyword into a positional argument."""
    with me.McastRxSocket(V4, ["239.211.9.2"], port, ifaces=[net.a.host_if], timeout=0.01) as rx:
        with mock.patch.object(me.McastRxSocket, "recv_packet") as patched:
            rx.recv_packet()
            rx.recv_packet(flags=3)  # type: ignore[call-arg]
        assert patched.call_args_list == [mock.call(), mock.call(flags=3)]
        with mock.patch.object(me.McastRxSocket, "recvfrom") as patched:
            rx.recvfrom()
        assert patched.call_args_list == [mock.call()]
