"""What both socket classes share about their lifecycle: ``with`` / ``async with`` support, and
setting extra options on every OS socket they hold.

Layering rule: no platform knowledge; imports ``_errors`` only.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from ._errors import MulticastExpertError


class OpenCloseContext:
    """``with`` support for classes with open() and close().

    Leaving the ``with`` closes the socket unless it is closed already (by another thread, say);
    an explicit second ``close()`` still raises, as in multicast_expert 1.2.0.
    """

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _is_open(self) -> bool:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close_unless_closed()

    def _close_unless_closed(self) -> None:
        if self._is_open():
            try:
                self.close()
            except MulticastExpertError:
                if self._is_open():
                    raise
                # (another thread closed it between the check and the close: what leaving promises)


class AsyncOpenCloseContext(OpenCloseContext):
    """Adds ``async with`` to :class:`OpenCloseContext` (opening and closing never block)."""

    async def __aenter__(self) -> Self:
        self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close_unless_closed()


def apply_sockopt(socks: Sequence[socket.socket], level: int, opt: int, value: int | bytes) -> None:
    """setsockopt on every OS socket of a multicast socket."""
    if not socks:
        raise MulticastExpertError("setsockopt() needs an open socket; open it first (with ... as s:)")
    for s in socks:
        s.setsockopt(level, opt, value)
