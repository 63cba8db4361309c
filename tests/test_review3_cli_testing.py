"""Review of the command-line tool, the testing helpers and the examples against README.rst.

Each test that showed a bug (all fixed since) says, in its docstring, which promise it broke
and what happened instead. Everything runs inside the test session's private network namespace
(or a peer of its own); nothing touches the machine's interfaces.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from helpers import CLI, Net, cli, in_peer

from multicast_expert import testing

# ---- bad arguments: one line on stderr, exit 2, no traceback -----------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["send", "239.1.1.1", "-p", "5000", "-i", "lo", "--interval", "inf", "-n", "2", "x"],
        ["send", "239.1.1.1", "-p", "5000", "-i", "lo", "--interval", "1e300", "-n", "2", "x"],
    ],
    ids=["inf", "1e300"],
)
def test_send_huge_interval_is_a_usage_error_not_a_traceback(net: Net, argv: list[str]) -> None:
    """README, Command-line tool: "Errors end in one line on stderr, never a traceback ... 2 a bad
    argument". ``send --interval inf`` (or any interval too large for time.sleep) is accepted by
    the argument parser, sends the first datagram, then dies in ``time.sleep`` with a Python
    traceback (OverflowError: timestamp out of range for platform time_t) and exit status 1."""
    res = cli(*argv)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "--interval" in res.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["send", "239.1.1.1", "-p", "5000", "-i", "lo", "--rate", "nan", "-n", "2", "x"],
        ["listen", "239.1.1.1", "-p", "5000", "-i", "lo", "--timeout", "nan"],
        ["ping", "239.1.1.1", "-p", "5000", "-i", "lo", "--duration", "nan"],
    ],
    ids=["send-rate", "listen-timeout", "ping-duration"],
)
def test_nan_is_refused_as_a_bad_argument(net: Net, argv: list[str]) -> None:
    """README, Command-line tool: exit status "2 a bad argument". The number options share one
    parser (``positive(float)``) that accepts ``nan``: ``send --rate nan`` sends as fast as it
    can and exits 0, ``listen --timeout nan`` never times out, and ``ping --duration nan`` never
    sends a probe and never ends (each killed here after 10 s) instead of exiting 2."""
    res = cli(*argv, timeout=10)
    assert res.returncode == 2, (res.returncode, res.stderr)


def test_send_refuses_both_interval_and_rate(net: Net) -> None:
    """README: ``send ... [--interval S | --rate N]`` are alternatives, and send.py says "give
    --interval or --rate, not both" (exit 2). With ``--rate 0`` the check is skipped (it tests
    truthiness) and the run goes ahead with exit 0, ``--rate 0`` silently ignored."""
    res = cli(
        "send", "239.1.1.1", "-p", "5000", "-i", "lo", "--interval", "0.01", "--rate", "0", "-n", "2", "x"
    )
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "not both" in res.stderr


def test_send_unknown_short_option_is_a_usage_error(net: Net) -> None:
    """README: "2 a bad argument". A mistyped short option after the group (``send G -p 5000 -i
    lo -z``) is not rejected: ``claim_extra`` takes any left-over word not starting with ``--``
    as MESSAGE, so ``-z`` is sent as the payload and the command exits 0."""
    res = cli("send", "239.1.1.1", "-p", "5000", "-i", "lo", "-z")
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "-z" in res.stderr


def test_ctrl_c_ends_listen_with_exit_0_when_a_timeout_was_given(net: Net) -> None:
    """README, Command-line tool: "With no --count, Ctrl-C is how listen ends, and it exits 0"
    (listen's --help: exit 1 only "when --timeout passed without a single datagram"). With a
    ``--timeout 60`` that has not passed, Ctrl-C before any datagram arrives exits 1: run() returns
    EXIT_PROBLEM whenever no packet came and --timeout was given, however the run ended."""
    proc = subprocess.Popen(
        [*CLI, "listen", "239.20.9.1", "-p", "45999", "-i", "lo", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("listening on")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert "Traceback" not in err
    assert proc.returncode == 0, (proc.returncode, err)


# ---- doctor: does it detect what it says it detects ---------------------------------------------


def test_doctor_sees_strict_rp_filter_on_an_interface_whose_name_has_a_dot(own_peer: testing.Peer) -> None:
    """README, doctor: "reverse-path filtering (strict rp_filter)"; Troubleshooting: "The
    effective value is the larger of net.ipv4.conf.all.rp_filter and net.ipv4.conf.IFACE.rp_filter".
    For an interface with a dot in its name, as VLANs are named (``eth0.7``; here a veth called
    ``mxq.7``, as the vlan module may be missing) doctor reads
    ``/proc/sys/net/ipv4/conf/mxq/7/rp_filter`` (every dot of the sysctl name turned into a
    slash), finds nothing, takes 0, and reports "ok ... rp_filter effective value 0" while
    ``conf/mxq.7/rp_filter`` is 1 (strict)."""
    vlan = "mxq.7"  # named as a VLAN would be (eth0.7); a veth pair, as vlan may be unavailable here
    in_peer(own_peer, "ip", "link", "add", vlan, "type", "veth", "peer", "name", "mxq7b")
    in_peer(own_peer, "ip", "addr", "add", "198.18.151.2/24", "dev", vlan)
    in_peer(own_peer, "ip", "link", "set", "mxq7b", "up")
    in_peer(own_peer, "ip", "link", "set", vlan, "up")
    in_peer(own_peer, "sh", "-c", f"echo 1 > /proc/sys/net/ipv4/conf/{vlan}/rp_filter")
    res = cli("doctor", "--iface", vlan, "239.40.7.1", peer=own_peer, timeout=60)
    assert "strict reverse-path filtering" in res.stdout, res.stdout
    assert res.returncode == 1, res.stdout


@pytest.mark.parametrize(
    "rule",
    [
        ["nft", "add", "rule", "ip", "mxr", "in", "ip", "daddr", "239.0.0.0-239.2.255.255", "drop"],
        ["iptables", "-A", "INPUT", "-m", "iprange", "--dst-range", "239.0.0.0-239.2.255.255", "-j", "DROP"],
    ],
    ids=["nft", "iptables"],
)
def test_doctor_fails_a_firewall_range_that_holds_the_group(own_peer: testing.Peer, rule: list[str]) -> None:
    """README, doctor: "firewall (read-only): nftables and iptables rules that drop multicast ...
    Addresses are compared as networks ..., a rule counts only for the groups it can match". A
    rule dropping the address *range* 239.0.0.0-239.2.255.255 (nft's range syntax, iptables'
    ``-m iprange``) is read as the two single addresses at its ends, so for 239.1.2.3, inside the
    range, doctor prints "info firewall rule that does not match 239.1.2.3" and "ok no firewall
    rule or chain policy drops 239.1.2.3" (only the self-test then fails, blaming no rule)."""
    in_peer(own_peer, "nft", "add", "table", "ip", "mxr")
    in_peer(own_peer, "nft", "add chain ip mxr in { type filter hook input priority 0 ; policy accept ; }")
    in_peer(own_peer, *rule)
    res = cli("doctor", "--iface", own_peer.peer_if, "239.1.2.3", peer=own_peer, timeout=60)
    assert "FAIL  firewall drops multicast or IGMP/MLD" in res.stdout, res.stdout
    assert "ok    no firewall rule" not in res.stdout, res.stdout


def test_doctor_fails_a_rule_dropping_a_named_set_of_multicast_addresses(own_peer: testing.Peer) -> None:
    """README, doctor: "nftables and iptables rules that drop multicast". A rule ``ip daddr @bad
    drop`` whose set holds 224.0.0.0/4 drops every IPv4 group, but doctor does not look into
    sets: it says "ok no firewall rule or chain policy drops 239.1.2.3"."""
    in_peer(own_peer, "nft", "add", "table", "ip", "mxr")
    in_peer(own_peer, "nft", "add chain ip mxr in { type filter hook input priority 0 ; policy accept ; }")
    in_peer(own_peer, "nft", "add set ip mxr bad { type ipv4_addr ; flags interval ; }")
    in_peer(own_peer, "nft", "add element ip mxr bad { 224.0.0.0/4 }")
    in_peer(own_peer, "nft", "add rule ip mxr in ip daddr @bad drop")
    res = cli("doctor", "--iface", own_peer.peer_if, "239.1.2.3", peer=own_peer, timeout=60)
    assert "FAIL  firewall drops multicast or IGMP/MLD" in res.stdout, res.stdout


# ---- testing helpers ---------------------------------------------------------------------------


def test_a_peer_that_fails_to_start_leaves_the_existing_peer_alone(net: Net) -> None:
    """README, Testing: ``Peer(n)`` ... add hosts on veth links; the brief of the helpers is that
    they error cleanly. Making ``Peer(n)`` for a number already in use fails (its veth name
    exists), and its cleanup then runs ``ip link del mxvNh``: it deletes the *existing* peer's
    link, so the first peer, still open, has lost its veth."""
    first = testing.Peer(150)
    try:
        with pytest.raises(testing.NetnsError):
            testing.Peer(150)
        links = testing.ip("-o", "link", "show")
        assert f"{first.host_if}@" in links, links
    finally:
        first.close()


def test_doctor_does_not_fail_the_route_of_a_scoped_group_that_works(net: Net) -> None:
    """README, doctor: "routing: with --iface, whether the group can be sent on that interface";
    "Each problem is printed as FAIL with its fix". doctor accepts a scoped group (``ff02::1%lo``)
    and its self-test sends and receives it, yet the routing check passes ``ff02::1%lo`` to
    ``ip -6 route get`` (which rejects it) and prints "FAIL no route for ff02::1%lo on lo" with
    the fix "ip -6 route add table local local ff00::/8 dev lo", a route already there; exit 1.
    The same group without ``%lo`` is "ok ff02::1 can be sent on lo"."""
    res = cli("doctor", "--iface", "lo", "ff02::1%lo", timeout=60)
    assert "received it back on lo" in res.stdout, res.stdout
    assert "FAIL  no route" not in res.stdout, res.stdout
    assert res.returncode == 0, res.stdout


def _children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[1] == me:
                        found.add(int(pid))
            except OSError:
                continue
    return found


def test_private_network_and_bridged_peers_leave_nothing_behind(net: Net) -> None:
    """README, Testing: ``private_network(peers=2)`` moves the calling thread in "and back out on
    exit"; ``bridged_peers(n)`` adds hosts on one shared segment. Checked and kept: after both
    blocks no peer process, veth or bridge is left, and the thread is back in its namespace."""
    before_children, before_links = _children(), testing.ip("-o", "link", "show")
    ns_before = os.readlink("/proc/thread-self/ns/net")
    with testing.private_network(peers=2) as network:
        assert os.readlink("/proc/thread-self/ns/net") != ns_before
        assert len(network.peers) == 2
    assert os.readlink("/proc/thread-self/ns/net") == ns_before
    with testing.bridged_peers(2) as (a, b):
        assert a.peer_ip4 != b.peer_ip4
    assert _children() <= before_children
    assert testing.ip("-o", "link", "show") == before_links
