"""Chooses the per-OS multicast layer once, at import."""

from __future__ import annotations

import sys

from ._base import OsMulticast, Poller, make_poller


def select_os(platform: str) -> OsMulticast:
    """The multicast layer for a ``sys.platform`` value (anything else is treated as Linux)."""
    if platform == "win32":
        from .windows import WindowsMulticast

        return WindowsMulticast()
    if platform == "darwin":
        from .darwin import DarwinMulticast

        return DarwinMulticast()
    from .linux import LinuxMulticast

    return LinuxMulticast()


OPS: OsMulticast = select_os(sys.platform)

__all__ = ["OPS", "OsMulticast", "Poller", "make_poller", "select_os"]
