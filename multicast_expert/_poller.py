"""The receive engine's poller: readiness of many descriptors plus a wake-up descriptor.

Layering rule: knows descriptors only. epoll where the OS has it (no 1,024-descriptor ceiling),
else the selectors module.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import socket
from collections.abc import Callable, Iterable


class _Waker:
    """A descriptor that becomes (and stays) readable when woken: eventfd, else a socket pair."""

    def __init__(self) -> None:
        self._pair: tuple[socket.socket, socket.socket] | None = None
        if hasattr(os, "eventfd"):
            self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:
            a, b = socket.socketpair()
            a.setblocking(False)
            self._pair = (a, b)
            self.fd = a.fileno()

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            if self._pair is None:
                os.eventfd_write(self.fd, 1)
            else:
                self._pair[1].send(b"\0")

    def close(self) -> None:
        if self._pair is not None:
            for s in self._pair:
                s.close()
            self._pair = None
        elif self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


class Poller:
    """Readiness of many descriptors plus the waker. epoll where present (no 1,024 ceiling).

    Closed when the last reference goes (a receiver woken by close() may still be returning
    from ``poll``; closing the waker under it could swallow its wake-up).
    """

    def __init__(self, fds: Iterable[int]) -> None:
        self.waker = _Waker()
        if hasattr(select, "epoll"):
            ep = select.epoll()
            self.poll: Callable[[float | None], list[tuple[int, int]]] = ep.poll
            self._register: Callable[[int], None] = lambda fd: ep.register(fd, select.EPOLLIN)
            self.unregister: Callable[[int], None] = ep.unregister
            self.fileno: Callable[[], int] = ep.fileno
            self._close: Callable[[], None] = ep.close
        else:
            sel = selectors.DefaultSelector()
            self.poll = lambda timeout: [(key.fd, 1) for key, _ in sel.select(timeout)]
            self._register = lambda fd: sel.register(fd, selectors.EVENT_READ) and None
            self.unregister = lambda fd: sel.unregister(fd) and None
            self.fileno = lambda: int(getattr(sel, "fileno", lambda: -1)())
            self._close = sel.close
        self.register(self.waker.fd)
        for fd in fds:
            self.register(fd)

    def register(self, fd: int) -> None:
        self._register(fd)

    def close(self) -> None:
        self._close()
        self.waker.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
