"""Readiness of many descriptors plus a wake-up descriptor, one implementation per OS facility:
epoll (Linux: no 1,024-descriptor ceiling), WSAPoll (Windows: no 512-socket cap), selectors
(elsewhere). The per-OS I/O class (``_io``) picks one; nothing above ``_platform`` sees the choice.

Layering rule: knows descriptors only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import selectors
import socket
import sys
from collections.abc import Callable, Iterable


class Waker:
    """A descriptor that becomes (and stays) readable when woken: a socket pair (portable)."""

    def __init__(self) -> None:
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        self._pair: tuple[socket.socket, socket.socket] | None = (a, b)
        self.fd = a.fileno()

    def wake(self) -> None:
        pair = self._pair
        if pair is not None:
            with contextlib.suppress(OSError):
                pair[1].send(b"\0")

    def close(self) -> None:
        pair, self._pair = self._pair, None
        if pair is not None:
            for s in pair:
                s.close()
        self.fd = -1


class EventfdWaker(Waker):
    """Linux: one eventfd (eventfd(2)) instead of a socket pair."""

    def __init__(self) -> None:  # (no super().__init__: no pair)
        self._pair = None
        self.fd = -1
        if sys.platform == "linux":
            self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def wake(self) -> None:
        if sys.platform == "linux" and self.fd >= 0:
            with contextlib.suppress(OSError):
                os.eventfd_write(self.fd, 1)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


class Poller:
    """The interface every poller offers; also the selectors-based one (any OS).

    Closed when the last reference goes (a receiver woken by close() may still be returning from
    ``poll``; closing the waker under it could swallow its wake-up).
    """

    def __init__(self, fds: Iterable[int], waker: Waker) -> None:
        self.waker = waker
        self._setup()
        self.register(waker.fd)
        for fd in fds:
            self.register(fd)
        #: :meth:`fileno`, looked up once (-1 where the facility has no descriptor).
        self.fd = self.fileno()

    def _setup(self) -> None:
        self._sel = selectors.DefaultSelector()

    def register(self, fd: int) -> None:
        self._sel.register(fd, selectors.EVENT_READ)

    def unregister(self, fd: int) -> None:
        self._sel.unregister(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        """``(fd, events)`` of every ready descriptor, waiting up to ``timeout`` (None: forever)."""
        return [(key.fd, 1) for key, _ in self._sel.select(timeout)]

    def fileno(self) -> int:
        """A descriptor readable while any registered one is, or -1 where the facility has none."""
        return int(getattr(self._sel, "fileno", lambda: -1)())

    def _close(self) -> None:
        self._sel.close()

    def close(self) -> None:
        self._close()
        self.waker.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


if sys.platform == "linux":

    class EpollPoller(Poller):
        """Linux epoll(7): level-triggered EPOLLIN."""

        def _setup(self) -> None:
            ep = self._ep = select.epoll()
            self.poll = ep.poll  # type: ignore[method-assign]  # bound C method: no Python frame per wait
            self.fileno = ep.fileno  # type: ignore[method-assign]
            self.unregister = ep.unregister  # type: ignore[method-assign]

        def register(self, fd: int) -> None:
            self._ep.register(fd, select.EPOLLIN)

        def _close(self) -> None:
            self._ep.close()

else:  # (every OS imports this module; only Linux has epoll)
    EpollPoller = Poller


class WsaPoller(Poller):
    """Windows' WSAPoll (winsock2.h): ``struct pollfd {SOCKET fd; SHORT events; SHORT revents;}``,
    16 bytes on x64; POLLRDNORM 0x0100. No limit on the number of sockets; no descriptor of its own."""

    POLLRDNORM = 0x0100

    def _setup(self) -> None:
        class PollFd(ctypes.Structure):
            _fields_ = [("fd", ctypes.c_size_t), ("events", ctypes.c_short), ("revents", ctypes.c_short)]

        self._struct = PollFd
        self._call: Callable[..., int] | None = None
        if sys.platform == "win32":
            self._call = ctypes.WinDLL("ws2_32", use_last_error=True).WSAPoll  # (get_last_error below)
        self._fds: list[int] = []
        self._array: ctypes.Array[PollFd] | None = None

    def register(self, fd: int) -> None:
        self._fds.append(fd)
        self._array = None

    def unregister(self, fd: int) -> None:
        self._fds.remove(fd)
        self._array = None

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        if self._call is None:
            raise OSError("WSAPoll exists only on Windows")
        array = self._array
        if array is None:
            array = self._array = (self._struct * len(self._fds))()
            for i, fd in enumerate(self._fds):
                array[i].fd = fd
                array[i].events = self.POLLRDNORM
        millis = -1 if timeout is None else int(timeout * 1000)
        n = self._call(array, len(self._fds), millis)
        if n < 0:
            raise OSError(
                ctypes.get_last_error() if hasattr(ctypes, "get_last_error") else 0, "WSAPoll failed"
            )
        if n == 0:
            return []
        return [(array[i].fd, array[i].revents) for i in range(len(self._fds)) if array[i].revents]

    def fileno(self) -> int:
        return -1

    def _close(self) -> None:
        self._fds = []
        self._array = None
