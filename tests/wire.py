"""Wire truth for tests: capture what crosses a veth link at its far end, decode IGMPv3, and check
what a receiving socket gets from a peer.

A :class:`Capture` opens a packet socket (``AF_PACKET``, IPv4 frames) bound to a peer's end of its
link, *inside the peer namespace*, so it sees exactly what this namespace put on that link, and
nothing of the machine's own interfaces. :func:`parse_igmpv3_report` decodes membership reports
(RFC 3376 section 4.2.2) into :class:`GroupRecord`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from helpers import send_from_peer

import multicast_expert as me
from multicast_expert import testing

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4  # <linux/if_packet.h>: a frame the capturing host sent itself
IPPROTO_IGMP = 2
IGMPV3_REPORT = 0x22

#: IGMPv3 group record types (RFC 3376 section 4.2.12).
MODE_IS_INCLUDE, MODE_IS_EXCLUDE, CHANGE_TO_INCLUDE, CHANGE_TO_EXCLUDE, ALLOW_NEW, BLOCK_OLD = range(1, 7)
RECORD_NAMES = {1: "IS_IN", 2: "IS_EX", 3: "TO_IN", 4: "TO_EX", 5: "ALLOW", 6: "BLOCK"}


@dataclass(frozen=True)
class GroupRecord:
    """One group record of an IGMPv3 report."""

    type: int
    group: str
    sources: tuple[str, ...]

    def __str__(self) -> str:
        return f"{RECORD_NAMES.get(self.type, self.type)}({self.group}, {list(self.sources)})"


class MalformedError(ValueError):
    """The bytes are not what they claim to be."""


def parse_igmpv3_report(igmp: bytes) -> list[GroupRecord]:
    """The group records of one IGMPv3 membership report (the IGMP message, IP header removed).

    RFC 3376 4.2: type 0x22 (1 byte), reserved (1), checksum (2), reserved (2), number of group
    records (2); each record: record type (1), aux data length in 32-bit words (1), number of
    sources (2), multicast address (4), that many source addresses (4 each), aux data.

    Raises:
        MalformedError: not an IGMPv3 report, or shorter than its counts say.
    """
    if len(igmp) < 8 or igmp[0] != IGMPV3_REPORT:
        raise MalformedError(f"not an IGMPv3 report: {igmp[:8].hex()}")
    (count,) = struct.unpack_from("!H", igmp, 6)
    records = []
    off = 8
    for _ in range(count):
        if off + 8 > len(igmp):
            raise MalformedError(f"record header at {off} past the end ({len(igmp)} bytes)")
        rtype, aux_words, nsrc, group = struct.unpack_from("!BBH4s", igmp, off)
        off += 8
        end = off + 4 * nsrc
        if end + 4 * aux_words > len(igmp):
            raise MalformedError(f"record of {nsrc} sources at {off - 8} past the end ({len(igmp)} bytes)")
        sources = tuple(socket.inet_ntoa(igmp[i : i + 4]) for i in range(off, end, 4))
        records.append(GroupRecord(rtype, socket.inet_ntoa(group), sources))
        off = end + 4 * aux_words
    return records


def igmp_of_ipv4(packet: bytes) -> bytes | None:
    """The IGMP message inside an IPv4 packet, or None if it carries something else."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    (total,) = struct.unpack_from("!H", packet, 2)
    if packet[9] != IPPROTO_IGMP or ihl < 20 or total > len(packet):
        return None
    return packet[ihl:total]


def build_igmpv3_report(records: list[GroupRecord]) -> bytes:
    """An IGMPv3 report carrying ``records`` (checksum left zero): for testing the parser."""
    body = b"".join(
        struct.pack("!BBH4s", r.type, 0, len(r.sources), socket.inet_aton(r.group))
        + b"".join(socket.inet_aton(s) for s in r.sources)
        for r in records
    )
    return struct.pack("!BBHHH", IGMPV3_REPORT, 0, 0, 0, len(records)) + body


class Capture:
    """IGMPv3 reports arriving at ``peer``'s end of its link, collected on a thread until closed.

    Use as a context manager; :attr:`records` grows as reports arrive.
    """

    def __init__(self, peer: testing.Peer) -> None:
        self.peer = peer
        self.records: list[GroupRecord] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

        def open_in_peer() -> socket.socket:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
            s.bind((peer.peer_if, ETH_P_IP))
            s.settimeout(0.05)
            return s

        self._sock = peer.run(open_in_peer)  # the socket belongs to the peer namespace
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                packet, addr = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError as exc:
                self.problems.append(repr(exc))
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            igmp = igmp_of_ipv4(packet)
            if igmp is None or not igmp or igmp[0] != IGMPV3_REPORT:
                continue
            try:
                found = parse_igmpv3_report(igmp)
            except MalformedError as exc:
                self.problems.append(str(exc))
                continue
            with self._lock:
                self.records.extend(found)

    def snapshot(self) -> list[GroupRecord]:
        with self._lock:
            return list(self.records)

    def matching(self, predicate: Callable[[GroupRecord], bool]) -> list[GroupRecord]:
        return [r for r in self.snapshot() if predicate(r)]

    def wait_for(self, predicate: Callable[[GroupRecord], bool], limit: float = 3.0) -> bool:
        """Whether a record matching ``predicate`` arrives within ``limit`` seconds."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if self.matching(predicate):
                return True
            time.sleep(0.02)
        return bool(self.matching(predicate))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def mentions(group: str, source: str | None = None) -> Callable[[GroupRecord], bool]:
    """A record predicate: about ``group`` (and listing ``source``, if given)."""
    g = str(ipaddress.ip_address(group))

    def match(r: GroupRecord) -> bool:
        return r.group == g and (source is None or source in r.sources)

    return match


# ---- what a receiving socket gets ------------------------------------------------------------------
def received(rx: me.McastRxSocket) -> list[me.McastPacket]:
    """Whatever a receive hands out now (the socket's own timeout applies to the first)."""
    got = []
    while (p := rx.recv_packet()) is not None:
        got.append(p)
    return got


def arrives(
    rx: me.McastRxSocket,
    peer: testing.Peer,
    family: int,
    group: str,
    port: int,
    src_ip: str | None = None,
    limit: float = 3.0,
) -> bool:
    """Whether a datagram sent from ``peer`` (from ``src_ip``) to ``group`` reaches ``rx``: sends
    again every round until it does or ``limit`` passes (a join may take a moment)."""
    deadline = time.monotonic() + limit
    n = 0
    while time.monotonic() < deadline:
        payload = b"probe %s %d" % (group.encode(), n)
        n += 1
        with contextlib.suppress(OSError):  # a link coming back may not route yet
            send_from_peer(peer, family, group, port, [payload], src_ip=src_ip)
        if any(p.payload == payload for p in received(rx)):
            return True
    return False


def dropped_from(
    rx: me.McastRxSocket, peer: testing.Peer, family: int, group: str, port: int, stranger: str
) -> bool:
    """Whether datagrams from ``stranger`` are dropped while ``peer``'s own address still gets
    through: each stranger datagram is followed by a marker from the peer's address on the same
    link, so once the marker is in, the stranger's would be too."""
    for n in range(20):
        from_stranger, marker = b"stranger %d" % n, b"marker %d" % n
        send_from_peer(peer, family, group, port, [from_stranger], src_ip=stranger)
        send_from_peer(peer, family, group, port, [marker])
        payloads = {p.payload for p in received(rx)}
        if marker in payloads:
            return not any(p.startswith(b"stranger") for p in payloads)
    raise AssertionError(f"no datagram from {peer.peer_if} arrived on {group}")
