"""The receiving socket's interface set: joining groups interface by interface (skipping, on the
default set, interfaces that can't join), following interfaces as they come and go, and making
room for the descriptors it needs.

Layering rule: a mixin of McastRxSocket; uses the engine, membership and the per-OS layer.
"""

from __future__ import annotations

import errno
import socket
import warnings
from collections.abc import Sequence

from . import _platform
from ._engine import Mode
from ._errors import MulticastExpertError
from ._membership import GroupSpec, RxState, Unit, caller_outside_package, open_units
from ._sockbase import iface_ip as primary_ip
from .interfaces import IfaceInfo, cached_interfaces, listenable_interfaces, rescan_interfaces

#: Errors that mean "this interface can't join now" (gone, no address, refused, out of buffers;
#: 10022 is Windows' WSAEINVAL for a disconnected adapter). On the default set such an interface
#: is skipped with a warning; a named interface still fails the open.
SKIPPABLE = frozenset({errno.ENODEV, errno.EADDRNOTAVAIL, errno.EINVAL, errno.ENOBUFS, 10022})
#: Seconds between rescans where the OS gives no change notifications.
RESCAN_PERIOD = 1.0

_warned_fd_limit = False


class InterfaceSet(RxState):
    """Mixin: what McastRxSocket does with its interfaces (see the module docstring)."""

    _spec: GroupSpec
    _named: bool
    _follow: bool
    _raise_fd_limit: bool
    _watch: socket.socket | None
    skipped_interfaces: dict[str, str]

    # ---- joining ------------------------------------------------------------------------------
    def _sockets_needed(self, ifaces: int, groups: Sequence[tuple[str, ...]] | None = None) -> int:
        per = _platform.OPS.sources_per_socket(self.addr_family)
        total = 0
        for sources in self._groups.values() if groups is None else groups:
            total += -(-len(sources) // per) if sources and per else 1
        return total * ifaces

    def _make_fd_room(self, needed: int, *, force: bool = False) -> bool:
        """Raise the soft descriptor limit if ``needed`` more would not fit; True if it did."""
        global _warned_fd_limit
        if not self._raise_fd_limit:
            return False
        raised = _platform.OPS.ensure_fd_room(needed + 4, force=force)  # + poller, waker, watch
        if raised is not None and not _warned_fd_limit:
            _warned_fd_limit = True
            warnings.warn(
                f"raised this process's soft RLIMIT_NOFILE from {raised[0]} to {raised[1]} to hold "
                f"{needed} multicast sockets (one per group and interface); pass raise_fd_limit=False "
                "to McastRxSocket to prevent this",
                RuntimeWarning,
                stacklevel=caller_outside_package(),
            )
        return raised is not None

    def _join_on(self, ifaces: Sequence[IfaceInfo], *, skip: bool) -> list[IfaceInfo]:
        """Open every group's sockets on ``ifaces``; returns the interfaces that worked.

        With ``skip``, an interface failing with a SKIPPABLE error is left out (with a warning and
        an entry in ``skipped_interfaces``); otherwise any failure closes what this call opened.
        """
        family = self.addr_family
        joined: list[IfaceInfo] = []
        opened: dict[str, list[Unit]] = {}
        try:
            for iface in ifaces:
                target = [(iface, primary_ip(iface, family))]
                mine: dict[str, list[Unit]] = {}
                try:
                    for group, sources in self._groups.items():
                        blocked = sorted(self._blocked.get(group, ()))
                        mine[group] = open_units(self._spec, group, sources, blocked, ifaces=target)
                except OSError as exc:
                    for units in mine.values():
                        for u in units:
                            u.sock.close()
                    if not skip or exc.errno not in SKIPPABLE:
                        raise
                    self._skip(iface, exc)
                    continue
                for group, units in mine.items():
                    opened.setdefault(group, []).extend(units)
                joined.append(iface)
        except BaseException:
            for units in opened.values():
                for u in units:
                    u.sock.close()
            raise
        for group, units in opened.items():
            self._units.setdefault(group, []).extend(units)
            self._engine.add(units)
        return joined

    def _skip(self, iface: IfaceInfo, exc: OSError) -> None:
        reason = str(exc)
        self.skipped_interfaces[iface.machine_name] = reason
        warnings.warn(
            f"skipping interface {iface.machine_name}: it could not join ({reason})",
            RuntimeWarning,
            stacklevel=caller_outside_package(),
        )

    def _open_interfaces(self) -> None:
        """Join every group on every interface (open())."""
        self.skipped_interfaces = {}
        self._make_fd_room(self._sockets_needed(len(self._ifaces)))
        if self._named or not self._groups:
            self._join_on(self._ifaces, skip=False)
        else:
            joined = self._join_on(self._ifaces, skip=True)
            if not joined:
                raise MulticastExpertError(
                    "No interface could join: "
                    + "; ".join(f"{name}: {why}" for name, why in self.skipped_interfaces.items())
                )
            self._set_ifaces(joined)
        if self._follow:
            self._start_watch()

    @property
    def _ifaces(self) -> list[IfaceInfo]:
        """The interfaces listened on (the group spec holds them, with their addresses)."""
        return [i for i, _ in self._spec.ifaces]

    def _set_ifaces(self, ifaces: list[IfaceInfo]) -> None:
        self._spec.ifaces = [(i, primary_ip(i, self.addr_family)) for i in ifaces]

    # ---- following --------------------------------------------------------------------------
    def refresh_interfaces(self) -> None:
        """Rescan the machine's interfaces now and apply the result.

        On the default interface set, every group is joined on interfaces that appeared (or gained
        an address of the family) and left on interfaces that are gone. Named interfaces stay the
        same ones; only their details (addresses) are refreshed.

        Raises:
            MulticastExpertError: the socket is closed.
        """
        if self._engine.mode is Mode.CLOSED:
            raise MulticastExpertError("refresh_interfaces() on a closed McastRxSocket; open it first")
        rescan_interfaces()
        if self._named:
            fresh = {i.index: i for i in cached_interfaces()}
            self._set_ifaces([fresh.get(i.index, i) for i in self._ifaces])
            return
        wanted = {i.index: i for i in listenable_interfaces(self.addr_family)}
        current = {i.index: i for i in self._ifaces}
        gone = [idx for idx in current if idx not in wanted]
        for group, units in self._units.items():
            dead = [u for u in units if u.iface.index in gone]
            if dead:
                self._units[group] = [u for u in units if u.iface.index not in gone]
                self._engine.remove(dead)
        added = [i for idx, i in wanted.items() if idx not in current]
        kept = [wanted[idx] for idx in current if idx in wanted]
        self._set_ifaces(kept)
        if added:
            self._make_fd_room(self._sockets_needed(len(added)))
            for name in [i.machine_name for i in added]:
                self.skipped_interfaces.pop(name, None)
            self._set_ifaces(kept + self._join_on(added, skip=True))

    def _refresh_quietly(self) -> None:
        try:
            self.refresh_interfaces()
        except Exception as exc:  # a receive must not fail because an interface changed
            warnings.warn(f"following interfaces: {exc}", RuntimeWarning, stacklevel=2)

    def _start_watch(self) -> None:
        watch = _platform.OPS.interface_watch()
        if watch is None:
            self._engine.set_periodic(RESCAN_PERIOD, self._refresh_quietly)
            return
        self._watch = watch
        self._engine.add_service(watch.fileno(), self._on_interface_change)

    def _on_interface_change(self) -> None:
        watch = self._watch
        if watch is None:
            return
        try:
            while watch.recv(65536):  # drain: the messages only say "something changed"
                pass
        except OSError:  # BlockingIOError once drained; ENOBUFS if notifications overflowed
            pass
        self._refresh_quietly()

    def _stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            self._engine.remove_service(watch.fileno())
            watch.close()
