"""``multicast-expert doctor``: find why multicast does not arrive (read-only checks + a self-test)."""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
from typing import TextIO

from .. import _platform
from .._errors import MulticastExpertError
from .._validate import normalize_mcast_ip
from ..interfaces import IfaceInfo, get_default_gateway_iface, rescan_interfaces
from ..rx_socket import McastRxSocket
from ..tx_socket import McastTxSocket
from ._common import EXIT_OK, EXIT_PROBLEM, family_of, ifaces_of


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
    found = _platform.OPS.memberships()
    if found is None:
        r.info("memberships not readable on this OS")
        return
    for dev, group in found:
        r.info(f"{dev}: {group}")


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
    group = normalize_mcast_ip(args.group, family_of([args.group])) if args.group else None
    chosen = ifaces_of([args.iface] if args.iface else None)
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
