"""``multicast-expert ping``: loss and round-trip time between hosts, by multicast and by unicast.

Run it on two or more hosts with the same GROUP and port. Every host multicasts numbered probes;
every host that hears another's probe answers it twice: by multicast to the group and by unicast
to the prober. So each host measures, per peer, what came back by each path: loss (counted from the
first probe that peer answered), duplicates, reorders, and round-trip times with jitter.

Wire format (text, space separated, padded with '.' to --size):
``MXPING1 P <host-id> <seq> <send-ns> <unicast-port>`` for a probe and
``MXPING1 A|U <answerer-id> <prober-id> <seq> <send-ns>`` for a multicast (A) or unicast (U) answer.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import select
import socket
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from .._errors import MulticastExpertError
from ..interfaces import IfaceInfo, get_default_gateway_iface
from ..rx_socket import McastRxSocket
from ..tx_socket import McastTxSocket
from ._common import EXIT_OK, EXIT_PROBLEM, UsageError, family_of, ifaces_of, one_group

MAGIC = b"MXPING1"
SOAK_DURATION = 600.0  # --soak: one probe a second for 10 minutes
#: A stream that was heard and then stays silent this long (and this many intervals) "stopped".
STOP_AFTER = 3.0


@dataclass
class PathStats:
    """One peer, one path (multicast or unicast)."""

    received: int = 0
    duplicates: int = 0
    reorders: int = 0
    first_seq: int | None = None
    max_seq: int = -1
    seen: set[int] = field(default_factory=set)
    rtts: list[float] = field(default_factory=list)
    last_time: float = 0.0
    stopped_at: float | None = None

    def add(self, seq: int, rtt_ms: float, now: float) -> None:
        if seq in self.seen:
            self.duplicates += 1
            return
        self.seen.add(seq)
        self.received += 1
        if self.first_seq is None or seq < self.first_seq:
            self.first_seq = seq
        if seq < self.max_seq:
            self.reorders += 1
        self.max_seq = max(self.max_seq, seq)
        self.rtts.append(rtt_ms)
        self.last_time = now
        self.stopped_at = None

    def summary(self, sent: int) -> dict[str, object]:
        expected = sent - self.first_seq if self.first_seq is not None else sent
        loss = 100.0 * (1 - self.received / expected) if expected > 0 else 100.0
        rtt = self.rtts
        jitter = statistics.fmean(abs(a - b) for a, b in itertools.pairwise(rtt)) if len(rtt) > 1 else 0.0
        return {
            "sent": expected,
            "received": self.received,
            "loss_pct": round(max(loss, 0.0), 2),
            "duplicates": self.duplicates,
            "reorders": self.reorders,
            "rtt_ms": {
                "min": round(min(rtt), 3) if rtt else None,
                "avg": round(statistics.fmean(rtt), 3) if rtt else None,
                "max": round(max(rtt), 3) if rtt else None,
                "jitter": round(jitter, 3),
            },
        }


@dataclass
class Peer:
    ip: str
    multicast: PathStats = field(default_factory=PathStats)
    unicast: PathStats = field(default_factory=PathStats)


def _pick_iface(args: argparse.Namespace, family: int) -> IfaceInfo:
    chosen = ifaces_of([args.iface] if args.iface else None)
    iface = chosen[0] if chosen else get_default_gateway_iface(family)
    if iface is None:
        raise UsageError(
            "no --iface given and this machine has no default route to pick one; pass --iface IFACE"
        )
    if not iface.ip_addrs(family):
        raise UsageError(
            f"{iface.machine_name} has no {'IPv4' if family == socket.AF_INET else 'IPv6'} address"
        )
    return iface


def cmd_ping(args: argparse.Namespace, out: TextIO) -> int:
    group = one_group(args.group, "ping")
    family = family_of([group])
    iface = _pick_iface(args, family)
    interval, duration = args.interval, args.duration
    if args.soak:
        interval, duration = 1.0, duration or SOAK_DURATION
    count = None if duration else args.count
    my_id = os.urandom(4).hex()
    local_ip = iface.primary_ip(family) or ""
    ucast = socket.socket(family, socket.SOCK_DGRAM)
    try:
        ucast.bind(
            (local_ip.split("%")[0], 0, 0, iface.index) if family == socket.AF_INET6 else (local_ip, 0)
        )
        ucast.setblocking(False)
        rx = McastRxSocket(family, [group], args.port, iface=iface, timeout=0)
        tx = McastTxSocket(family, [group], iface=iface, ttl=args.ttl)
        with rx, tx:
            peers = _run(_Session(args, out, group, rx, tx, ucast, my_id), interval, count, duration)
    except (MulticastExpertError, OSError) as exc:
        sys.stderr.write(f"multicast-expert: ping: {exc}\n")
        return EXIT_PROBLEM
    finally:
        ucast.close()
    return EXIT_OK if peers and all(p.multicast.received for p in peers.values()) else EXIT_PROBLEM


def _emit(args: argparse.Namespace, out: TextIO, record: dict[str, object], text: str) -> None:
    out.write((json.dumps(record) if args.json else text) + "\n")
    out.flush()


@dataclass
class _Session:
    """One ping run: its sockets and what it has heard, per peer (keyed by the peer's random id)."""

    args: argparse.Namespace
    out: TextIO
    group: str
    rx: McastRxSocket
    tx: McastTxSocket
    ucast: socket.socket
    my_id: str
    peers: dict[str, Peer] = field(default_factory=dict)

    def drain(self) -> None:
        """Handle everything queued on the multicast and the unicast socket."""
        while True:
            p = self.rx.recvfrom(65535)
            if p is None:
                break
            self.handle(p[0], p[1][0], "multicast")
        while True:
            try:
                data, addr = self.ucast.recvfrom(65535)
            except BlockingIOError:
                break
            self.handle(data, addr[0], "unicast")

    def handle(self, data: bytes, src_ip: str, via: str) -> None:
        f = data.split(b" ")
        if len(f) < 6 or f[0] != MAGIC:
            return
        kind, mine = f[1], self.my_id.encode()
        if kind == b"P":  # another host's probe: answer it by multicast and by unicast
            prober, seq, stamp, uport = f[2], f[3], f[4], int(f[5])
            if prober == mine:
                return
            tx = self.tx
            dest = (src_ip, uport) if ":" not in src_ip else (src_ip, uport, 0, tx.network_interface.index)
            answer = b"%s A %s %s %s %s " % (MAGIC, mine, prober, seq, stamp)
            _send_quietly(functools.partial(tx.sendto, answer, (self.group, self.args.port)))
            _send_quietly(functools.partial(self.ucast.sendto, answer.replace(b" A ", b" U ", 1), dest))
            return
        if kind not in (b"A", b"U") or f[3] != mine:
            return
        answerer, seq_n, stamp_ns = f[2].decode(), int(f[4]), int(f[5])
        rtt = (time.monotonic_ns() - stamp_ns) / 1e6
        peer = self.peers.setdefault(answerer, Peer(src_ip))
        path = peer.multicast if kind == b"A" else peer.unicast
        fresh = not path.seen
        path.add(seq_n, rtt, time.monotonic())
        if fresh or not self.args.quiet:
            record = {"peer": peer.ip, "path": via, "seq": seq_n, "rtt_ms": round(rtt, 3)}
            _emit(self.args, self.out, record, f"{peer.ip} {via:<9} seq={seq_n} rtt={rtt:.3f} ms")

    def check_stopped(self, interval: float) -> None:
        """Report, once, a peer whose multicast answers stopped."""
        now = time.monotonic()
        for peer in self.peers.values():
            path = peer.multicast
            silent = now - path.last_time
            if path.received and path.stopped_at is None and silent > max(STOP_AFTER, 3 * interval):
                path.stopped_at = now
                _emit(
                    self.args,
                    self.out,
                    {"peer": peer.ip, "event": "multicast stopped", "after_s": round(silent, 1)},
                    f"{peer.ip}: multicast from this peer stopped ({silent:.0f} s without an answer) while "
                    "unicast may still work; a switch snooping IGMP/MLD without a querier on the network "
                    "is the usual cause (memberships time out after a few minutes)",
                )


def _run(session: _Session, interval: float, count: int | None, duration: float | None) -> dict[str, Peer]:
    args, group, tx, my_id = session.args, session.group, session.tx, session.my_id
    port = args.port
    uport = session.ucast.getsockname()[1]
    start = time.monotonic()
    sent = 0
    next_probe = start
    last_probe_time = start
    end: float | None = start + duration if duration else None
    sys.stderr.write(f"ping {group} port {port} via {tx.network_interface.machine_name} as {my_id}\n")
    try:
        while True:
            now = time.monotonic()
            if (count is None or sent < count) and (end is None or now < end) and now >= next_probe:
                probe = b"%s P %s %d %d %d " % (MAGIC, my_id.encode(), sent, time.monotonic_ns(), uport)
                _send_quietly(functools.partial(tx.sendto, probe.ljust(args.size, b"."), (group, port)))
                sent += 1
                last_probe_time = now
                next_probe = start + sent * interval
            finished = (count is not None and sent >= count) or (end is not None and now >= end)
            if finished and now - last_probe_time >= args.timeout:
                break
            wait = max(0.0, min(next_probe - now, 0.2))
            readable, _, _ = select.select([session.rx.fileno(), session.ucast.fileno()], [], [], wait)
            if readable:
                session.drain()
            session.check_stopped(interval)
    except KeyboardInterrupt:
        pass
    _summarize(session, sent)
    return session.peers


def _summarize(session: _Session, sent: int) -> None:
    out, peers = session.out, session.peers
    summary = [
        {"peer": p.ip, "multicast": p.multicast.summary(sent), "unicast": p.unicast.summary(sent)}
        for p in peers.values()
    ]
    if session.args.json:
        out.write(json.dumps({"summary": summary}) + "\n")
    else:
        out.write(f"--- {session.group} ping statistics: {sent} probes sent ---\n")
        for s in summary:
            for path in ("multicast", "unicast"):
                d = s[path]
                assert isinstance(d, dict)
                r = d["rtt_ms"]
                out.write(
                    f"{s['peer']:>15} {path:<9}: {d['received']}/{d['sent']} received, "
                    f"{d['loss_pct']}% loss, "
                    f"{d['duplicates']} dup, {d['reorders']} reordered, rtt min/avg/max/jitter "
                    f"{r['min']}/{r['avg']}/{r['max']}/{r['jitter']} ms\n"
                )
        if not peers:
            out.write("no peer answered: run ping on another host with the same group and port\n")
    out.flush()


_send_errors: set[str] = set()


def _send_quietly(send: Callable[[], object]) -> None:
    """A send that fails (a firewall, an interface going down) is reported once, not fatal: ping
    goes on measuring what still gets through."""
    try:
        send()
    except OSError as exc:
        text = str(exc)
        if text not in _send_errors:
            _send_errors.add(text)
            sys.stderr.write(f"multicast-expert: ping: a send failed (continuing): {text}\n")
