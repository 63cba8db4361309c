"""doctor's protocol-version checks: IPv6 switched off, and the IGMP / MLD version each interface
speaks. Only IGMPv3 and MLDv2 reports carry sources, so a source-specific group fails on a link
where an old querier (or a forced setting) makes the host speak IGMPv1/v2 or MLDv1.
"""

from __future__ import annotations

import ipaddress
import socket
import time

from .._errors import MulticastExpertError
from ..interfaces import IfaceInfo
from ..rx_socket import McastRxSocket
from . import _host
from ._common import error_text
from ._report import Report, conf_level, sysctl

SSM4 = ipaddress.ip_network("232.0.0.0/8")
SSM6 = ipaddress.ip_network("ff30::/12")
#: The UDP port doctor's own joins use.
PROBE_PORT = 45454


def check_versions(r: Report, groups: list[str], ifaces: list[IfaceInfo]) -> None:
    """IPv6 switched off; the IGMP / MLD version each interface speaks, and whether a
    source-specific group gets the version it needs (IGMPv3 / MLDv2: only they carry sources)."""
    r.section("Protocol versions (IGMP for IPv4, MLD for IPv6)")
    igmp = _host.igmp_versions()
    for g in groups:
        ip = ipaddress.ip_address(g)
        for i in ifaces:
            name = i.machine_name
            if ip.version == 6:
                off = [k for k in ("all", name) if _ipv6_off(k)]
                if off:
                    r.problem(
                        f"IPv6 is disabled on {name} (disable_ipv6=1 for {', '.join(off)}), so {g} cannot "
                        "be sent or received there",
                        " ".join(f"sysctl -w net.ipv6.conf.{conf_level(k)}.disable_ipv6=0" for k in off)
                        + " (then re-add its IPv6 addresses)",
                    )
                    continue
            if i.is_localhost():
                r.info(f"{name}: loopback sends no IGMP/MLD reports; the version does not matter for {g}")
                continue
            if ip.version == 4:
                _igmp_version(r, g, i, ip in SSM4, igmp)
            else:
                _mld_version(r, g, i, ip in SSM6)


def _ipv6_off(level: str) -> bool:
    return sysctl(f"net.ipv6.conf.{conf_level(level)}.disable_ipv6") == "1"


def _forced(r: Report, g: str, name: str, proto: str, key: str, bad: set[str], need: str) -> bool:
    """FAIL (and True) when the interface is forced to a version too old for a source-specific group."""
    forced = {k: v for k in ("all", name) if (v := sysctl(f"net.{proto}.conf.{conf_level(k)}.{key}")) in bad}
    if forced:
        r.problem(
            f"{g} is a source-specific group, which needs {need}, but {name} is forced to an older "
            f"version ({', '.join(f'{k}={v}' for k, v in forced.items())}): routers and switches "
            "will not forward the source-specific stream",
            " ".join(f"sysctl -w net.{proto}.conf.{conf_level(k)}.{key}=0" for k in forced),
        )
    return bool(forced)


def _igmp_version(r: Report, g: str, i: IfaceInfo, ssm: bool, versions: dict[str, int] | None) -> None:
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


def _mld_version(r: Report, g: str, i: IfaceInfo, ssm: bool) -> None:
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
        with McastRxSocket(socket.AF_INET6, [g], PROBE_PORT, iface=i, timeout=0):
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
            f"net.ipv6.conf.{conf_level(name)}.force_mld_version=2 makes this host ignore MLDv1 queries (an "
            "MLDv1-only router would then ignore this host)",
        )
    else:
        r.ok(f"{name}: MLDv2 in use (joining {g} sent an MLDv2 report), as source-specific {g} needs")
