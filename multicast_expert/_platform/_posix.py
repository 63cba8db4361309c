"""Parts Linux and macOS share: the descriptor limit (RLIMIT_NOFILE, <sys/resource.h>)."""

from __future__ import annotations

import os
import sys

if sys.platform != "win32":  # (this module is imported everywhere, used only on POSIX systems)
    import resource

    _UNLIMITED: int = resource.RLIM_INFINITY
else:
    _UNLIMITED = -1

#: Descriptors kept free for the program itself when the library raises the soft limit.
HEADROOM = 16


def fd_limits() -> tuple[int, int] | None:
    """``(soft, hard)`` RLIMIT_NOFILE (None on Windows, which has no such limit)."""
    if sys.platform != "win32":
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return soft, hard
    return None


def _in_use() -> int | None:
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder))
        except OSError:
            continue
    return None


#: The soft limit as last read (or set) here, for :func:`posix_fd_room` callers that allow it.
_soft_seen: int | None = None


def posix_fd_room(needed: int, *, force: bool = False, cached: bool = False) -> tuple[int, int] | None:
    """Raise the soft RLIMIT_NOFILE (never past the hard one) so ``needed`` more descriptors fit.

    A small request against a large limit is assumed to fit unless ``force`` (after an EMFILE).
    ``cached``: the caller retries with ``force`` after an EMFILE, so for such a small request the
    soft limit seen by an earlier call may stand in for a fresh ``getrlimit`` (no system call).

    Returns ``(old, new)`` if it raised it; None if there was room already or nothing could be done.
    """
    global _soft_seen
    if sys.platform != "win32":
        seen = _soft_seen
        if (
            cached
            and not force
            and seen is not None
            and (seen == _UNLIMITED or needed + HEADROOM <= seen // 4)
        ):
            return None  # (the test below, on the limit seen last)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        _soft_seen = soft
        if not force and (soft == _UNLIMITED or needed + HEADROOM <= soft // 4):
            return None  # plenty of room for a small open: skip counting (an EMFILE later retries)
        in_use = _in_use()
        if in_use is None or soft == resource.RLIM_INFINITY:
            return None
        want = in_use + needed + HEADROOM
        if want <= soft:
            return None
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if new <= soft:
            return None
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        _soft_seen = new
        return soft, new
    return None
