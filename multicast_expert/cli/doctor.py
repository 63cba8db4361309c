"""``multicast-expert doctor``: find why multicast does not arrive (read-only checks + a self-test).

Each check prints ``ok``, ``info``, ``warn`` or ``FAIL`` (with the fix); the exit status is 1 when
anything FAILs. Checks cover the interfaces given with ``--iface`` (else every non-loopback one),
and the GROUP asked about (else one IPv4 and one IPv6 example group).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import shutil
import socket
import subprocess
import sys
import time
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

_SSM4 = ipaddress.ip_network("232.0.0.0/8")
_SSM6 = ipaddress.ip_network("ff30::/12")
#: The UDP port doctor's own joins and self-test use.
_PROBE_PORT = 45454


class _Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.problems = 0

    def ok(self, text: str) -> None:
        self.out.write(f"  ok    {text}\n")

    def info(self, text: str) -> None:
        self.out.write(f"  info  {text}\n")

    def warn(self, text: str) -> None:
        self.out.write(f"  warn  {text}\n")

    def problem(self, text: str, fix: str) -> None:
        self.problems += 1
        self.out.write(f"  FAIL  {text}\n        fix: {fix}\n")


def _sysctl(name: str) -> str | None:
    return _platform.OPS.read_setting(name)


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
        name = i.machine_name
        flags = _platform.OPS.iface_flags(name)
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


def _doctor_protocols(r: _Report, groups: list[str], ifaces: list[IfaceInfo]) -> None:
    """IPv6 switched off; the IGMP / MLD version each interface speaks, and whether a
    source-specific group gets the version it needs (IGMPv3 / MLDv2: only they carry sources)."""
    r.out.write("Protocol versions (IGMP for IPv4, MLD for IPv6)\n")
    igmp = _host.igmp_versions()
    for g in groups:
        ip = ipaddress.ip_address(g)
        for i in ifaces:
            name = i.machine_name
            if ip.version == 6:
                off = [k for k in ("all", name) if _sysctl(f"net.ipv6.conf.{k}.disable_ipv6") == "1"]
                if off:
                    r.problem(
                        f"IPv6 is disabled on {name} (disable_ipv6=1 for {', '.join(off)}), so {g} cannot "
                        "be sent or received there",
                        " ".join(f"sysctl -w net.ipv6.conf.{k}.disable_ipv6=0" for k in off)
                        + " (then re-add its IPv6 addresses)",
                    )
                    continue
            if i.is_localhost():
                r.info(f"{name}: loopback sends no IGMP/MLD reports; the version does not matter for {g}")
                continue
            if ip.version == 4:
                _igmp_version(r, g, i, ip in _SSM4, igmp)
            else:
                _mld_version(r, g, i, ip in _SSM6)


def _forced(r: _Report, g: str, name: str, proto: str, key: str, bad: set[str], need: str) -> bool:
    """FAIL (and True) when the interface is forced to a version too old for a source-specific group."""
    forced = {k: v for k in ("all", name) if (v := _sysctl(f"net.{proto}.conf.{k}.{key}")) in bad}
    if forced:
        r.problem(
            f"{g} is a source-specific group, which needs {need}, but {name} is forced to an older "
            f"version ({', '.join(f'{k}={v}' for k, v in forced.items())}): routers and switches "
            "will not forward the source-specific stream",
            " ".join(f"sysctl -w net.{proto}.conf.{k}.{key}=0" for k in forced),
        )
    return bool(forced)


def _igmp_version(r: _Report, g: str, i: IfaceInfo, ssm: bool, versions: dict[str, int] | None) -> None:
    name = i.machine_name
    version = (versions or {}).get(name)
    if not ssm:
        now = f"IGMPv{version} in use" if version else "IGMP version not readable"
        r.ok(f"{name}: {now}; {g} is any-source, which every IGMP version can join")
        if version is not None and version < 3:
            r.info(
                f"{name} heard an IGMPv{version} querier: source-specific groups (232.0.0.0/8) would "
                "lose their source filter on this link"
            )
        return
    if _forced(r, g, name, "ipv4", "force_igmp_version", {"1", "2"}, "IGMPv3"):
        return
    if version is None:
        r.info(f"{name}: the IGMP version in use is not readable here; source-specific {g} needs IGMPv3")
    elif version < 3:
        r.problem(
            f"{g} is a source-specific group, but {name} speaks IGMPv{version} now: an IGMPv{version} "
            "querier is on this link (a router or switch sending old queries, e.g. igmpproxy or an "
            "older switch), and Linux answers in that version for about 4 minutes after each of its "
            f"queries. IGMPv{version} reports carry no sources, so the source filter never reaches the "
            "network: routers forward every source of the group, or none",
            f"make the querier speak IGMPv3 (its IGMP version setting on the router or switch; find "
            f"it with: tcpdump -vni {name} igmp). force_igmp_version=3 does not help: Linux still falls "
            "back, and an IGMPv2-only router ignores IGMPv3 reports",
        )
    else:
        r.ok(f"{name}: IGMPv3 in use (no older querier heard), as source-specific {g} needs")


def _mld_version(r: _Report, g: str, i: IfaceInfo, ssm: bool) -> None:
    name = i.machine_name
    if not ssm:
        r.ok(f"{name}: {g} is any-source, which every MLD version can join")
        return
    if _forced(r, g, name, "ipv6", "force_mld_version", {"1"}, "MLDv2"):
        return
    if not i.ip6_addrs:
        r.info(f"{name}: no IPv6 address, so the MLD version in use was not tested")
        return

    def join() -> None:  # joining sends a report at once; its type shows the version in use
        with McastRxSocket(socket.AF_INET6, [g], _PROBE_PORT, iface=i, timeout=0):
            time.sleep(0.05)

    try:
        version = _host.mld_version_in_use(name, join)
    except (OSError, MulticastExpertError) as exc:
        r.info(f"{name}: could not join {g} to see the MLD version in use: {error_text(exc)}")
        return
    if version is None:
        r.info(f"{name}: could not tell which MLD version is in use (no report counted within 1.5 s)")
    elif version == 1:
        r.problem(
            f"{g} is a source-specific group, but {name} speaks MLDv1 now (joining {g} sent an MLDv1 "
            "report): an MLDv1 querier is on this link (a router or switch sending MLDv1 queries), and "
            "Linux answers in MLDv1 for about 4 minutes after each of its queries. MLDv1 reports carry "
            "no sources, so the source filter never reaches the network",
            f"make the querier speak MLDv2 (find it with: tcpdump -vni {name} 'ip6 protochain 58'); if "
            f"the router speaks MLDv2 and the MLDv1 querier is another device, sysctl -w "
            f"net.ipv6.conf.{name}.force_mld_version=2 makes this host ignore MLDv1 queries (an "
            "MLDv1-only router would then ignore this host)",
        )
    else:
        r.ok(f"{name}: MLDv2 in use (joining {g} sent an MLDv2 report), as source-specific {g} needs")


def _doctor_route(r: _Report, groups: list[str], iface: IfaceInfo | None) -> None:
    r.out.write("Routing\n")
    for g in groups:
        v6 = ":" in g
        ipv = ["-6"] if v6 else []
        if iface is not None:
            name = iface.machine_name
            out = _run(["ip", *ipv, "route", "get", g, "oif", name])
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
        out = _run(["ip", *ipv, "route", "get", g])
        if out is None:
            r.info(
                f"no route for {g} when a program names no interface; fine for this library, which "
                "always names one (pass --iface to check an interface)"
            )
            continue
        m = re.search(r"\bdev (\S+)", out)
        r.ok(f"{g} would leave by {m.group(1) if m else '?'} when a program names no interface")


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


def _doctor_firewall(r: _Report, groups: list[str], group_given: bool) -> None:
    r.out.write("Firewall (read-only)\n")
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


def _doctor_environment(r: _Report, ifaces: list[IfaceInfo]) -> None:
    r.out.write("Environment\n")
    container = _host.container_evidence()
    veths = [i.machine_name for i in ifaces if container and _host.link_kind(i.machine_name) == "veth"]
    hints = environment_hints(container=container, veths=veths)
    for hint in hints:
        r.warn(hint)
    with_v4 = [i for i in cached_interfaces() if not i.is_localhost() and i.ip4_addrs]  # scanned above
    if len(with_v4) > 1 and _sysctl("net.ipv4.conf.all.accept_local") == "0":
        r.warn(
            f"{len(with_v4)} interfaces with IPv4 addresses on this host: a datagram this host sends on one "
            "and receives on another is dropped as martian unless accept_local is on "
            "(sysctl -w net.ipv4.conf.all.accept_local=1)"
        )
    elif not hints:
        r.ok("nothing about this system stands in the way")


def _doctor_memberships(r: _Report) -> None:
    r.out.write("Current memberships\n")
    found = _platform.OPS.memberships()
    if found is None:
        r.info("memberships not readable on this OS")
        return
    for dev, group in found:
        r.info(f"{dev}: {group}")


def _doctor_selftest(r: _Report, iface: IfaceInfo, groups: list[str]) -> None:
    r.out.write(
        f"Live self-test on {iface.machine_name}: a datagram looped back inside this host. It passes "
        "through this host's firewall (output and input) and proves joining, sending and local "
        "delivery; it does not cross the wire, so it says nothing about other hosts, switches or "
        "rp_filter\n"
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
                    family, [g], _PROBE_PORT, iface=iface, timeout=1.0, enable_external_loopback=True
                ) as rx,
                McastTxSocket(family, [g], iface=iface, enable_external_loopback=True) as tx,
            ):
                tx.sendto(b"multicast-expert doctor", (g, _PROBE_PORT))
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
    r = _Report(out)
    _doctor_interfaces(r, ifaces)
    _doctor_rp_filter(r, ifaces)
    _doctor_protocols(r, groups, ifaces)
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
        r.info("no interface to self-test on (pass --iface)")
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
