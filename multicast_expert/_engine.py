"""The receive engine: many non-blocking OS sockets behind one wait, with a wake-up descriptor.

Layering rule: knows sockets and readiness only (no groups, interfaces or OS options); the socket
classes own what each socket means. Sync and asyncio faces share it: both *try* a read, and on
"would block" wait for readiness, then retry.

State (one explicit value, :class:`Mode`):

- ``CLOSED``: no sockets; every receive raises.
- ``SINGLE``: exactly one socket; it is read directly, without the ready queue.
- ``MULTI``: several sockets; one poll round queues every ready socket once and they are served
  round-robin from that queue, so no group starves another.
- ``EMPTY``: open with no socket (every group left); receives wait for a join or a close.

Waiting is always done on the poller (epoll where the OS has it), which also watches a wake-up
descriptor: close() from any thread makes it readable, so every blocked receiver wakes at once,
whatever its timeout, with no polling slices. Joins and leaves change the poller's set in place,
so a receive already waiting sees a new group and never sees a group that was left.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import os
import select
import selectors
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

_T = TypeVar("_T")


class Readable(Protocol):
    """What the engine needs of a unit: its OS socket and that socket's descriptor."""

    sock: socket.socket
    fd: int
    live: bool


_U = TypeVar("_U", bound=Readable)


class Mode(enum.Enum):
    """The engine's state; see the module docstring."""

    CLOSED = "closed"
    EMPTY = "empty"
    SINGLE = "single"
    MULTI = "multi"


class EngineClosedError(Exception):
    """Raised inside the engine when a receive finds it closed; the socket class words the error."""


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


class _Poller:
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


