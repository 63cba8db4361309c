"""What every command shares: exit codes, argument parsing helpers, output formatting."""

from __future__ import annotations

import argparse
import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import NoReturn

from .._errors import MulticastExpertError
from ..interfaces import IfaceInfo, find_interfaces

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad command-line argument: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become UsageError (one line, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


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
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a number (0..65535)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (0..65535)")
    return value


def positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text} must not be negative")
        return value

    return parse


def ifaces_of(specs: Sequence[str] | None) -> list[IfaceInfo] | None:
    if not specs:
        return None
    try:
        return find_interfaces(specs)
    except MulticastExpertError as exc:
        raise UsageError(str(exc)) from None


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
