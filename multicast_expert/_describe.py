"""Short, human descriptions of sockets for their ``repr()``.

Layering rule: a leaf. It is given plain values (names, groups, a port) and imports nothing from
the package, so every socket class may use it.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Longest list of groups or interfaces a repr spells out; the rest are counted.
SHOWN = 3


def some(items: Sequence[str], none: str) -> str:
    """``a, b, c`` for up to :data:`SHOWN` items, else ``a, b, c (+N more)``; ``none`` when empty."""
    if not items:
        return none
    shown = ", ".join(items[:SHOWN])
    return shown if len(items) <= SHOWN else f"{shown} (+{len(items) - SHOWN} more)"


def endpoint(groups: Sequence[str], port: int) -> str:
    """Groups and port: ``239.1.2.3:5000``, ``[ff15::1]:5000``, ``{a, b, c (+9 more)}:5000``."""
    if len(groups) == 1:
        g = groups[0]
        return f"[{g}]:{port}" if ":" in g else f"{g}:{port}"
    return f"{{{some(groups, 'no groups')}}}:{port}"


def describe(cls_name: str, *parts: str, is_open: bool) -> str:
    """``<Name part part ... open|closed>``."""
    return f"<{cls_name} {' '.join(p for p in parts if p)} {'open' if is_open else 'closed'}>"


__all__ = ["SHOWN", "describe", "endpoint", "some"]
