"""``multicast-expert``: list interfaces, listen, send, diagnose, and demo.

Every command is built on the library itself. Bad arguments print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from . import _platform
from .interfaces import IfaceInfo, find_interfaces, get_default_gateway_iface, rescan_interfaces
from .rx_socket import McastPacket, McastRxSocket
from .tx_socket import McastTxSocket
from .utils import MulticastExpertError, normalize_mcast_ip

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
SEQ_RE = re.compile(rb"^seq=(\d+) ")


class UsageError(Exception):
    """A bad command-line argument: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# ---- helpers ------------------------------------------------------------------------------------
def _family_of(groups: Sequence[str]) -> int:
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


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a number (0..65535)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (0..65535)")
    return value


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text} must not be negative")
        return value

    return parse


def _ifaces(specs: Sequence[str] | None) -> list[IfaceInfo] | None:
    if not specs:
        return None
    try:
        return find_interfaces(specs)
    except MulticastExpertError as exc:
        raise UsageError(str(exc)) from None


def _endpoint(addr: tuple[object, ...]) -> str:
    host = str(addr[0])
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


def _iface_name(index: int, cache: dict[int, str]) -> str:
    if index not in cache:
        try:
            cache[index] = socket.if_indextoname(index)
        except OSError:
            cache[index] = str(index)
    return cache[index]


# ---- ifaces -------------------------------------------------------------------------------------
def cmd_ifaces(args: argparse.Namespace, out: TextIO) -> int:
    ifaces = rescan_interfaces()
    d4 = get_default_gateway_iface(socket.AF_INET, ifaces=ifaces)
    d6 = get_default_gateway_iface(socket.AF_INET6, ifaces=ifaces)
    rows: list[dict[str, object]] = []
    lines = [f"{'NAME':<16} {'IDX':>4} {'UP':<4} {'MCAST':<6} {'DEFAULT':<10} ADDRESSES"]
    for i in ifaces:
        flags = _platform.OPS.iface_flags(i.machine_name) or {}
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


# ---- listen -------------------------------------------------------------------------------------
def _preview(data: bytes, hexdump: bool) -> str:
    if hexdump:
        return data[:32].hex(" ") + (" ..." if len(data) > 32 else "")
    text = data[:60].decode("utf-8", "replace")
    return repr(text + ("..." if len(data) > 60 else ""))[1:-1]


class _Stats:
    def __init__(self) -> None:
        self.packets = self.bytes = self.gaps = self.reorders = 0
        self.window_packets = self.window_bytes = 0
        self.last_seq: dict[tuple[object, str], int] = {}

    def add(self, p: McastPacket) -> None:
        self.packets += 1
        self.bytes += len(p.payload)
        self.window_packets += 1
        self.window_bytes += len(p.payload)
        m = SEQ_RE.match(p.payload)
        if m:
            seq = int(m.group(1))
            key = (p.src, p.group)
            last = self.last_seq.get(key)
            if last is not None:
                if seq < last:
                    self.reorders += 1
                elif seq > last + 1:
                    self.gaps += seq - last - 1
            if last is None or seq > last:
                self.last_seq[key] = seq


