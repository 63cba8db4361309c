"""``multicast-expert doctor``: find why multicast does not arrive (read-only checks + a self-test).

Each check prints ``ok``, ``info``, ``warn`` or ``FAIL`` (with the fix); the exit status is 1 when
anything FAILs. Checks cover the interfaces given with ``--iface`` (else every non-loopback one),
and the GROUP asked about (else one IPv4 and one IPv6 example group).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
from typing import TextIO

from .. import _platform
from .._errors import MulticastExpertError
from .._validate import normalize_mcast_ip
from ..interfaces import IfaceInfo, cached_interfaces, get_default_gateway_iface, rescan_interfaces
from ..rx_socket import McastRxSocket
from ..tx_socket import McastTxSocket
from . import _firewall
from ._common import EXIT_OK, EXIT_PROBLEM, family_of, ifaces_of, plural

_SSM4 = ipaddress.ip_network("232.0.0.0/8")


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
    return _platform.HOST.read_setting(name)


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
    """IPv6 switched off, or IGMPv1/2 / MLDv1 forced where a source-specific group needs v3 / v2."""
    r.out.write("Protocol versions\n")
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
                ssm = ip in ipaddress.ip_network("ff30::/12")
                key, bad, need = "force_mld_version", {"1"}, "MLDv2"
            else:
                ssm = ip in _SSM4
                key, bad, need = "force_igmp_version", {"1", "2"}, "IGMPv3"
            if not ssm:
                continue
            proto = "ipv6" if ip.version == 6 else "ipv4"
            forced = {k: v for k in ("all", name) if (v := _sysctl(f"net.{proto}.conf.{k}.{key}")) in bad}
            if forced:
                r.problem(
                    f"{g} is a source-specific group, which needs {need}, but {name} is forced to an older "
                    f"version ({', '.join(f'{k}={v}' for k, v in forced.items())}): routers and switches "
                    "will not forward the source-specific stream",
                    " ".join(f"sysctl -w net.{proto}.conf.{k}.{key}=0" for k in forced),
                )
            else:
                r.ok(f"{name}: {need} available for source-specific {g}")


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


def _doctor_firewall(r: _Report) -> None:
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
    for f in findings:
        r.problem(f"firewall drops multicast or IGMP/MLD: {f.text}", f.fix)
    if not findings:
        r.ok("no firewall rule or chain policy drops multicast")


def environment_hints(
    platform: str = sys.platform,
    osrelease: str | None = None,
    cgroup: str | None = None,
    dockerenv: bool | None = None,
) -> list[str]:
    """Plain-words hints about the system multicast runs on (containers, WSL, macOS, Windows)."""
    hints = []
    if platform.startswith("linux"):
        if osrelease is None:
            osrelease = _read("/proc/sys/kernel/osrelease")
        if cgroup is None:
            cgroup = _read("/proc/1/cgroup")
        if dockerenv is None:
            dockerenv = os.path.exists("/.dockerenv")
        if "microsoft" in osrelease.lower() or "wsl" in osrelease.lower():
            hints.append(
                "this is WSL: WSL2's default NAT network does not pass multicast between Windows' LAN and "
                "Linux; use mirrored networking (networkingMode=mirrored in .wslconfig)"
            )
        if dockerenv or re.search(r"docker|kubepods|containerd|libpod", cgroup):
            hints.append(
                "this looks like a container: multicast from outside reaches its network only if the bridge "
                "forwards it (Docker's default bridge does not); use host networking or macvlan"
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


def _doctor_environment(r: _Report) -> None:
    r.out.write("Environment\n")
    for hint in environment_hints():
        r.warn(hint)
    with_v4 = [i for i in cached_interfaces() if not i.is_localhost() and i.ip4_addrs]  # scanned above
    if len(with_v4) > 1 and _sysctl("net.ipv4.conf.all.accept_local") == "0":
        r.warn(
            f"{len(with_v4)} interfaces with IPv4 addresses on this host: a datagram this host sends on one "
            "and receives on another is dropped as martian unless accept_local is on "
            "(sysctl -w net.ipv4.conf.all.accept_local=1)"
        )


def _doctor_memberships(r: _Report) -> None:
    r.out.write("Current memberships\n")
    found = _platform.HOST.memberships()
    if found is None:
        r.info("memberships not readable on this OS")
        return
    for dev, group in found:
        r.info(f"{dev}: {group}")


def _doctor_selftest(r: _Report, iface: IfaceInfo, groups: list[str]) -> None:
    r.out.write(
        f"Live self-test on {iface.machine_name}: a datagram looped back inside this host. It proves "
        "joining, sending and local delivery there; not the wire, other hosts, rp_filter or inbound "
        "firewall rules\n"
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
    _doctor_firewall(r)
    _doctor_environment(r)
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
