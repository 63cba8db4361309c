"""Group membership on OS sockets: open the sockets that receive one group on every interface, and
apply per-source operations to them. All or nothing: a failure closes what was opened.

Layering rule: uses the per-OS layer for every option; knows nothing of receiving.
"""

from __future__ import annotations

import os
import socket
import sys
import warnings
from collections.abc import Sequence

from . import _platform
from ._engine import ReceiveEngine
from ._platform._structs import Target
from ._sockbase import SOCK_NONBLOCK, os_errors, translate_oserror
from .interfaces import IfaceInfo


class Unit:
    """One OS socket: a group (with some of its sources) on one interface."""

    __slots__ = ("fd", "group", "iface", "live", "sock", "sources", "target")

    def __init__(
        self, sock: socket.socket, group: str, iface: IfaceInfo, sources: tuple[str, ...], target: Target
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.group = group
        self.iface = iface
        self.sources = sources
        self.target = target
        self.live = True


class RxState:
    """What a receiving socket holds, declared once for the mixins that make up McastRxSocket."""

    addr_family: int
    _engine: ReceiveEngine[Unit]
    _groups: dict[str, tuple[str, ...]]  # group -> its sources (empty: any-source)
    _blocked: dict[str, set[str]]  # group -> blocked senders
    _units: dict[str, list[Unit]]  # group -> its OS sockets


class GroupSpec:
    """What a receiving socket asks of one group: where, which port, loopback, buffer size."""

    def __init__(
        self,
        family: int,
        port: int,
        ifaces: Sequence[tuple[IfaceInfo, str]],
        external_loopback: bool,
        rcvbuf: int | None,
        meta: tuple[str, ...] = (),
    ) -> None:
        self.family = family
        self.port = port
        self.ifaces = ifaces
        self.external_loopback = external_loopback
        self.rcvbuf = rcvbuf
        #: Per-datagram metadata to turn on ("recv_ttl", "recv_tos", "timestamps") where supported.
        self.meta = meta
        self.granted_rcvbuf: int | None = None


def open_units(
    spec: GroupSpec,
    group: str,
    sources: tuple[str, ...],
    blocked: Sequence[str],
    ifaces: Sequence[tuple[IfaceInfo, str]] | None = None,
) -> list[Unit]:
    """Open the OS sockets for one group on every interface; all or nothing.

    More than one socket per interface when the group has more sources than one socket may hold.
    """
    ops = _platform.OPS
    family = spec.family
    per = ops.sources_per_socket(family) if sources else None
    chunks = [sources[i : i + per] for i in range(0, len(sources), per)] if per else [sources]
    units: list[Unit] = []
    where = ""
    try:
        for iface, ip in spec.ifaces if ifaces is None else ifaces:
            loop = spec.external_loopback or iface.is_localhost()
            t = Target(group=group, iface_ip=ip, ifindex=iface.index, ifname=iface.machine_name)
            for chunk in chunks:
                where = f"Joining {group} on {iface.machine_name}" + (" with sources" if chunk else "")
                sock = socket.socket(family, socket.SOCK_DGRAM | SOCK_NONBLOCK)
                units.append(Unit(sock, group, iface, chunk, t))
                if not SOCK_NONBLOCK:
                    sock.setblocking(False)
                ops.configure_rx(sock, family, t, spec.port, loop)
                for src in chunk:
                    ops.set(sock, "join_source", family, t._replace(source=src))
                if not chunk:
                    ops.set(sock, "join", family, t)
                for src in blocked:
                    ops.set(sock, "block_source", family, t._replace(source=src))
                if spec.rcvbuf is not None:
                    _set_rcvbuf(spec, sock, spec.rcvbuf)
                for concern in spec.meta:
                    if ops.supports(concern, family):  # elsewhere the packet field stays None
                        ops.set(sock, concern, family, t._replace(value=1))
    except BaseException as exc:
        for u in units:
            u.sock.close()
        if isinstance(exc, OSError):
            better = translate_oserror(exc, where, family)
            if better is not exc:
                raise better from exc
        raise
    return units


def caller_outside_package() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside this package."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _set_rcvbuf(spec: GroupSpec, sock: socket.socket, size: int) -> None:
    ops = _platform.OPS
    ops.set(sock, "rcvbuf", spec.family, Target(value=size))
    opt = ops.OPTIONS[("rcvbuf", spec.family)]
    granted = sock.getsockopt(opt.level, opt.name)
    if spec.granted_rcvbuf is None and granted < size:
        warnings.warn(
            f"rcvbuf: asked for {size} bytes, the OS granted {granted} (raise the sysctl "
            "net.core.rmem_max to allow more)",
            RuntimeWarning,
            stacklevel=caller_outside_package(),
        )
    spec.granted_rcvbuf = granted


def source_op(units: Sequence[Unit], concern: str, source: str, family: int, action: str) -> None:
    """Apply ``block_source`` / ``unblock_source`` for one sender on every unit of a group."""
    ops = _platform.OPS
    for u in units:
        with os_errors(action, family):
            ops.set(u.sock, concern, family, u.target._replace(source=source))
