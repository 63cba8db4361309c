"""``multicast-expert send``: send datagrams to a group (or a range of groups, in turn)."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from .._errors import MulticastExpertError
from .._validate import MAX_TIMEOUT
from ..tx_socket import McastTxSocket
from ._common import (
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    GROUP_HELP,
    MAX_UDP_PAYLOAD,
    Command,
    UsageError,
    check_datagram_size,
    error_text,
    expand_groups,
    family_of,
    int_range,
    plural,
    port,
    positive,
    signal_number,
    sigterm_interrupts,
)

DEFAULT_MESSAGE = "hello from multicast-expert"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("group", metavar="GROUP", help=GROUP_HELP + "; GROUP+N sends to N groups in turn")
    p.add_argument(
        "message",
        nargs="?",
        metavar="MESSAGE",
        help=f"text to send (default: {DEFAULT_MESSAGE!r}), or - to send one datagram per line of stdin "
        "(a text starting with '-' goes after --)",
    )
    p.add_argument(
        "--port", "-p", type=port, required=True, metavar="PORT", help="destination UDP port (1..65535)"
    )
    p.add_argument(
        "--iface",
        "-i",
        metavar="IFACE",
        help="interface name or IP to send on; without it, the default route's interface",
    )
    p.add_argument(
        "--ttl",
        type=int_range(0, 255),
        default=1,
        metavar="N",
        help="TTL / hop limit, 0..255; 1 keeps datagrams on the local link",
    )
    p.add_argument(
        "--count", "-n", type=int_range(1), default=1, metavar="N", help="how many datagrams to send"
    )
    p.add_argument(
        "--interval",
        type=positive(float),
        metavar="S",
        help="seconds between datagrams (default: none, as fast as possible)",
    )
    p.add_argument(
        "--rate", type=positive(float, 1e9), metavar="N", help="datagrams per second, instead of --interval"
    )
    p.add_argument(
        "--seq", action="store_true", help="put 'seq=N ' in front of each payload, for listen's loss counts"
    )
    p.add_argument(
        "--size",
        type=int_range(0, max(MAX_UDP_PAYLOAD.values())),
        metavar="B",
        help="pad (with '.') or cut each payload to B bytes; at most 65507 over IPv4, 65527 over IPv6",
    )
    p.add_argument("--loopback", action="store_true", help="also deliver to listeners on this host")


def claim_extra(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """argparse binds the optional MESSAGE before later options are seen; take it from the rest.
    A word starting with '-' is an unknown option (``-`` alone is stdin); a message that starts
    with '-' follows ``--``."""
    if extra[:1] == ["--"]:
        extra = extra[1:]
    elif extra[:1] != ["-"] and extra[:1] and extra[0].startswith("-"):
        return extra
    if args.message is None and len(extra) == 1:
        args.message = extra[0]
        return []
    return extra


def run(args: argparse.Namespace, out: TextIO) -> int:
    groups = expand_groups([args.group])
    family = family_of(groups)
    if args.interval is not None and args.rate is not None:
        raise UsageError("give --interval or --rate, not both")
    if args.rate == 0:  # (0 datagrams per second would never send; "as fast as possible" is no --rate)
        raise UsageError(
            "--rate 0 would never send; give a rate above 0, or leave --rate out to send at full speed"
        )
    if args.rate and 1.0 / args.rate > MAX_TIMEOUT:
        raise UsageError(
            f"--rate {args.rate:g} is too slow; give at least {1 / MAX_TIMEOUT:g} datagrams per second"
        )
    if args.size is not None:
        check_datagram_size(args.size, family, f"--size {args.size}")
    elif args.message not in (None, "-"):
        check_datagram_size(len(os.fsencode(args.message)), family, "MESSAGE")
    interval = 1.0 / args.rate if args.rate else (args.interval or 0.0)
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
        raise UsageError(error_text(exc)) from None
    progress = _Progress()
    stopped_by: int | None = None
    start = time.monotonic()
    with tx, sigterm_interrupts():
        try:
            _send_all(args, tx, groups, family, interval, start, progress)
        except KeyboardInterrupt as exc:
            stopped_by = signal_number(exc)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                raise UsageError(f"the datagram is too large to send: {error_text(exc)}") from None
            raise
    took, sent = time.monotonic() - start, progress.sent
    where = args.group if len(groups) == 1 else f"{len(groups)} groups from {groups[0]}"
    rate = f" ({sent / took:.0f}/s)" if took > 0 and sent > 1 else ""
    sys.stderr.write(
        f"sent {plural(sent, 'datagram')}{rate} to {where} port {args.port} "
        f"via {tx.network_interface.machine_name}\n"
    )
    if stopped_by is not None:
        planned = "the end of stdin" if args.message == "-" else f"--count {args.count}"
        sys.stderr.write(f"stopped before {planned} was reached\n")
        return EXIT_SIGNAL_BASE + stopped_by
    return EXIT_OK


def _messages(args: argparse.Namespace) -> Iterator[bytes]:
    if args.message == "-":  # (bytes as read: a line need not be UTF-8)
        return (_without_line_ending(line) for line in sys.stdin.buffer)
    # (os.fsencode: the bytes the command line had, also where they are not UTF-8)
    text = os.fsencode(args.message) if args.message is not None else DEFAULT_MESSAGE.encode()
    return (text for _ in range(args.count))


def _without_line_ending(line: bytes) -> bytes:
    """A line of stdin without its ending (``\n`` or ``\r\n``); any other byte is data."""
    if line.endswith(b"\n"):
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]
    return line


@dataclass
class _Progress:
    """How far a send run got (read after Ctrl-C too)."""

    sent: int = 0


def _send_all(
    args: argparse.Namespace,
    tx: McastTxSocket,
    groups: list[str],
    family: int,
    interval: float,
    start: float,
    progress: _Progress,
) -> None:
    seqs = dict.fromkeys(groups, 0)  # --seq numbers count per group, so listen finds loss per group
    for msg in _messages(args):
        if interval:  # an absolute schedule: the rate holds even when a send is slow
            delay = start + progress.sent * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        group = groups[progress.sent % len(groups)]
        payload = f"seq={seqs[group]} ".encode() + msg if args.seq else msg
        seqs[group] += 1
        if args.size is not None:
            payload = payload[: args.size].ljust(args.size, b".")
        check_datagram_size(len(payload), family, f"datagram {progress.sent + 1}")
        tx.sendto(payload, (group, args.port))
        progress.sent += 1


COMMAND = Command(
    name="send",
    help="send multicast datagrams",
    description="Send datagrams to GROUP (or to each group of a range in turn) on one interface. "
    "A summary goes to stderr at the end.\n\n"
    "Exit status: 0 when everything was sent; 2 for a bad argument (a datagram larger than UDP "
    "allows included); 1 when the OS refused a send; 128+signal (130 for Ctrl-C) when stopped "
    "before --count datagrams (or the end of stdin) were sent.",
    examples="examples:\n"
    "  multicast-expert send 239.1.2.3 -p 5000 -i eth0 'hello'\n"
    "  multicast-expert send 239.1.2.3+16 -p 5000 --seq --rate 1000 -n 10000 --size 1200\n"
    "  journalctl -f | multicast-expert send ff15::1 -p 5000 -i eth0 -",
    add_arguments=add_arguments,
    run=run,
    claim_extra=claim_extra,
)
