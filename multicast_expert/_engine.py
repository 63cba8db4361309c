"""The receive engine: many OS sockets behind one wait, with a wake-up descriptor.

Layering rule: knows sockets and readiness only (no groups, interfaces or OS options); learns of
sockets only through :class:`~._membership.Change` values (:meth:`apply`); the poller and
wake-up descriptor come from the per-OS I/O layer.

State (one explicit value, :class:`Mode`):

- ``CLOSED``: no sockets; every receive raises.
- ``SINGLE``: exactly one socket; it is read directly, without the ready queue.
- ``MULTI``: several sockets; a poll round queues each ready one once, served round-robin.
- ``EMPTY``: open with no socket (every group left); receives wait for a join or a close.

Every receive has one shape (as trio's non-blocking helper): *try* a read, classify the result
(data; nothing queued: ``BlockingIOError``; taken but not ours: ``DROPPED``; the socket died under
us: an OSError on a socket no longer live), *wait* on the poller, retry. The poller also watches the
wake-up descriptor: close() from any thread makes it readable, so every blocked receiver wakes at
once, whatever its timeout. Joins and leaves change the poller's set in place (under the engine's
lock, which also guards the poller's creation), so a receive already waiting sees a new group and
never sees one that was left.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import operator
import socket
import threading
import time
from collections.abc import Callable
from typing import Final, Generic, Protocol, TypeVar

from . import _fork_locks, _platform
from ._errors import EngineClosedError
from ._platform import DROPPED, Dropped
from ._platform._poller import Poller
from ._rx_hot import HotPath, tell
from ._wait_policy import EXPIRED, ReadFirstPolicy, remaining, share

_T = TypeVar("_T")


class Readable(Protocol):
    """What the engine needs of a unit: its OS socket, that socket's descriptor, and liveness."""

    sock: socket.socket
    fd: int
    live: bool

    def close(self) -> None: ...


class Changes(Protocol[_T]):
    """A membership change: the units added and removed."""

    @property
    def added(self) -> list[_T]: ...

    @property
    def removed(self) -> list[_T]: ...


_U = TypeVar("_U", bound=Readable)


class Mode(enum.Enum):
    """The engine's state; see the module docstring."""

    CLOSED = "closed"
    EMPTY = "empty"
    SINGLE = "single"
    MULTI = "multi"


# Module-level names for the hot path: a global load instead of an enum attribute lookup each time.
_CLOSED: Final = Mode.CLOSED
_EMPTY: Final = Mode.EMPTY
_SINGLE: Final = Mode.SINGLE
_MULTI: Final = Mode.MULTI
_monotonic = time.monotonic
_by_fd = operator.attrgetter("fd")


