"""A receiving socket's membership: the one owner of its groups and their sources, blocked
senders, OS sockets, and chosen and skipped interfaces.

Every operation (open, join, leave, block, unblock, refresh, close) is a transaction: it runs under
one lock, is all or nothing (one ``ExitStack`` undoes what it did when a step fails), and reports
the OS sockets it added and removed as a :class:`Change`. Handing that change to ``apply`` (the
receive engine's) is the only way the engine learns of sockets.

Layering rule: uses the per-OS layer for every option and ``interfaces`` for the machine's
interfaces; knows nothing of reading or waiting.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import socket
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, TypeVar

from . import _iface_plan, _platform
from ._errors import EngineClosedError, MulticastExpertError, MulticastOSError, MulticastValueError
from ._platform import Action, Concern
from ._platform._options import RxPlan
from ._platform._structs import Target
from ._unit import Unit
from ._warn import caller_outside_package, fd_limit_raised
from .interfaces import (
    IfaceInfo,
    cached_interfaces,
    check_netns,
    iface_ip,
    listenable_interfaces,
    rescan_interfaces,
    thread_netns,
)


class Change(NamedTuple):
    """What one transaction did to the set of OS sockets."""

    added: list[Unit]
    removed: list[Unit]


class RxSettings(NamedTuple):
    """What every OS socket of one receiving socket is opened with."""

    family: int
    port: int
    external_loopback: bool
    rcvbuf: int | None
    #: Per-datagram metadata to turn on, where the OS has it (elsewhere the packet field stays None).
    meta: tuple[Concern, ...]


_new = tuple.__new__
#: Receive side: DEBUG one line per OS socket opened, INFO the interfaces joined, skipped and followed.
log = logging.getLogger("multicast_expert.rx")
_R = TypeVar("_R")


class Membership:
    """See the module docstring. ``apply`` receives every :class:`Change`, under the lock."""

    def __init__(
        self,
        settings: RxSettings,
        groups: dict[str, tuple[str, ...]],
        ifaces: list[IfaceInfo],
        *,
        named: bool,
        raise_fd_limit: bool,
        apply: Callable[[Change], None],
    ) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        #: group -> its sources (empty: any-source), in join order.
        self.groups = groups
        #: group -> blocked senders.
        self.blocked: dict[str, set[str]] = {}
        #: group -> its OS sockets (empty while closed).
        self.units: dict[str, list[Unit]] = {}
        #: The interfaces listened on, and (by index) the record each had when joined.
        self.ifaces, self._joined_as = list(ifaces), dict[int, IfaceInfo]()
        #: Interfaces of the default set left out because they could not join: name -> reason.
        self.skipped: dict[str, str] = {}
        #: Names of named interfaces found gone by the last refresh: their records in
        #: :attr:`ifaces` are the last known (an old index), looked up by name before a join.
        self.absent: set[str] = set()
        self.granted_rcvbuf: int | None = None
        self.named = named
        self.raise_fd_limit = raise_fd_limit
        self._apply = apply
        #: Whether open: set by a successful :meth:`open` and cleared by :meth:`close`, both under
        #: the lock. Every other transaction checks it under the lock (``_need_opened``): a join
        #: that lost a race with close() or open() would otherwise commit sockets no close takes
        #: out (left open) or that open() makes again (every datagram twice).
        self.opened = False
        #: The network namespace of the thread that made the socket (interfaces.thread_netns):
        #: interfaces are looked up, and OS sockets made, from threads in it only.
        self.netns = thread_netns()
        #: Whether every OS socket is made non-blocking (the asyncio socket's; reads never wait
        #: whatever the mode: MSG_DONTWAIT, or non-blocking anyway where the OS has no such flag).
        self.nonblocking = False

    # ---- queries -----------------------------------------------------------------------------
    def all_units(self) -> list[Unit]:
        with self.lock:
            return [u for units in self.units.values() for u in units]

    def iface_ips(self) -> list[str]:
        """The address of each interface listened on that has one of the family now (a named
        interface that lost its address, or is gone for the moment, has none to list)."""
        family, absent = self.settings.family, self.absent
        ips = (i.primary_ip(family) for i in self.ifaces if i.machine_name not in absent)
        return [ip for ip in ips if ip is not None]

    # ---- transactions --------------------------------------------------------------------------
    def reset_ifaces(self, ifaces: list[IfaceInfo]) -> None:
        """Before :meth:`open`: listen on ``ifaces`` (a following socket's default set, rescanned)."""
        with self.lock:
            self.ifaces, self._joined_as = ifaces, {}

    def open(self) -> None:
        """Join every group on every interface (skipping, on the default set, interfaces that
        can't join). Out of descriptors although the request looked small: count, raise, retry."""
        check_netns(self.netns, "open()")
        with self.lock:
            try:
                self._open()
            except OSError as exc:
                if exc.errno != errno.EMFILE or not self._make_fd_room(
                    self._sockets_needed(len(self.ifaces)), force=True
                ):
                    raise
                self._open()
            self.opened = True

    def _open(self) -> None:
        if self.skipped:
            self.skipped = {}
        if self.absent:
            self._find_absent()
        st = self.settings
        plain = st.rcvbuf is None and not st.meta and not self.blocked and not any(self.groups.values())
        needed = len(self.groups) * len(self.ifaces) if plain else self._sockets_needed(len(self.ifaces))
        if self.raise_fd_limit:  # (_make_fd_room's body: open retries on EMFILE with a fresh count)
            raised = _platform.HOST.ensure_fd_room(needed + 4, cached=True)
            if raised is not None:
                fd_limit_raised(raised, needed)
        skip = not self.named and bool(self.groups)
        info = log.isEnabledFor(logging.INFO)  # (DEBUG is off whenever INFO is)
        if plain:
            joined, units = self._open_plain(
                self.ifaces, skip=skip, debug=info and log.isEnabledFor(logging.DEBUG)
            )
            if skip and not joined:
                raise self._none_joined()  # (nothing is open: every interface was skipped)
        else:
            with contextlib.ExitStack() as undo:
                joined, units = self._open_ifaces(self.ifaces, skip=skip, undo=undo)
                if skip and not joined:
                    raise self._none_joined()
                undo.pop_all()
        if skip:
            self.ifaces = joined
        self._commit(units, [])
        if info:
            log.info(
                "receiving %d group(s) on port %d on %s (%s)",
                len(self.groups),
                self.settings.port,
                [i.machine_name for i in self.ifaces],
                "interfaces named" if self.named else "default interface set",
            )

    def _none_joined(self) -> MulticastExpertError:
        return MulticastExpertError(
            "No interface could join: " + "; ".join(f"{name}: {why}" for name, why in self.skipped.items())
        )

    def close(self, finish: Callable[[list[Unit]], None]) -> None:
        """Leave everything: every OS socket is taken out under the lock and handed to ``finish``
        (the engine's close, which closes them and wakes every receiver)."""
        with self.lock:
            self.opened = False
            units = self.units
            if len(units) == 1:  # (one group: its own list, handed over; the dictionary is dropped)
                removed = next(iter(units.values()))
            else:
                removed = list(itertools.chain.from_iterable(units.values()))
            self.units = {}
            finish(removed)

    def join(self, group: str, sources: tuple[str, ...]) -> None:
        """Join one more group on every interface; all or nothing."""
        check_netns(self.netns, "join_group()")
        with self.lock:
            self._need_opened()
            if group in self.groups:
                raise MulticastValueError(f"Group {group} is already joined by this socket")
            if self.absent:
                self._find_absent()
            self._make_fd_room(self._sockets_needed(len(self.ifaces), [sources]))
            units = self._retry_if_vanished(lambda: self._open_group_everywhere(group, sources))
            self.groups[group] = sources
            self._commit(units, [])

    def _open_group_everywhere(self, group: str, sources: tuple[str, ...]) -> list[Unit]:
        with contextlib.ExitStack() as undo:
            units: list[Unit] = []
            for iface in self.ifaces:
                units += self._open_group(group, sources, (), iface, undo)
            undo.pop_all()
        return units

    def leave(self, group: str) -> None:
        """Leave one group on every interface."""
        with self.lock:
            self._need_opened()
            self._need_group(group)
            removed = self.units.pop(group, [])
            del self.groups[group]
            self.blocked.pop(group, None)
            self._apply(Change([], removed))

    def block(self, group: str, source: str) -> None:
        """Stop receiving ``source`` on an any-source group, on every interface; all or nothing."""
        with self.lock:
            self._need_opened()
            self._need_any_source(group)
            if source in self.blocked.get(group, ()):
                raise MulticastValueError(f"Source {source} is already blocked on {group}")
            self._retry_if_vanished(
                lambda: self._source_op(
                    group, source, Concern.BLOCK_SOURCE, Concern.UNBLOCK_SOURCE, "Blocking"
                )
            )
            self.blocked.setdefault(group, set()).add(source)

    def unblock(self, group: str, source: str) -> None:
        """Undo :meth:`block`; all or nothing."""
        with self.lock:
            self._need_opened()
            self._need_any_source(group)
            if source not in self.blocked.get(group, ()):
                raise MulticastValueError(f"Source {source} is not blocked on {group}")
            self._retry_if_vanished(
                lambda: self._source_op(
                    group, source, Concern.UNBLOCK_SOURCE, Concern.BLOCK_SOURCE, "Unblocking"
                )
            )
            self.blocked[group].discard(source)

    def refresh(self, lost: Iterable[int] = ()) -> None:
        """Rescan the machine's interfaces and apply the result (see McastRxSocket.refresh_interfaces).

        ``lost``: indexes of interfaces known to have gone away meanwhile (they may be back under the
        same index); their memberships are made again.
        """
        check_netns(self.netns, "refresh_interfaces()")
        with self.lock:
            self._need_opened()
            rescan_interfaces()
            named = list(self.ifaces) if self.named else []
            machine = cached_interfaces() if self.named else listenable_interfaces(self.settings.family)
            current, gone, kept, added, absent = _iface_plan.plan(
                self.ifaces,
                self._joined_as,
                named=self.named,
                machine=machine,
                stale=set(lost) | self._kernel_lost(),
            )
            self.absent = {i.machine_name for i in absent}  # (before any join: one may fail)
            if gone:
                removed = []
                for group, units in self.units.items():
                    keep = [u for u in units if u.iface.index not in gone]
                    if len(keep) != len(units):
                        removed += [u for u in units if u.iface.index in gone]
                        self.units[group] = keep
                for idx in gone:
                    self._joined_as.pop(idx, None)
                self._apply(Change([], removed))
            self.ifaces = kept
            for i in kept:
                self._joined_as[i.index] = i
            if gone:
                log.info(
                    "left every group on interface(s) %s (gone, changed or memberships lost)",
                    [i.machine_name for idx, i in current.items() if idx in gone],
                )
            if added:
                for iface in added:
                    self.skipped.pop(iface.machine_name, None)
                try:
                    self._make_fd_room(self._sockets_needed(len(added)))
                    with contextlib.ExitStack() as undo:
                        joined, units = self._open_ifaces(added, skip=not self.named, undo=undo)
                        undo.pop_all()
                except BaseException:
                    if self.named:  # (nothing of added joined: all still named, for a later refresh)
                        self.ifaces = _iface_plan.in_order(named, kept + added + absent)
                    raise
                self.ifaces = kept + joined
                self._commit(units, [])
                if joined:
                    log.info("joined every group on interface(s) %s", [i.machine_name for i in joined])
            if absent:
                self.ifaces = _iface_plan.in_order(named, self.ifaces + absent)
                names = ", ".join(i.machine_name for i in absent)
                raise MulticastOSError(
                    errno.ENODEV,
                    f"Joining every group on {names} failed: the interface no longer exists. It stays "
                    "one of this socket's interfaces: refresh_interfaces() joins it when it is back",
                )

    # ---- steps ---------------------------------------------------------------------------------
    def _find_absent(self) -> None:
        """Look the named interfaces last found gone up by name (rescanned now): one that is
        back is joined where it is now, never under its old index (another interface may have
        that); one still gone keeps its old record, whose join fails (its device, by name, is
        not there)."""
        self.ifaces, self.absent = _iface_plan.find_by_name(self.ifaces, self.absent, rescan_interfaces())

    def _commit(self, added: list[Unit], removed: list[Unit]) -> None:
        units, joined_as = self.units, self._joined_as
        for u in added:
            units.setdefault(u.group, []).append(u)
        for i in self.ifaces:
            joined_as.setdefault(i.index, i)
        self._apply(_new(Change, (added, removed)))  # (the NamedTuple's __new__ is a Python call)

    def _need_opened(self) -> None:
        if not self.opened:
            raise EngineClosedError  # (the socket class words the error the user sees)

    def _need_group(self, group: str) -> None:
        if group not in self.groups:
            raise MulticastValueError(
                f"Group {group} is not joined by this socket; joined groups: {list(self.groups)}"
            )

    def _need_any_source(self, group: str) -> None:
        self._need_group(group)
        if self.groups[group]:
            raise MulticastValueError(
                f"Group {group} is source-specific; blocking applies to any-source groups only"
            )

    def _retry_if_vanished(self, step: Callable[[], _R]) -> _R:
        """Run ``step``; on the default set, an interface that vanished under it is dropped (as a
        rescan would) and the step runs once more on the interfaces that are left."""
        try:
            return step()
        except OSError as exc:
            if self.named or not _platform.OPS.interface_cannot_join(exc):
                raise
            before = {i.index for i in self.ifaces}
            self.refresh()
            if {i.index for i in self.ifaces} >= before:
                raise  # nothing vanished: the error stands
            return step()

    def _source_op(self, group: str, source: str, concern: Concern, undo_concern: Concern, verb: str) -> None:
        ops, family = _platform.OPS, self.settings.family
        action = Action.BLOCK_SOURCE if concern is Concern.BLOCK_SOURCE else Action.UNBLOCK_SOURCE
        with contextlib.ExitStack() as undo:
            for u in self.units.get(group, []):
                target = u.target._replace(source=source)
                where = f"{verb} source {source} on {group} ({u.iface.machine_name})"
                with _platform.os_errors(action, family, where):
                    ops.set(u.sock, concern, family, target)
                undo.callback(_quietly, ops.set, u.sock, undo_concern, family, target)
            undo.pop_all()

    def _open_plain(
        self, ifaces: Sequence[IfaceInfo], *, skip: bool, debug: bool
    ) -> tuple[list[IfaceInfo], list[Unit]]:
        """:meth:`_open_ifaces` when every socket is one OS plan plus one any-source join (no
        sources, nothing blocked, no receive buffer size, no metadata options), with the same
        outcome, without an undo stack: a socket that fails closes itself, an interface skipped
        closes its sockets, and any failure that ends the call closes every socket made so far."""
        groups = self.groups
        if not groups:
            return list(ifaces), []
        ops, io, st = _platform.OPS, _platform.IO, self.settings
        family, port, external = st.family, st.port, st.external_loopback
        joined: list[IfaceInfo] = []
        units: list[Unit] = []
        try:
            for iface in ifaces:
                first = len(units)
                ip = iface.primary_ip(family) or iface_ip(iface, family)  # (the latter raises)
                index, name = iface.index, iface.machine_name
                loop = external or iface.is_localhost()
                try:
                    for group in groups:
                        plan = ops.cached_rx_plan(family, group, port, index, name, ip, loop)
                        units.append(self._plain_unit(ops, io, plan, iface))
                        if debug:
                            log.debug(_OPENED, units[-1].fd, group, port, name, index, "any source")
                except OSError as exc:
                    if not skip or not ops.interface_cannot_join(exc):
                        raise
                    for u in reversed(units[first:]):
                        u.close()
                    del units[first:]
                    self._skip(iface, exc)
                    continue
                joined.append(iface)
        except BaseException:
            for u in reversed(units):
                u.close()
            raise
        return joined, units

    def _plain_unit(
        self, ops: _platform.OsOptions, io: _platform.DatagramIO, plan: RxPlan, iface: IfaceInfo
    ) -> Unit:
        """One OS socket by its plan: the steps and errors of :meth:`_open_group` without sources."""
        t = plan.target
        family = self.settings.family
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)  # (looked up now: tests swap it)
        except OSError as exc:
            better = _join_error(exc, t.group, iface, family, sources=False)
            if better is exc:
                raise
            raise better from exc
        try:
            if self.nonblocking:
                sock.setblocking(False)
            reader = io.open_reader(sock)
            ops.prepare_rx(sock, plan)
            join = plan.join
            if join is None:
                ops.set(sock, Concern.JOIN, family, t)  # (raises: this OS has no such option)
            else:
                sock.setsockopt(*join)
        except OSError as exc:
            sock.close()
            better = _join_error(exc, t.group, iface, family, sources=False)
            if better is exc:
                raise
            raise better from exc
        except BaseException:
            sock.close()
            raise
        return Unit(sock, reader, t.group, iface, (), t)

    def _open_ifaces(
        self, ifaces: Sequence[IfaceInfo], *, skip: bool, undo: contextlib.ExitStack
    ) -> tuple[list[IfaceInfo], list[Unit]]:
        """Every group's sockets on each of ``ifaces``. With ``skip``, an interface that can't
        join is left out (with a warning and an entry in ``skipped``)."""
        joined: list[IfaceInfo] = []
        units: list[Unit] = []
        for iface in ifaces:
            with contextlib.ExitStack() as mine:
                try:
                    got: list[Unit] = []
                    for group, sources in self.groups.items():
                        got += self._open_group(
                            group, sources, sorted(self.blocked.get(group, ())), iface, mine
                        )
                except OSError as exc:
                    if not skip or not _platform.OPS.interface_cannot_join(exc):
                        raise
                    self._skip(iface, exc)
                    continue
                undo.push(mine.pop_all())
            units += got
            joined.append(iface)
        return joined, units

    def _open_group(
        self,
        group: str,
        sources: tuple[str, ...],
        blocked: Sequence[str],
        iface: IfaceInfo,
        undo: contextlib.ExitStack,
    ) -> list[Unit]:
        """The OS sockets for one group on one interface: more than one when the group has more
        sources than one socket may hold. Each socket's close is pushed onto ``undo``."""
        ops, io, st = _platform.OPS, _platform.IO, self.settings
        family = st.family
        per = ops.sources_per_socket(family) if sources else None
        chunks = [sources[i : i + per] for i in range(0, len(sources), per)] if per else [sources]
        loop = st.external_loopback or iface.is_localhost()
        t = Target(
            group=group, iface_ip=iface_ip(iface, family), ifindex=iface.index, ifname=iface.machine_name
        )
        units: list[Unit] = []
        for chunk in chunks:
            # What a refusal is about (it picks the limit the error names): the socket and its
            # membership (the first source's join makes it) until a source is in, then its sources.
            action = Action.OPEN_RX
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                undo.callback(sock.close)
                if self.nonblocking:
                    sock.setblocking(False)
                reader = io.open_reader(sock)
                ops.configure_rx(sock, family, t, st.port, loop)
                for src in chunk:
                    ops.set(sock, Concern.JOIN_SOURCE, family, t._replace(source=src))
                    action = Action.JOIN_SOURCE
                if not chunk:
                    ops.set(sock, Concern.JOIN, family, t)
                for src in blocked:
                    ops.set(sock, Concern.BLOCK_SOURCE, family, t._replace(source=src))
                if st.rcvbuf is not None:
                    self._set_rcvbuf(sock, st.rcvbuf)
                for concern in st.meta:
                    if ops.supports(concern, family):
                        ops.set(sock, concern, family, t._replace(value=1))
            except OSError as exc:
                better = _join_error(exc, group, iface, family, sources=bool(chunk), action=action)
                if better is exc:
                    raise
                raise better from exc
            units.append(Unit(sock, reader, group, iface, chunk, t))
            if log.isEnabledFor(logging.DEBUG):
                where = f"{len(chunk)} source(s)" if chunk else "any source"
                log.debug(_OPENED, sock.fileno(), group, st.port, iface.machine_name, iface.index, where)
        return units

    def _set_rcvbuf(self, sock: socket.socket, size: int) -> None:
        ops, family = _platform.OPS, self.settings.family
        ops.set(sock, Concern.RCVBUF, family, Target(value=size))
        opt = ops.OPTIONS[(Concern.RCVBUF, family)]
        granted = sock.getsockopt(opt.level, opt.name)
        if self.granted_rcvbuf is None and granted < size:
            warnings.warn(
                f"rcvbuf: asked for {size} bytes, the OS granted {granted} (raise the sysctl "
                "net.core.rmem_max to allow more)",
                RuntimeWarning,
                stacklevel=caller_outside_package(),
            )
        self.granted_rcvbuf = granted

    def _skip(self, iface: IfaceInfo, exc: OSError) -> None:
        reason = str(exc)
        self.skipped[iface.machine_name] = reason
        log.info("skipping interface %s: it could not join (%s)", iface.machine_name, reason)
        warnings.warn(
            f"skipping interface {iface.machine_name}: it could not join ({reason})",
            RuntimeWarning,
            stacklevel=caller_outside_package(),
        )

    def _kernel_lost(self) -> set[int]:
        """Interfaces where the kernel no longer lists a group this socket joined (the interface
        went away and came back under the same index, say). Empty where the OS can't tell."""
        held = _platform.HOST.memberships() if self.units else None
        joined = ((u.iface, group) for group, units in self.units.items() for u in units)
        return set() if held is None else _iface_plan.not_listed(joined, held)

    # ---- descriptors ---------------------------------------------------------------------------
    def _sockets_needed(self, ifaces: int, groups: Sequence[tuple[str, ...]] | None = None) -> int:
        per = _platform.OPS.sources_per_socket(self.settings.family)
        total = 0
        for sources in self.groups.values() if groups is None else groups:
            total += -(-len(sources) // per) if sources and per else 1
        return total * ifaces

    def _make_fd_room(self, needed: int, *, force: bool = False, cached: bool = False) -> bool:
        """Raise the soft descriptor limit if ``needed`` more would not fit; True if it did.
        ``cached``: the caller retries with ``force`` after an EMFILE (see Host.ensure_fd_room)."""
        if not self.raise_fd_limit:
            return False
        # + poller, waker, watch
        return fd_limit_raised(_platform.HOST.ensure_fd_room(needed + 4, force=force, cached=cached), needed)


def _quietly(fn: Callable[..., object], *args: object) -> None:
    """An undo step: best effort (the socket may be gone with its interface)."""
    with contextlib.suppress(OSError):
        fn(*args)


#: The DEBUG line for each OS socket opened.
_OPENED = "opened fd %d: %s port %d on %s (index %d), %s"


def _join_error(
    exc: OSError, group: str, iface: IfaceInfo, family: int, *, sources: bool, action: Action = Action.OPEN_RX
) -> OSError:
    """A failed socket's error, worded by the OS layer when it knows it (else ``exc`` itself); the
    wording is built only when there is an error."""
    where = f"Joining {group} on {iface.machine_name}" + (" with sources" if sources else "")
    return _platform.translate_oserror(exc, action, family, where)
