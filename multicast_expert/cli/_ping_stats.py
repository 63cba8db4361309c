"""What ``ping`` counts per peer and path, and its closing report (text or JSON).

A peer's probes are counted from the first it answered (it may have started later) to the last it
answered before it left (its goodbye says which, or the last answer heard when it went silent).
"""

from __future__ import annotations

import itertools
import json
import statistics
from dataclasses import dataclass, field
from typing import TextIO, TypedDict


class RttSummary(TypedDict):
    min: float | None
    avg: float | None
    max: float | None
    jitter: float


class PathSummary(TypedDict):
    sent: int
    received: int
    loss_pct: float
    duplicates: int
    reorders: int
    rtt_ms: RttSummary


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

    def summary(self, first: int, last: int) -> PathSummary:
        """Figures over the probes ``first..last`` (those the peer could answer)."""
        expected = max(last - first + 1, 0)
        received = sum(1 for s in self.seen if first <= s <= last)
        loss = 100.0 * (1 - received / expected) if expected else 0.0
        rtt = self.rtts
        jitter = statistics.fmean(abs(a - b) for a, b in itertools.pairwise(rtt)) if len(rtt) > 1 else 0.0
        return {
            "sent": expected,
            "received": received,
            "loss_pct": round(max(loss, 0.0), 3),
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
    #: How it left: "goodbye" (it said so) or "silent" (both paths stopped together); None: here.
    left: str | None = None
    #: The last of our probes it answered before leaving (from its goodbye, or the last answer heard).
    last_seq: int | None = None

    def window(self, sent: int) -> tuple[int, int]:
        """The probes it could have answered: from the first it answered to the last before it left."""
        firsts = [p.first_seq for p in (self.multicast, self.unicast) if p.first_seq is not None]
        first = min(firsts) if firsts else 0
        last = self.last_seq if self.left is not None and self.last_seq is not None else sent - 1
        return first, last

    def heard_last(self) -> int:
        return max(self.multicast.max_seq, self.unicast.max_seq)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def summarize(out: TextIO, group: str, peers: dict[str, Peer], sent: int, as_json: bool) -> None:
    """The closing report: per peer, the probes counted and each path's figures."""
    summary = []
    for p in peers.values():
        first, last = p.window(sent)
        summary.append(
            {
                "peer": p.ip,
                "counted": {"first_seq": first, "last_seq": last, "probes": max(last - first + 1, 0)},
                "left": p.left,
                "multicast": p.multicast.summary(first, last),
                "unicast": p.unicast.summary(first, last),
            }
        )
    if as_json:
        out.write(json.dumps({"sent": sent, "summary": summary}) + "\n")
        out.flush()
        return
    out.write(f"--- {group} ping statistics: {sent} probes sent (seq 0..{sent - 1}) ---\n")
    for p in peers.values():
        first, last = p.window(sent)
        why = []
        if first > 0:
            why.append(f"it first answered probe {first}")
        if p.left is not None:
            how = " (said goodbye)" if p.left == "goodbye" else " (went silent on both paths)"
            why.append(f"it left after probe {last}{how}")
        note = f": {'; '.join(why)}" if why else ""
        out.write(f"{p.ip}: loss counted over {max(last - first + 1, 0)} probes, seq {first}..{last}{note}\n")
        for name, path in (("multicast", p.multicast), ("unicast", p.unicast)):
            d = path.summary(first, last)
            r = d["rtt_ms"]
            out.write(
                f"  {name:<9} {d['received']}/{d['sent']} answered, {d['loss_pct']:.1f}% loss, "
                f"{d['duplicates']} dup, {d['reorders']} reordered, rtt min/avg/max/jitter "
                f"{_ms(r['min'])}/{_ms(r['avg'])}/{_ms(r['max'])}/{_ms(r['jitter'])} ms\n"
            )
    if not peers:
        out.write("no peer answered: run ping on another host with the same group and port\n")
    out.flush()
