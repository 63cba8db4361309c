"""Regression tests, on the wire: IPv4 source-specific joins and source blocking go out on the
interface named, even when another interface holds the same address (item 15).

Two veth links of the test's own, each toward its own peer namespace, are given one and the same
IPv4 address (and nothing else of IPv4) on this side. IGMPv3 reports are captured at the far end
of each link (a packet socket inside each peer namespace, see ``wire.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import V4, Net
from wire import (
    ALLOW_NEW,
    BLOCK_OLD,
    CHANGE_TO_EXCLUDE,
    CHANGE_TO_INCLUDE,
    MODE_IS_EXCLUDE,
    MODE_IS_INCLUDE,
    Capture,
    GroupRecord,
    arrives,
    build_igmpv3_report,
    dropped_from,
    igmp_of_ipv4,
    mentions,
    parse_igmpv3_report,
)

import multicast_expert as me
from multicast_expert import interfaces, testing

#: The address both links hold on this side.
SHARED = "198.18.250.1"
#: A group joined (any-source) on the other link, to show that link's capture sees reports.
CONTROL = "239.212.9.9"


def second_source(peer: testing.Peer) -> str:
    return f"198.18.{peer.n}.3"


@pytest.fixture
def twins(own_peer: testing.Peer) -> Iterator[tuple[testing.Peer, testing.Peer]]:
    """Two peers whose links hold the same IPv4 address here (their only one); each peer has a
    second sender address (:func:`second_source`)."""
    other = testing.Peer(245)  # (far above the numbers own_peer hands out)
    try:
        for p in (own_peer, other):
            testing.ip("addr", "del", f"{p.host_ip4}/24", "dev", p.host_if)
            testing.ip("addr", "add", f"{SHARED}/32", "dev", p.host_if)
            testing.ip("route", "add", f"198.18.{p.n}.0/24", "dev", p.host_if, "src", SHARED)
            testing.ip("addr", "add", f"{second_source(p)}/24", "dev", p.peer_if, ns_pid=p.pid)
        interfaces.rescan_interfaces()
        yield own_peer, other
    finally:
        other.close()
        interfaces.rescan_interfaces()


def describe(records: list[GroupRecord]) -> str:
    return ", ".join(str(r) for r in records) or "none"


def test_parser_reads_rfc3376_records() -> None:
    """The capture's parser against a report built here (no network)."""
    records = [
        GroupRecord(ALLOW_NEW, "232.1.2.3", ("198.18.1.2", "198.18.1.3")),
        GroupRecord(CHANGE_TO_EXCLUDE, "239.1.1.1", ()),
        GroupRecord(BLOCK_OLD, "239.1.1.2", ("198.18.9.9",)),
    ]
    report = build_igmpv3_report(records)
    assert parse_igmpv3_report(report) == records
    ip_header = bytes([0x46, 0, 0, 24 + len(report)]) + bytes(5) + bytes([2]) + bytes(14)  # IHL 6
    assert igmp_of_ipv4(ip_header + report) == report
    assert mentions("232.1.2.3", "198.18.1.3")(records[0])
    assert not mentions("232.1.2.3", "198.18.1.4")(records[0])


@pytest.mark.parametrize("named_first", [True, False], ids=["named-first-link", "named-second-link"])
def test_ssm_join_goes_out_on_the_named_interface(
    net: Net, twins: tuple[testing.Peer, testing.Peer], port: int, named_first: bool
) -> None:
    """The report with the group and its source appears on the named link's wire and not on the
    other; data from the source arrives. Both links are named in turn: whichever of the two the
    kernel picks for an address, one of them shows the bug."""
    named, other = twins if named_first else twins[::-1]
    group, source = "232.212.0.1", named.peer_ip4
    with Capture(named) as on_named, Capture(other) as on_other:
        rx = me.McastRxSocket(V4, [group], port, iface=named.host_if, source_ips=[source], timeout=0.2)
        with rx, me.McastRxSocket(V4, [CONTROL], port, iface=other.host_if):
            reported = on_named.wait_for(mentions(group, source))
            assert on_other.wait_for(mentions(CONTROL)), "the other link's capture saw no report at all"
            stray = on_other.matching(mentions(group))
            arrived = arrives(rx, named, V4, group, port, src_ip=source)
        assert not on_named.problems and not on_other.problems, on_named.problems + on_other.problems
        assert reported and not stray, (
            f"reports for {group}: on the named link {named.host_if}: "
            f"{describe(on_named.matching(mentions(group)))}; "
            f"on the other link {other.host_if}: {describe(stray)}"
        )
        joins = on_named.matching(mentions(group, source))
        assert {r.type for r in joins} <= {MODE_IS_INCLUDE, CHANGE_TO_INCLUDE, ALLOW_NEW}, describe(joins)
        assert arrived, f"nothing from {source} arrived on {group} via {named.host_if}"


@pytest.mark.parametrize("named_first", [True, False], ids=["named-first-link", "named-second-link"])
def test_block_source_goes_out_on_the_named_interface(
    net: Net, twins: tuple[testing.Peer, testing.Peer], port: int, named_first: bool
) -> None:
    """block_source on an any-source group joined on a named link that shares its address: it
    succeeds, the BLOCK for that source appears on the named link's wire and not on the other,
    and the source is dropped while the group's other sender still arrives; unblocking undoes it."""
    named, other = twins if named_first else twins[::-1]
    group, stranger = "239.212.0.1", second_source(named)
    with Capture(named) as on_named, Capture(other) as on_other:
        rx = me.McastRxSocket(V4, [group], port, iface=named.host_if, timeout=0.2)
        with rx:
            assert arrives(rx, named, V4, group, port, src_ip=stranger)
            assert on_named.wait_for(mentions(group)), "the any-source join itself was not reported"
            try:
                rx.block_source(group, stranger)
                error = None
            except OSError as exc:  # today: EINVAL when the kernel picks the other link
                error = exc
            with me.McastRxSocket(V4, [CONTROL], port, iface=other.host_if):
                reported = on_named.wait_for(mentions(group, stranger))
                assert on_other.wait_for(mentions(CONTROL)), "the other link's capture saw no report at all"
            stray = on_other.matching(mentions(group))
            assert error is None, f"block_source({group}, {stranger}) on {named.host_if} raised {error!r}"
            assert reported and not stray, (
                f"reports for {group} with {stranger}: on the named link {named.host_if}: "
                f"{describe(on_named.matching(mentions(group, stranger)))}; "
                f"on the other link {other.host_if}: {describe(stray)}"
            )
            blocks = on_named.matching(mentions(group, stranger))
            assert {r.type for r in blocks} <= {MODE_IS_EXCLUDE, CHANGE_TO_EXCLUDE, BLOCK_OLD}, describe(
                blocks
            )
            assert dropped_from(rx, named, V4, group, port, stranger)
            rx.unblock_source(group, stranger)
            assert arrives(rx, named, V4, group, port, src_ip=stranger)
