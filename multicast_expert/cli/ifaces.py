"""``multicast-expert ifaces``: list network interfaces with their multicast-relevant state."""

from __future__ import annotations

import argparse
import json
import socket
from typing import TextIO

from .. import _platform
from ..interfaces import get_default_gateway_iface, rescan_interfaces
from ._common import EXIT_OK, Command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json", action="store_true", help="a JSON list of interfaces instead of the table, for scripts"
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    ifaces = rescan_interfaces()
    d4 = get_default_gateway_iface(socket.AF_INET, ifaces=ifaces)
    d6 = get_default_gateway_iface(socket.AF_INET6, ifaces=ifaces)
    rows: list[dict[str, object]] = []
    lines = [f"{'NAME':<16} {'IDX':>4} {'UP':<4} {'MCAST':<6} {'DEFAULT':<10} ADDRESSES"]
    for i in ifaces:
        flags = _platform.HOST.iface_flags(i.machine_name) or {}
        default = [v for v, d in (("IPv4", d4), ("IPv6", d6)) if d is not None and d.index == i.index]
        ip4 = [str(a) for a in i.ip4_addrs]
        ip6 = [str(a) for a in i.ip6_addrs]
        up, mcast = flags.get("up"), flags.get("multicast")
        rows.append(
            {
                "name": i.machine_name,
                "index": i.index,
                "up": up,
                "multicast": mcast,
                "mac": i.link_layer_address,
                "ipv4": ip4,
                "ipv6": ip6,
                "default_route": default,
            }
        )
        lines.append(
            f"{i.machine_name:<16} {i.index:>4} {_yes_no(up):<4} {_yes_no(mcast):<6} "
            f"{'+'.join(default) or '-':<10} {', '.join(ip4 + ip6) or '-'}"
        )
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
    else:
        out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _yes_no(v: bool | None) -> str:
    return "?" if v is None else ("yes" if v else "no")


COMMAND = Command(
    name="ifaces",
    help="list network interfaces",
    description="List this host's network interfaces with what matters for multicast: index, "
    "whether each is up and multicast-capable, which holds the IPv4 and IPv6 default routes (where "
    "a program that names no interface sends), and its addresses. The names and addresses shown "
    "are what --iface takes in the other commands.",
    examples="examples:\n  multicast-expert ifaces\n  multicast-expert ifaces --json | jq '.[].name'",
    add_arguments=add_arguments,
    run=run,
)
