"""What the send and receive socket classes share: open/close lifecycle, interface checks,
OS error translation and extra socket options. No platform branches here.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Self

from . import _platform
from ._errors import MulticastExpertError, MulticastValueError
from ._validate import family_name
from .interfaces import IfaceInfo, IfaceSpecifier, find_interface

#: Create sockets non-blocking in one syscall where the OS allows (Linux); else setblocking(False).
SOCK_NONBLOCK = int(getattr(socket, "SOCK_NONBLOCK", 0))


class OpenCloseContext:
    """``with`` support for classes with open() and close()."""

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncOpenCloseContext(OpenCloseContext):
    """Adds ``async with`` to :class:`OpenCloseContext` (opening and closing never block)."""

    async def __aenter__(self) -> Self:
        self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def translate_oserror(exc: OSError, action: str, family: int) -> OSError:
    """The one OSError translator: a known error becomes a MulticastOSError (errno kept) saying
    what to do; anything else comes back unchanged, to be re-raised as is."""
    better = _platform.OPS.explain_oserror(exc, action, family)
    return exc if better is None else better


@contextlib.contextmanager
def os_errors(action: str, family: int) -> Iterator[None]:
    """Re-raise an OSError from the block through :func:`translate_oserror`."""
    try:
        yield
    except OSError as exc:
        better = translate_oserror(exc, action, family)
        if better is exc:
            raise
        raise better from exc


def resolve_iface(spec: IfaceSpecifier, family: int) -> IfaceInfo:
    """Look up one interface and check it has an address of ``family``."""
    iface = find_interface(spec)
    if not iface.ip_addrs(family):
        raise MulticastValueError(
            f"Interface {iface} has no {family_name(family)} address, so it cannot carry "
            f"{family_name(family)} multicast; pick an interface that does"
        )
    return iface


def iface_ip(iface: IfaceInfo, family: int) -> str:
    """The address a socket on ``iface`` binds to (the interface's primary address)."""
    ip = iface.primary_ip(family)
    if ip is None:  # resolve_iface rules this out
        raise MulticastExpertError(f"Interface {iface} has no {family_name(family)} address")
    return ip


def apply_sockopt(socks: Sequence[socket.socket], level: int, opt: int, value: int | bytes) -> None:
    """setsockopt on every OS socket of a multicast socket."""
    if not socks:
        raise MulticastExpertError("setsockopt() needs an open socket; open it first (with ... as s:)")
    for s in socks:
        s.setsockopt(level, opt, value)
