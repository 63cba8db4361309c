"""``multicast-expert``: list interfaces, listen, send, ping, diagnose, and demo.

This module only wires the commands together: each command module (``ifaces``, ``listen``,
``send``, ``ping``, ``doctor``, ``demo``) owns its arguments, its help and its run function, and
exposes them as one ``COMMAND``. Errors end in one line on stderr, never a traceback: a bad
argument exits 2, a refusal by the OS or the library exits 1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from .. import __version__
from .._errors import MulticastExpertError, MulticastValueError
from ..testing import _netns
from . import demo, doctor, ifaces, listen, ping, send
from ._common import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_SIGNAL_BASE,
    EXIT_USAGE,
    Command,
    HelpFormatter,
    Parser,
    UsageError,
    error_text,
)

COMMANDS: tuple[Command, ...] = tuple(m.COMMAND for m in (ifaces, listen, send, ping, doctor, demo))


def build_parser() -> Parser:
    p = Parser(
        prog="multicast-expert",
        description="Multicast made easy: list interfaces, listen, send, measure loss between hosts, "
        "and find why multicast does not arrive. 'multicast-expert COMMAND --help' tells more.",
        epilog="examples:\n"
        "  multicast-expert doctor --iface eth0 239.1.2.3\n"
        "  multicast-expert listen 239.1.2.3 -p 5000\n"
        "  multicast-expert send 239.1.2.3 -p 5000 'hello'",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for command in COMMANDS:
        s = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            epilog=command.examples,
            formatter_class=HelpFormatter,
        )
        command.add_arguments(s)
        s.set_defaults(command_record=command)
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    name = "multicast-expert"
    try:
        args, extra = build_parser().parse_known_args(argv)
        command: Command = args.command_record
        name = f"multicast-expert: {command.name}"
        if extra and command.claim_extra is not None:
            extra = command.claim_extra(args, extra)
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        return command.run(args, out)
    except UsageError as exc:
        sys.stderr.write(f"{name}: error: {exc}\n")
        return EXIT_USAGE
    except MulticastValueError as exc:  # a value the library refused: the user's to change
        sys.stderr.write(f"{name}: error: {error_text(exc)}\n")
        return EXIT_USAGE
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return EXIT_OK
    except (MulticastExpertError, OSError) as exc:
        sys.stderr.write(f"{name}: {error_text(exc)}\n")
        return EXIT_PROBLEM
    except KeyboardInterrupt:  # Ctrl-C outside a command's own loop (while opening sockets, say)
        sys.stderr.write(f"{name}: interrupted\n")
        return EXIT_SIGNAL_BASE + signal.SIGINT


def run() -> NoReturn:
    """Console-script entry point."""
    if os.environ.get("MULTICAST_EXPERT_PRIVATE_NETNS") == "reexec":
        _netns.finish_reexec()
    sys.exit(main())
