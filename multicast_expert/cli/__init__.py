"""``multicast-expert``: list interfaces, listen, send, diagnose, and demo.

One module per command, each built on the public API and the per-OS layer. Bad arguments print
one line and exit with 2.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from .. import _netns
from ._common import EXIT_OK, EXIT_USAGE, Parser, UsageError, port, positive
from .demo import cmd_demo
from .doctor import cmd_doctor
from .ifaces import cmd_ifaces
from .listen import cmd_listen
from .send import cmd_send


def build_parser() -> Parser:
    p = Parser(prog="multicast-expert", description="Multicast made easy: inspect, listen, send, diagnose.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    s = sub.add_parser("ifaces", help="list network interfaces")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("listen", help="print multicast datagrams as they arrive")
    s.add_argument("groups", nargs="+", metavar="GROUP")
    s.add_argument("--port", "-p", type=port, required=True)
    s.add_argument("--iface", "-i", action="append", help="interface name or IP (repeatable)")
    s.add_argument("--source", "-s", action="append", help="only this sender (repeatable)")
    s.add_argument("--count", "-n", type=int, help="stop after N datagrams")
    s.add_argument("--timeout", "-t", type=positive(float), help="stop after S seconds without data")
    s.add_argument("--hex", action="store_true", help="payload preview in hex")
    s.add_argument("--json", action="store_true", help="one JSON object per datagram")
    s.add_argument("--stats", action="store_true", help="a rate line each second instead of packets")

    s = sub.add_parser("send", help="send multicast datagrams")
    s.add_argument("group", metavar="GROUP")
    s.add_argument("message", nargs="?", metavar="MESSAGE", help="text to send, or - for lines of stdin")
    s.add_argument("--port", "-p", type=port, required=True)
    s.add_argument("--iface", "-i", help="interface name or IP (default: the default route's)")
    s.add_argument("--ttl", type=int, default=1)
    s.add_argument("--count", "-n", type=int, default=1)
    s.add_argument("--interval", type=positive(float), default=0.0, help="seconds between datagrams")
    s.add_argument("--seq", action="store_true", help="prefix 'seq=N ' for gap detection by listen --stats")
    s.add_argument("--loopback", action="store_true", help="also deliver to listeners on this host")

    s = sub.add_parser("doctor", help="find why multicast does not arrive")
    s.add_argument("group", nargs="?", metavar="GROUP")
    s.add_argument("--iface", "-i", help="the interface to check")

    s = sub.add_parser("demo", help="send and receive over loopback in a private namespace")
    s.add_argument("--here", action="store_true", help="use this namespace's loopback instead")
    return p


COMMANDS = {
    "ifaces": cmd_ifaces,
    "listen": cmd_listen,
    "send": cmd_send,
    "doctor": cmd_doctor,
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
