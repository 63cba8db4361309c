"""Following the default interface set while a receiving socket is open (``follow_interfaces``).

The OS's interface-change notifications (Linux: an rtnetlink socket) are one more descriptor the
receive engine watches; elsewhere a rescan runs at most every :data:`RESCAN_PERIOD` seconds
while a receive waits. Either way the change is applied by whichever receive is waiting, or by
the next one.

Layering rule: uses the per-OS layer (the watch), the membership (the refresh) and the engine
(the watching); knows nothing of reading.
"""

from __future__ import annotations

import logging
import os
import socket
import weakref
from collections.abc import Iterable
from typing import Any

from . import _platform
from ._errors import EngineClosedError
from ._membership import Membership

#: Seconds between rescans where the OS gives no change notifications.
RESCAN_PERIOD = 1.0
_log = logging.getLogger("multicast_expert.rx")
#: Followers with a watch socket, for fork handling.
_watching: weakref.WeakSet[InterfaceFollower] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for follower in list(_watching):
        follower.own_watch_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class InterfaceFollower:
    """One receiving socket's watch on the machine's interfaces, from :meth:`start` to :meth:`stop`."""

    def __init__(self, engine: Any, members: Membership) -> None:
        self._engine, self._members = engine, members
        self._watch: socket.socket | None = None
        #: The process that made the watch: after fork() the child shares the parent's open
        #: notification socket, and reading it would take the parent's notifications.
        self._pid = 0

    def start(self) -> None:
        watch = _platform.HOST.interface_watch()
        if watch is None:
            self._engine.set_periodic(RESCAN_PERIOD, self.refresh_quietly)
            return
        self._watch, self._pid = watch, os.getpid()
        self._engine.add_service(watch.fileno(), self._on_change)
        _watching.add(self)

    def own_watch_after_fork(self) -> None:
        """In a fork's child, at once (one thread, no lock taken): the inherited watch is the open
        file the parent reads, and a child not receiving when a change comes would never see it.
        The child's number now holds a watch socket of its own (the engine keeps watching the same
        number), asked for the interface list so that the child's next receive rescans. Should
        that fail, :meth:`_on_change` does it when the inherited socket next turns readable."""
        watch = self._watch
        if watch is None:
            return
        try:
            mine = _platform.HOST.interface_watch()
        except OSError:
            return
        if mine is None:
            return
        try:
            _platform.HOST.poke_watch(mine)
            os.dup2(mine.fileno(), watch.fileno(), inheritable=False)
            self._pid = os.getpid()
        except OSError:
            pass
        finally:
            mine.close()

    def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            self._engine.remove_service(watch.fileno())
            watch.close()  # (in a fork's child: its own copy only)

    def _on_change(self) -> None:
        watch = self._watch
        if watch is None:
            return
        with self._members.lock:  # one thread drains and applies; the others then find nothing to do
            if self._pid != os.getpid():
                # A fork's child: the queued notifications are the parent's to read. The child
                # watches with a socket of its own from now on, and rescans for what it missed.
                self.stop()
                self.start()
                self.refresh_quietly()
                return
            lost = _platform.HOST.drain_watch(watch)
            self.refresh_quietly(lost or ())

    def refresh_quietly(self, lost: Iterable[int] = ()) -> None:
        try:
            self._members.refresh(lost)
        except EngineClosedError:
            pass  # (closed meanwhile: nothing to follow)
        except Exception as exc:  # a receive must not fail because an interface changed
            _log.warning("following interfaces: %s (the socket keeps its current interfaces)", exc)
