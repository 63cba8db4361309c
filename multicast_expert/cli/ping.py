"""``multicast-expert ping``: loss and round-trip time between hosts, by multicast and by unicast.

Run it on two or more hosts with the same GROUP and port. Every host multicasts numbered probes;
every host that hears another's probe answers it twice: by multicast to the group and by unicast
to the prober. So each host measures, per peer, what came back by each path: loss, duplicates,
reorders, and round-trip times with jitter.

Loss is counted only over the probes a peer could have answered: from the first one it answered
(it may have started later) to the last one it answered before it left. A peer that ends cleanly
says goodbye, naming the last probe of each prober it answered; one that vanishes (killed, link
down) shows as both paths stopping together.

Round-trip times come from kernel receive timestamps where the OS has them (Linux), minus the
time the answering host held the probe (it reports that time in its answer), so the figure is
the network's round trip, not the wake-up and run time of two Python processes.

Wire format (text, space separated; probes padded with '.' to --size):
``MXPING1 P <host-id> <seq> <send-ns> <unicast-port>`` for a probe,
``MXPING1 A|U <answerer-id> <prober-id> <seq> <send-ns> <hold-ns>`` for a multicast (A) or unicast
(U) answer, and ``MXPING1 B <host-id> <prober-id>=<last-seq> ...`` for a goodbye. ``send-ns`` is the
prober's wall clock (ns since the epoch); ``hold-ns`` is how long the answerer had the probe before
sending this answer. Older versions ignore the goodbye and the hold field.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import select
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from .._errors import MulticastExpertError
from ..interfaces import IfaceInfo, get_default_gateway_iface
from ..rx_socket import McastRxSocket
from ..tx_socket import McastTxSocket
from . import _host
from ._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    GROUP_HELP,
    MAX_UDP_PAYLOAD,
    Command,
    UsageError,
    check_datagram_size,
    error_text,
    family_of,
    ifaces_of,
    int_range,
    one_group,
    port,
    positive,
    sigterm_interrupts,
)
from ._ping_stats import Peer, summarize

MAGIC = b"MXPING1"
SOAK_DURATION = 600.0  # --soak: one probe a second for 10 minutes
#: A path that was heard and then stays silent this long (and 3 intervals) has stopped.
STOP_AFTER = 3.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("group", metavar="GROUP", help=GROUP_HELP)
    p.add_argument(
        "--port", "-p", type=port, required=True, metavar="PORT", help="UDP port every host uses (1..65535)"
    )
    p.add_argument(
        "--iface",
        "-i",
        metavar="IFACE",
        help="interface name or IP; without it, the default route's interface",
    )
    p.add_argument("--count", "-n", type=int_range(1), default=10, metavar="N", help="probes to send")
    p.add_argument(
        "--interval", type=positive(float), default=1.0, metavar="S", help="seconds between probes"
    )
    p.add_argument(
        "--size",
        type=int_range(0, MAX_UDP_PAYLOAD[socket.AF_INET6]),
        default=64,
        metavar="B",
        help="probe size in bytes; a probe is never shorter than its header of about 60 bytes",
    )
    p.add_argument(
        "--ttl",
        type=int_range(0, 255),
        default=1,
        metavar="N",
        help="TTL / hop limit of probes and answers, 0..255",
    )
    p.add_argument(
        "--timeout",
        type=positive(float),
        default=2.0,
        metavar="S",
        help="seconds to wait for answers after the last probe",
    )
    p.add_argument(
        "--duration", type=positive(float), metavar="S", help="probe for this many seconds instead of --count"
    )
    p.add_argument(
        "--soak",
        action="store_true",
        help="one probe a second for 10 minutes (or --duration): catches streams that stop after a few "
        "minutes, the sign of IGMP snooping without a querier",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line; the last is the summary")
    p.add_argument("--quiet", "-q", action="store_true", help="print only a peer's first answer per path")


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


def run(args: argparse.Namespace, out: TextIO) -> int:
    group = one_group(args.group, "ping")
    family = family_of([group])
    check_datagram_size(args.size, family, f"--size {args.size}")
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
        _host.enable_receive_timestamps(ucast)
        rx = McastRxSocket(family, [group], args.port, iface=iface, timeout=0, timestamps=True)
        tx = McastTxSocket(family, [group], iface=iface, ttl=args.ttl)
        with rx, tx:
            session = _Session(args, out, group, rx, tx, ucast, my_id)
            peers = _run(session, interval, count, duration)
    except (MulticastExpertError, OSError) as exc:
        sys.stderr.write(f"multicast-expert: ping: {error_text(exc)}\n")
        return EXIT_PROBLEM
    finally:
        ucast.close()
    return EXIT_OK if peers and all(p.multicast.received for p in peers.values()) else EXIT_PROBLEM


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
    #: Probers heard: id -> (highest of their probes answered, their unicast address).
    answered: dict[bytes, tuple[int, tuple[object, ...]]] = field(default_factory=dict)
    send_errors: set[str] = field(default_factory=set)

    def emit(self, record: dict[str, object], text: str) -> None:
        self.out.write((json.dumps(record) if self.args.json else text) + "\n")
        self.out.flush()

    def drain(self) -> None:
        """Handle everything queued on the multicast and the unicast socket."""
        while True:
            p = self.rx.recv_packet()
            if p is None:
                break
            stamp = round(p.timestamp * 1e9) if p.timestamp is not None else time.time_ns()
            self.handle(p.payload, p.src[0], "multicast", stamp)
        while True:
            try:
                data, addr, kernel_ns = _host.recv_stamped(self.ucast, 65535)
            except BlockingIOError:
                break
            self.handle(data, str(addr[0]), "unicast", kernel_ns or time.time_ns())

    def handle(self, data: bytes, src_ip: str, via: str, arrived_ns: int) -> None:
        f = data.split(b" ")
        if len(f) >= 3 and f[0] == MAGIC and f[1] == b"B":
            self.goodbye(f[2].decode(errors="replace"), f[3:])
            return
        if len(f) < 6 or f[0] != MAGIC:
            return
        kind, mine = f[1], self.my_id.encode()
        if kind == b"P":  # another host's probe: answer it by multicast and by unicast
            self.answer(f, src_ip, arrived_ns)
            return
        if kind not in (b"A", b"U") or f[3] != mine:
            return
        try:
            answerer, seq_n, stamp_ns = f[2].decode(), int(f[4]), int(f[5])
            hold_ns = int(f[6]) if len(f) > 6 and f[6] else 0
        except ValueError:
            return
        rtt = max(arrived_ns - stamp_ns - hold_ns, 0) / 1e6
        peer = self.peers.setdefault(answerer, Peer(src_ip))
        path = peer.multicast if kind == b"A" else peer.unicast
        fresh = not path.seen
        path.add(seq_n, rtt, time.monotonic())
        if peer.left == "silent":  # it was only quiet: count on
            peer.left = peer.last_seq = None
            self.emit({"peer": peer.ip, "event": "answering again"}, f"{peer.ip}: answering again")
        if fresh or not self.args.quiet:
            record = {
                "peer": peer.ip,
                "path": via,
                "seq": seq_n,
                "rtt_ms": round(rtt, 3),
                "peer_hold_ms": round(hold_ns / 1e6, 3),  # how long the peer took to answer
            }
            self.emit(record, f"{peer.ip} {via:<9} seq={seq_n} rtt={rtt:.3f} ms")

    def answer(self, f: list[bytes], src_ip: str, arrived_ns: int) -> None:
        prober, seq, stamp = f[2], f[3], f[4]
        if prober == self.my_id.encode():
            return
        try:
            uport, seq_n = int(f[5]), int(seq)
        except ValueError:
            return
        tx, mine = self.tx, self.my_id.encode()
        dest = (src_ip, uport) if ":" not in src_ip else (src_ip, uport, 0, tx.network_interface.index)
        previous = self.answered.get(prober, (-1, dest))[0]
        self.answered[prober] = (max(previous, seq_n), dest)
        # Each answer's hold time is taken just before its own send.
        self.send_quietly(
            lambda: tx.sendto(
                b"%s A %s %s %s %s %d " % (MAGIC, mine, prober, seq, stamp, time.time_ns() - arrived_ns),
                (self.group, self.args.port),
            )
        )
        self.send_quietly(
            lambda: self.ucast.sendto(
                b"%s U %s %s %s %s %d " % (MAGIC, mine, prober, seq, stamp, time.time_ns() - arrived_ns), dest
            )
        )

    def goodbye(self, who: str, fields: list[bytes]) -> None:
        peer = self.peers.get(who)
        if peer is None or peer.left == "goodbye":
            return
        last = -1  # it never answered us
        for item in fields:
            prober, eq, seq = item.partition(b"=")
            if eq and prober == self.my_id.encode() and seq.isdigit():
                last = int(seq)
        peer.left, peer.last_seq = "goodbye", last
        self.emit(
            {"peer": peer.ip, "event": "peer left", "last_seq": last},
            f"{peer.ip}: the peer ended its ping (it said goodbye after answering probe {last}); its "
            "later probes are not counted as lost",
        )

    def say_goodbye(self) -> None:
        """Tell every prober heard that this host leaves, by multicast and by unicast."""
        tail = b" ".join(b"%s=%d" % (prober, last) for prober, (last, _) in self.answered.items())
        message = b"%s B %s %s " % (MAGIC, self.my_id.encode(), tail)
        self.send_quietly(lambda: self.tx.sendto(message, (self.group, self.args.port)))
        for _, dest in self.answered.values():
            self.send_quietly(functools.partial(self.ucast.sendto, message, dest))

    def check_stopped(self, interval: float) -> None:
        """Report, once, a peer whose answers stopped: on multicast only (snooping, most often), or
        on both paths at once (the peer is gone)."""
        now = time.monotonic()
        quiet = max(STOP_AFTER, 3 * interval)
        for peer in self.peers.values():
            if peer.left is not None:
                continue
            m, u = peer.multicast, peer.unicast
            m_silent = bool(m.received) and now - m.last_time > quiet
            u_silent = bool(u.received) and now - u.last_time > quiet
            if (m_silent or not m.received) and (u_silent or not u.received) and (m.received or u.received):
                peer.left, peer.last_seq = "silent", peer.heard_last()
                if m.received and u.received:
                    what = f"no answers by multicast or unicast for {quiet:.0f} s: the peer is gone"
                else:
                    only = "multicast" if m.received else "unicast"
                    what = (
                        f"no answers for {quiet:.0f} s by {only}, the only path it ever answered by: "
                        "the peer is gone, or that path broke"
                    )
                self.emit(
                    {"peer": peer.ip, "event": "peer gone", "last_seq": peer.last_seq},
                    f"{peer.ip}: {what} (it exited, or the link to it is down); probes after "
                    f"{peer.last_seq} are not counted as lost",
                )
            elif m_silent and m.stopped_at is None and u.max_seq > m.max_seq + 1:
                m.stopped_at = now
                silent = now - m.last_time
                self.emit(
                    {"peer": peer.ip, "event": "multicast stopped", "after_s": round(silent, 1)},
                    f"{peer.ip}: multicast from this peer stopped ({silent:.0f} s without an answer) while "
                    "unicast still works; a switch snooping IGMP/MLD without a querier on the network "
                    "is the usual cause (memberships time out after a few minutes)",
                )

    def send_quietly(self, send: Callable[[], object]) -> None:
        """A send that fails (a firewall, an interface going down) is reported once, not fatal: ping
        goes on measuring what still gets through."""
        try:
            send()
        except OSError as exc:
            text = error_text(exc)
            if text not in self.send_errors:
                self.send_errors.add(text)
                sys.stderr.write(f"multicast-expert: ping: a send failed (continuing): {text}\n")


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
    with sigterm_interrupts():
        try:
            while True:
                now = time.monotonic()
                if (count is None or sent < count) and (end is None or now < end) and now >= next_probe:
                    head = b"%s P %s %d %d %d " % (MAGIC, my_id.encode(), sent, time.time_ns(), uport)
                    probe = head.ljust(args.size, b".")
                    session.send_quietly(functools.partial(tx.sendto, probe, (group, port)))
                    sent += 1
                    last_probe_time = now
                    next_probe = start + sent * interval
                finished = (count is not None and sent >= count) or (end is not None and now >= end)
                if finished and now - last_probe_time >= args.timeout:
                    break
                wait = max(0.0, min(next_probe - now, 0.2))
                # fileno() is one descriptor for every group where the OS has one (epoll, kqueue);
                # where it is -1 (Windows, several sockets) select() watches each OS socket.
                rx_fd = session.rx.fileno()
                watched = [rx_fd] if rx_fd >= 0 else session.rx.filenos()
                readable, _, _ = select.select([*watched, session.ucast.fileno()], [], [], wait)
                if readable:
                    session.drain()
                session.check_stopped(interval)
        except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) is how a --soak or --duration run ends early
            pass
        session.say_goodbye()
    summarize(session.out, session.group, session.peers, sent, session.args.json)
    return session.peers


COMMAND = Command(
    name="ping",
    help="loss and round-trip time between hosts, by multicast and unicast",
    description="Run on two or more hosts with the same GROUP and --port. Each host multicasts "
    "numbered probes and answers the others' probes by multicast and by unicast; each reports, per "
    "peer and path, loss, duplicates, reorders and round-trip times.\n\n"
    "Loss counts only the probes a peer could have answered: from the first it answered to the "
    "last before it left (a peer that ends says goodbye; one that vanishes shows as both paths "
    "stopping at once). Multicast stopping while unicast goes on is reported: the sign of IGMP/MLD "
    "snooping without a querier. Round-trip times use kernel receive timestamps and leave out the "
    "time the answering host held the probe, so they compare with ICMP ping.\n\n"
    "Ctrl-C ends a run early and prints the summary. Exit status: 0 when every peer was heard by "
    "multicast; 1 when none answered or one was heard only by unicast.",
    examples="examples:\n"
    "  multicast-expert ping 239.1.2.3 -p 5000 -i eth0              # on every host at once\n"
    "  multicast-expert ping 239.1.2.3 -p 5000 --soak               # 10 minutes, 1 probe/s\n"
    "  multicast-expert ping ff15::1 -p 5000 -n 100 --interval 0.1 --json",
    add_arguments=add_arguments,
    run=run,
)
