"""``multicast-expert send``: send datagrams to a group (or a range of groups, in turn)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from .._errors import MulticastExpertError
from ..tx_socket import McastTxSocket
from ._common import EXIT_OK, UsageError, expand_groups, family_of, plural


def cmd_send(args: argparse.Namespace, out: TextIO) -> int:
    groups = expand_groups([args.group])
    family = family_of(groups)
    if args.interval and args.rate:
        raise UsageError("give --interval or --rate, not both")
    interval = 1.0 / args.rate if args.rate else args.interval
    try:
        tx = McastTxSocket(
            family, groups, iface=args.iface, ttl=args.ttl, enable_external_loopback=args.loopback
        )
    except (MulticastExpertError, ValueError, TypeError) as exc:
        if args.iface is None and "default gateway" in str(exc):
            raise UsageError(
                "no --iface given and this machine has no default route to pick one; "
                "pass --iface IFACE (an interface name or IP)"
            ) from None
        raise UsageError(str(exc)) from None
    if args.message == "-":
        messages = (line.rstrip("\n").encode() for line in sys.stdin)
    else:
        text = (args.message if args.message is not None else "hello from multicast-expert").encode()
        messages = (text for _ in range(args.count))
    sent = 0
    seqs = dict.fromkeys(groups, 0)  # --seq numbers count per group, so listen finds gaps per group
    start = time.monotonic()
    with tx:
        try:
            for msg in messages:
                if interval:  # an absolute schedule: the rate holds even when a send is slow
                    delay = start + sent * interval - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                group = groups[sent % len(groups)]
                payload = f"seq={seqs[group]} ".encode() + msg if args.seq else msg
                seqs[group] += 1
                if args.size is not None:
                    payload = payload[: args.size].ljust(args.size, b".")
                tx.sendto(payload, (group, args.port))
                sent += 1
        except KeyboardInterrupt:
            pass
    took = time.monotonic() - start
    where = args.group if len(groups) == 1 else f"{len(groups)} groups from {groups[0]}"
    rate = f" ({sent / took:.0f}/s)" if took > 0 and sent > 1 else ""
    sys.stderr.write(
        f"sent {plural(sent, 'datagram')}{rate} to {where} port {args.port} "
        f"via {tx.network_interface.machine_name}\n"
    )
    return EXIT_OK
