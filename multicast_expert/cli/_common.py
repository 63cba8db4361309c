"""What every command shares: exit codes, the command record, argument types and the help
formatter, library messages in command-line words, output formatting.

Rule: this module knows nothing about any one command; commands import it, never each other.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import re
import signal
import socket
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NoReturn, TextIO

from .._errors import MulticastExpertError
from .._validate import MAX_TIMEOUT
from ..interfaces import IfaceInfo, find_interface

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
#: A command stopped by a signal before it reached its --count exits with 128 + the signal number,
#: as shells report it: 130 for Ctrl-C (SIGINT), 143 for SIGTERM.
EXIT_SIGNAL_BASE = 128


class UsageError(Exception):
    """A bad command-line argument: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become UsageError (one line, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class HelpFormatter(argparse.HelpFormatter):
    """Paragraphs of a description are wrapped, example lines (indented) are kept as written; an
    option's default is shown once, and only when there is one worth showing (not for flags,
    unset options or required ones)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for para in text.split("\n\n"):
            if any(line.startswith("  ") for line in para.splitlines()):
                paragraphs.append("\n".join(indent + line for line in para.splitlines()))
            else:
                paragraphs.append(
                    textwrap.fill(
                        " ".join(para.split()), width, initial_indent=indent, subsequent_indent=indent
                    )
                )
        return "\n\n".join(paragraphs)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or action.required
            or default is None
            or default is False
            or default is argparse.SUPPRESS
        ):
            return text
        return f"{text} (default: {default})"


@dataclass(frozen=True)
class Command:
    """One subcommand: its words for ``--help``, the arguments it takes and what it runs."""

    name: str
    help: str
    description: str
    examples: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, TextIO], int]
    #: Arguments argparse left over; a command may claim some (send's MESSAGE after options).
    claim_extra: Callable[[argparse.Namespace, list[str]], list[str]] | None = None


GROUP_HELP = "multicast group: IPv4 224.0.0.0/4 (e.g. 239.1.2.3) or IPv6 ff00::/8 (e.g. ff15::1)"

# Library messages name Python parameters; the command line has options instead. Applied in order.
_CLI_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), words)
    for pattern, words in (
        (r"Pass iface_ip \(e\.g\. the loopback address\)", "Pass --iface (e.g. --iface lo)"),
        (r" ?\(or pass its IfaceInfo\)", ""),
        (r"; pass raise_fd_limit=False[^;.]*", ""),
        (r"(?<![-\w])(?:iface_ips|iface_ip|ifaces|iface)\b", "--iface"),
        (r"(?<![-\w])source_ips?\b", "--source"),
        (r"\bmcast_ips?\b", "GROUP"),
        (r"(?<![-\w])rcvbuf\b", "--rcvbuf"),
        (r"\bMcast[RT]xSocket\(\) ", ""),
    )
)


def cli_words(text: str) -> str:
    """A library message with its Python parameter names replaced by the options a user types."""
    for pattern, words in _CLI_WORDS:
        text = pattern.sub(words, text)
    return text


def error_text(exc: BaseException) -> str:
    """One line for an error: the library's own message, or the OS's words and errno."""
    if isinstance(exc, OSError) and not isinstance(exc, MulticastExpertError) and exc.strerror:
        text = exc.strerror + (f" (errno {exc.errno})" if exc.errno else "")
    else:
        text = str(exc)
    return cli_words(" ".join(text.split()))


def family_of(groups: Sequence[str]) -> int:
    families = set()
    for g in groups:
        try:
            ip = ipaddress.ip_address(g)
        except ValueError:
            raise UsageError(
                f"{g!r} is not an IP address; give a multicast group such as 239.1.2.3"
            ) from None
        if not ip.is_multicast:
            raise UsageError(f"{g} is not a multicast group (IPv4 224.0.0.0/4, IPv6 ff00::/8)")
        families.add(socket.AF_INET if ip.version == 4 else socket.AF_INET6)
    if len(families) > 1:
        raise UsageError("mix of IPv4 and IPv6 groups; run one listener per family")
    return families.pop()


def port(text: str) -> int:
    """A UDP port a datagram can be sent to or received on: 1..65535 (0 means "any" to bind and
    cannot be a destination)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a number (1..65535)") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (1..65535)")
    return value


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in low..high (no upper bound when high is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            span = f"{low}..{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range ({span})")
        return value

    return parse


