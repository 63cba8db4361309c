"""``multicast-expert``: list interfaces, listen, send, diagnose, and demo.

One module per command, each built on the public API and the per-OS layer. Bad arguments print
one line and exit with 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from .. import __version__
from ..testing import _netns
from ._common import EXIT_OK, EXIT_USAGE, Parser, UsageError, port, positive
from .demo import cmd_demo
from .doctor import cmd_doctor
from .ifaces import cmd_ifaces
from .listen import cmd_listen
from .ping import cmd_ping
from .send import cmd_send


def build_parser() -> Parser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = Parser(
        prog="multicast-expert",
        description="Multicast made easy: list interfaces, listen, send, and diagnose why multicast "
        "does not arrive.",
        formatter_class=fmt,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    group_help = "multicast group: IPv4 224.0.0.0/4 (e.g. 239.1.2.3) or IPv6 ff00::/8 (e.g. ff15::1)"

    s = sub.add_parser("ifaces", help="list network interfaces", formatter_class=fmt)
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("listen", help="print multicast datagrams as they arrive", formatter_class=fmt)
    s.add_argument(
        "groups", nargs="+", metavar="GROUP", help=group_help + "; several of one family; GROUP+N is N groups"
    )
    s.add_argument("--port", "-p", type=port, required=True, help="UDP port the senders send to (1..65535)")
    s.add_argument(
        "--iface",
        "-i",
        action="append",
        help="interface name or IP (repeatable); default: every non-loopback one, followed as "
        "interfaces come and go",
    )
    s.add_argument("--source", "-s", action="append", help="only this sender's address (repeatable): SSM")
    s.add_argument("--count", "-n", type=int, help="stop after N datagrams (default: run until Ctrl-C)")
    s.add_argument("--timeout", "-t", type=positive(float), help="stop after S seconds without data")
    s.add_argument("--rcvbuf", type=int, help="socket receive buffer in bytes (SO_RCVBUF)")
    s.add_argument("--hex", action="store_true", help="payload preview in hex")
    s.add_argument("--json", action="store_true", help="one JSON object per datagram")
    s.add_argument(
        "--stats",
        action="store_true",
        help="a rate line each second (gaps, reorders, kernel drops) instead of packets",
    )

    s = sub.add_parser("send", help="send multicast datagrams", formatter_class=fmt)
    s.add_argument("group", metavar="GROUP", help=group_help + "; GROUP+N sends to N groups in turn")
    s.add_argument(
        "message", nargs="?", metavar="MESSAGE", help="text to send, or - for one datagram per line of stdin"
    )
    s.add_argument("--port", "-p", type=port, required=True, help="destination UDP port (1..65535)")
    s.add_argument("--iface", "-i", help="interface name or IP to send on (default: the default route's)")
    s.add_argument("--ttl", type=int, default=1, help="TTL / hop limit, 0..255 (1 stays on the local link)")
    s.add_argument("--count", "-n", type=int, default=1, help="how many datagrams to send")
    s.add_argument("--interval", type=positive(float), default=0.0, help="seconds between datagrams")
    s.add_argument("--seq", action="store_true", help="prefix 'seq=N ' for gap detection by listen --stats")
    s.add_argument("--loopback", action="store_true", help="also deliver to listeners on this host")
    s.add_argument("--size", type=int, help="pad or cut each payload to B bytes")
    s.add_argument(
        "--rate", type=positive(float), default=0.0, help="datagrams per second (0: as fast as possible)"
    )

    s = sub.add_parser(
        "ping",
        help="loss and round-trip time between hosts, by multicast and unicast",
        description="Run on two or more hosts with the same GROUP and --port. Each host multicasts "
        "numbered probes and answers the others' probes by multicast and by unicast; each reports, per "
        "peer and path, loss, duplicates, reorders and round-trip times. Exit 0 when every peer was "
        "heard by multicast.",
        formatter_class=fmt,
    )
    s.add_argument("group", metavar="GROUP", help=group_help)
    s.add_argument("--port", "-p", type=port, required=True, help="UDP port every host uses (1..65535)")
    s.add_argument("--iface", "-i", help="interface name or IP (default: the default route's)")
    s.add_argument("--count", "-n", type=int, default=10, help="probes to send")
    s.add_argument("--interval", type=positive(float), default=1.0, help="seconds between probes")
    s.add_argument("--size", type=int, default=64, help="probe size in bytes")
    s.add_argument("--ttl", type=int, default=1, help="TTL / hop limit, 0..255")
    s.add_argument(
        "--timeout",
        type=positive(float),
        default=2.0,
        help="seconds to wait for answers after the last probe",
    )
    s.add_argument("--duration", type=positive(float), help="probe for this many seconds instead of --count")
    s.add_argument(
        "--soak",
        action="store_true",
        help="one probe a second for 10 minutes (or --duration): catches streams that stop after a few "
        "minutes, the sign of IGMP snooping without a querier",
    )
    s.add_argument("--json", action="store_true", help="one JSON object per line; the last is the summary")
    s.add_argument("--quiet", "-q", action="store_true", help="print only a peer's first answer per path")

    s = sub.add_parser(
        "doctor",
        help="find why multicast does not arrive",
        description="Check interfaces, reverse-path filtering, protocol versions, routes, limits, firewall "
        "rules and memberships, then run a local send-and-receive test. Prints the fix for each problem; "
        "exits 1 if anything blocks multicast.",
        formatter_class=fmt,
    )
    s.add_argument(
        "group",
        nargs="?",
        metavar="GROUP",
        help="the group your program uses, so its family, scope and source-specific needs are checked "
        "(default: one IPv4 and one IPv6 example group)",
    )
    s.add_argument("--iface", "-i", help="the interface your program uses (default: every non-loopback one)")

    s = sub.add_parser(
        "demo", help="send and receive over loopback in a private namespace", formatter_class=fmt
    )
    s.add_argument("--here", action="store_true", help="use this namespace's loopback instead")
    return p


COMMANDS = {
    "ifaces": cmd_ifaces,
    "listen": cmd_listen,
    "send": cmd_send,
    "doctor": cmd_doctor,
    "ping": cmd_ping,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        # argparse binds the optional MESSAGE before later options are seen; take it from the rest.
        if (
            args.command == "send"
            and args.message is None
            and len(extra) == 1
            and not extra[0].startswith("--")
        ):
            args.message, extra = extra[0], []
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        if getattr(args, "count", None) is not None and args.count < 0:
            raise UsageError(f"--count {args.count} must not be negative")
        if getattr(args, "ttl", 1) is not None and not 0 <= getattr(args, "ttl", 1) <= 255:
            raise UsageError(f"--ttl {args.ttl} is out of range (0..255)")
        return COMMANDS[args.command](args, out)
    except UsageError as exc:
        sys.stderr.write(f"multicast-expert: error: {exc}\n")
        return EXIT_USAGE
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return EXIT_OK


def run() -> NoReturn:
    """Console-script entry point."""
    if os.environ.get("MULTICAST_EXPERT_PRIVATE_NETNS") == "reexec":
        _netns.finish_reexec()
    sys.exit(main())
