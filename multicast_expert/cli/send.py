"""``multicast-expert send``: send datagrams to a group."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from .._errors import MulticastExpertError
from ..tx_socket import McastTxSocket
from ._common import EXIT_OK, UsageError, family_of


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
        f"sent {sent} datagrams to {args.group}:{args.port} via {tx.network_interface.machine_name}\n"
    )
    return EXIT_OK
