"""When a receive waits and how long, and what a batch takes: the deadline arithmetic of the
receive engine's loops, its read-first policy for one socket, and the fair share of a batch.

Layering rule: knows time only (no sockets: the share reads through the functions it is given).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

_T = TypeVar("_T")


class _Expired(enum.Enum):
    EXPIRED = "expired"


#: The wait is over (the deadline passed, or a zero timeout had its one non-waiting poll).
EXPIRED: Final = _Expired.EXPIRED


def remaining(timeout: float | None, deadline: float | None, polled_once: bool) -> float | _Expired | None:
    """How long the next poll may wait: None forever, or seconds; ``EXPIRED`` when the wait is over."""
    if timeout == 0:
        return EXPIRED if polled_once else 0.0
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    return EXPIRED if left <= 0 else left


class ReadFirstPolicy:
    """SINGLE mode's order of operations. *Read first* when a burst is likely queued (the last read
    found data without waiting), else *wait first* (ping-pong traffic, where a read before the wait
    would only cost a failing system call). Every 8th waited-for read it tries reading first again."""

    __slots__ = ("_waited_reads", "read_first")

    def __init__(self) -> None:
        self.read_first = False
        self._waited_reads = 0

    def found(self, waited: bool) -> None:
        """A read returned data (after waiting or not)."""
        if not waited:
            self.read_first = True
        else:
            self._waited_reads += 1
            if self._waited_reads >= 8:
                self.read_first, self._waited_reads = True, 0

    def missed(self) -> None:
        """A read found nothing queued."""
        self.read_first = False


def share(
    read_many: Callable[[Any, int], list[_T]],
    units: list[Any],
    start: int,
    room: int,
    out: list[_T],
    gone: Callable[[Any], bool],
) -> None:
    """Read up to ``room`` datagrams from ``units`` into ``out`` in equal shares, from
    ``units[start]`` on (the first ``room % len(units)`` get one more); rounds follow while room
    is left, over the units that filled their share. ``read_many(unit, n)`` reads up to n; a
    unit whose read fails is skipped when ``gone(unit)`` (left or closed meanwhile), else the
    error is raised. The contract of the OS layer's ``recv_share``, done one read at a time."""
    active = units[start:] + units[:start] if start else units
    while active and room > 0:
        base, extra = divmod(room, len(active))
        more = []
        for i, unit in enumerate(active):
            quota = base + (i < extra)
            if not quota:
                continue
            try:
                got = read_many(unit, quota)
            except OSError:
                if not gone(unit):
                    raise
                continue
            out += got
            room -= len(got)
            if len(got) == quota:
                more.append(unit)  # it may hold more
        active = more  # each round spends the room or drops the sockets that ran dry
