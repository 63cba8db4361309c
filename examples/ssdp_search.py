"""SSDP discovery (UPnP): send one M-SEARCH and print every device that answers within MX seconds.

Usage: python examples/ssdp_search.py IFACE [-6] [--mx SECONDS] [--st TARGET]

IFACE is the interface to search on (a name such as ``eth0``, or one of its IPs). The M-SEARCH goes
to 239.255.255.250:1900 (or [ff02::c]:1900 with ``-6``) from an ephemeral port; devices answer it
by unicast to that port, which the sending socket itself receives (``McastTxSocket.recvfrom``).
Run it only on a network you may probe.
"""

from __future__ import annotations

import argparse
import socket
import time

import multicast_expert as me

PORT = 1900
GROUPS: dict[int, str] = {socket.AF_INET: "239.255.255.250", socket.AF_INET6: "ff02::c"}
HOSTS: dict[int, str] = {socket.AF_INET: "239.255.255.250:1900", socket.AF_INET6: "[FF02::C]:1900"}


def m_search(family: int, mx: int, st: str) -> bytes:
    """The M-SEARCH request (UPnP Device Architecture 2.0, 1.3.2)."""
    lines = [
        "M-SEARCH * HTTP/1.1",
        f"HOST: {HOSTS[family]}",
        'MAN: "ssdp:discover"',
        f"MX: {mx}",
        f"ST: {st}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_response(payload: bytes) -> dict[str, str] | None:
    """The header fields of an ``HTTP/1.1 200 OK`` answer (names upper-cased); None if it is not one."""
    status, *fields = payload.decode("utf-8", "replace").split("\r\n")
    if not status.upper().startswith("HTTP/1.1 200"):
        return None
    headers = {}
    for field in fields:
        name, sep, value = field.partition(":")
        if sep:
            headers[name.strip().upper()] = value.strip()
    return headers


def search(
    iface: str, family: int = socket.AF_INET, mx: int = 2, st: str = "ssdp:all"
) -> list[tuple[me.IPv4Or6Address, dict[str, str]]]:
    """Send one M-SEARCH on ``iface`` and collect ``(sender, headers)`` answers for ``mx`` seconds
    (plus half a second for the last ones to arrive)."""
    group = GROUPS[family]
    answers = []
    with me.McastTxSocket(family, [group], iface=iface) as tx:
        tx.sendto(m_search(family, mx, st), (group, PORT))
        deadline = time.monotonic() + mx + 0.5
        while (left := deadline - time.monotonic()) > 0:
            tx.settimeout(left)
            got = tx.recvfrom()
            if got is None:
                break
            headers = parse_response(got[0])
            if headers is not None:
                answers.append((got[1], headers))
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iface", help="interface name or IP to search on")
    parser.add_argument("-6", dest="v6", action="store_true", help="IPv6 ([ff02::c]:1900)")
    parser.add_argument("--mx", type=int, default=2, help="seconds devices may wait before answering")
    parser.add_argument("--st", default="ssdp:all", help="search target (e.g. upnp:rootdevice)")
    args = parser.parse_args()
    family = socket.AF_INET6 if args.v6 else socket.AF_INET
    for sender, headers in search(args.iface, family, args.mx, args.st):
        where, server = headers.get("LOCATION", "?"), headers.get("SERVER", "")
        print(f"{sender[0]}: {headers.get('ST', '?')} at {where} ({server})")


if __name__ == "__main__":
    main()