def cmd_listen(args: argparse.Namespace, out: TextIO) -> int:
    family = _family_of(args.groups)
    try:
        rx = McastRxSocket(
            family,
            args.groups,
            args.port,
            ifaces=_ifaces(args.iface),
            source_ips=args.source or None,
            timeout=0.2,
        )
    except (MulticastExpertError, ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    stats = _Stats()
    names: dict[int, str] = {}
    try:
        rx.open()
    except (MulticastExpertError, OSError) as exc:
        sys.stderr.write(f"multicast-expert: cannot listen: {exc}\n")
        return EXIT_PROBLEM
    start = last_packet = last_report = time.monotonic()
    try:
        sys.stderr.write(
            f"listening on {', '.join(args.groups)} port {args.port} via "
            f"{', '.join(i.machine_name for i in rx.network_interfaces)}\n"
        )
        sys.stderr.flush()
        with contextlib.closing(rx):
            while args.count is None or stats.packets < args.count:
                p = rx.recv_packet()
                now = time.monotonic()
                if args.stats and now - last_report >= 1.0:
                    span = now - last_report
                    out.write(
                        f"{stats.window_packets / span:.0f} pkt/s {stats.window_bytes / span:.0f} B/s "
                        f"total={stats.packets} gaps={stats.gaps} reorders={stats.reorders}\n"
                    )
                    out.flush()
                    stats.window_packets = stats.window_bytes = 0
                    last_report = now
                if p is None:
                    if args.timeout is not None and now - last_packet >= args.timeout:
                        break
                    continue
                last_packet = now
                stats.add(p)
                if args.stats:
                    continue
                iface = _iface_name(p.iface_index, names)
                if args.json:
                    rec = {
                        "time": time.time(),
                        "src": p.src[0],
                        "src_port": p.src[1],
                        "group": p.group,
                        "iface": iface,
                        "size": len(p.payload),
                        "truncated": p.truncated,
                        "payload_hex": p.payload.hex(),
                    }
                    out.write(json.dumps(rec) + "\n")
                else:
                    stamp = (
                        time.strftime("%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"
                    )
                    out.write(
                        f"{stamp} {_endpoint(p.src)} -> {p.group} on {iface} "
                        f"{len(p.payload)} B{' (truncated)' if p.truncated else ''}: "
                        f"{_preview(p.payload, args.hex)}\n"
                    )
                out.flush()
    except KeyboardInterrupt:
        pass
    took = time.monotonic() - start
    sys.stderr.write(
        f"received {stats.packets} packets, {stats.bytes} bytes in {took:.1f} s"
        f" (gaps {stats.gaps}, reorders {stats.reorders})\n"
    )
    return EXIT_OK if stats.packets or args.timeout is None else EXIT_PROBLEM


# ---- send ---------------------------------------------------------------------------------------
def cmd_send(args: argparse.Namespace, out: TextIO) -> int:
    family = _family_of([args.group])
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


# ---- doctor -------------------------------------------------------------------------------------
class _Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.problems = 0

    def ok(self, text: str) -> None:
        self.out.write(f"  ok    {text}\n")

    def info(self, text: str) -> None:
        self.out.write(f"  info  {text}\n")

    def problem(self, text: str, fix: str) -> None:
        self.problems += 1
        self.out.write(f"  FAIL  {text}\n        fix: {fix}\n")


def _sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys/" + name.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


def _doctor_interfaces(r: _Report, ifaces: list[IfaceInfo]) -> None:
    r.out.write("Interfaces\n")
    for i in ifaces:
        flags = _platform.OPS.iface_flags(i.machine_name)
        if flags is None:
            r.info(f"{i}: flags unknown on this OS")
            continue
        if not flags["up"]:
            r.problem(f"{i.machine_name} is down", f"ip link set dev {i.machine_name} up")
        elif not flags["multicast"] and not i.is_localhost():
            r.problem(
                f"{i.machine_name} does not have the MULTICAST flag, so the kernel will not send or "
                "join multicast on it",
                f"ip link set dev {i.machine_name} multicast on",
            )
        else:
            r.ok(f"{i} is up and multicast-capable")


def _doctor_rp_filter(r: _Report, ifaces: list[IfaceInfo]) -> None:
    r.out.write("Reverse-path filtering (IPv4)\n")
    all_v = _sysctl("net.ipv4.conf.all.rp_filter")
    if all_v is None:
        r.info("rp_filter not readable here (not Linux?)")
        return
    for i in ifaces:
        if i.is_localhost():
            continue
        own = _sysctl(f"net.ipv4.conf.{i.machine_name}.rp_filter") or "0"
        effective = max(int(all_v), int(own))
        if effective == 1:
            r.problem(
                f"{i.machine_name}: strict reverse-path filtering (max of all={all_v}, "
                f"{i.machine_name}={own}) drops multicast whose source is not routed back via "
                f"{i.machine_name}",
                f"sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{i.machine_name}.rp_filter=2",
            )
        else:
            r.ok(f"{i.machine_name}: rp_filter effective value {effective} (0 off, 2 loose)")


def _doctor_route(r: _Report, group: str | None, iface: IfaceInfo | None) -> None:
    r.out.write("Routing\n")
    groups = [group] if group else ["239.255.0.1", "ff15::1"]
    for g in groups:
        v6 = ":" in g
        out = _run(["ip", *(["-6"] if v6 else []), "route", "get", g])
        if out is None:
            has_ip = shutil.which("ip") is not None
            if has_ip and iface is None:
                r.problem(
                    f"no route for {g}: without an interface chosen by the program, sends fail",
                    f"ip {'-6 ' if v6 else ''}route add {'ff00::/8' if v6 else '224.0.0.0/4'} dev IFACE"
                    " (or pass iface= to McastTxSocket, which this library requires anyway)",
                )
            else:
                r.info(f"no route for {g}; fine for sockets that name their interface")
            continue
        m = re.search(r"\bdev (\S+)", out)
        r.ok(f"{g} would leave by {m.group(1) if m else '?'} when no interface is chosen")
    if _sysctl("net.ipv6.conf.all.disable_ipv6") == "0":
        local = _run(["ip", "-6", "route", "show", "table", "local", "type", "local", "ff00::/8"]) or ""
        if "dev lo" in local:
            r.ok("IPv6 multicast over lo is routed (local ff00::/8 dev lo in table local)")
        else:
            r.info("IPv6 multicast over lo needs: ip -6 route add table local local ff00::/8 dev lo")


def _doctor_limits(r: _Report) -> None:
    r.out.write("Per-socket limits (this library spreads memberships over sockets)\n")
    for name in (
        "net.ipv4.igmp_max_memberships",
        "net.ipv4.igmp_max_msf",
        "net.ipv6.mld_max_msf",
        "net.core.optmem_max",
    ):
        value = _sysctl(name)
        if value is not None:
            r.info(f"{name} = {value}")


def _doctor_firewall(r: _Report) -> None:
    r.out.write("Firewall (read-only)\n")
    rules: list[str] = []
    nft = _run(["nft", "list", "ruleset"])
    if nft:
        rules += [ln.strip() for ln in nft.splitlines()]
    for tool in ("iptables", "ip6tables"):
        text = _run([tool, "-S"])
        if text:
            rules += [ln.strip() for ln in text.splitlines()]
    if nft is None and not rules:
        r.info("no nft or iptables rules readable")
        return
    pattern = re.compile(r"igmp|icmpv6|224\.|239\.|ff0[0-9a-f]|ff[13][0-9a-f]|multicast|pkttype", re.I)
    bad = [ln for ln in rules if pattern.search(ln) and re.search(r"\b(drop|reject|DROP|REJECT)\b", ln)]
    for ln in bad:
        r.problem(f"firewall rule drops multicast or IGMP/MLD: {ln}", "remove or narrow that rule")
    if not bad:
        r.ok(f"no rule dropping multicast among {len(rules)} firewall lines")


def _doctor_memberships(r: _Report) -> None:
    r.out.write("Current memberships\n")
    igmp = Path("/proc/net/igmp")
    if igmp.exists():
        dev = ""
        for line in igmp.read_text().splitlines()[1:]:
            f = line.split()
            if line[:1].isdigit():
                dev = f[1].rstrip(":")
            elif f:
                group = ipaddress.IPv4Address(int(f[0], 16).to_bytes(4, "little"))
                r.info(f"{dev}: {group}")
    igmp6 = Path("/proc/net/igmp6")
    if igmp6.exists():
        for line in igmp6.read_text().splitlines():
            f = line.split()
            if len(f) >= 3:
                r.info(f"{f[1]}: {ipaddress.IPv6Address(bytes.fromhex(f[2]))}")


def _doctor_selftest(r: _Report, iface: IfaceInfo, group: str | None) -> None:
    r.out.write(f"Live self-test on {iface.machine_name}\n")
    for family, default_group in ((socket.AF_INET, "239.255.77.77"), (socket.AF_INET6, "ff15::7777")):
        if not iface.ip_addrs(family):
            continue
        g = group if group and (":" in group) == (family == socket.AF_INET6) else default_group
        name = "IPv4" if family == socket.AF_INET else "IPv6"
        try:
            with (
                McastRxSocket(
                    family, [g], 45454, iface=iface, timeout=1.0, enable_external_loopback=True
                ) as rx,
                McastTxSocket(family, [g], iface=iface, enable_external_loopback=True) as tx,
            ):
                tx.sendto(b"multicast-expert doctor", (g, 45454))
                got = rx.recv()
        except (OSError, MulticastExpertError) as exc:
            r.problem(
                f"{name} send/receive of {g} on {iface.machine_name} failed: {exc}",
                "fix the problems above; check the interface and its routes",
            )
            continue
        if got == b"multicast-expert doctor":
            r.ok(f"{name}: sent to {g} and received it back on {iface.machine_name}")
        else:
            r.problem(
                f"{name}: sent to {g} on {iface.machine_name} but nothing came back within 1 s",
                "check the firewall and rp_filter findings above",
            )


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    group = normalize_mcast_ip(args.group, _family_of([args.group])) if args.group else None
    chosen = _ifaces([args.iface] if args.iface else None)
    ifaces = chosen or [i for i in rescan_interfaces() if not i.is_localhost()]
    r = _Report(out)
    _doctor_interfaces(r, ifaces)
    _doctor_rp_filter(r, ifaces)
    _doctor_route(r, group, chosen[0] if chosen else None)
    _doctor_limits(r)
    _doctor_firewall(r)
    _doctor_memberships(r)
    target = (
        chosen[0] if chosen else get_default_gateway_iface(socket.AF_INET) or (ifaces[0] if ifaces else None)
    )
    if target is not None:
        _doctor_selftest(r, target, group)
    else:
        r.info("no interface to self-test on (pass --iface)")
    out.write(
        f"\n{r.problems} problem(s) found\n" if r.problems else "\nNothing found that blocks multicast.\n"
    )
    return EXIT_PROBLEM if r.problems else EXIT_OK


# ---- demo ---------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from . import _netns

    if not args.here:
        try:
            _netns.enter_private_netns(["-m", "multicast_expert", "demo"])
        except _netns.NetnsError as exc:
            out.write(
                f"demo: cannot make a private network namespace ({exc}); "
                "run as root, or where 'unshare -rn' works\n"
            )
            return EXIT_PROBLEM
        out.write("Running in a private network namespace (only its own loopback interface).\n")
        rescan_interfaces()
    failures = 0
    for family, lo, group in (
        (socket.AF_INET, "127.0.0.1", "239.255.10.1"),
        (socket.AF_INET6, "::1", "ff15::10"),
    ):
        name = "IPv4" if family == socket.AF_INET else "IPv6"
        try:
            with (
                McastRxSocket(family, [group], 54321, iface=lo, timeout=2.0) as rx,
                McastTxSocket(family, [group], iface=lo) as tx,
            ):
                message = f"hello {name} multicast".encode()
                tx.sendto(message, (group, 54321))
                via = tx.network_interface.machine_name
                out.write(f"{name}: sent {message!r} to {group} port 54321 via {via}\n")
                p = rx.recv_packet()
        except (OSError, MulticastExpertError) as exc:
            out.write(f"{name}: could not run ({exc})\n")
            failures += family == socket.AF_INET
            continue
        if p is None:
            out.write(f"{name}: nothing received within 2 s\n")
            failures += 1
        else:
            out.write(
                f"{name}: received {p.payload!r} from {p.src[0]} port {p.src[1]}, "
                f"group {p.group}, interface index {p.iface_index}\n"
            )
    out.write("Demo finished: multicast works.\n" if not failures else "Demo failed.\n")
    return EXIT_OK if not failures else EXIT_PROBLEM


# ---- entry point ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="multicast-expert", description="Multicast made easy: inspect, listen, send, diagnose.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("ifaces", help="list network interfaces")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("listen", help="print multicast datagrams as they arrive")
    s.add_argument("groups", nargs="+", metavar="GROUP")
    s.add_argument("--port", "-p", type=_port, required=True)
    s.add_argument("--iface", "-i", action="append", help="interface name or IP (repeatable)")
    s.add_argument("--source", "-s", action="append", help="only this sender (repeatable)")
    s.add_argument("--count", "-n", type=int, help="stop after N datagrams")
    s.add_argument("--timeout", "-t", type=_positive(float), help="stop after S seconds without data")
    s.add_argument("--hex", action="store_true", help="payload preview in hex")
    s.add_argument("--json", action="store_true", help="one JSON object per datagram")
    s.add_argument("--stats", action="store_true", help="a rate line each second instead of packets")

    s = sub.add_parser("send", help="send multicast datagrams")
    s.add_argument("group", metavar="GROUP")
    s.add_argument("message", nargs="?", metavar="MESSAGE", help="text to send, or - for lines of stdin")
    s.add_argument("--port", "-p", type=_port, required=True)
    s.add_argument("--iface", "-i", help="interface name or IP (default: the default route's)")
    s.add_argument("--ttl", type=int, default=1)
    s.add_argument("--count", "-n", type=int, default=1)
    s.add_argument("--interval", type=_positive(float), default=0.0, help="seconds between datagrams")
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
        from . import _netns

        _netns.finish_reexec()
    sys.exit(main())
