"""``multicast-expert doctor``: find why multicast does not arrive (read-only checks + a self-test).

Each check prints ``ok``, ``info``, ``warn`` or ``FAIL`` (with the fix); the exit status is 1 when
anything FAILs. Checks cover the interfaces given with ``--iface`` (else every non-loopback one),
and the GROUP asked about (else one IPv4 and one IPv6 example group).
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import TextIO

from .. import _platform
from .._errors import MulticastExpertError
from .._validate import normalize_mcast_ip
from ..interfaces import IfaceInfo, cached_interfaces, get_default_gateway_iface, rescan_interfaces
from ..rx_socket import McastRxSocket
from ..tx_socket import McastTxSocket
from . import _firewall, _host
from ._common import EXIT_OK, EXIT_PROBLEM, Command, error_text, family_of, ifaces_of, plural
from ._report import Report, conf_level, sysctl
from ._versions import PROBE_PORT, check_versions


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


def _doctor_interfaces(r: Report, ifaces: list[IfaceInfo]) -> None:
    r.section("Interfaces", "no interface to check (pass --iface)")
    for i in ifaces:
        name = i.machine_name
        flags = _platform.HOST.iface_flags(name)
        if flags is None:
            r.info(f"{i}: flags unknown on this OS")
        elif not flags["up"]:
            r.problem(f"{name} is down", f"ip link set dev {name} up")
        elif not flags.get("running", True) and not i.is_localhost():
            r.problem(
                f"{name} is up but has no carrier (NO-CARRIER): nothing is connected at the other end",
                f"check the cable or switch port of {name} (for a veth or tunnel, bring its peer up)",
            )
        elif not flags["multicast"] and not i.is_localhost():
            r.problem(
                f"{name} does not have the MULTICAST flag, so the kernel will not send or join "
                "multicast on it",
                f"ip link set dev {name} multicast on",
            )
        else:
            r.ok(f"{i} is up, has carrier and is multicast-capable")


def _doctor_rp_filter(r: Report, ifaces: list[IfaceInfo]) -> None:
    r.section("Reverse-path filtering (IPv4)", "loopback is not reverse-path filtered")
    all_v = sysctl("net.ipv4.conf.all.rp_filter")
    if all_v is None:
        r.info("rp_filter not readable here (not Linux?)")
        return
    for i in ifaces:
        if i.is_localhost():
            continue
        own = sysctl(f"net.ipv4.conf.{conf_level(i.machine_name)}.rp_filter") or "0"
        effective = max(int(all_v), int(own))
        if effective == 1:
            r.problem(
                f"{i.machine_name}: strict reverse-path filtering (max of all={all_v}, "
                f"{i.machine_name}={own}) drops multicast whose source is not routed back via "
                f"{i.machine_name}",
                "sysctl -w net.ipv4.conf.all.rp_filter=2 "
                f"net.ipv4.conf.{conf_level(i.machine_name)}.rp_filter=2",
            )
        else:
            r.ok(f"{i.machine_name}: rp_filter effective value {effective} (0 off, 2 loose)")


def _doctor_route(r: Report, groups: list[str], iface: IfaceInfo | None) -> None:
    r.section("Routing")
    for g in groups:
        v6 = ":" in g
        ipv = ["-6"] if v6 else []
        bare = g.partition("%")[0]  # (ip route get takes no scope: the interface is given as oif)
        if iface is not None:
            name = iface.machine_name
            out = _run(["ip", *ipv, "route", "get", bare, "oif", name])
            if out is None and shutil.which("ip") is not None:
                fix = (
                    "ip -6 route add table local local ff00::/8 dev lo"
                    if v6 and iface.is_localhost()
                    else f"ip {'-6 ' if v6 else ''}route add {'ff00::/8' if v6 else '224.0.0.0/4'} dev {name}"
                )
                r.problem(f"no route for {g} on {name}: sends there fail (network unreachable)", fix)
            elif out is not None:
                r.ok(f"{g} can be sent on {name}")
            continue
        out = _run(["ip", *ipv, "route", "get", bare])
        if out is None:
            r.info(
                f"no route for {g} when a program names no interface; fine for this library, which "
                "always names one (pass --iface to check an interface)"
            )
            continue
        m = re.search(r"\bdev (\S+)", out)
        r.ok(f"{g} would leave by {m.group(1) if m else '?'} when a program names no interface")


def _doctor_limits(r: Report) -> None:
    r.section(
        "Per-socket limits (this library spreads memberships over sockets)", "limits not readable on this OS"
    )
    for name in (
        "net.ipv4.igmp_max_memberships",
        "net.ipv4.igmp_max_msf",
        "net.ipv6.mld_max_msf",
        "net.core.optmem_max",
    ):
        value = sysctl(name)
        if value is not None:
            r.info(f"{name} = {value}")


def _doctor_firewall(r: Report, groups: list[str], group_given: bool) -> None:
    r.section("Firewall (read-only)")
    findings: list[_firewall.Finding] = []
    read_any = False
    nft = _run(["nft", "list", "ruleset"])
    if nft is not None:
        read_any = True
        findings += _firewall.nft_findings(nft)
    for tool in ("iptables", "ip6tables"):
        text = _run([tool, "-S"])
        if text is not None:
            read_any = True
            findings += _firewall.iptables_findings(tool, text)
    if not read_any:
        r.info("no nft or iptables rules readable (tools missing, or not root)")
        return
    blocking = 0
    for f in findings:
        hit = [g for g in groups if f.matches(g)]
        if hit and (group_given or f.nets is None):
            blocking += 1
            r.problem(f"firewall drops multicast or IGMP/MLD: {f.text}", f.fix)
        elif not group_given:
            ranges = ", ".join(str(n) for n in f.nets or ())
            r.warn(
                f"firewall drops multicast to {ranges}: {f.text} (a problem if your group is in that "
                "range; run doctor with your GROUP to know)"
            )
        else:
            r.info(f"firewall rule that does not match {', '.join(groups)}: {f.text}")
    if not blocking:
        r.ok(f"no firewall rule or chain policy drops {', '.join(groups) if group_given else 'multicast'}")


def environment_hints(
    platform: str = sys.platform,
    osrelease: str | None = None,
    container: str | None = None,
    veths: Sequence[str] = (),
) -> list[str]:
    """Plain-words hints about the system multicast runs on (WSL, containers, macOS, Windows).

    ``container`` is why this looks like a container (see ``_host.container_evidence``);
    ``veths`` are the interfaces checked that are veth links. The container hint is given only
    then: a veth is how a container bridge attaches, and the bridge decides what multicast passes
    (host networking or macvlan have no veth, and no such problem)."""
    hints = []
    if platform.startswith("linux"):
        if osrelease is None:
            osrelease = _read("/proc/sys/kernel/osrelease")
        if "microsoft" in osrelease.lower() or "wsl" in osrelease.lower():
            hints.append(
                "this is WSL: WSL2's default NAT network does not pass multicast between Windows' LAN and "
                "Linux; use mirrored networking (networkingMode=mirrored in .wslconfig)"
            )
        if container and veths:
            hints.append(
                f"this looks like a container ({container}) and {', '.join(veths)} is a veth link: "
                "multicast from other hosts reaches it only if the bridge at the other end forwards it "
                "(Docker's default bridge does not); if other hosts are not heard, use host networking "
                "or macvlan"
            )
    elif platform == "darwin":
        hints.append(
            "macOS 15+: the program (Terminal, python) needs Local Network access (System Settings > "
            "Privacy & Security > Local Network); without it sends fail with Errno 65 (EHOSTUNREACH)"
        )
    elif platform == "win32":
        hints.append(
            "Windows: allow the UDP port and IGMP inbound in Windows Defender Firewall for this program, "
            "or nothing arrives from other hosts"
        )
    return hints


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _doctor_environment(r: Report, ifaces: list[IfaceInfo]) -> None:
    r.section("Environment")
    container = _host.container_evidence()
    veths = [i.machine_name for i in ifaces if container and _host.link_kind(i.machine_name) == "veth"]
    hints = environment_hints(container=container, veths=veths)
    for hint in hints:
        r.warn(hint)
    with_v4 = [i for i in cached_interfaces() if not i.is_localhost() and i.ip4_addrs]  # scanned above
    if len(with_v4) > 1 and sysctl("net.ipv4.conf.all.accept_local") == "0":
        r.warn(
            f"{len(with_v4)} interfaces with IPv4 addresses on this host: a datagram this host sends on one "
            "and receives on another is dropped as martian unless accept_local is on "
            "(sysctl -w net.ipv4.conf.all.accept_local=1)"
        )
    elif not hints:
        r.ok("nothing about this system stands in the way")


def _doctor_memberships(r: Report) -> None:
    r.section("Current memberships", "no group joined on any interface")
    found = _platform.HOST.memberships()
    if found is None:
        r.info("memberships not readable on this OS")
        return
    for dev, group in found:
        r.info(f"{dev}: {group}")


def _doctor_selftest(r: Report, iface: IfaceInfo, groups: list[str]) -> None:
    r.section(
        f"Live self-test on {iface.machine_name}: a datagram looped back inside this host. It passes "
        "through this host's firewall (output and input) and proves joining, sending and local "
        "delivery; it does not cross the wire, so it says nothing about other hosts, switches or "
        "rp_filter"
    )
    for g in groups:
        family = socket.AF_INET6 if ":" in g else socket.AF_INET
        name = "IPv4" if family == socket.AF_INET else "IPv6"
        if not iface.ip_addrs(family):
            r.warn(f"{name}: {iface.machine_name} has no {name} address; {name} self-test not run")
            continue
        try:
            with (
                McastRxSocket(
                    family, [g], PROBE_PORT, iface=iface, timeout=1.0, enable_external_loopback=True
                ) as rx,
                McastTxSocket(family, [g], iface=iface, enable_external_loopback=True) as tx,
            ):
                tx.sendto(b"multicast-expert doctor", (g, PROBE_PORT))
                got = rx.recv()
        except (OSError, MulticastExpertError) as exc:
            r.problem(
                f"{name} send/receive of {g} on {iface.machine_name} failed: {error_text(exc)}",
                "fix the problems above; check the interface and its routes",
            )
            continue
        if got == b"multicast-expert doctor":
            r.ok(f"{name}: sent to {g} and received it back on {iface.machine_name}")
        else:
            r.problem(
                f"{name}: sent to {g} on {iface.machine_name} but nothing came back within 1 s",
                "a firewall rule on this host drops it on the way out or in (see the firewall findings "
                "above; a rule may match it without naming multicast)",
            )


def run(args: argparse.Namespace, out: TextIO) -> int:
    group = normalize_mcast_ip(args.group, family_of([args.group])) if args.group else None
    groups = [group] if group else ["239.255.77.77", "ff15::7777"]
    chosen = ifaces_of([args.iface] if args.iface else None)
    ifaces = chosen or [i for i in rescan_interfaces() if not i.is_localhost()]
    r = Report(out)
    _doctor_interfaces(r, ifaces)
    _doctor_rp_filter(r, ifaces)
    check_versions(r, groups, ifaces)
    _doctor_route(r, groups, chosen[0] if chosen else None)
    _doctor_limits(r)
    _doctor_firewall(r, groups, group is not None)
    _doctor_environment(r, ifaces)
    _doctor_memberships(r)
    target = (
        chosen[0] if chosen else get_default_gateway_iface(socket.AF_INET) or (ifaces[0] if ifaces else None)
    )
    if target is not None:
        _doctor_selftest(r, target, groups)
    else:
        r.section("Live self-test", "no interface to self-test on (pass --iface)")
    r.close()
    out.write(
        f"\n{plural(r.problems, 'problem')} found\n"
        if r.problems
        else "\nNothing found that blocks multicast.\n"
    )
    return EXIT_PROBLEM if r.problems else EXIT_OK


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "group",
        nargs="?",
        metavar="GROUP",
        help="the group your program uses, so its family, scope, source-specific needs and firewall "
        "rules are checked; without it, one IPv4 and one IPv6 example group",
    )
    p.add_argument(
        "--iface",
        "-i",
        metavar="IFACE",
        help="the interface your program uses; without it, every non-loopback interface",
    )


COMMAND = Command(
    name="doctor",
    help="find why multicast does not arrive",
    description="Check interfaces, reverse-path filtering, IGMP/MLD versions (an old querier on the "
    "link breaks source-specific multicast), routes, limits, firewall rules and memberships, then "
    "send a datagram to this host and receive it. Each finding is ok, info, warn or FAIL; a FAIL "
    "comes with its fix.\n\n"
    "Exit status: 0 when nothing blocks multicast, 1 when something does. Runs best as root (to "
    "read firewall rules).",
    examples="examples:\n"
    "  multicast-expert doctor\n"
    "  multicast-expert doctor --iface eth0 239.1.2.3\n"
    "  sudo multicast-expert doctor -i eth0 232.1.1.1       # source-specific: IGMPv3 checked",
    add_arguments=add_arguments,
    run=run,
)
