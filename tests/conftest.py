"""Test session setup: every live test runs in private network namespaces made here.

The session moves itself into a fresh network namespace before any test runs (as root by
unshare(2); otherwise by re-executing pytest under ``unshare -rn``), then links two peer
namespaces to it with veth pairs. No test opens a socket on the machine's own interfaces: the
``net`` fixture refuses to hand out the network unless the namespace check passes.

In CI (CI=true) failing to make the namespaces fails the run; elsewhere live tests skip.
"""

from __future__ import annotations

import gc
import itertools
import os
import resource
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import multicast_expert as me
from multicast_expert import _netns, interfaces

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_netns_problem: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _netns_problem
    _netns.finish_reexec()
    try:
        _netns.enter_private_netns(["-m", "pytest", *config.invocation_params.args])
        if not _netns.in_private_netns():
            raise _netns.NetnsError("namespace check failed: foreign interfaces are visible")
    except (_netns.NetnsError, OSError) as exc:
        _netns_problem = str(exc)
        if IN_CI:
            pytest.exit(f"CI needs private network namespaces and could not make one: {exc}", returncode=3)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 16384):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))


@dataclass
class Net:
    """The test network: this namespace plus peers ``a`` and ``b`` on veth links."""

    a: _netns.Peer
    b: _netns.Peer


@pytest.fixture(scope="session")
def net() -> Iterator[Net]:
    if _netns_problem is not None:
        pytest.skip(f"no private network namespace: {_netns_problem}")
    assert _netns.in_private_netns(), "refusing to run: not inside the test's own network namespace"
    with _netns.peers(2) as (a, b):
        _netns.ip("route", "add", "default", "via", a.peer_ip4, "dev", a.host_if)
        _netns.ip("-6", "route", "add", "default", "via", a.peer_ip6, "dev", a.host_if)
        # A second sender address on peer a, for source-specific tests.
        _netns.ip("addr", "add", "198.18.1.3/24", "dev", a.peer_if, ns_pid=a.pid)
        _netns.ip("-6", "addr", "add", "2001:db8:1::3/64", "dev", a.peer_if, "nodad", ns_pid=a.pid)
        interfaces.rescan_interfaces()
        yield Net(a, b)
    interfaces.rescan_interfaces()


_ports = itertools.count(20000)


@pytest.fixture
def port() -> int:
    """A UDP port no other test uses."""
    return next(_ports)


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
    env = {k: v for k, v in os.environ.items() if k != _netns.MARKER_ENV}
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
    peer: _netns.Peer, family: int, group: str, port: int, payloads: list[bytes], src_ip: str | None = None
) -> None:
    """Send datagrams from inside ``peer`` (from ``src_ip``, default its veth address)."""
    ip = src_ip or (peer.peer_ip4 if family == socket.AF_INET else peer.peer_ip6)

    def go() -> None:
        s = sender(family, ip, socket.if_nametoindex(peer.peer_if))
        with s:
            for p in payloads:
                s.sendto(p, (group, port))

    peer.run(go)


sys.path.insert(0, os.path.dirname(__file__))
