"""``multicast-expert demo``: send and receive over loopback, in a private namespace by default."""

from __future__ import annotations

import argparse
import socket
from typing import TextIO

from .._errors import MulticastExpertError
from ..interfaces import rescan_interfaces
from ..rx_socket import McastRxSocket
from ..testing import _netns
from ..tx_socket import McastTxSocket
from ._common import EXIT_OK, EXIT_PROBLEM, Command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--here",
        action="store_true",
        help="use this namespace's loopback instead of a private one (it then needs multicast routes on lo)",
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    if not args.here:
        try:
            _netns.enter_private_netns(["-m", "multicast_expert", "demo"])
        except _netns.NetnsError as exc:
            out.write(
                f"demo: cannot make a private network namespace ({exc}); "
                "run as root, or where 'unshare -rn' works\n"
            )
            return EXIT_PROBLEM
        out.write("Running in a private network namespace (only its own loopback interface).\n")
        rescan_interfaces()
    failures = 0
    for family, lo, group in (
        (socket.AF_INET, "127.0.0.1", "239.255.10.1"),
        (socket.AF_INET6, "::1", "ff15::10"),
    ):
        name = "IPv4" if family == socket.AF_INET else "IPv6"
        try:
            with (
                McastRxSocket(family, [group], 54321, iface=lo, timeout=2.0) as rx,
                McastTxSocket(family, [group], iface=lo) as tx,
            ):
                message = f"hello {name} multicast".encode()
                tx.sendto(message, (group, 54321))
                via = tx.network_interface.machine_name
                out.write(f"{name}: sent {message!r} to {group} port 54321 via {via}\n")
                p = rx.recv_packet()
        except (OSError, MulticastExpertError) as exc:
            out.write(f"{name}: could not run ({exc})\n")
            failures += 1
            continue
        if p is None:
            out.write(f"{name}: nothing received within 2 s\n")
            failures += 1
        else:
            out.write(
                f"{name}: received {p.payload!r} from {p.src[0]} port {p.src[1]}, "
                f"group {p.group}, interface index {p.iface_index}\n"
            )
    out.write("Demo finished: multicast works.\n" if not failures else "Demo failed.\n")
    return EXIT_OK if not failures else EXIT_PROBLEM


COMMAND = Command(
    name="demo",
    help="send and receive over loopback in a private namespace",
    description="Show that the library works on this machine: send one IPv4 and one IPv6 "
    "multicast datagram over loopback and receive them. It runs in a private network namespace "
    "of its own (root, or unprivileged user namespaces), so nothing is sent on the machine's "
    "interfaces. Exit status 0 when both arrive.",
    examples="examples:\n"
    "  multicast-expert demo\n"
    "  multicast-expert demo --here      # on the loopback of the namespace it is run in",
    add_arguments=add_arguments,
    run=run,
)