class ReceiveEngine(Generic[_U]):
    """Owns the readiness map, the poller and the ready queue of one receiving socket."""

    def __init__(self) -> None:
        self.mode = _CLOSED
        self.by_fd: dict[int, _U] = {}
        self._single: _U | None = None
        self._ready: collections.deque[_U] = collections.deque()
        self._poller: Poller | None = None
        self.policy = ReadFirstPolicy()
        self._lock = threading.Lock()
        #: Descriptors the engine serves itself (e.g. interface-change notifications): fd -> callback.
        self._services: dict[int, Callable[[], None]] = {}
        #: (period, callback): called at least that often while a receive waits (no watch fd).
        self._periodic: tuple[float, Callable[[], None]] | None = None
        self._periodic_due = 0.0
        #: Neither services nor a periodic callback: the fast paths may poll directly.
        self._plain = True
        #: The fast paths' conditions, kept by :meth:`_set_hot`: the only socket (SINGLE and
        #: plain), and whether the engine is MULTI and plain.
        self._hot: _U | None = None
        self._hot_multi = False
        #: Rotates which ready socket a batch serves first, so leftovers are shared out fairly;
        #: a socket a peek left a datagram queued in is served first by the next batch.
        self._turn = 0
        self._peeked: _U | None = None
        #: Told the fast paths' state at every change (see :class:`HotPath`), when set.
        self.hot: HotPath | None = None
        #: How many times closed: a receive waiting across a close raises, even if the socket
        #: was opened again by the time it looks.
        self.closes = 0

    # ---- the socket set ------------------------------------------------------------------------
    def open(self) -> None:
        self.mode = _EMPTY

    def apply(self, change: Changes[_U]) -> None:
        """Watch the added units' sockets; stop watching and close the removed ones (a receive
        already waiting never sees them again)."""
        with self._lock:
            poller, by_fd = self._poller, self.by_fd
            for u in change.removed:
                u.live = False
                if by_fd.get(u.fd) is u:
                    del by_fd[u.fd]
                    if poller is not None:
                        with contextlib.suppress(OSError, ValueError, KeyError):
                            poller.unregister(u.fd)
                u.close()
            for u in change.added:
                by_fd[u.fd] = u
                if poller is not None:
                    poller.register(u.fd)
            if change.removed and self._ready:
                self._ready = collections.deque(u for u in self._ready if u.live)
            self._set_mode()

    def is_open(self) -> bool:
        """Whether the engine is open (any mode but CLOSED)."""
        return self.mode is not _CLOSED

    def add_service(self, fd: int, callback: Callable[[], None]) -> None:
        """Watch ``fd`` too; when it is readable a waiting receive calls ``callback`` (no data)."""
        with self._lock:
            self._services[fd] = callback
            self._plain = False
            self._set_hot()
            if self._poller is not None:
                self._poller.register(fd)

    def remove_service(self, fd: int) -> None:
        """Stop watching a service descriptor (the caller closes it)."""
        with self._lock:
            if self._services.pop(fd, None) is not None and self._poller is not None:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    self._poller.unregister(fd)
            self._plain = not self._services and self._periodic is None
            self._set_hot()

    def set_periodic(self, period: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` at least every ``period`` seconds while a receive waits."""
        self._periodic = (period, callback)
        self._periodic_due = time.monotonic() + period
        self._plain = False
        self._set_hot()

    def _set_mode(self) -> None:
        if self.mode is _CLOSED:
            return
        by_fd = self.by_fd
        n = len(by_fd)
        if n == 1:  # (the one-socket case in full: _set_hot's result without the call)
            single = self._single = next(iter(by_fd.values()))
            self.mode = _SINGLE
            self._hot = single if self._plain else None
            self._hot_multi = False
            if self.hot is not None and self._poller is not None:
                self._set_hot()  # (and tell it; without a poller it stays off, as installed)
            return
        self._single = None
        self.mode = _MULTI if n else _EMPTY
        self._set_hot()

    def _set_hot(self) -> None:
        plain = self._plain and self.mode is not _CLOSED
        self._hot = unit = self._single if plain and self.mode is _SINGLE else None
        self._hot_multi = plain and self.mode is _MULTI
        if self.hot is not None:
            tell(self.hot, self.mode is _CLOSED, self._poller, unit, self._hot_multi, self.by_fd, self._ready)

    def set_hot_path(self, hot: HotPath | None) -> None:
        """Keep ``hot`` (made off; one replaced is closed) told of the fast paths' state from now on."""
        with self._lock:
            self.hot = hot
            if self._poller is not None:  # (else it stays off, as it is without a poller)
                self._set_hot()

    def close(self, units: list[_U]) -> None:
        """Enter CLOSED, wake every receiver (they raise EngineClosedError), close ``units``."""
        with self._lock:
            self.mode, self.closes = _CLOSED, self.closes + 1
            if self.hot is not None:  # (first: a fast method woken below finds itself closed)
                self.hot.set_closed()
            poller, self._poller = self._poller, None
            if poller is not None:
                poller.waker.wake()  # the poller itself closes once no receiver holds it
            for u in units:
                u.close()
            self.by_fd = {}
            if self._ready:
                self._ready.clear()
            self._single = self._peeked = None
            if not self._plain:  # (services or a periodic callback)
                self._services.clear()
                self._periodic = None
                self._plain = True
            self._hot, self._hot_multi = None, False  # (what _set_hot() gives when CLOSED)

    def forget_poller(self) -> None:
        """After fork(), in the child: let go of the poller shared with the parent."""
        poller, self._poller = self._poller, None
        self._set_hot()
        if poller is not None:
            poller.close()  # closes this process's descriptors only; no EPOLL_CTL_DEL

    def poller(self) -> Poller:
        """The poller over every socket, made on first need; raises EngineClosedError once closed."""
        poller = self._poller
        if poller is not None:
            return poller
        with self._lock:  # never make a poller after close() took the last one to wake
            if self.mode is _CLOSED:
                raise EngineClosedError
            if self._poller is None:
                # Listed for fork handling first (only an engine with a poller has one to forget):
                # a fork between the two steps then finds the engine listed, with or without one.
                _fork_locks.pollers.add(self)
                live = [fd for fd, u in self.by_fd.items() if u.sock.fileno() == fd]  # (not closed by hand)
                with _platform.os_errors(_platform.Action.WAIT, socket.AF_INET, "Waiting for datagrams"):
                    self._poller = _platform.IO.poller([*live, *self._services])  # (EMFILE: ulimit -n)
                self._set_hot()
            return self._poller

    def fileno(self) -> int:
        """A descriptor readable whenever any socket has data: the poller's; where the OS poller
        has none (Windows), the only socket's. -1 when closed, or when no descriptor can tell."""
        try:
            fd = self.poller().fileno()
        except EngineClosedError:
            return -1
        single = self._single
        return single.fd if fd < 0 and single is not None else fd

    # ---- receiving ---------------------------------------------------------------------------
    def receive(
        self,
        read: Callable[[_U], _T | Dropped],
        timeout: float | None,
        peek: bool = False,
        multi: Callable[[dict[int, _U], int, int, float | None], _T | list[int] | None] | None = None,
    ) -> _T | None:
        """Read one datagram with ``read`` from whichever socket has one; None on timeout.

        ``read`` returns the datagram, ``DROPPED`` (taken, not ours: read again) or raises
        BlockingIOError (nothing queued). ``peek``: the read left the datagram queued, so the next
        receive starts at the same socket. Where the OS layer offers a single-call wait and read:
        ``multi(by_fd, poll_fd, wake_fd, timeout)`` waits on the poller and reads the one socket
        that became ready (None: timeout; a list: the ready descriptors, nothing read). (The
        socket's own descriptor is never polled alone: a poll pins its socket, so a leave during
        the wait would keep the membership until the wait ends.) Raises EngineClosedError once
        closed.
        """
        if timeout == 0:
            return self._receive(read, timeout, peek)
        closes, unit = self.closes, self._hot
        poller = self._poller  # (held: it stays open for this call even if a close drops it)
        if unit is not None and poller is not None:  # SINGLE, nothing but the socket to watch
            # (both single-socket paths inline: the hot path of one-group receives)
            policy = self.policy
            if policy.read_first:  # a burst is likely queued: one read, no poll
                try:
                    got = read(unit)
                except (BlockingIOError, InterruptedError):
                    policy.missed()  # nothing queued: wait as for ping-pong traffic
                except OSError:
                    if unit.live and self.is_open():
                        raise
                    return self._receive(read, timeout, peek, closes)
                else:
                    if got is DROPPED:
                        return self._receive(read, timeout, peek, closes)
                    return got  # (read_first stays set, as policy.found(False) would leave it)
            if not policy.read_first:  # ping-pong traffic: one poll, one read
                start = 0.0 if timeout is None else _monotonic()
                try:
                    events = poller.poll(timeout)
                except (ValueError, OSError):
                    events = [(-1, 0)]  # closed under us: the general loop raises
                if not events:
                    return None
                try:
                    got = read(unit)
                except (BlockingIOError, InterruptedError):
                    pass  # (another thread took it, or the wake-up was a close or a join)
                except OSError:
                    if unit.live and self.is_open():
                        raise
                else:
                    if got is not DROPPED:
                        policy.found(True)
                        return got
                return self._receive(
                    read, None if timeout is None else start + timeout - _monotonic(), peek, closes
                )
        elif self._hot_multi and not self._ready:  # MULTI, nothing but sockets, nothing queued
            if multi is not None and poller is not None and not peek:  # (a peek: which socket, below)
                # (inline: the hot path of many-group receives; multi is a C function)
                try:
                    polled = multi(self.by_fd, poller.fd, poller.waker.fd, timeout)
                except OSError:
                    if self.is_open():
                        raise
                    polled = []  # closed under us: the general loop raises
                if polled.__class__ is not list:
                    return polled  # type: ignore[return-value]  # (a datagram, or None: timeout)
                by_fd = self.by_fd
                self._ready.extend([by_fd[fd] for fd in polled if fd in by_fd])
                return self._receive(read, timeout, peek, closes)
            if poller is not None:  # (pure Python, inline too) one poll; one ready socket: read it
                try:
                    events = poller.poll(timeout)
                except (ValueError, OSError):
                    events = []
                else:
                    if not events:  # (a close would have woken the poll)
                        return None
                if len(events) == 1:
                    first = self.by_fd.get(events[0][0])
                    if first is not None:
                        try:
                            got = read(first)
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            if first.live and self.is_open():
                                raise
                        else:
                            if got is not DROPPED:
                                if peek:
                                    self._ready.appendleft(first)
                                    self._peeked = first
                                return got
                elif events:  # (level-triggered: nothing seen here is lost to the general loop)
                    by_fd = self.by_fd
                    self._ready.extend([by_fd[fd] for fd, _ in events if fd in by_fd])
        return self._receive(read, timeout, peek, closes)

    def resume(
        self,
        read: Callable[[_U], _T | Dropped],
        timeout: float | None,
        polled: list[int] | None,
        closes: int = -1,
    ) -> _T | None:
        """Go on with a :class:`HotPath`'s receive: woken (``polled`` None), or these ready;
        ``closes``: :attr:`closes` when the fast methods in use were installed (the receive
        began after that open: a close since ends it)."""
        if polled:
            self._ready.extend([self.by_fd[fd] for fd in polled if fd in self.by_fd])
        return self._receive(read, timeout, False, closes)

    def _receive(
        self, read: Callable[[_U], _T | Dropped], timeout: float | None, peek: bool, closes: int = -1
    ) -> _T | None:
        """The general receive loop (see :meth:`receive`); ``closes``: :attr:`closes` when the
        receive began (a close since ends it)."""
        if closes < 0:
            closes = self.closes
        if timeout is not None and timeout < 0:
            timeout = 0.0  # (time ran out in the fast path: one last non-waiting look)
        deadline = None if not timeout else time.monotonic() + timeout
        waited = polled = False
        policy = self.policy
        while True:
            mode = self.mode
            if self.closes != closes:  # (closed meanwhile, perhaps opened again since)
                raise EngineClosedError
            unit: _U | None = None
            if mode is _SINGLE:
                if waited or policy.read_first or timeout == 0:
                    unit = self._single
            elif self._ready:
                unit = self._ready.popleft()
            elif mode is _CLOSED:
                raise EngineClosedError
            if unit is not None:
                try:
                    got = read(unit)
                except (BlockingIOError, InterruptedError):
                    if mode is not _SINGLE:
                        continue  # another thread took it first; try the next ready socket
                    policy.missed()
                    waited = False
                except OSError:
                    if unit.live and self.mode is not _CLOSED:
                        raise
                    continue  # closed or left under us: look at the new state
                else:
                    if got is DROPPED:
                        if mode is not _SINGLE:
                            self._ready.appendleft(unit)  # it may hold more
                        continue
                    if mode is _SINGLE:
                        policy.found(waited)
                    elif peek:
                        self._ready.appendleft(unit)
                        self._peeked = unit
                    elif unit is self._peeked:
                        self._peeked = None  # (the peeked datagram taken: no batch to start there)
                    return got
            # Nothing to hand: wait for readiness (once, without waiting, when the timeout is 0).
            single_only = mode is _SINGLE and self._plain
            left = remaining(timeout, deadline, waited or single_only or polled)
            if left is EXPIRED:
                return None
            waited = self._wait(left, closes) or timeout == 0
            polled = True  # (timeout 0 has had its one poll: a failed read after it ends the call)

    def _wait(self, timeout: float | None, closes: int = -1) -> bool:
        """One poll round; queues ready sockets (MULTI). False if no socket became ready.
        ``closes``: the receive's count of closes (a close since it began ends it)."""
        poller = self.poller()
        if closes >= 0 and self.closes != closes:  # (closed and reopened since the loop looked)
            raise EngineClosedError
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
            if self.mode is _CLOSED:
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
        if self.mode is _MULTI:
            by_fd = self.by_fd
            self._ready.extend([by_fd[fd] for fd, _ in events if fd in by_fd])
        if self.mode is _CLOSED:
            raise EngineClosedError
        return bool(events)

    def receive_batch(
        self,
        read_many: Callable[[_U, int], list[_T]],
        max_count: int,
        timeout: float | None,
        read_share: Callable[[list[_U], int, int, list[_T], Callable[[_U], bool]], None] | None = None,
        poll_share: Callable[[int, dict[int, _U], int, int, list[_T], Callable[[_U], bool]], int]
        | None = None,
    ) -> list[_T]:
        """Up to ``max_count`` datagrams: waits by ``timeout`` for the first, then takes every one
        already queued, up to ``max_count``, without waiting more; [] on timeout.

        ``read_many(unit, n)`` returns up to n datagrams ([] when none is queued). Fair: the ready
        sockets share ``max_count`` equally; the remainder goes to a different socket each call.
        ``read_share(units, start, room, out, gone)``, where the OS layer offers one, does a whole
        share (:meth:`_share`'s rule, from ``units[start]``) in one call, appending to ``out``;
        ``gone(unit)`` tells it whether a unit whose read failed was left or closed under us.
        ``poll_share(epfd, by_fd, turn, room, out, gone)`` does the non-waiting poll too (several
        sockets, nothing queued, no services): it shares over the ready ones in descriptor order
        from ``turn`` and returns how many were ready (-1: the poll failed; the general path
        finds out why).
        """
        deadline = None if not timeout else time.monotonic() + timeout
        out: list[_T] = []
        waited, closes = False, self.closes
        while True:
            if self.closes != closes:  # (closed meanwhile, perhaps opened again since)
                raise EngineClosedError
            poller = self._poller
            if (
                poll_share is not None
                and poller is not None
                and self.mode is _MULTI
                and self._plain
                and not self._ready
            ):
                try:
                    ready = poll_share(poller.fileno(), self.by_fd, self._turn, max_count, out, self._gone)
                except ValueError:
                    if poller is self._poller:  # (a poller closed under us is the general path's)
                        raise
                    ready = -1
                if ready > 0:
                    self._turn += max_count % ready  # as _share
                if not self.is_open():  # (the poll saw the waker: closed meanwhile)
                    raise EngineClosedError
                if out:
                    return out
                if ready >= 0:
                    left = remaining(timeout, deadline, waited)
                    if left is EXPIRED:
                        return out
                    waited = self._wait(left, closes) or timeout == 0
                    continue
            units = self._ready_now()
            if units:
                n, peeked = len(units), self._peeked
                start = self._turn % n
                self._turn += max_count % n  # (the ones given one more come last next call)
                if peeked is not None:  # a datagram left queued by a peek comes first, as promised
                    self._peeked = None
                    start = units.index(peeked) if peeked in units else start
                if read_share is None:
                    share(read_many, units, start, max_count, out, self._gone)
                else:
                    read_share(units, start, max_count, out, self._gone)
                if out:
                    return out
            if self.mode is _CLOSED:
                raise EngineClosedError
            left = remaining(timeout, deadline, waited)
            if left is EXPIRED:
                return out
            waited = self._wait(left, closes) or timeout == 0

    def _gone(self, unit: _U) -> bool:
        """Whether a unit whose read failed was left or closed under us (its error is not ours)."""
        return not unit.live or self.mode is _CLOSED

    def _ready_now(self) -> list[_U]:
        """The sockets to try now: the single one, or every ready socket (the queue and a
        non-waiting poll), each once, in a stable order."""
        mode = self.mode
        if mode is _SINGLE:
            single = self._single
            return [single] if single is not None else []
        if mode is not _MULTI:
            return []
        poller = self._poller
        if self._plain and not self._ready and poller is not None:
            # Nothing queued, no services: the poll alone says which (epoll reports each once).
            try:
                events = poller.poll(0)
            except (ValueError, OSError):
                events = None  # closed under us: the general path below raises
            if events is not None:
                if self.mode is _CLOSED:
                    raise EngineClosedError
                by_fd = self.by_fd
                if len(events) > 1:
                    events.sort()
                return [by_fd[fd] for fd, _ in events if fd in by_fd]
        self._wait(0)
        units = sorted({u.fd: u for u in self._ready if u.live}.values(), key=_by_fd)
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
