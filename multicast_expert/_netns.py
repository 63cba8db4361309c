"""Private Linux network namespaces for the demo, the tests and the benchmark.

Nothing here touches the machine's own interfaces: the calling process moves into a fresh network
namespace (holding only ``lo``), and peers are further namespaces held open by ``sleep``
processes, linked to it by veth pairs, with addresses from 198.18.0.0/15 and 2001:db8::/32.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

CLONE_NEWNET = 0x40000000
MARKER_ENV = "MULTICAST_EXPERT_PRIVATE_NETNS"
_T = TypeVar("_T")


class NetnsError(RuntimeError):
    """A private namespace could not be made or configured."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _netns_id(pid: int | str = "self") -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def enter_private_netns(argv: list[str] | None = None) -> None:
    """Move this process into a new, empty network namespace.

    As root this unshares in place (call it before any thread starts). Otherwise, when ``argv``
    is given, the process re-executes itself under ``unshare -rn``. Raises NetnsError if neither
    works. Afterwards ``lo`` is up and :func:`in_private_netns` is true.
    """
    if os.environ.get(MARKER_ENV) == "reexec":
        finish_reexec()
    if os.environ.get(MARKER_ENV) == _netns_id():
        return
    if sys.platform != "linux":
        raise NetnsError("private network namespaces need Linux")
    before = _netns_id()
    if os.geteuid() == 0:
        if _libc().unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}")
    elif argv is not None and shutil.which("unshare"):
        os.environ[MARKER_ENV] = "reexec"
        os.execvp("unshare", ["unshare", "-rn", sys.executable, *argv])
    else:
        raise NetnsError("not root, and cannot re-execute under 'unshare -rn'")
    if _netns_id() == before:
        raise NetnsError("unshare() returned but the network namespace did not change")
    os.environ[MARKER_ENV] = _netns_id()
    setup_host_namespace()


def finish_reexec() -> None:
    """After a re-exec under ``unshare -rn``: record the namespace and configure it."""
    if os.environ.get(MARKER_ENV) == "reexec":
        os.environ[MARKER_ENV] = _netns_id()
        setup_host_namespace()


def in_private_netns() -> bool:
    """True only in a namespace this module made (and which holds no interface but ours)."""
    if os.environ.get(MARKER_ENV) != _netns_id():
        return False
    return all(n == "lo" or n.startswith("mx") for n in _links())


def _links() -> list[str]:
    out = ip("-o", "link", "show")
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


