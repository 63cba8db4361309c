"""``doctor`` tells the truth: each problem planted in a namespace of its own is found (FAIL, the right
fix, exit 1) and the report is clean (exit 0) once it is fixed; things that are not problems are not
reported as such. The CLI's help, version and messages."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from helpers import IN_CI, Net, run_in_fresh_netns

from multicast_expert import __version__, testing

CLI = [sys.executable, "-m", "multicast_expert"]


@pytest.fixture
def host(own_peer: testing.Peer) -> Iterator[testing.Peer]:
    """A host of its own, where problems are planted; doctor runs inside it."""
    yield own_peer


def doctor(host: testing.Peer, *args: str) -> subprocess.CompletedProcess[str]:
    argv = host.command(*CLI, "doctor", "--iface", host.peer_if, *args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def in_host(host: testing.Peer, *argv: str) -> None:
    subprocess.run(host.command(*argv), check=True, capture_output=True)


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        if IN_CI:
            pytest.fail(f"{tool} is missing; scripts/check installs it")
        pytest.skip(f"{tool} not installed")


def assert_fails(res: subprocess.CompletedProcess[str], text: str, fix: str) -> None:
    assert res.returncode == 1, res.stdout
    assert "FAIL" in res.stdout and text in res.stdout, res.stdout
    assert f"fix: {fix}" in res.stdout or fix in res.stdout, res.stdout


def assert_clean(res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == 0, res.stdout + res.stderr
    assert "FAIL" not in res.stdout and "Nothing found that blocks multicast" in res.stdout


def test_no_carrier(host: testing.Peer) -> None:
    testing.ip("link", "set", host.host_if, "down")  # our end down: the peer's end loses carrier
    try:
        assert_fails(doctor(host), f"{host.peer_if} is up but has no carrier", "bring its peer up")
    finally:
        testing.ip("link", "set", host.host_if, "up")
        testing.wait_for_mcast_route(host.host_if)
    assert_clean(doctor(host, "239.40.0.1"))


def test_nftables_chain_policy_drop(host: testing.Peer) -> None:
    need("nft")
    in_host(host, "nft", "add table inet mxt")
    in_host(host, "nft", "add chain inet mxt in { type filter hook input priority 0 ; policy drop ; }")
    try:
        assert_fails(
            doctor(host, "239.40.0.2"), "has policy drop and no rule accepts multicast", "nft insert rule"
        )
        in_host(host, "nft", "add rule inet mxt in meta pkttype multicast accept")
        res = doctor(host, "239.40.0.2")
        assert "has policy drop" not in res.stdout, res.stdout
    finally:
        in_host(host, "nft", "delete table inet mxt")
    assert_clean(doctor(host, "239.40.0.2"))


def test_iptables_rules_matched_as_addresses(host: testing.Peer) -> None:
    need("iptables")
    in_host(host, "iptables", "-A", "INPUT", "-d", "10.239.1.1", "-j", "DROP")  # not multicast
    try:
        assert_clean(doctor(host, "239.40.0.3"))
        in_host(host, "iptables", "-A", "INPUT", "-d", "239.0.0.0/8", "-j", "DROP")  # multicast
        assert_fails(doctor(host, "239.40.0.3"), "-d 239.0.0.0/8", "remove or narrow that rule")
    finally:
        in_host(host, "iptables", "-F", "INPUT")
    assert_clean(doctor(host, "239.40.0.3"))


@pytest.mark.parametrize(
    ("key", "value", "group"),
    [
        ("net.ipv4.conf.{}.force_igmp_version", 2, "232.1.1.1"),
        ("net.ipv6.conf.{}.force_mld_version", 1, "ff35::1"),
    ],
)
def test_old_protocol_version_forced_for_a_source_specific_group(
    host: testing.Peer, key: str, value: int, group: str
) -> None:
    name = key.format(host.peer_if)
    testing.sysctl(name, value, ns_pid=host.pid)
    try:
        assert_fails(doctor(host, group), "is a source-specific group", f"sysctl -w {name}=0")
        assert_clean(doctor(host, "239.40.0.4" if "." in group else "ff15::404"))  # any-source: fine
    finally:
        testing.sysctl(name, 0, ns_pid=host.pid)
    assert_clean(doctor(host, group))


def test_ipv6_disabled_on_the_interface(host: testing.Peer) -> None:
    name = f"net.ipv6.conf.{host.peer_if}.disable_ipv6"
    testing.sysctl(name, 1, ns_pid=host.pid)
    try:
        assert_fails(doctor(host, "ff15::405"), "IPv6 is disabled on", f"sysctl -w {name}=0")
    finally:
        testing.sysctl(name, 0, ns_pid=host.pid)
        testing.ip("-6", "addr", "add", f"{host.peer_ip6}/64", "dev", host.peer_if, "nodad", ns_pid=host.pid)
        testing.wait_for_mcast_route(host.peer_if, ns_pid=host.pid)
    assert_clean(doctor(host, "ff15::405"))


def in_fresh_netns(script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a new namespace of its own (only ``lo``, down, no routes)."""
    env = {k: v for k, v in os.environ.items() if k != testing.MARKER_ENV}
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_no_default_route_and_no_iface_is_not_a_failure(net: Net) -> None:
    res = in_fresh_netns(f"ip link set lo up; {sys.executable} -m multicast_expert doctor")
    assert res.returncode == 0, res.stdout
    assert "FAIL" not in res.stdout and "always names one" in res.stdout


