"""``multicast-expert listen``: print multicast datagrams as they arrive, or rate statistics.

Loss is counted from ``seq=N`` prefixes (``send --seq``), per sender and group, the way iperf
counts it: a number skipped is missing until it turns up; one that turns up late is a reorder and
no longer lost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from .. import _platform
from .._errors import MulticastExpertError
from ..rx_socket import McastPacket, McastRxSocket
from ._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_SIGNAL_BASE,
    GROUP_HELP,
    Command,
    UsageError,
    endpoint,
    error_text,
    expand_groups,
    family_of,
    iface_name,
    ifaces_of,
    int_range,
    plural,
    port,
    positive,
    signal_number,
    sigterm_interrupts,
)

SEQ_RE = re.compile(rb"^seq=(\d+) ")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "groups", nargs="+", metavar="GROUP", help=GROUP_HELP + "; several of one family; GROUP+N is N groups"
    )
    p.add_argument(
        "--port",
        "-p",
        type=port,
        required=True,
        metavar="PORT",
        help="UDP port the senders send to (1..65535)",
    )
    p.add_argument(
        "--iface",
        "-i",
        action="append",
        metavar="IFACE",
        help="interface name or IP (repeatable); without it: every non-loopback interface with an "
        "address of the groups' family, followed as interfaces come and go",
    )
    p.add_argument(
        "--source", "-s", action="append", metavar="ADDR", help="only this sender's address (repeatable): SSM"
    )
    p.add_argument(
        "--count",
        "-n",
        type=int_range(1),
        metavar="N",
        help="stop after N datagrams; without it, run until Ctrl-C (or --timeout)",
    )
    p.add_argument(
        "--timeout", "-t", type=positive(float), metavar="S", help="stop after S seconds without data"
    )
    p.add_argument(
        "--rcvbuf", type=int_range(1), metavar="BYTES", help="socket receive buffer in bytes (SO_RCVBUF)"
    )
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--hex", action="store_true", help="show each payload's first 32 bytes in hex")
    shape.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per datagram on stdout (payload in hex, and as text when it is UTF-8); "
        "the last line is a summary object",
    )
    shape.add_argument(
        "--stats",
        action="store_true",
        help="a line each second instead of datagrams: rate, loss, reorders, duplicates, kernel drops",
    )


def _preview(data: bytes, hexdump: bool) -> str:
    if hexdump:
        return data[:32].hex(" ") + (" ..." if len(data) > 32 else "")
    text = data[:60].decode("utf-8", "replace")
    return repr(text + ("..." if len(data) > 60 else ""))[1:-1]


@dataclass
class SeqTracker:
    """One numbered stream (a sender's datagrams to one group).

    A number above the highest seen so far marks the ones skipped as missing; a missing one that
    arrives later is a reorder and no longer lost; a number already had is a duplicate. A stream
    that starts again at 0 (the sender was restarted) goes on from there; what it still missed
    stays lost. At most MISSING_KEPT missing numbers are remembered: older ones stay lost for good.
    """

    MISSING_KEPT = 65536

    highest: int | None = None
    received: int = 0
    lost: int = 0
    reorders: int = 0
    duplicates: int = 0
    missing: dict[int, None] = field(default_factory=dict)  # insertion-ordered: oldest first

    def add(self, seq: int) -> None:
        if self.highest is None or (seq == 0 and seq not in self.missing and self.highest > 0):
            self.highest = seq
            self.missing.clear()
            self.received += 1
            return
        if seq > self.highest:
            skipped = seq - self.highest - 1
            self.lost += skipped
            for n in range(max(self.highest + 1, seq - self.MISSING_KEPT), seq):
                self.missing[n] = None
            while len(self.missing) > self.MISSING_KEPT:
                del self.missing[next(iter(self.missing))]
            self.highest = seq
            self.received += 1
        elif seq in self.missing:
            del self.missing[seq]
            self.lost -= 1
            self.reorders += 1
            self.received += 1
        else:
            self.duplicates += 1


class _Stats:
    def __init__(self) -> None:
        self.packets = self.bytes = 0
        self.window_packets = self.window_bytes = 0
        self.streams: dict[tuple[object, str], SeqTracker] = {}
        self.groups_seen: set[str] = set()

    def add(self, p: McastPacket) -> None:
        self.packets += 1
        self.groups_seen.add(p.group)
        self.bytes += len(p.payload)
        self.window_packets += 1
        self.window_bytes += len(p.payload)
        m = SEQ_RE.match(p.payload)
        if m:
            self.streams.setdefault((p.src, p.group), SeqTracker()).add(int(m.group(1)))

    def total(self, what: str) -> int:
        return sum(getattr(s, what) for s in self.streams.values())

    def lost_by_group(self) -> dict[str, int]:
        by: dict[str, int] = {}
        for (_, group), s in self.streams.items():
            by[group] = by.get(group, 0) + s.lost
        return by

    def loss_pct(self) -> float | None:
        numbered, lost = self.total("received"), self.total("lost")
        return round(100.0 * lost / (numbered + lost), 2) if numbered + lost else None


def run(args: argparse.Namespace, out: TextIO) -> int:
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
        raise UsageError(error_text(exc)) from None
    stats = _Stats()
    try:
        rx.open()
    except (MulticastExpertError, OSError) as exc:
        sys.stderr.write(f"multicast-expert: listen: cannot listen: {error_text(exc)}\n")
        return EXIT_PROBLEM
    start = time.monotonic()
    drops: int | None = None
    stopped_by: int | None = None
    with sigterm_interrupts():  # SIGTERM ends it as Ctrl-C does, with the summary
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
        except KeyboardInterrupt as exc:
            stopped_by = signal_number(exc)
    took = time.monotonic() - start
    short = args.count is not None and stats.packets < args.count and stopped_by is not None
    _summarize(args, stats, groups, took, drops, out, short)
    if short and stopped_by is not None:
        return EXIT_SIGNAL_BASE + stopped_by
    # (exit 1 only when --timeout ran out with nothing received; Ctrl-C ending it is no problem)
    timed_out = args.timeout is not None and stopped_by is None
    return EXIT_PROBLEM if timed_out and not stats.packets else EXIT_OK


def _summarize(
    args: argparse.Namespace,
    stats: _Stats,
    groups: list[str],
    took: float,
    drops: int | None,
    out: TextIO,
    short: bool,
) -> None:
    lost, numbered = stats.total("lost"), stats.total("received")
    if args.json:
        summary = {
            "packets": stats.packets,
            "bytes": stats.bytes,
            "seconds": round(took, 3),
            "numbered": numbered,
            "lost": lost,
            "loss_pct": stats.loss_pct(),
            "reorders": stats.total("reorders"),
            "duplicates": stats.total("duplicates"),
            "kernel_drops": drops,
            "lost_by_group": {g: n for g, n in sorted(stats.lost_by_group().items()) if n},
            "stopped_before_count": short,
        }
        out.write(json.dumps({"summary": summary}) + "\n")
        out.flush()
    dropped = "" if drops is None else f", kernel drops {drops}"
    if stats.streams:
        counts = (
            f"lost {lost} of {numbered + lost} numbered ({stats.loss_pct():.2f}%), "
            f"reorders {stats.total('reorders')}, duplicates {stats.total('duplicates')}{dropped}"
        )
    else:
        counts = f"no seq= numbers to count loss by{dropped}"
    sys.stderr.write(
        f"received {plural(stats.packets, 'packet')}, {plural(stats.bytes, 'byte')} in {took:.1f} s"
        f" ({counts})\n"
    )
    gappy = {g: n for g, n in stats.lost_by_group().items() if n}
    if len(groups) > 1 and gappy:
        sys.stderr.write("lost by group: " + ", ".join(f"{g} {n}" for g, n in sorted(gappy.items())) + "\n")
    if drops:
        sys.stderr.write(
            f"the kernel dropped {plural(drops, 'datagram')} because the socket buffer was full; "
            "raise --rcvbuf (and net.core.rmem_max)\n"
        )
    if short:
        sys.stderr.write(f"stopped before --count {args.count} was reached\n")


def _describe(groups: list[str]) -> str:
    return ", ".join(groups) if len(groups) <= 4 else f"{groups[0]} .. {groups[-1]} ({len(groups)} groups)"


def _group_losses(stats: _Stats) -> str:
    lossy = [f"{g}={n}" for g, n in sorted(stats.lost_by_group().items()) if n]
    return f" lost_by_group[{' '.join(lossy)}]" if lossy and len(stats.groups_seen) > 1 else ""


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
                f"total={stats.packets} lost={stats.total('lost')} reorders={stats.total('reorders')} "
                f"dups={stats.total('duplicates')}"
                + ("" if drops is None else f" drops={drops}")
                + _group_losses(stats)
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


COMMAND = Command(
    name="listen",
    help="print multicast datagrams as they arrive",
    description="Join the groups on the interfaces and print each datagram that arrives: time, "
    "sender, group, interface, size and the start of its payload. With --stats, print rates and "
    "loss instead; loss, reorders and duplicates are counted from the 'seq=N ' prefix that "
    "'send --seq' puts on each datagram, per sender and group.\n\n"
    "A summary goes to stderr at the end. Exit status: 0 normally; 1 when --timeout passed "
    "without a single datagram; 128+signal (130 for Ctrl-C) when stopped before --count "
    "datagrams arrived.",
    examples="examples:\n"
    "  multicast-expert listen 239.1.2.3 -p 5000 -i eth0\n"
    "  multicast-expert listen 239.1.2.3+16 -p 5000 --stats         # 16 groups, loss per group\n"
    "  multicast-expert listen 232.1.1.1 -p 5000 -s 192.0.2.10 --json -n 100",
    add_arguments=add_arguments,
    run=run,
)
