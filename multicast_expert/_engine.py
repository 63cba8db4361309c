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
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

from ._poller import Poller

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


_engines: weakref.WeakSet[ReceiveEngine[Readable]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The child shares the parent's epoll instance: unregistering through it would deafen the
    # parent. Drop the inherited poller (closing only the child's copies) and build a new one.
    for engine in list(_engines):
        engine.forget_poller()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_EXPIRED = -1.0  # (identity-compared) the wait is over


def _remaining(timeout: float | None, deadline: float | None, polled_once: bool) -> float | None:
    """How long the next poll may wait: None forever, or seconds; ``_EXPIRED`` when the wait is
    over (the deadline passed, or a zero timeout already had its one non-waiting poll)."""
    if timeout == 0:
        return _EXPIRED if polled_once else 0.0
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    return _EXPIRED if left <= 0 else left


class ReceiveEngine(Generic[_U]):
    """Owns the socket map, the poller and the ready queue of one receiving socket."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.mode = Mode.CLOSED
        self.by_fd: dict[int, _U] = {}
        self._single: _U | None = None
        self._ready: collections.deque[_U] = collections.deque()
        self._poller: Poller | None = None
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

    def is_open(self) -> bool:
        """Whether the engine is open (any mode but CLOSED)."""
        return self.mode is not Mode.CLOSED

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

    def poller(self) -> Poller:
        """The poller over every socket, made on first need; raises EngineClosedError once closed."""
        poller = self._poller
        if poller is not None:
            return poller
        with self._lock:  # never make a poller after close() took the last one to wake
            if self.mode is Mode.CLOSED:
                raise EngineClosedError
            if self._poller is None:
                self._poller = Poller([*self.by_fd, *self._services])
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
        if timeout is None and self.mode is Mode.MULTI and not self._ready and self._periodic is None:
            # Fast path (blocking, several sockets, nothing queued): one poll, and when exactly one
            # socket is ready, read it at once. Anything else falls through to the general loop;
            # readiness is level-triggered, so nothing seen here is lost.
            poller = self._poller
            if poller is not None:
                try:
                    events = poller.poll(None)
                except (ValueError, OSError):
                    events = []
                if len(events) == 1:
                    first = self.by_fd.get(events[0][0])
                    if first is not None:
                        try:
                            return read(first)
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            if first.live and self.is_open():
                                raise
                elif events and self.mode is Mode.MULTI:
                    by_fd = self.by_fd
                    self._ready.extend([by_fd[fd] for fd, _ in events if fd in by_fd])
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
            single_only = mode is Mode.SINGLE and not self._services and self._periodic is None
            remaining = _remaining(timeout, deadline, waited or single_only)
            if remaining is _EXPIRED:
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

    def receive_batch(
        self, read_many: Callable[[_U, int], list[_T]], max_count: int, wait: bool = True
    ) -> list[_T]:
        """Up to ``max_count`` datagrams: waits by the timeout rules for the first, then takes what
        is ready without waiting more. ``read_many(unit, n)`` returns up to n datagrams ([] when
        none is queued). Fair: each ready socket gets an equal quota per round; a socket that
        filled its quota is served again in a later round. [] on timeout."""
        timeout = self.timeout if wait else 0.0
        deadline = None if not timeout else time.monotonic() + timeout
        out: list[_T] = []
        waited = False
        while True:
            units = self._ready_now()
            while units and len(out) < max_count:
                quota = max(1, (max_count - len(out)) // len(units))
                again: list[_U] = []
                for i, unit in enumerate(units):
                    room = max_count - len(out)
                    if room <= 0:
                        if self.mode is Mode.MULTI:
                            self._ready.extendleft(reversed(units[i:]))  # serve them first next time
                        break
                    try:
                        got = read_many(unit, min(quota, room))
                    except OSError:
                        if unit.live and self.mode is not Mode.CLOSED:
                            raise
                        continue
                    out.extend(got)
                    if len(got) == min(quota, room):
                        again.append(unit)  # it may hold more
                units = again
            if out:
                return out
            if self.mode is Mode.CLOSED:
                raise EngineClosedError
            remaining = _remaining(timeout, deadline, waited)
            if remaining is _EXPIRED:
                return out
            waited = self._wait(remaining) or timeout == 0

    def _ready_now(self) -> list[_U]:
        """The sockets to try now: the single one, or the ready queue (after a non-waiting poll)."""
        if self.mode is Mode.SINGLE and self._single is not None:
            return [self._single]
        if self.mode is not Mode.MULTI:
            return []
        if not self._ready:
            self._wait(0)
        units = list(dict.fromkeys(self._ready))  # each socket once, in queue order
        self._ready.clear()
        return units

    def wait_ready(self, timeout: float | None) -> bool:
        """Block until some socket may be read (or the engine closed, or the timeout passed).

        Takes no data; for callers that wait in another thread (asyncio loops without add_reader).
        True if a receive is worth trying now.
        """
        try:
            return self._wait(timeout)
        except EngineClosedError:
            return True  # the receive that follows reports the close