#: Largest UDP payload one datagram can carry: 65535 minus the IPv4 header (20) and UDP header (8);
#: IPv6's payload length excludes its own 40-byte header, so only UDP's 8 come off.
MAX_UDP_PAYLOAD: dict[int, int] = {socket.AF_INET: 65507, socket.AF_INET6: 65527}


def check_datagram_size(size: int, family: int, what: str) -> None:
    """UsageError when a datagram of ``size`` bytes cannot be sent over ``family``."""
    limit = MAX_UDP_PAYLOAD[family]
    if size > limit:
        name = "IPv4" if family == socket.AF_INET else "IPv6"
        raise UsageError(f"{what} is {size} bytes; one UDP datagram over {name} carries at most {limit}")


def positive(kind: type[int] | type[float], most: float = MAX_TIMEOUT) -> Callable[[str], float]:
    """An argparse type: a number from 0 to ``most`` (the library's longest timeout, in seconds:
    longer waits overflow the OS's sleep and poll). NaN and infinities are refused: a NaN compares
    false with everything, so it would never end a wait nor pace a send."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text} must not be negative")
        if not value <= most:  # (NaN included)
            raise argparse.ArgumentTypeError(f"{text} is out of range; give a number from 0 to {most:.0f}")
        return value

    return parse


def ifaces_of(specs: Sequence[str] | None) -> list[IfaceInfo] | None:
    """The interfaces ``--iface`` names, one for each (as a socket takes them: an IP two
    interfaces hold is ambiguous, a bad argument that names both), each once; None for none."""
    if not specs:
        return None
    try:
        found = [find_interface(spec) for spec in specs]
    except MulticastExpertError as exc:
        raise UsageError(error_text(exc)) from None
    return list(dict.fromkeys(found))


def endpoint(addr: tuple[object, ...]) -> str:
    host = str(addr[0])
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


def iface_name(index: int, cache: dict[int, str]) -> str:
    if index not in cache:
        try:
            cache[index] = socket.if_indextoname(index)
        except OSError:
            cache[index] = str(index)
    return cache[index]


def plural(n: int, word: str) -> str:
    """``1 datagram``, ``2 datagrams``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


#: Most groups one range (``GROUP+N``) may name.
MAX_RANGE = 65536


def expand_groups(texts: Sequence[str]) -> list[str]:
    """Groups as given, with ranges expanded: ``239.1.1.1+16`` is 16 consecutive groups from
    239.1.1.1 (IPv4 or IPv6). Each must be multicast; repeats are dropped, order kept."""
    out: dict[str, None] = {}
    for text in texts:
        base, plus, count_text = text.partition("+")
        count = 1
        if plus:
            try:
                count = int(count_text)
            except ValueError:
                raise UsageError(
                    f"{text!r}: the count after '+' must be a number, e.g. 239.1.1.1+16"
                ) from None
            if not 1 <= count <= MAX_RANGE:
                raise UsageError(f"{text!r}: a range holds 1..{MAX_RANGE} groups")
        family_of([base])
        first = ipaddress.ip_address(base)
        for i in range(count):
            ip = first + i
            if not ip.is_multicast:
                raise UsageError(f"{text!r} runs past the multicast range at {ip}")
            out[str(ip)] = None
    return list(out)


def one_group(text: str, command: str) -> str:
    """A single group argument (a range is refused with a clear message)."""
    groups = expand_groups([text])
    if len(groups) != 1:
        raise UsageError(f"{command} takes one group, not the range {text!r}")
    return groups[0]


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM (Ctrl-C raises a plain KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def signal_number(exc: KeyboardInterrupt) -> int:
    """The signal that stopped a command: SIGTERM for Interrupted, else SIGINT (Ctrl-C)."""
    return exc.signum if isinstance(exc, Interrupted) else int(signal.SIGINT)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM stops the command as Ctrl-C does (so it still prints its summary)."""

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