def test_loopback_reports_lo_and_fails_without_the_ipv6_route(net: Net) -> None:
    doctor_lo = f"{sys.executable} -m multicast_expert doctor --iface lo ff15::406; echo rc=$?"
    res = in_fresh_netns(
        f"ip link set lo up; {doctor_lo}; ip -6 route add table local local ff00::/8 dev lo; {doctor_lo}"
    )
    before, after = res.stdout.split("rc=", 1)
    assert before.count("FAIL") >= 1 and "ip -6 route add table local local ff00::/8 dev lo" in before
    assert after.startswith("1"), res.stdout
    assert "ff15::406 can be sent on lo" in after and after.rstrip().endswith("rc=0"), res.stdout


# ---- the CLI around doctor -----------------------------------------------------------------------
def test_version_and_help(net: Net) -> None:
    res = subprocess.run([*CLI, "--version"], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and res.stdout.strip() == f"multicast-expert {__version__}"
    send_help = subprocess.run([*CLI, "send", "--help"], capture_output=True, text=True, check=False).stdout
    for needle in ("GROUP", "multicast group", "--port", "0..255", "how many datagrams to send (default: 1)"):
        assert needle in send_help, needle
    doctor_help = subprocess.run(
        [*CLI, "doctor", "--help"], capture_output=True, text=True, check=False
    ).stdout
    assert "the group your program uses" in doctor_help


def test_send_without_route_names_the_cli_flag(net: Net) -> None:
    res = run_in_fresh_netns(["-m", "multicast_expert", "send", "239.40.0.7", "--port", "5000"], timeout=30)
    assert res.returncode == 2
    assert "--iface" in res.stderr and "iface_ip" not in res.stderr


def test_sigterm_ends_listen_with_summary(net: Net, port: int) -> None:
    proc = subprocess.Popen(
        [*CLI, "listen", "239.40.0.8", "--port", str(port), "--iface", "lo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert "listening on" in proc.stderr.readline()
    subprocess.run([*CLI, "send", "239.40.0.8", "--port", str(port), "--iface", "lo", "one"], check=True)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "received 1 packet," in err and "kernel drops 0" in err


def test_listen_reports_kernel_drops(net: Net, port: int) -> None:
    listener = subprocess.Popen(
        [
            *CLI,
            "listen",
            "239.40.0.9",
            "--port",
            str(port),
            "--iface",
            "lo",
            "--rcvbuf",
            "2048",
            "--count",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert listener.stderr is not None
    assert "listening on" in listener.stderr.readline()
    listener.send_signal(signal.SIGSTOP)  # not reading: the small buffer overflows
    try:
        subprocess.run(
            [*CLI, "send", "239.40.0.9", "--port", str(port), "--iface", "lo", "--count", "200", "x" * 500],
            check=True,
        )
    finally:
        listener.send_signal(signal.SIGCONT)
    _, err = listener.communicate(timeout=10)
    drops = int(err.split("kernel drops ")[1].split(")")[0])
    assert drops > 0 and "the kernel dropped" in err and "--rcvbuf" in err
