"""Locks across fork(): a child must not inherit a lock that a thread it does not have holds.

Before fork() every registered receive socket's locks are taken, in the order threads take them
(its ``_locks()``: open and close, membership, engine, fast methods), so a membership change
running in another thread (a refresh, a join) finishes first; the parent and the child release
them after. Without this, a child forked during such a change could never close its copy.

Also the child's half of the receive engines' pollers (see :data:`pollers`).

Layering rule: knows nothing of sockets beyond their ``_locks()`` and the engines'
``forget_poller()`` methods.
"""

from __future__ import annotations

# (logging first: the logging module registers its own at-fork handler, which takes its lock, when
# imported, and before-fork handlers run last-registered first. Ours must run before it: a thread
# holding a socket's lock may be waiting for logging's (a logger's level cache), and the fork
# would then wait for that socket's lock for 30 s and leave it held in the child.)
import logging  # noqa: F401
import os
import threading
import weakref
from typing import Any

#: Weak references to the sockets whose locks a fork takes (a socket collected needs nothing;
#: its reference takes itself out). Plain references in a set: cheaper than a WeakSet.
_owners: set[weakref.ref[Any]] = set()
#: The locks taken by the fork under way, in the order taken; ``_one_fork`` lets one fork at a
#: time through these handlers (two threads forking at once would mix their lists).
_held: list[Any] = []
_one_fork = threading.Lock()
#: How long a lock is waited for before a fork goes ahead without it (one the forking thread
#: itself holds, a plain Lock, would otherwise be waited for forever).
WAIT = 30.0


#: Module locks taken while a socket's locks are held (interfaces' scan lock): taken last.
_innermost: list[Any] = []


def register(owner: Any) -> None:
    """Take ``owner._locks()`` before every fork from now on."""
    _owners.add(weakref.ref(owner, _owners.discard))


def register_innermost(lock: Any) -> None:
    """Take ``lock`` before every fork, after every socket's locks (it is taken inside them)."""
    _innermost.append(lock)


def _before_fork() -> None:
    _one_fork.acquire()
    locks = []
    for ref in list(_owners):
        owner = ref()
        if owner is not None:
            locks += owner._locks()
    for lock in [*locks, *_innermost]:
        if lock.acquire(timeout=WAIT):
            _held.append(lock)


def _after_fork() -> None:
    while _held:
        _held.pop().release()
    _one_fork.release()


#: Receive engines with a poller: a fork's child shares the parent's epoll instance, and
#: unregistering through it would deafen the parent, so the child drops its copy (closing only
#: its own descriptors) and builds a new one (``forget_poller()``).
pollers: weakref.WeakSet[Any] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    _after_fork()
    for engine in list(pollers):
        engine.forget_poller()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork_in_child)
