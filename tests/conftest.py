"""Test session setup: every live test runs in private network namespaces made here.

The session moves itself into a fresh network namespace before any test runs (as root by
unshare(2); otherwise by re-executing pytest under ``unshare -rn``), then links two peer
namespaces to it with veth pairs. No test opens a socket on the machine's own interfaces: the
``net`` fixture refuses to hand out the network unless the namespace check passes.

In CI (CI=true) failing to make the namespaces fails the run; elsewhere live tests skip.
"""

from __future__ import annotations

import itertools
import os
import resource
import signal
import sys
from collections.abc import Iterator

import pytest

from multicast_expert import interfaces, testing

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_netns_problem: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _netns_problem
    testing.finish_reexec()
    try:
        testing.enter_private_netns(["-m", "pytest", *config.invocation_params.args])
        if not testing.in_private_netns():
            raise testing.NetnsError("namespace check failed: foreign interfaces are visible")
    except (testing.NetnsError, OSError) as exc:
        _netns_problem = str(exc)
        if IN_CI:
            pytest.exit(f"CI needs private network namespaces and could not make one: {exc}", returncode=3)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # (started in the background by a shell: the CLI tests' children would inherit the
        # ignored Ctrl-C that they test)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 16384):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))


@pytest.fixture(scope="session")
def net() -> Iterator[Net]:
    if _netns_problem is not None:
        pytest.skip(f"no private network namespace: {_netns_problem}")
    assert testing.in_private_netns(), "refusing to run: not inside the test's own network namespace"
    with testing.peers(2) as (a, b):
        testing.ip("route", "add", "default", "via", a.peer_ip4, "dev", a.host_if)
        testing.ip("-6", "route", "add", "default", "via", a.peer_ip6, "dev", a.host_if)
        # A second sender address on peer a, for source-specific tests.
        testing.ip("addr", "add", "198.18.1.3/24", "dev", a.peer_if, ns_pid=a.pid)
        testing.ip("-6", "addr", "add", "2001:db8:1::3/64", "dev", a.peer_if, "nodad", ns_pid=a.pid)
        interfaces.rescan_interfaces()
        yield Net(a, b)
    interfaces.rescan_interfaces()


def _free_numbers(first: int, last: int) -> Iterator[int]:
    """Peer numbers from ``first`` to ``last`` over and over, skipping any whose link exists now.
    Tests that make extra peers by number use numbers outside these ranges (150-199, 230-255),
    so a fixture's peer and a test's own can never meet, however many tests run."""
    for n in itertools.cycle(range(first, last + 1)):
        if not os.path.exists(f"/sys/class/net/mxv{n}h"):
            yield n


#: own_peer's numbers: 10-149.
_peer_numbers = _free_numbers(10, 149)


@pytest.fixture
def own_peer(net: Net) -> Iterator[testing.Peer]:
    """A peer on a veth link of this test's own, for tests that change links, addresses or
    settings: the shared ``net`` is never modified by a test."""
    peer = testing.Peer(next(_peer_numbers))
    interfaces.rescan_interfaces()
    try:
        yield peer
    finally:
        peer.close()
        interfaces.rescan_interfaces()


#: Second peers (two_peers): 200-229, a range of their own.
_second_peer_numbers = _free_numbers(200, 229)


@pytest.fixture
def two_peers(own_peer: testing.Peer) -> Iterator[tuple[testing.Peer, testing.Peer]]:
    """Two peers on veth links of this test's own (own_peer, and another), for tests that need
    a second interface to send on or to watch."""
    other = testing.Peer(next(_second_peer_numbers))
    interfaces.rescan_interfaces()
    try:
        yield own_peer, other
    finally:
        other.close()
        interfaces.rescan_interfaces()


_ports = itertools.count(20000)


@pytest.fixture
def port() -> int:
    """A UDP port no other test uses."""
    return next(_ports)


sys.path.insert(0, os.path.dirname(__file__))
from helpers import Net  # noqa: E402 (needs the path above)
