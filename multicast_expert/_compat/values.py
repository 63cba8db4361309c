"""Value types kept for 1.x code: address lists that compare equal to lists (1.6.0) and 1.2.0's
``os_multicast.IfaceInfo`` record."""

from __future__ import annotations

import dataclasses


class AddrList(tuple):  # type: ignore[type-arg]
    """An immutable address sequence that also compares equal to a list of the same addresses
    (1.6.0 code compares ``ip4_addrs`` with lists), and stays hashable."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            return list(self) == other
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return tuple.__hash__(self)


@dataclasses.dataclass
class LegacyIfaceInfo:
    """1.2.0's interface record: an interface IP, the OS's name for it, and its index."""

    iface_ip: str
    iface_name: str
    iface_idx: int
