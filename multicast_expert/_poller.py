"""The receive engine's poller: readiness of many descriptors plus a wake-up descriptor.

Layering rule: knows descriptors only. epoll where the OS has it (no 1,024-descriptor ceiling),
else the selectors module.
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


class _Waker:
    """A descriptor that becomes (and stays) readable when woken: eventfd, else a socket pair."""

    def __init__(self) -> None:
        self._pair: tuple[socket.socket, socket.socket] | None = None
        if sys.platform == "linux":
            self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:
            a, b = socket.socketpair()
            a.setblocking(False)
            self._pair = (a, b)
            self.fd = a.fileno()

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            if self._pair is not None:
                self._pair[1].send(b"\0")
            elif sys.platform == "linux":
                os.eventfd_write(self.fd, 1)

    def close(self) -> None:
        if self._pair is not None:
            for s in self._pair:
                s.close()
            self._pair = None
        elif self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


class _WsaPoll:
    """Windows' WSAPoll (winsock2.h): ``struct pollfd {SOCKET fd; SHORT events; SHORT revents;}``,
    16 bytes on x64; POLLRDNORM 0x0100. No limit on the number of sockets."""

    POLLRDNORM = 0x0100

    def __init__(self) -> None:
        class PollFd(ctypes.Structure):
            _fields_ = [("fd", ctypes.c_size_t), ("events", ctypes.c_short), ("revents", ctypes.c_short)]

        self._struct = PollFd
        self._call: Callable[..., int] | None = None
        if sys.platform == "win32":
            self._call = ctypes.WinDLL("ws2_32").WSAPoll
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

    def close(self) -> None:
        self._fds = []
        self._array = None


class Poller:
    """Readiness of many descriptors plus the waker. epoll where present (no 1,024 ceiling).

    Closed when the last reference goes (a receiver woken by close() may still be returning
    from ``poll``; closing the waker under it could swallow its wake-up).
    """

    poll: Callable[[float | None], list[tuple[int, int]]]
    unregister: Callable[[int], None]
    fileno: Callable[[], int]
    _register: Callable[[int], None]
    _close: Callable[[], None]

    def __init__(self, fds: Iterable[int]) -> None:
        self.waker = _Waker()
        if sys.platform == "linux":
            ep = select.epoll()
            self.poll = ep.poll
            self._register = lambda fd: ep.register(fd, select.EPOLLIN)
            self.unregister = ep.unregister
            self.fileno = ep.fileno
            self._close = ep.close
        elif sys.platform == "win32":  # WSAPoll: select()'s 512-socket cap does not apply
            wsa = _WsaPoll()
            self.poll = wsa.poll
            self._register = wsa.register
            self.unregister = wsa.unregister
            self.fileno = lambda: -1
            self._close = wsa.close
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
