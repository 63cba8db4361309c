"""``multicast-expert listen``: print multicast datagrams as they arrive, or rate statistics."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
import time
from typing import TextIO

from .. import _platform
from .._errors import MulticastExpertError
from ..rx_socket import McastPacket, McastRxSocket
from ._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    UsageError,
    endpoint,
    expand_groups,
    family_of,
    iface_name,
    ifaces_of,
    plural,
)

SEQ_RE = re.compile(rb"^seq=(\d+) ")


def _preview(data: bytes, hexdump: bool) -> str:
    if hexdump:
        return data[:32].hex(" ") + (" ..." if len(data) > 32 else "")
    text = data[:60].decode("utf-8", "replace")
    return repr(text + ("..." if len(data) > 60 else ""))[1:-1]


class _Stats:
    def __init__(self) -> None:
        self.packets = self.bytes = self.gaps = self.reorders = 0
        self.window_packets = self.window_bytes = 0
        self.last_seq: dict[tuple[object, str], int] = {}
        self.gaps_by_group: dict[str, int] = {}
        self.groups_seen: set[str] = set()

    def add(self, p: McastPacket) -> None:
        self.packets += 1
        self.groups_seen.add(p.group)
        self.bytes += len(p.payload)
        self.window_packets += 1
        self.window_bytes += len(p.payload)
        m = SEQ_RE.match(p.payload)
        if m:
            seq = int(m.group(1))
            key = (p.src, p.group)
            last = self.last_seq.get(key)
            if last is not None:
                if seq < last:
                    self.reorders += 1
                elif seq > last + 1:
                    self.gaps += seq - last - 1
                    self.gaps_by_group[p.group] = self.gaps_by_group.get(p.group, 0) + seq - last - 1
            if last is None or seq > last:
                self.last_seq[key] = seq


def cmd_listen(args: argparse.Namespace, out: TextIO) -> int:
    groups = expand_groups(args.groups)
    family = family_of(groups)
    try:
        rx = McastRxSocket(
            family,
            groups,
            args.port,
            ifaces=ifaces_of(args.iface),
            source_ips=args.source or None,
            timeout=0.2,
            rcvbuf=args.rcvbuf,
            follow_interfaces=not args.iface,  # no --iface: follow interfaces as they come and go
        )
    except (MulticastExpertError, ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    stats = _Stats()
    try:
        rx.open()
    except (MulticastExpertError, OSError) as exc:
        sys.stderr.write(f"multicast-expert: cannot listen: {exc}\n")
        return EXIT_PROBLEM
    start = time.monotonic()
    drops: int | None = None
    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM ends it as Ctrl-C does, with the summary
    try:
        sys.stderr.write(
            f"listening on {_describe(groups)} port {args.port} via "
            f"{', '.join(i.machine_name for i in rx.network_interfaces)}\n"
        )
        sys.stderr.flush()
        with contextlib.closing(rx):
            try:
                _receive(args, rx, stats, out)
            finally:
                drops = _platform.HOST.socket_drops(rx.sockets)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    took = time.monotonic() - start
    dropped = "" if drops is None else f", kernel drops {drops}"
    sys.stderr.write(
        f"received {plural(stats.packets, 'packet')}, {plural(stats.bytes, 'byte')} in {took:.1f} s"
        f" (gaps {stats.gaps}, reorders {stats.reorders}{dropped})\n"
    )
    gappy = {g: n for g, n in stats.gaps_by_group.items() if n}
    if len(groups) > 1 and stats.gaps:
        sys.stderr.write("gaps by group: " + ", ".join(f"{g} {n}" for g, n in sorted(gappy.items())) + "\n")
    if drops:
        sys.stderr.write(
            f"the kernel dropped {plural(drops, 'datagram')} because the socket buffer was full; "
            "raise --rcvbuf (and net.core.rmem_max)\n"
        )
    return EXIT_OK if stats.packets or args.timeout is None else EXIT_PROBLEM


def _describe(groups: list[str]) -> str:
    return ", ".join(groups) if len(groups) <= 4 else f"{groups[0]} .. {groups[-1]} ({len(groups)} groups)"


def _group_gaps(stats: _Stats) -> str:
    gappy = [f"{g}={n}" for g, n in sorted(stats.gaps_by_group.items()) if n]
    return f" gaps_by_group[{' '.join(gappy)}]" if gappy and len(stats.groups_seen) > 1 else ""


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _receive(args: argparse.Namespace, rx: McastRxSocket, stats: _Stats, out: TextIO) -> None:
    names: dict[int, str] = {}
    last_packet = last_report = time.monotonic()
    while args.count is None or stats.packets < args.count:
        p = rx.recv_packet()
        now = time.monotonic()
        if args.stats and now - last_report >= 1.0:
            span = now - last_report
            drops = _platform.HOST.socket_drops(rx.sockets)
            out.write(
                f"{stats.window_packets / span:.0f} pkt/s {stats.window_bytes / span:.0f} B/s "
                f"total={stats.packets} gaps={stats.gaps} reorders={stats.reorders}"
                + ("" if drops is None else f" drops={drops}")
                + _group_gaps(stats)
                + "\n"
            )
            out.flush()
            stats.window_packets = stats.window_bytes = 0
            last_report = now
        if p is None:
            if args.timeout is not None and now - last_packet >= args.timeout:
                break
            continue
        last_packet = now
        stats.add(p)
        if not args.stats:
            _print_packet(args, p, iface_name(p.iface_index, names), out)


def _print_packet(args: argparse.Namespace, p: McastPacket, iface: str, out: TextIO) -> None:
    if args.json:
        rec: dict[str, object] = {
            "time": time.time(),
            "src": p.src[0],
            "src_port": p.src[1],
            "group": p.group,
            "iface": iface,
            "size": len(p.payload),
            "truncated": p.truncated,
            "payload_hex": p.payload.hex(),
        }
        with contextlib.suppress(UnicodeDecodeError):
            rec["payload"] = p.payload.decode("utf-8")  # when the payload is text
        out.write(json.dumps(rec) + "\n")
    else:
        stamp = time.strftime("%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"
        out.write(
            f"{stamp} {endpoint(p.src)} -> {p.group} on {iface} "
            f"{len(p.payload)} B{' (truncated)' if p.truncated else ''}: "
            f"{_preview(p.payload, args.hex)}\n"
        )
    out.flush()
