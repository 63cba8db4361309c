"""The library's warnings: where they point (the caller's code, not the package's), and the one
about the descriptor limit, given once per process.

Layering rule: a leaf (the standard library only).
"""

from __future__ import annotations

import os
import sys
import warnings

_warned_fd_limit = False


def caller_outside_package() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside this package."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def fd_limit_raised(raised: tuple[int, int] | None, needed: int) -> bool:
    """Whether the soft descriptor limit was raised (``ensure_fd_room``'s result); warns the first
    time it was."""
    global _warned_fd_limit
    if raised is None:
        return False
    if not _warned_fd_limit:
        _warned_fd_limit = True
        warnings.warn(
            f"raised this process's soft RLIMIT_NOFILE from {raised[0]} to {raised[1]} to hold "
            f"{needed} multicast sockets (one per group and interface); pass raise_fd_limit=False "
            "to McastRxSocket to prevent this",
            RuntimeWarning,
            stacklevel=caller_outside_package(),
        )
    return True
