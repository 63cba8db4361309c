"""Helpers the tests share: the test network's shape, senders in peer namespaces, draining, counting.

Importable from any test module (``from helpers import ...``); fixtures live in conftest.py.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass

import multicast_expert as me
from multicast_expert import testing

V4, V6 = socket.AF_INET, socket.AF_INET6
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class Net:
    """The test network: this namespace plus peers ``a`` and ``b`` on veth links."""

    a: testing.Peer
    b: testing.Peer


def drain(rx: me.McastRxSocket, limit: int = 100_000) -> list[me.McastPacket]:
    """Every datagram queued on ``rx`` (give it a short timeout), up to ``limit``."""
    got = []
    for _ in range(limit):
        p = rx.recv_packet()
        if p is None:
            break
        got.append(p)
    return got


def run_in_fresh_netns(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a script that makes its own namespaces, from a further fresh namespace of its own."""
    env = {k: v for k, v in os.environ.items() if k != testing.MARKER_ENV}
    return subprocess.run(
        ["unshare", "-n", sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def open_fds() -> int:
    """How many file descriptors this process holds (after collecting garbage from earlier tests)."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def sender(family: int, bind_ip: str, mcast_if_index: int, ttl: int = 1) -> socket.socket:
    """A bare UDP socket that sends multicast from ``bind_ip`` via interface ``mcast_if_index``."""
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET:
        s.bind((bind_ip, 0))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bind_ip))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
    else:
        s.bind((bind_ip, 0, 0, 0))
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, mcast_if_index)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
    return s


def send_from_peer(
    peer: testing.Peer, family: int, group: str, port: int, payloads: list[bytes], src_ip: str | None = None
) -> None:
    """Send datagrams from inside ``peer`` (from ``src_ip``, default its veth address)."""
    ip = src_ip or (peer.peer_ip4 if family == socket.AF_INET else peer.peer_ip6)

    def go() -> None:
        s = sender(family, ip, socket.if_nametoindex(peer.peer_if))
        with s:
            for p in payloads:
                s.sendto(p, (group, port))

    peer.run(go)


#: scripts/check-accel preloads AddressSanitizer: its quarantine keeps freed memory resident, so
#: resident-size checks say nothing there (ASan checks the accesses instead).
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def rss_bytes() -> int:
    """This process's resident size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def resident_growth(step: Callable[[], object], warm: int = 300, count: int = 3000) -> int:
    """Bytes the resident size grew over ``count`` calls of ``step`` after ``warm`` calls
    (0 under AddressSanitizer, where the figure means nothing)."""
    for _ in range(warm):
        step()
    gc.collect()
    before = rss_bytes()
    for _ in range(count):
        step()
    gc.collect()
    return 0 if UNDER_ASAN else rss_bytes() - before


def run_for_a_while(stop: threading.Event, *work: Callable[[], None]) -> None:
    """Run each of ``work`` in a thread of its own for STRESS_SECONDS (3), then set ``stop`` (the
    threads' signal to end) and join them all."""
    threads = [threading.Thread(target=f) for f in work]
    for t in threads:
        t.start()
    stop.wait(float(os.environ.get("STRESS_SECONDS", "3")))
    stop.set()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)


def fill_holes_below(fd: int) -> list[int]:
    """Open /dev/null until the next number is above ``fd``: once ``fd`` is closed it is then the
    lowest free descriptor number (the caller closes what is returned)."""
    held: list[int] = []
    while True:
        n = os.open("/dev/null", os.O_RDONLY)
        if n > fd:
            os.close(n)
            return held
        held.append(n)


def recreate(peer: testing.Peer) -> None:
    """Make ``peer``'s veth pair again (after it was deleted), same names and addresses."""
    testing.ip(
        "link", "add", peer.host_if, "type", "veth", "peer", "name", peer.peer_if, "netns", str(peer.pid)
    )
    testing.ip("link", "set", peer.peer_if, "up", ns_pid=peer.pid)
    testing.ip("link", "set", peer.host_if, "up")
    testing.Peer.add_addresses(peer.host_if, peer.host_ip4, peer.host_ip6)
    testing.Peer.add_addresses(peer.peer_if, peer.peer_ip4, peer.peer_ip6, ns_pid=peer.pid)
    testing.wait_for_mcast_route(peer.host_if)
    testing.wait_for_mcast_route(peer.peer_if, ns_pid=peer.pid)


#: The command-line tool as a subprocess runs it.
CLI = [sys.executable, "-m", "multicast_expert"]


def cli(
    *argv: str, timeout: float = 30, peer: testing.Peer | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI (in ``peer`` when given, with ``stdin`` as its input); a run that does not end
    within ``timeout`` is killed and returned with returncode None."""
    cmd = [*CLI, *argv] if peer is None else peer.command(*CLI, *argv)
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return subprocess.CompletedProcess(cmd, None, out, err)  # type: ignore[arg-type]


def in_peer(peer: testing.Peer, *argv: str) -> None:
    """Run a command inside ``peer``'s namespace (it must succeed)."""
    subprocess.run(peer.command(*argv), check=True, capture_output=True)


#: The project root (the tests' parent directory).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(body: str, timeout: float = 15.0) -> tuple[bool, str]:
    """Run ``body`` in a new Python process in a fresh network namespace (``lo`` brought up by the
    script's prelude). Returns (finished in time, stdout + stderr); a process still running at
    the deadline is killed with its process group (nothing is left behind)."""
    prelude = "import os, socket, sys, threading, time, warnings\n"
    prelude += "import multicast_expert as me\nfrom multicast_expert import testing\n"
    prelude += "testing.setup_host_namespace()\n"
    env = {k: v for k, v in os.environ.items() if k != testing.MARKER_ENV}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        ["unshare", "-n", sys.executable, "-c", prelude + textwrap.dedent(body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return True, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return False, out
