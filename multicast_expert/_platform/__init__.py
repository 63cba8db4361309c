"""The per-OS layer, chosen once at import, one object per job:

- ``OPS``: this OS's options and policies (:class:`OsOptions`: tables keyed by ``Concern``,
  socket setup, capabilities, error advice);
- ``IO``: its datagram I/O (:class:`DatagramIO`: reads, batch I/O, the poller);
- ``HOST``: its host helpers (:class:`Host`: interface details, routes, limits, counters).

Everything above this package reads them as ``_platform.OPS`` / ``.IO`` / ``.HOST`` at the moment it
needs them, so a test swaps an OS's behaviour in one place (``monkeypatch.setattr(_platform, "OPS",
...)``). Nothing outside this package looks at ``sys.platform`` in the library core.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from .. import _accel
from ._host import Host
from ._io import DROPPED, DatagramIO, Dropped
from ._kinds import METADATA, Action, Concern
from ._options import Opt, OsOptions
from .darwin import DarwinHost, DarwinIO, DarwinMulticast
from .generic import GenericMulticast
from .linux import AcceleratedLinuxIO, LinuxHost, LinuxIO, LinuxMulticast
from .windows import WindowsHost, WindowsIO, WindowsMulticast


def select_os(platform: str) -> OsOptions:
    """The options for a ``sys.platform`` value; an OS without a table gets the conservative one."""
    if platform == "win32":
        return WindowsMulticast()
    if platform == "darwin":
        return DarwinMulticast()
    if platform.startswith("linux"):
        return LinuxMulticast()
    return GenericMulticast(platform)


def select_io(platform: str) -> DatagramIO:
    """The datagram I/O for a ``sys.platform`` value (POSIX recvmsg and selectors by default)."""
    if platform == "win32":
        return WindowsIO()
    if platform == "darwin":
        return DarwinIO()
    if platform.startswith("linux"):
        if _accel.speedups is not None and platform == sys.platform:
            return AcceleratedLinuxIO(_accel.speedups)
        return LinuxIO()
    return DatagramIO()


def select_host(platform: str) -> Host:
    """The host helpers for a ``sys.platform`` value."""
    if platform == "win32":
        return WindowsHost()
    if platform == "darwin":
        return DarwinHost()
    if platform.startswith("linux"):
        return LinuxHost()
    return Host()


OPS: OsOptions = select_os(sys.platform)
#: Whether the C accelerator is in use (see ``multicast_expert._accel``).
ACCELERATED: bool = _accel.ACCELERATED
IO: DatagramIO = select_io(sys.platform)
HOST: Host = select_host(sys.platform)

#: 1.2.0's platform booleans (also exported by ``utils``, ``os_multicast`` and the socket modules).
is_windows: bool = sys.platform == "win32"
is_mac: bool = sys.platform == "darwin"


def translate_oserror(exc: OSError, action: Action, family: int, where: str) -> OSError:
    """The one OSError translator: a known error becomes a MulticastOSError (errno kept) whose
    message starts with ``where`` and says what to do; anything else comes back unchanged."""
    better = OPS.explain_oserror(exc, action, family, where)
    return exc if better is None else better


@contextlib.contextmanager
def os_errors(action: Action, family: int, where: str) -> Iterator[None]:
    """Re-raise an OSError from the block through :func:`translate_oserror`."""
    try:
        yield
    except OSError as exc:
        better = translate_oserror(exc, action, family, where)
        if better is exc:
            raise
        raise better from exc


#: The old name of :class:`OsOptions`.
OsTable = OsOptions

__all__ = [
    "ACCELERATED",
    "DROPPED",
    "HOST",
    "IO",
    "METADATA",
    "OPS",
    "Action",
    "Concern",
    "DatagramIO",
    "Dropped",
    "Host",
    "Opt",
    "OsOptions",
    "OsTable",
    "is_mac",
    "is_windows",
    "os_errors",
    "select_host",
    "select_io",
    "select_os",
    "translate_oserror",
]
