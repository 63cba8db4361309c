"""The per-OS layer, chosen once at import: ``OPS`` is this OS's table.

Everything above this package reads the table as ``_platform.OPS`` at the moment it needs it, so a
test swaps the OS in one place (``monkeypatch.setattr(_platform, "OPS", ...)``).
"""

from __future__ import annotations

import sys

from ._table import Opt, OsTable
from .darwin import DarwinMulticast
from .generic import GenericMulticast
from .linux import LinuxMulticast
from .windows import WindowsMulticast


def select_os(platform: str) -> OsTable:
    """The table for a ``sys.platform`` value; an OS without one gets the conservative generic table."""
    if platform == "win32":
        return WindowsMulticast()
    if platform == "darwin":
        return DarwinMulticast()
    if platform.startswith("linux"):
        return LinuxMulticast()
    return GenericMulticast(platform)


OPS: OsTable = select_os(sys.platform)

#: 1.2.0's platform booleans (also exported by ``utils``, ``os_multicast`` and the socket modules).
is_windows: bool = sys.platform == "win32"
is_mac: bool = sys.platform == "darwin"

__all__ = ["OPS", "Opt", "OsTable", "is_mac", "is_windows", "select_os"]
