"""Live membership of a receiving socket: join and leave groups, block and unblock senders, while
open and on every interface at once.

Layering rule: a mixin of McastRxSocket, built on the engine and the membership module.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._engine import Mode
from ._errors import MulticastExpertError, MulticastValueError
from ._membership import RxState, source_op
from ._rx_args import parse_sources
from ._validate import MulticastAddress, normalize_mcast_ip, normalize_source_ip


class LiveMembership(RxState):
    """Mixin: join_group, leave_group, block_source, unblock_source."""

    def _add_group(self, group: str, sources: tuple[str, ...]) -> None:
        raise NotImplementedError

    def _closed(self, what: str) -> MulticastExpertError:
        return MulticastExpertError(f"{what} on a closed McastRxSocket; open it first")

    def _need_open(self, what: str) -> None:
        if self._engine.mode is Mode.CLOSED:
            raise self._closed(what)

    def join_group(
        self, mcast_ip: MulticastAddress, source_ips: Iterable[MulticastAddress] | None = None
    ) -> None:
        """Start receiving another group (source-specific if ``source_ips``) on every interface.

        A receive already waiting in another thread receives the new group too.

        Raises:
            MulticastExpertError: the socket is closed, the group is already joined or invalid,
                or the join failed.
        """
        self._need_open("join_group()")
        family = self.addr_family
        group = normalize_mcast_ip(mcast_ip, family)
        if group in self._groups:
            raise MulticastValueError(f"Group {group} is already joined by this socket")
        sources = parse_sources(source_ips, family)
        self._add_group(group, sources)
        self._groups[group] = sources

    def leave_group(self, mcast_ip: MulticastAddress) -> None:
        """Stop receiving a group on every interface (also for a receive already waiting).

        Raises:
            MulticastExpertError: the socket is closed, or the group is not joined by it.
        """
        self._need_open("leave_group()")
        group = self._joined(mcast_ip)
        self._engine.remove(self._units.pop(group, []))
        del self._groups[group]
        self._blocked.pop(group, None)

    def _joined(self, mcast_ip: MulticastAddress) -> str:
        group = normalize_mcast_ip(mcast_ip, self.addr_family)
        if group not in self._groups:
            raise MulticastValueError(
                f"Group {group} is not joined by this socket; joined groups: {list(self._groups)}"
            )
        return group

    def _any_source_group(self, mcast_ip: MulticastAddress, source_ip: MulticastAddress) -> tuple[str, str]:
        group = self._joined(mcast_ip)
        if self._groups[group]:
            raise MulticastValueError(
                f"Group {group} is source-specific; blocking applies to any-source groups only"
            )
        return group, normalize_source_ip(source_ip, self.addr_family)

    def block_source(self, mcast_ip: MulticastAddress, source_ip: MulticastAddress) -> None:
        """Stop receiving one sender on an any-source group (all interfaces).

        Raises:
            MulticastExpertError: closed, group not joined or source-specific, source already blocked.
        """
        self._need_open("block_source()")
        group, source = self._any_source_group(mcast_ip, source_ip)
        blocked = self._blocked.setdefault(group, set())
        if source in blocked:
            raise MulticastValueError(f"Source {source} is already blocked on {group}")
        source_op(
            self._units[group],
            "block_source",
            source,
            self.addr_family,
            f"Blocking source {source} on {group}",
        )
        blocked.add(source)

    def unblock_source(self, mcast_ip: MulticastAddress, source_ip: MulticastAddress) -> None:
        """Undo block_source().

        Raises:
            MulticastExpertError: closed, group not joined, or the source is not blocked.
        """
        self._need_open("unblock_source()")
        group, source = self._any_source_group(mcast_ip, source_ip)
        if source not in self._blocked.get(group, set()):
            raise MulticastValueError(f"Source {source} is not blocked on {group}")
        source_op(
            self._units[group],
            "unblock_source",
            source,
            self.addr_family,
            f"Unblocking source {source} on {group}",
        )
        self._blocked[group].discard(source)
