"""Load test: a sender floods small datagrams at a receiver on 16 groups.

Runs in its own private network namespace: the sender is a separate process in a peer namespace
on a veth link. The receiver must survive without raising, never return a corrupted or
cross-group datagram, and keep its memory flat. Prints sent / delivered / lost, the delivered
rate, and the receiver's memory (RSS at start, largest sampled, and the kernel's peak VmHWM).

Usage: python benchmarks/load.py [--count N] [--json]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import multicast_expert as me
from multicast_expert import testing

GROUPS = [f"239.88.0.{i}" for i in range(1, 17)]
PORT = 48000

SENDER = """
import socket, sys, zlib
groups = sys.argv[1].split(","); count = int(sys.argv[2]); src = sys.argv[3]; port = int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
addrs = [(g, port) for g in groups]
errors = 0
for i in range(count):
    k = i % 16
    body = b"%d|%d|" % (k, i)
    try:
        s.sendto(body + zlib.crc32(body).to_bytes(4, "big"), addrs[k])
    except OSError:
        errors += 1
print(errors)
"""


def rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def run(count: int) -> dict[str, object]:
    with testing.peers(1) as (peer,):
        me.scan_interfaces()
        corrupted = cross_group = delivered = 0
        per_group = [0] * 16
        with me.McastRxSocket(
            socket.AF_INET, GROUPS, PORT, iface=peer.host_if, timeout=0.5, rcvbuf=1 << 20
        ) as rx:
            rss_start = rss_kib()
            rss_max = rss_start
            start = time.monotonic()
            sender = subprocess.Popen(
                peer.command(
                    sys.executable, "-c", SENDER, ",".join(GROUPS), str(count), peer.peer_ip4, str(PORT)
                ),
                stdout=subprocess.PIPE,
                text=True,
            )
            while True:
                p = rx.recv_packet(256)
                if p is None:
                    if sender.poll() is not None:
                        break
                    continue
                body, crc = p.payload[:-4], p.payload[-4:]
                if zlib.crc32(body).to_bytes(4, "big") != crc:
                    corrupted += 1
                    continue
                k = int(body.split(b"|")[0])
                if GROUPS[k] != p.group:
                    cross_group += 1
                    continue
                per_group[k] += 1
                delivered += 1
                if delivered % 50_000 == 0:
                    rss_max = max(rss_max, rss_kib())
            took = time.monotonic() - start
            send_errors = int((sender.communicate()[0] or "0").strip() or 0)
    return {
        "sent": count,
        "send_errors": send_errors,
        "delivered": delivered,
        "lost": count - send_errors - delivered,
        "loss_percent": round(100 * (count - send_errors - delivered) / count, 2),
        "corrupted": corrupted,
        "cross_group": cross_group,
        "groups_delivering": sum(1 for n in per_group if n),
        "delivered_per_second": round(delivered / took),
        "seconds": round(took, 2),
        "rss_start_kib": rss_start,
        "rss_max_sampled_kib": rss_max,
        "rss_growth_kib": rss_max - rss_start,
        "peak_vmhwm_kib": rss_kib("VmHWM"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    testing.enter_private_netns([str(Path(__file__).resolve()), *sys.argv[1:]])
    result = run(args.count)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    return 0 if result["corrupted"] == 0 and result["cross_group"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
