"""Pieces shared by the transmit and receive socket classes (no platform branches here)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Self

from ._platform import OPS
from .interfaces import IfaceInfo, IfaceSpecifier, find_interface
from .utils import MulticastExpertError, MulticastValueError, family_name


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


@contextlib.contextmanager
def explained(action: str, family: int) -> Iterator[None]:
    """Re-raise a known OSError from a socket call as a MulticastExpertError saying what to do."""
    try:
        yield
    except OSError as exc:
        better = OPS.explain_oserror(exc, action, family)
        if better is None:
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
    """The address a socket on ``iface`` binds to."""
    ip = iface.primary_ip(family)
    if ip is None:  # resolve_iface rules this out
        raise MulticastExpertError(f"Interface {iface} has no {family_name(family)} address")
    return ip


def dedupe(items: Sequence[str]) -> list[str]:
    """Drop repeats, keeping the first occurrence's order."""
    return list(dict.fromkeys(items))


def apply_sockopt(socks: Sequence[socket.socket], level: int, opt: int, value: int | bytes) -> None:
    """setsockopt on every OS socket of a multicast socket."""
    if not socks:
        raise MulticastExpertError("setsockopt() needs an open socket; open it first (with ... as s:)")
    for s in socks:
        s.setsockopt(level, opt, value)
