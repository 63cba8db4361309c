"""The per-OS layer's host helpers: interface indexes and flags, default routes, change
notifications, descriptor limits, kernel settings, drop counters and memberships.

Layering rule: part of ``_platform``. Used by ``interfaces``, the receive socket's interface
following and the CLI; the sockets' data path never calls it.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import netifaces


class Host:
    """One OS's view of the host; this base knows only what netifaces and the socket module tell."""

    @property
    def link_family(self) -> int:
        """The netifaces key of link-layer (MAC) addresses."""
        return int(netifaces.AF_LINK)

    def iface_index(self, name: str) -> int:
        """The OS interface index of an interface name."""
        return socket.if_nametoindex(name)

    def default_route_iface_name(self, family: int) -> str | None:
        """Name of the interface holding the default route of ``family``, or None."""
        try:
            default = netifaces.gateways().get("default")
        except OSError:  # no routing table readable: no default gateway
            return None
        entry = default.get(family) if isinstance(default, dict) else None
        return str(entry[1]) if isinstance(entry, tuple) and len(entry) > 1 else None

    def interface_watch(self) -> socket.socket | None:
        """A non-blocking socket readable whenever interfaces or addresses change, or None where the
        OS has none (callers then rescan periodically). Its data only signals; drain and discard it."""
        return None

    def poke_watch(self, watch: socket.socket) -> None:
        """Make an :meth:`interface_watch` socket readable soon, so its next drain leads to a
        rescan (nothing where the OS has no watch)."""

    def drain_watch(self, watch: socket.socket) -> set[int] | None:
        """Read every queued notification of an :meth:`interface_watch` socket. Returns the indexes
        of interfaces that went away meanwhile (they may be back under the same index), or None
        when notifications were lost and any interface may have."""
        try:
            while watch.recv(65536):
                pass
        except BlockingIOError:
            pass
        except OSError:
            return None
        return set()

    def ensure_fd_room(
        self, needed: int, *, force: bool = False, cached: bool = False
    ) -> tuple[int, int] | None:
        """Make room for ``needed`` more descriptors by raising the soft limit towards the hard one
        (``force``: count even when the request looks small, as after an EMFILE; ``cached``: the
        caller retries with ``force`` after an EMFILE, so a small request may be judged against the
        limit seen last instead of asking the OS again).

        Returns ``(old, new)`` soft limits if it raised it, None if nothing was needed or possible.
        """
        return None

    def fd_limits(self) -> tuple[int, int] | None:
        """``(soft, hard)`` limits on open descriptors, or None where the OS has none."""
        return None

    def iface_flags(self, name: str) -> dict[str, bool] | None:
        """``{"up", "running" (carrier), "multicast"}`` flags of an interface, or None where unknown."""
        return None

    # ---- diagnostics (the CLI's doctor, listen) -----------------------------------------------
    def read_setting(self, name: str) -> str | None:
        """A kernel setting (sysctl) by dotted name, or None where unknown."""
        return None

    def socket_drops(self, socks: Sequence[socket.socket]) -> int | None:
        """Datagrams the kernel dropped on these sockets (buffer full), or None where unknown."""
        return None

    def memberships(self) -> list[tuple[str, str]] | None:
        """``(interface, group)`` for every group joined on this host, or None where unknown."""
        return None

    # ---- sending -------------------------------------------------------------------------------
    def preferred_source(self, family: int, ifindex: int, ifname: str) -> str | None:
        """The address the OS would send ``family`` multicast from on an interface (never a
        deprecated or tentative one), or None where unknown: the caller uses the primary address."""
        return None
