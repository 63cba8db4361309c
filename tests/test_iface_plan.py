"""The refresh plan's rules on interface records alone (no sockets): what is left, kept, joined
and kept named while gone. The live tests (test_rx_iface_failures, test_changing_networks) check
the same rules on real links."""

from __future__ import annotations

import ipaddress

from multicast_expert import IfaceInfo
from multicast_expert._iface_plan import in_order, plan


def iface(name: str, index: int, mac: str = "02:00:00:00:00:01", ip: str | None = "198.18.0.1") -> IfaceInfo:
    addrs = (ipaddress.IPv4Interface(ip + "/24"),) if ip else ()
    return IfaceInfo(name, index, mac, addrs, ())


A, X = iface("a", 2), iface("x", 4)


def test_nothing_changed_keeps_everything() -> None:
    p = plan([A, X], {2: A, 4: X}, named=True, machine=[A, X], stale=set())
    assert (p.gone, p.kept, p.added, p.absent) == ([], [A, X], [], [])


def test_a_named_interface_gone_stays_named_and_is_left() -> None:
    p = plan([A, X], {2: A, 4: X}, named=True, machine=[A], stale=set())
    assert (p.gone, p.kept, p.added, p.absent) == ([4], [A], [], [X])


def test_another_interface_under_a_named_ones_index_is_never_joined() -> None:
    z = iface("z", 4, mac="02:00:00:00:00:99")
    p = plan([A, X], {2: A, 4: X}, named=True, machine=[A, z], stale=set())
    assert p.gone == [4] and z not in p.added and p.absent == [X]


def test_a_named_interface_back_under_a_new_index_is_joined_there() -> None:
    back = iface("x", 9, mac="02:00:00:00:00:42")
    p = plan([A, X], {2: A, 4: X}, named=True, machine=[A, back], stale=set())
    assert (p.gone, p.kept, p.added, p.absent) == ([4], [A], [back], [])


def test_a_named_interface_absent_before_is_joined_when_back() -> None:
    back = iface("x", 4, mac="02:00:00:00:00:42")
    # (after a refresh that found x gone: still listed, no longer joined)
    p = plan([A, X], {2: A}, named=True, machine=[A, back], stale=set())
    assert (p.gone, p.kept, p.added, p.absent) == ([], [A], [back], [])


def test_same_index_and_name_but_a_new_record_is_joined_again() -> None:
    again = iface("x", 4, mac="02:00:00:00:00:77")
    p = plan([A, X], {2: A, 4: X}, named=True, machine=[A, again], stale=set())
    assert (p.gone, p.kept, p.added) == ([4], [A], [again])


def test_memberships_lost_are_made_again_on_either_set() -> None:
    for named in (True, False):
        p = plan([A, X], {2: A, 4: X}, named=named, machine=[A, X], stale={2, 99})
        assert (p.gone, p.kept, p.added) == ([2], [X], [A])


def test_the_default_set_follows_the_machine_by_index() -> None:
    new = iface("n", 7)
    p = plan([A, X], {2: A, 4: X}, named=False, machine=[A, new], stale=set())
    assert (p.gone, p.kept, p.added, p.absent) == ([4], [A], [new], [])


def test_in_order_keeps_the_order_the_interfaces_were_named_in() -> None:
    b = iface("b", 3)
    assert [i.machine_name for i in in_order([X, A, b], [b, A, X])] == ["x", "a", "b"]