def ip(*args: str, ns_pid: int | None = None) -> str:
    """Run ``ip ARGS`` (inside peer ``ns_pid`` if given); raise NetnsError on failure."""
    cmd = ["ip", *args]
    if ns_pid is not None:
        cmd = ["nsenter", "-t", str(ns_pid), "-n", *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return res.stdout


def sysctl(name: str, value: str | int, ns_pid: int | None = None) -> None:
    """Write a per-namespace sysctl (in this namespace, or peer ``ns_pid``)."""
    path = "/proc/sys/" + name.replace(".", "/")
    if ns_pid is None:
        Path(path).write_text(str(value))
    else:
        subprocess.run(["nsenter", "-t", str(ns_pid), "-n", "sh", "-c", f"echo {value} > {path}"], check=True)


def _quiet_ipv6(ns_pid: int | None = None) -> None:
    for key in ("all", "default"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            sysctl(f"net.ipv6.conf.{key}.accept_dad", 0, ns_pid)
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        sysctl("net.ipv4.conf.all.accept_local", 1, ns_pid)


def setup_host_namespace() -> None:
    """Bring up ``lo`` with routes so IPv4 and IPv6 multicast work over it."""
    _quiet_ipv6()
    ip("link", "set", "lo", "up")
    with contextlib.suppress(NetnsError):
        ip("-6", "route", "add", "table", "local", "local", "ff00::/8", "dev", "lo", "metric", "1024")


class Peer:
    """Another namespace (a 'host'), linked to this one by a veth pair.

    ``host_if`` is this namespace's end, ``peer_if`` the peer's; each gets ``/24`` and ``/64``
    addresses ``198.18.N.1`` / ``2001:db8:N::1`` (here) and ``.2`` / ``::2`` (there).
    """

    def __init__(self, n: int, bridge: str | None = None) -> None:
        self.n = n
        kind = "b" if bridge is not None else "v"
        self.host_if = f"mx{kind}{n}h"
        self.peer_if = f"mx{kind}{n}p"
        self.host_ip4 = f"198.18.{n}.1"
        self.peer_ip4 = f"198.18.{n}.2"
        self.host_ip6 = f"2001:db8:{n}::1"
        self.peer_ip6 = f"2001:db8:{n}::2"
        if bridge is not None:  # one shared link: peers share a subnet, the host side has no address
            self.peer_ip4 = f"198.18.0.{n + 1}"
            self.peer_ip6 = f"2001:db8::{n + 1}"
        self._proc = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "echo ready; exec sleep 100000"],
            stdout=subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        self._proc.stdout.readline()
        self.pid = self._proc.pid
        try:
            _quiet_ipv6(self.pid)
            ip(
                "link",
                "add",
                self.host_if,
                "type",
                "veth",
                "peer",
                "name",
                self.peer_if,
                "netns",
                str(self.pid),
            )
            ip("link", "set", "lo", "up", ns_pid=self.pid)
            ip("link", "set", self.peer_if, "up", ns_pid=self.pid)
            ip("link", "set", self.host_if, "up")
            if bridge is None:
                self.add_addresses(self.host_if, self.host_ip4, self.host_ip6)
                wait_for_mcast_route(self.host_if)
            else:
                ip("link", "set", self.host_if, "master", bridge)
            self.add_addresses(self.peer_if, self.peer_ip4, self.peer_ip6, ns_pid=self.pid)
            ip("route", "add", "default", "dev", self.peer_if, ns_pid=self.pid)
            ip("-6", "route", "add", "default", "dev", self.peer_if, ns_pid=self.pid)
            wait_for_mcast_route(self.peer_if, ns_pid=self.pid)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def add_addresses(dev: str, ip4: str, ip6: str, ns_pid: int | None = None) -> None:
        """Add an IPv4 /24 and an IPv6 /64 (no duplicate-address wait) to ``dev``."""
        ip("addr", "add", f"{ip4}/24", "dev", dev, ns_pid=ns_pid)
        ip("-6", "addr", "add", f"{ip6}/64", "dev", dev, "nodad", ns_pid=ns_pid)

    def command(self, *argv: str) -> list[str]:
        """The argv that runs ``argv`` inside this peer namespace."""
        return ["nsenter", "-t", str(self.pid), "-n", *argv]

    def run(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on a thread inside the peer namespace (its sockets belong to the peer)."""
        result: list[_T] = []
        error: list[BaseException] = []

        def body() -> None:
            try:
                fd = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY)
                try:
                    if _libc().setns(fd, CLONE_NEWNET) != 0:
                        raise NetnsError(f"setns failed: {os.strerror(ctypes.get_errno())}")
                finally:
                    os.close(fd)
                result.append(fn())
            except BaseException as exc:
                error.append(exc)

        t = threading.Thread(target=body)
        t.start()
        t.join()
        if error:
            raise error[0]
        return result[0]

    def close(self) -> None:
        """End the peer namespace (its veth pair goes with it)."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        with contextlib.suppress(NetnsError):
            ip("link", "del", self.host_if)


def wait_for_mcast_route(dev: str, ns_pid: int | None = None, limit: float = 5.0) -> None:
    """Wait (bounded) until the kernel has installed ``ff00::/8`` in table local for ``dev``."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if f"dev {dev}" in ip("-6", "route", "show", "table", "local", "ff00::/8", ns_pid=ns_pid):
            return
        time.sleep(0.02)
    raise NetnsError(f"IPv6 multicast route for {dev} did not appear within {limit} s")


@contextlib.contextmanager
def peers(count: int) -> Iterator[list[Peer]]:
    """``count`` peers, closed on exit."""
    made: list[Peer] = []
    try:
        for n in range(1, count + 1):
            made.append(Peer(n))
        yield made
    finally:
        for p in made:
            p.close()


@contextlib.contextmanager
def bridged_peers(count: int) -> Iterator[list[Peer]]:
    """``count`` peers on one Ethernet segment (a bridge in this namespace), closed on exit.

    Peer N has ``198.18.0.N+1/24`` and ``2001:db8::N+1/64``; multicast between them crosses the bridge.
    """
    bridge = "mxbr0"
    ip("link", "add", bridge, "type", "bridge", "mcast_snooping", "0")
    ip("link", "set", bridge, "up")
    made: list[Peer] = []
    try:
        for n in range(1, count + 1):
            made.append(Peer(n, bridge=bridge))
        for p in made:
            wait_for_mcast_route(p.peer_if, ns_pid=p.pid)
        yield made
    finally:
        for p in made:
            p.close()
        with contextlib.suppress(NetnsError):
            ip("link", "del", bridge)
