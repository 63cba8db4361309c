"""mDNS one-shot query (RFC 6762 section 5.1): ask once, print the answers that come back by unicast.

Usage: python examples/mdns_query.py IFACE [-6] [--name NAME] [--timeout SECONDS]

IFACE is the interface to ask on (a name such as ``eth0``, or one of its IPs). The query goes to
224.0.0.251:5353 (or [ff02::fb]:5353 with ``-6``) from an ephemeral port, which makes it a "legacy"
query: responders answer by unicast to that port, repeating the query's ID, and the sending socket
itself receives the answers (``McastTxSocket.recvfrom``). The default name,
``_services._dns-sd._udp.local``, lists the service types on the link (DNS-SD, RFC 6763 section 9).
Run it only on a network you may probe.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import socket
import struct
import time
from typing import NamedTuple

import multicast_expert as me

PORT = 5353
GROUPS: dict[int, str] = {socket.AF_INET: "224.0.0.251", socket.AF_INET6: "ff02::fb"}
TYPES = {1: "A", 12: "PTR", 16: "TXT", 28: "AAAA", 33: "SRV", 47: "NSEC"}
PTR = 12


class Record(NamedTuple):
    """One resource record of an answer, its data decoded for the common types."""

    name: str
    type: str
    ttl: int
    data: str


def encode_name(name: str) -> bytes:
    """A domain name as DNS labels."""
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode()
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS label {label!r} in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def build_query(name: str, qtype: int = PTR, query_id: int = 1) -> bytes:
    """A one-question query (class IN); a legacy query needs a non-zero ID (RFC 6762 6.7)."""
    return struct.pack(">6H", query_id, 0, 1, 0, 0, 0) + encode_name(name) + struct.pack(">HH", qtype, 1)


def read_name(msg: bytes, off: int) -> tuple[str, int]:
    """The name at ``off`` (following compression pointers) and the offset after it."""
    labels: list[str] = []
    end = None
    for _ in range(128):  # bounds a pointer loop
        length = msg[off]
        if length >= 0xC0:  # a pointer to a name earlier in the message
            if end is None:
                end = off + 2
            off = ((length & 0x3F) << 8) | msg[off + 1]
        elif length:
            labels.append(msg[off + 1 : off + 1 + length].decode("utf-8", "replace"))
            off += 1 + length
        else:
            return ".".join(labels) + ".", (off + 1 if end is None else end)
    raise ValueError("DNS name compression loop")


def _rdata(msg: bytes, kind: int, start: int, length: int) -> str:
    raw = msg[start : start + length]
    if kind == PTR:
        return read_name(msg, start)[0]
    if kind == 1 and length == 4:
        return str(ipaddress.IPv4Address(raw))
    if kind == 28 and length == 16:
        return str(ipaddress.IPv6Address(raw))
    if kind == 33 and length >= 7:
        priority, weight, port = struct.unpack_from(">3H", msg, start)
        return f"{read_name(msg, start + 6)[0]}:{port} (priority {priority}, weight {weight})"
    if kind == 16:
        strings, i = [], 0
        while i < len(raw):
            strings.append(raw[i + 1 : i + 1 + raw[i]].decode("utf-8", "replace"))
            i += 1 + raw[i]
        return " ".join(strings)
    return raw.hex()


def parse_response(msg: bytes, query_id: int) -> list[Record] | None:
    """Every record of a response to the query ``query_id`` (answers, authority and additional);
    None if ``msg`` is not such a response."""
    if len(msg) < 12:
        return None
    qid, flags, qdcount, *counts = struct.unpack_from(">6H", msg)
    if qid != query_id or not flags & 0x8000:  # not our ID, or not a response
        return None
    off = 12
    for _ in range(qdcount):
        off = read_name(msg, off)[1] + 4
    records = []
    for _ in range(sum(counts)):
        name, off = read_name(msg, off)
        kind, _cls, ttl, length = struct.unpack_from(">HHIH", msg, off)
        off += 10
        records.append(Record(name, TYPES.get(kind, str(kind)), ttl, _rdata(msg, kind, off, length)))
        off += length
    return records


def query(
    iface: str, name: str = "_services._dns-sd._udp.local", family: int = socket.AF_INET, timeout: float = 2.0
) -> list[tuple[me.IPv4Or6Address, list[Record]]]:
    """Ask for ``name``'s PTR records on ``iface``; collect ``(responder, records)`` for ``timeout`` s."""
    group, query_id = GROUPS[family], random.randrange(1, 65536)
    answers = []
    with me.McastTxSocket(family, [group], iface=iface) as tx:  # an ephemeral port: a legacy query
        tx.sendto(build_query(name, PTR, query_id), (group, PORT))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            tx.settimeout(left)
            got = tx.recvfrom(9000)
            if got is None:
                break
            records = parse_response(got[0], query_id)
            if records is not None:
                answers.append((got[1], records))
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iface", help="interface name or IP to ask on")
    parser.add_argument("-6", dest="v6", action="store_true", help="IPv6 ([ff02::fb]:5353)")
    parser.add_argument("--name", default="_services._dns-sd._udp.local", help="name to ask PTR records of")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to collect answers")
    args = parser.parse_args()
    family = socket.AF_INET6 if args.v6 else socket.AF_INET
    for responder, records in query(args.iface, args.name, family, args.timeout):
        for r in records:
            print(f"{responder[0]}: {r.name} {r.type} {r.data} (ttl {r.ttl})")


if __name__ == "__main__":
    main()