_engines: weakref.WeakSet[ReceiveEngine[Readable]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The child shares the parent's epoll instance: unregistering through it would deafen the
    # parent. Drop the inherited poller (closing only the child's copies) and build a new one.
    for engine in list(_engines):
        engine.forget_poller()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ReceiveEngine(Generic[_U]):
    """Owns the socket map, the poller and the ready queue of one receiving socket."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.mode = Mode.CLOSED
        self.by_fd: dict[int, _U] = {}
        self._single: _U | None = None
        self._ready: collections.deque[_U] = collections.deque()
        self._poller: _Poller | None = None
        #: In SINGLE mode: read before waiting (a burst is queued) or wait first (ping-pong).
        self._eager = False
        self._lazy_reads = 0
        self._lock = threading.Lock()
        #: Descriptors the engine serves itself (e.g. interface-change notifications): fd -> callback.
        self._services: dict[int, Callable[[], None]] = {}
        #: (period, callback): called at least that often while a receive waits (no watch fd).
        self._periodic: tuple[float, Callable[[], None]] | None = None
        self._periodic_due = 0.0
        _engines.add(self)  # type: ignore[arg-type]

    # ---- membership of the set -------------------------------------------------------------
    def open(self) -> None:
        self.mode = Mode.EMPTY

    def add(self, units: Iterable[_U]) -> None:
        """Start watching units' sockets (which must be non-blocking)."""
        poller = self._poller
        for u in units:
            self.by_fd[u.fd] = u
            if poller is not None:
                poller.register(u.fd)
        self._set_mode()

    def remove(self, units: Iterable[_U]) -> None:
        """Stop watching units and close their sockets; a receive already waiting never sees them."""
        poller = self._poller
        dead = []
        for u in units:
            u.live = False
            dead.append(u)
            self.by_fd.pop(u.fd, None)
            if poller is not None:
                with contextlib.suppress(OSError, ValueError):
                    poller.unregister(u.fd)
            u.sock.close()
        if self._ready:
            self._ready = collections.deque(u for u in self._ready if u.live)
        self._set_mode()

    def add_service(self, fd: int, callback: Callable[[], None]) -> None:
        """Watch ``fd`` too; when it is readable a waiting receive calls ``callback`` (no data)."""
        self._services[fd] = callback
        if self._poller is not None:
            self._poller.register(fd)

    def remove_service(self, fd: int) -> None:
        """Stop watching a service descriptor (the caller closes it)."""
        if self._services.pop(fd, None) is not None and self._poller is not None:
            with contextlib.suppress(OSError, ValueError):
                self._poller.unregister(fd)

    def set_periodic(self, period: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` at least every ``period`` seconds while a receive waits."""
        self._periodic = (period, callback)
        self._periodic_due = time.monotonic() + period

    def _set_mode(self) -> None:
        if self.mode is Mode.CLOSED:
            return
        n = len(self.by_fd)
        self._single = next(iter(self.by_fd.values())) if n == 1 else None
        self.mode = Mode.SINGLE if n == 1 else Mode.MULTI if n else Mode.EMPTY

    def close(self) -> None:
        """Close every socket and wake every receiver (they raise EngineClosedError)."""
        with self._lock:
            self.mode = Mode.CLOSED
            poller, self._poller = self._poller, None
        if poller is not None:
            poller.waker.wake()  # the poller itself closes once no receiver holds it
        self.remove(list(self.by_fd.values()))
        self._single = None
        self._services.clear()
        self._periodic = None

    def forget_poller(self) -> None:
        """After fork(), in the child: let go of the poller shared with the parent."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.close()  # closes this process's descriptors only; no EPOLL_CTL_DEL

    def poller(self) -> _Poller:
        """The poller over every socket, made on first need; raises EngineClosedError once closed."""
        poller = self._poller
        if poller is not None:
            return poller
        with self._lock:  # never make a poller after close() took the last one to wake
            if self.mode is Mode.CLOSED:
                raise EngineClosedError
            if self._poller is None:
                self._poller = _Poller([*self.by_fd, *self._services])
            return self._poller

    def fileno(self) -> int:
        """A descriptor readable whenever any socket has data (the poller's), or -1 when closed."""
        try:
            return self.poller().fileno()
        except EngineClosedError:
            return -1

    # ---- receiving ---------------------------------------------------------------------------
    def receive(self, read: Callable[[_U], _T], wait: bool = True) -> _T | None:
        """Read one datagram with ``read`` from whichever socket has one.

        ``read`` raises BlockingIOError when its socket has nothing. Waits by the timeout rules
        (``wait=False``: not at all); None on timeout. Raises EngineClosedError once closed.
        """
        timeout = self.timeout if wait else 0.0
        deadline = None if not timeout else time.monotonic() + timeout
        waited = False
        while True:
            mode = self.mode
            unit: _U | None = None
            if mode is Mode.SINGLE:
                if waited or self._eager or timeout == 0:
                    unit = self._single
            elif self._ready:
                unit = self._ready.popleft()
            elif mode is Mode.CLOSED:
                raise EngineClosedError
            if unit is not None:
                try:
                    got = read(unit)
                except (BlockingIOError, InterruptedError):
                    if mode is Mode.SINGLE:
                        self._eager = waited = False
                    else:
                        continue  # another thread took it first; try the next ready socket
                except OSError:
                    if unit.live and self.mode is not Mode.CLOSED:
                        raise
                    continue  # closed or left under us: look at the new state
                else:
                    if mode is Mode.SINGLE:
                        if not waited:
                            self._eager = True
                        else:
                            self._lazy_reads += 1
                            if self._lazy_reads >= 8:  # now and then read first: a burst may be queued
                                self._eager, self._lazy_reads = True, 0
                    return got
            # Nothing to hand: wait for readiness (once, without waiting, when the timeout is 0).
            if timeout == 0:
                if waited or (mode is Mode.SINGLE and not self._services and self._periodic is None):
                    return None
                remaining: float | None = 0.0
            elif deadline is None:
                remaining = None
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
            waited = self._wait(remaining) or timeout == 0

    def _wait(self, timeout: float | None) -> bool:
        """One poll round; queues ready sockets (MULTI). False if no socket became ready."""
        poller = self.poller()
        periodic = self._periodic
        if periodic is not None:
            now = time.monotonic()
            if now >= self._periodic_due:
                self._periodic_due = now + periodic[0]
                periodic[1]()
            left = self._periodic_due - now
            timeout = left if timeout is None else min(timeout, max(left, 0.0))
        try:
            events = poller.poll(timeout)
        except (ValueError, OSError):
            if self.mode is Mode.CLOSED:
                raise EngineClosedError from None
            raise
        if not events:
            return False
        services = self._services
        if services:
            fired = [services[fd] for fd, _ in events if fd in services]
            if fired:
                for callback in fired:
                    callback()
                events = [e for e in events if e[0] not in services]
        by_fd = self.by_fd
        if self.mode is Mode.MULTI:
            self._ready.extend([by_fd[fd] for fd, _ in events if fd in by_fd])
        if self.mode is Mode.CLOSED:
            raise EngineClosedError
        return bool(events)

    def wait_ready(self, timeout: float | None) -> bool:
        """Block until some socket may be read (or the engine closed, or the timeout passed).

        Takes no data; for callers that wait in another thread (asyncio loops without add_reader).
        True if a receive is worth trying now.
        """
        try:
            return self._wait(timeout)
        except EngineClosedError:
            return True  # the receive that follows reports the close

    def ready_units(self) -> list[_U]:
        """Every socket known ready now, queued ones first (for batch reads); may be empty."""
        ready = self._ready
        if self.mode is Mode.SINGLE and self._single is not None:
            return [self._single]
        out = list(ready)
        ready.clear()
        return out
