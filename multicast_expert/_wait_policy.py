"""When a receive waits and how long: the deadline arithmetic of the receive engine's loops and
its read-first policy for one socket.

Layering rule: knows time only (no sockets).
"""

from __future__ import annotations

import enum
import time
from typing import Final


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
