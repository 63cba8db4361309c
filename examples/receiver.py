"""Minimal receiver: print what arrives on a group, with its group and interface.

Usage: python examples/receiver.py IFACE [GROUP] [PORT]
Stops after 5 datagrams or 10 s of silence.
"""

from __future__ import annotations

import socket
import sys

import multicast_expert as me


def main(argv: list[str]) -> int:
    iface = argv[1] if len(argv) > 1 else me.LOCALHOST_IPV4
    group = argv[2] if len(argv) > 2 else "239.255.42.1"
    port = int(argv[3]) if len(argv) > 3 else 42001
    family = socket.AF_INET6 if ":" in group else socket.AF_INET
    received = 0
    with me.McastRxSocket(family, [group], port, iface_ip=iface, timeout=10) as rx:
        print(f"listening on {group}:{port} via {iface}", flush=True)
        while received < 5:
            packet = rx.recv_packet()
            if packet is None:
                break
            received += 1
            print(f"{packet.src[0]} -> {packet.group} (if {packet.iface_index}): {packet.payload.decode()}")
    return 0 if received else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
