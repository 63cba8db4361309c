"""Multi-host chat: every instance talks on a shared group and on a group of its own.

Instance N of M sends to the shared group 239.255.100.1 and to its own group 239.255.100.(10+N);
it listens to the shared group and to its neighbour's group (instance (N+1) mod M). Run one
instance per host, all on one network segment:

    python examples/chat.py --iface eth0 --index 0 --count 3
    python examples/chat.py --iface eth0 --index 1 --count 3   # on another host
    python examples/chat.py --iface eth0 --index 2 --count 3   # on a third

Each prints what it hears as ``heard <group> from <sender>: <text>`` and stops after --seconds.
``examples/run_chat_in_namespaces.py`` runs several instances in private network namespaces.
"""

from __future__ import annotations

import argparse
import socket
import time

import multicast_expert as me

SHARED = "239.255.100.1"
PORT = 42100


def own_group(index: int) -> str:
    """The group instance ``index`` sends its private messages to."""
    return f"239.255.100.{10 + index}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iface", required=True, help="interface name or IP")
    p.add_argument("--index", type=int, required=True, help="this instance's number, 0..count-1")
    p.add_argument("--count", type=int, required=True, help="how many instances take part")
    p.add_argument("--seconds", type=float, default=3.0, help="how long to chat")
    args = p.parse_args()
    me_group = own_group(args.index)
    neighbour = own_group((args.index + 1) % args.count)
    name = f"instance-{args.index}"
    with (
        me.McastRxSocket(socket.AF_INET, [SHARED, neighbour], PORT, iface=args.iface, timeout=0.1) as rx,
        me.McastTxSocket(socket.AF_INET, [SHARED, me_group], iface=args.iface) as tx,
    ):
        end = time.monotonic() + args.seconds
        next_send = 0.0
        while time.monotonic() < end:
            if time.monotonic() >= next_send:
                tx.sendto(f"{name} says hi to all".encode(), (SHARED, PORT))
                tx.sendto(f"{name} says hi to its follower".encode(), (me_group, PORT))
                next_send = time.monotonic() + 0.3
            packet = rx.recv_packet()
            if packet is not None:
                print(f"heard {packet.group} from {packet.src[0]}: {packet.payload.decode()}", flush=True)


if __name__ == "__main__":
    main()
