"""What a rescan changes for a receiving socket's interfaces: which to leave, keep and join.

A pure computation over interface records (no sockets, no OS calls), so the rules stay in one
place: the default set follows the machine's listenable interfaces by index; a named set follows
its interfaces by name, whatever their index is now, so an interface that took a gone one's index
is never joined in its place, and a named interface that is gone stays named (``absent``) to be
joined when it is back. An interface whose record changed (it went away and came back under the
same index) or whose memberships the kernel lost is left and joined again.

Layering rule: uses interface records only; the membership applies the plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .interfaces import IfaceInfo


class IfacePlan(NamedTuple):
    #: The interfaces joined before, by index.
    current: dict[int, IfaceInfo]
    #: Indexes of ``current`` to leave (gone, changed, or memberships lost).
    gone: list[int]
    #: Interfaces staying joined (their current records).
    kept: list[IfaceInfo]
    #: Interfaces to join.
    added: list[IfaceInfo]
    #: Named interfaces not on the machine now (named sets only).
    absent: list[IfaceInfo]


def identity(iface: IfaceInfo | None) -> tuple[int, str, str | None] | None:
    """What must stay the same for an interface to be "the same one" (an index can come back)."""
    return None if iface is None else (iface.index, iface.machine_name, iface.link_layer_address)


def plan(
    ifaces: list[IfaceInfo],
    joined_as: dict[int, IfaceInfo],
    *,
    named: bool,
    machine: Iterable[IfaceInfo],
    stale: set[int],
) -> IfacePlan:
    """The plan for a socket on ``ifaces`` (``joined_as``: the record each joined interface had,
    by index). ``machine``: the interfaces there are now (a named set's candidates: all of them; the
    default set: the listenable ones). ``stale``: indexes whose memberships are known to be lost."""
    absent: list[IfaceInfo] = []
    if named:
        current = {i.index: i for i in ifaces if i.index in joined_as}
        by_name = {i.machine_name: i for i in machine}
        wanted = {}
        for i in ifaces:
            now = by_name.get(i.machine_name)
            if now is None:
                absent.append(i)
            else:
                wanted[now.index] = now
    else:
        current = {i.index: i for i in ifaces}
        wanted = {i.index: i for i in machine}
    stale = stale | {
        idx for idx, i in wanted.items() if idx in current and identity(joined_as.get(idx)) != identity(i)
    }
    stale &= set(current)
    gone = [idx for idx in current if idx not in wanted or idx in stale]
    kept = [wanted[idx] for idx in current if idx in wanted and idx not in gone]
    added = [i for idx, i in wanted.items() if idx not in current or idx in gone]
    return IfacePlan(current, gone, kept, added, absent)


def find_by_name(
    ifaces: list[IfaceInfo], absent: set[str], machine: Iterable[IfaceInfo]
) -> tuple[list[IfaceInfo], set[str]]:
    """``ifaces`` with the records of the ``absent`` ones (by name) replaced by the machine's
    current ones where they are back, and the names still absent."""
    by_name = {i.machine_name: i for i in machine}
    found = [by_name.get(i.machine_name, i) if i.machine_name in absent else i for i in ifaces]
    return found, {name for name in absent if name not in by_name}


def not_listed(joined: Iterable[tuple[IfaceInfo, str]], held: Iterable[tuple[str, str]]) -> set[int]:
    """Indexes of the interfaces of ``joined`` (interface, group) pairs whose group the kernel's
    ``held`` (interface name, group) memberships no longer list (an IPv6 group's ``%scope``
    aside): it went away and came back under the same index, say."""
    listed = set(held)
    return {iface.index for iface, group in joined if (iface.machine_name, group.split("%")[0]) not in listed}


def in_order(named: list[IfaceInfo], ifaces: list[IfaceInfo]) -> list[IfaceInfo]:
    """``ifaces`` (current records of the ``named`` interfaces) in the order they were named."""
    place = {i.machine_name: n for n, i in enumerate(named)}
    return sorted(ifaces, key=lambda i: place.get(i.machine_name, len(place)))
