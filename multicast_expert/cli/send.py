"""``multicast-expert send``: send datagrams to a group."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from .._errors import MulticastExpertError
from ..tx_socket import McastTxSocket
from ._common import EXIT_OK, UsageError, family_of, plural


def cmd_send(args: argparse.Namespace, out: TextIO) -> int:
    family = family_of([args.group])
    try:
        tx = McastTxSocket(
            family,
            [args.group],
            iface=args.iface,
            ttl=args.ttl,
            enable_external_loopback=args.loopback,
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
    with tx:
        try:
            for msg in messages:
                if sent and args.interval:
                    time.sleep(args.interval)
                payload = f"seq={sent} ".encode() + msg if args.seq else msg
                tx.sendto(payload, (args.group, args.port))
                sent += 1
        except KeyboardInterrupt:
            pass
    sys.stderr.write(
        f"sent {plural(sent, 'datagram')} to {args.group}:{args.port} "
        f"via {tx.network_interface.machine_name}\n"
    )
    return EXIT_OK
