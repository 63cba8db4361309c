"""What the CLI reads from the host it runs on, beyond the library's per-OS layer: the IGMP and MLD
state Linux keeps per interface, kernel receive timestamps on a plain socket, container signs.

Rule: every function here answers None (or False) where the OS has no such thing, so callers
need no platform checks of their own. Linux facts used (kernel 6.x, measured in namespaces):

- ``/proc/net/igmp`` gives, per interface, the IGMP version the kernel answers queries with
  ("Querier" column V1/V2/V3). It turns to V2 for about 260 s (robustness 2 x query interval
  125 s + response interval 10 s, RFC 3376 section 8.12) after an IGMPv2 query is heard, and
  ``force_igmp_version=3`` does not stop that: joins then go out as IGMPv2 reports, without sources.
- Linux shows no MLD version anywhere (``/proc/net/igmp6`` and ``/proc/net/mcfilter6`` list groups
  and sources only). What it sent does show: ``/proc/net/dev_snmp6/IF`` counts MLDv1 reports
  (``Icmp6OutGroupMembResponses``, ICMPv6 type 131) and MLDv2 reports (``Icmp6OutMLDv2Reports``,
  type 143) per interface, and a join sends a report at once, so a join tells which one is in use.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: <asm-generic/socket.h>: SO_TIMESTAMPNS, also the control message type (SCM_TIMESTAMPNS) that
#: carries a struct timespec (two 64-bit fields on 64-bit Linux).
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("=qq")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def igmp_versions() -> dict[str, int] | None:
    """The IGMP version (1, 2 or 3) the kernel now speaks on each interface, from /proc/net/igmp;
    None where that file does not exist (not Linux)."""
    text = _read("/proc/net/igmp")
    if text is None:
        return None
    found = {}
    for line in text.splitlines():
        # "2\tmxv10p    :     1      V2" -- an interface line; group lines start with a tab
        m = re.match(r"\d+\s+(\S+)\s*:\s*\d+\s+V(\d)\b", line)
        if m:
            found[m.group(1)] = int(m.group(2))
    return found


def mld_reports_sent(dev: str) -> tuple[int, int] | None:
    """(MLDv1 reports, MLDv2 reports) sent on ``dev`` so far; None where Linux's per-interface
    ICMPv6 counters are not readable."""
    text = _read(f"/proc/net/dev_snmp6/{dev}")
    if text is None:
        return None
    counters = dict(line.split()[:2] for line in text.splitlines() if len(line.split()) >= 2)
    try:
        return int(counters["Icmp6OutGroupMembResponses"]), int(counters["Icmp6OutMLDv2Reports"])
    except (KeyError, ValueError):
        return None


def mld_version_in_use(dev: str, join: Callable[[], object], wait: float = 1.5) -> int | None:
    """1 or 2: the MLD version of the report ``dev`` sends when ``join()`` joins a group there;
    None when it can't be told (counters unreadable, or no report within ``wait`` seconds)."""
    before = mld_reports_sent(dev)
    if before is None:
        return None
    join()
    end = time.monotonic() + wait
    while time.monotonic() < end:
        now = mld_reports_sent(dev)
        if now is None:
            return None
        if now[0] > before[0]:
            return 1
        if now[1] > before[1]:
            return 2
        time.sleep(0.02)
    return None


def link_kind(dev: str) -> str | None:
    """The link type of ``dev`` as ``ip -d link`` names it ("veth", "macvlan", "bridge", ...), or
    None for a plain device or when ``ip`` is not there. (``/sys/class/net`` can't tell: it shows
    the namespace sysfs was mounted in, not the caller's.)"""
    if shutil.which("ip") is None:
        return None
    try:
        res = subprocess.run(
            ["ip", "-d", "-o", "link", "show", "dev", dev],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\\\s+(veth|macvlan|ipvlan|bridge|vxlan|tun|tap|wireguard|vlan)\b", res.stdout)
    return m.group(1) if res.returncode == 0 and m else None


def container_evidence() -> str | None:
    """Why this looks like a container ("/.dockerenv exists", ...), or None."""
    if sys.platform != "linux":
        return None
    if os.path.exists("/.dockerenv"):
        return "/.dockerenv exists"
    if os.path.exists("/run/.containerenv"):
        return "/run/.containerenv exists"
    cgroup = _read("/proc/1/cgroup") or ""
    m = re.search(r"docker|kubepods|containerd|libpod|lxc", cgroup)
    return f"/proc/1/cgroup names {m.group(0)}" if m else None


def enable_receive_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each datagram ``sock`` receives (Linux); False where it can't."""
    if sys.platform != "linux":
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def recv_stamped(sock: socket.socket, bufsize: int) -> tuple[bytes, tuple[object, ...], int | None]:
    """One datagram, its sender, and the kernel's receive time in ns since the epoch (None when the
    socket has no timestamps on). Raises BlockingIOError when nothing is queued."""
    if sys.platform == "win32":
        data, addr = sock.recvfrom(bufsize)
        return data, addr, None
    data, anc, _flags, addr = sock.recvmsg(bufsize, socket.CMSG_SPACE(_TIMESPEC.size))
    for level, kind, blob in anc:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(blob) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(blob)
            return data, addr, sec * 1_000_000_000 + nsec
    return data, addr, None
