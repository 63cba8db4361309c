"""Minimal sender: send a few datagrams to a group from one interface.

Usage: python examples/sender.py IFACE [GROUP] [PORT]
IFACE is an interface name or IP, e.g. ``lo`` or ``127.0.0.1``.
"""

from __future__ import annotations

import socket
import sys
import time

import multicast_expert as me


def main(argv: list[str]) -> None:
    iface = argv[1] if len(argv) > 1 else me.LOCALHOST_IPV4
    group = argv[2] if len(argv) > 2 else "239.255.42.1"
    port = int(argv[3]) if len(argv) > 3 else 42001
    family = socket.AF_INET6 if ":" in group else socket.AF_INET
    with me.McastTxSocket(family, [group], iface_ip=iface) as tx:
        for i in range(5):
            tx.sendto(f"message {i}".encode(), (group, port))
            print(f"sent message {i} to {group}:{port} via {tx.network_interface.machine_name}")
            time.sleep(0.2)


if __name__ == "__main__":
    main(sys.argv)
