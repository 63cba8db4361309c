"""The CLI's promises: one-line errors and no tracebacks, help that reads as written, listen's loss
counted like iperf's and its JSON summary, ping telling a peer that left from a snooping switch,
exit codes after Ctrl-C, kernel timestamps for round-trip times, doctor's firewall and self-test
wording. Live parts run across this suite's private namespaces."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import io
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, cast

import pytest
from helpers import IN_CI, V4, Net, run_in_fresh_netns, send_from_peer

from multicast_expert import cli, testing
from multicast_expert._errors import MulticastExpertError, MulticastOSError, MulticastValueError
from multicast_expert.cli import _common, _host, listen, ping

CLI = [sys.executable, "-m", "multicast_expert"]


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


# ---- errors: one line, never a traceback ---------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "status", "needle"),
    [
        (OSError(errno.EMSGSIZE, "Message too long"), 1, "Message too long (errno 90)"),
        (MulticastOSError(errno.EADDRNOTAVAIL, "cannot join 239.1.1.1 on eth9"), 1, "cannot join 239.1.1.1"),
        (MulticastExpertError("Unable to find the iface_ip 10.9.9.9"), 1, "the --iface 10.9.9.9"),
        (MulticastValueError("source_ips ['x'] is not valid"), 2, "--source ['x'] is not valid"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_no_command_prints_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    status: int,
    needle: str,
) -> None:
    def boom(args: argparse.Namespace, out: object) -> int:
        raise exc

    commands = tuple(dataclasses.replace(c, run=boom) if c.name == "ifaces" else c for c in cli.COMMANDS)
    monkeypatch.setattr(cli, "COMMANDS", commands)
    assert cli.main(["ifaces"]) == status
    err = capsys.readouterr().err
    assert err.startswith("multicast-expert: ifaces: ") and needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "iface_ip" not in err and "source_ips" not in err


def test_library_words_become_options() -> None:
    words = _common.cli_words
    assert (
        words("Pass iface_ip (e.g. the loopback address) to choose one")
        == "Pass --iface (e.g. --iface lo) to choose one"
    )
    assert words("give iface_ips or ifaces") == "give --iface or --iface"
    assert words("name the interface (or pass its IfaceInfo)") == "name the interface"
    assert words("raise --iface and rcvbuf") == "raise --iface and --rcvbuf"  # no "----iface"


def test_send_failure_from_the_os_is_one_line(net: Net) -> None:
    """IPv6 multicast on lo without its table-local route: the OS refuses the send (exit 1)."""
    res = run_in_fresh_netns(
        [
            "-c",
            "import subprocess, sys; subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True); "
            "from multicast_expert.cli import main; "
            "sys.exit(main(['send', 'ff15::1', '-p', '5000', '-i', 'lo', 'x']))",
        ],
        timeout=30,
    )
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith("multicast-expert: send: ") and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_listen_without_interfaces_names_the_option(net: Net) -> None:
    res = run_in_fresh_netns(["-m", "multicast_expert", "listen", "239.40.2.1", "--port", "5000"], timeout=30)
    assert res.returncode == 2
    assert "Pass --iface (e.g. --iface lo)" in res.stderr and "iface_ip" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


# ---- help ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [c.name for c in cli.COMMANDS])
def test_help_reads_as_written(command: str) -> None:
    res = run([*CLI, command, "--help"])
    assert res.returncode == 0
    text = res.stdout
    assert "(default: None)" not in text and "(default: False)" not in text
    assert not re.search(r"\(default: [^)]*\)[^\n]*\(default:", text)  # never twice
    assert "examples:\n  multicast-expert " + command in text
    description = text.split("\n\n")[1]
    assert len(description.split()) >= 12, description  # a description in sentences, not a usage line
    if command == "send":
        assert "MESSAGE" in text and "(default: 'hello from multicast-expert')" in text


def test_listen_output_options_are_exclusive() -> None:
    for pair in (["--hex", "--json"], ["--json", "--stats"], ["--hex", "--stats"]):
        with pytest.raises(_common.UsageError, match="not allowed with argument"):
            cli.build_parser().parse_args(["listen", "239.1.1.1", "-p", "5000", *pair])


# ---- listen: loss as iperf counts it, JSON summary -----------------------------------------------
def test_seq_tracker_counts_a_late_datagram_as_a_reorder() -> None:
    t = listen.SeqTracker()
    for seq in (0, 1, 2, 5, 6, 4, 7):
        t.add(seq)
    assert (t.received, t.lost, t.reorders, t.duplicates) == (7, 1, 1, 0)  # only 3 is missing
    t.add(3)
    t.add(3)
    assert (t.lost, t.reorders, t.duplicates) == (0, 2, 1)
    t.add(0)  # the sender started again
    t.add(2)
    assert (t.lost, t.duplicates, t.highest) == (1, 1, 2)


def test_listen_stats_and_json_count_reordering(net: Net, port: int) -> None:
    order = [0, 1, 2, 5, 6, 4, 7]
    payloads = [b"seq=%d x" % n for n in order]
    for extra in (["--stats"], ["--json"]):
        proc = subprocess.Popen(
            [*CLI, "listen", "239.40.2.2", "-p", str(port), "-i", net.a.host_if, "--timeout", "1", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None and proc.stderr.readline().startswith("listening on")
        send_from_peer(net.a, V4, "239.40.2.2", port, payloads)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "lost 1 of 8 numbered (12.50%), reorders 1, duplicates 0" in err, err
        if extra == ["--json"]:
            *records, last = (json.loads(line) for line in out.splitlines())
            assert [r["payload"] for r in records] == [p.decode() for p in payloads]
            s = last["summary"]
            assert (s["packets"], s["numbered"], s["lost"], s["reorders"], s["loss_pct"]) == (
                7,
                7,
                1,
                1,
                12.5,
            )
            assert s["stopped_before_count"] is False


# ---- Ctrl-C before --count -------------------------------------------------------------------------
def test_listen_stopped_before_count_exits_130(net: Net, port: int) -> None:
    proc = subprocess.Popen(
        [*CLI, "listen", "239.40.2.3", "-p", str(port), "-i", "lo", "--count", "5", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None and proc.stderr.readline().startswith("listening on")
    run([*CLI, "send", "239.40.2.3", "-p", str(port), "-i", "lo", "one"])
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert "stopped before --count 5 was reached" in err and "Traceback" not in err
    assert json.loads(out.splitlines()[-1])["summary"]["stopped_before_count"] is True


def test_send_stopped_before_count_exits_130(net: Net, port: int) -> None:
    proc = subprocess.Popen(
        [*CLI, "send", "239.40.2.4", "-p", str(port), "-i", "lo", "--count", "1000", "--interval", "0.01"],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert "stopped before --count 1000 was reached" in err and "Traceback" not in err
    sent = int(err.split("sent ")[1].split()[0])
    assert 0 < sent < 1000


# ---- ping ------------------------------------------------------------------------------------------
def ping_argv(iface: str, port: int, *extra: str) -> list[str]:
    return [*CLI, "ping", "239.40.3.1", "--port", str(port), "--iface", iface, *extra]


def test_ping_peer_that_exits_said_goodbye(own_peer: testing.Peer, port: int) -> None:
    here = subprocess.Popen(
        ping_argv(
            own_peer.host_if, port, "--duration", "5", "--interval", "0.1", "--timeout", "0.3", "--json"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    time.sleep(0.5)  # the peer starts later and stops early: neither end is loss
    there = run(
        own_peer.command(
            *ping_argv(own_peer.peer_if, port, "-n", "10", "--interval", "0.1", "--timeout", "0.3")
        )
    )
    assert there.returncode == 0, there.stdout + there.stderr
    out, _ = here.communicate(timeout=30)
    records = [json.loads(line) for line in out.splitlines()]
    events = [r["event"] for r in records if "event" in r]
    assert events == ["peer left"], events  # not "multicast stopped", and said once
    (summary,) = records[-1]["summary"]
    assert summary["left"] == "goodbye"
    counted = summary["counted"]
    assert counted["first_seq"] > 0 and counted["last_seq"] < records[-1]["sent"] - 5
    for path in ("multicast", "unicast"):
        s = summary[path]
        assert s["sent"] == counted["probes"] and s["received"] == s["sent"] and s["loss_pct"] == 0, s


def test_ping_peer_that_vanishes_is_gone_not_snooping(own_peer: testing.Peer, port: int) -> None:
    there = subprocess.Popen(
        own_peer.command(*ping_argv(own_peer.peer_if, port, "--duration", "30", "--interval", "0.2")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        here = subprocess.Popen(
            ping_argv(own_peer.host_if, port, "--duration", "6", "--interval", "0.2", "--timeout", "0.3"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(1.5)
    finally:
        there.kill()  # no goodbye: it just stops
        there.wait()
    out, _ = here.communicate(timeout=30)
    assert "the peer is gone" in out and "snooping" not in out, out
    stats = out.split("ping statistics: ")[1]
    assert "went silent on both paths" in stats
    counted = int(re.search(r"loss counted over (\d+) probes", stats).group(1))  # type: ignore[union-attr]
    sent = int(stats.split()[0])
    assert counted < sent - 10  # the probes after it vanished are not loss
    for path in ("multicast", "unicast"):
        m = re.search(path + r"\s+(\d+)/(\d+) answered, (\d+\.\d)% loss", stats)
        assert m is not None, stats
        assert int(m.group(2)) == counted and int(m.group(1)) >= counted - 1  # killed mid-answer at worst
    # Fixed three decimals for every time figure.
    assert re.search(r"rtt min/avg/max/jitter \d+\.\d{3}/\d+\.\d{3}/\d+\.\d{3}/\d+\.\d{3} ms", stats), stats


def test_ping_rtt_is_arrival_stamp_minus_send_stamp_minus_the_peers_hold() -> None:
    out = io.StringIO()
    session = ping._Session(
        argparse.Namespace(quiet=False, json=True),
        out,
        "239.40.3.2",
        cast(Any, None),
        cast(Any, None),
        cast(Any, None),
        "aaaa",
    )
    sent_ns, hold_ns, arrived_ns = 1_000_000_000, 250_000, 1_000_400_000  # 0.4 ms, of which 0.25 held
    session.handle(
        b"MXPING1 A bbbb aaaa 0 %d %d " % (sent_ns, hold_ns), "198.18.9.2", "multicast", arrived_ns
    )
    session.handle(b"MXPING1 U bbbb aaaa 0 %d " % sent_ns, "198.18.9.2", "unicast", arrived_ns)  # older peer
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["rtt_ms"] == 0.15 and first["peer_hold_ms"] == 0.25
    assert second["rtt_ms"] == 0.4


def test_unicast_receive_time_is_the_kernels(net: Net) -> None:
    """Timestamps from the kernel, not from Python after it woke up: a datagram left queued for
    0.3 s carries the time it arrived."""
    with socket.socket(V4, socket.SOCK_DGRAM) as rx, socket.socket(V4, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        assert _host.enable_receive_timestamps(rx)
        # The kernel turns stamping at arrival on for the whole host a moment after the first
        # socket asks (a deferred static key); until then a datagram is stamped when it is read.
        time.sleep(0.2)
        tx.sendto(b"x", rx.getsockname())
        time.sleep(0.3)
        data, _, stamp = _host.recv_stamped(rx, 100)
        now = time.time_ns()
    assert data == b"x" and stamp is not None
    assert 0.2e9 < now - stamp < 30e9


# ---- doctor ----------------------------------------------------------------------------------------
def doctor(host: testing.Peer, *args: str) -> subprocess.CompletedProcess[str]:
    return run(host.command(*CLI, "doctor", "--iface", host.peer_if, *args))


def in_host(host: testing.Peer, *argv: str) -> None:
    if shutil.which(argv[0]) is None:
        if IN_CI:
            pytest.fail(f"{argv[0]} is missing; scripts/check installs it")
        pytest.skip(f"{argv[0]} not installed")
    subprocess.run(host.command(*argv), check=True, capture_output=True)


def test_firewall_rule_for_other_groups_is_not_a_failure(own_peer: testing.Peer) -> None:
    in_host(own_peer, "nft", "add table ip mxt")
    in_host(own_peer, "nft", "add chain ip mxt in { type filter hook input priority 0 ; policy accept ; }")
    in_host(own_peer, "nft", "add rule ip mxt in ip daddr 239.0.0.0/8 drop")
    try:
        other = doctor(own_peer, "232.1.1.1")
        assert other.returncode == 0, other.stdout
        assert "does not match 232.1.1.1" in other.stdout and "FAIL" not in other.stdout
        v6 = doctor(own_peer, "ff15::4002")  # an ip (IPv4) table can't drop IPv6
        assert v6.returncode == 0, v6.stdout
        hit = doctor(own_peer, "239.40.4.1")
        assert (
            hit.returncode == 1
            and "FAIL  firewall drops multicast or IGMP/MLD: nftables: ip mxt in" in hit.stdout
        )
        unnamed = doctor(own_peer)
        assert "warn  firewall drops multicast to 239.0.0.0/8" in unnamed.stdout
    finally:
        in_host(own_peer, "nft", "delete table ip mxt")


def test_self_test_is_stopped_by_an_input_rule_and_says_so(own_peer: testing.Peer) -> None:
    # A rule the firewall reader can't tie to multicast (it names only a port): the self-test sees it.
    in_host(own_peer, "iptables", "-A", "INPUT", "-p", "udp", "--dport", "45454", "-j", "DROP")
    try:
        res = doctor(own_peer, "239.40.4.2")
        assert res.returncode == 1, res.stdout
        assert "passes through this host's firewall (output and input)" in res.stdout
        assert (
            "nothing came back within 1 s" in res.stdout
            and "a firewall rule on this host drops it" in res.stdout
        )
    finally:
        in_host(own_peer, "iptables", "-F", "INPUT")


def assert_no_empty_section(stdout: str) -> None:
    lines = stdout.rstrip().splitlines()
    for i, line in enumerate(lines[:-2]):
        if line and not line.startswith(" "):  # a section header: a finding must follow
            assert lines[i + 1].startswith("  "), f"empty section {line!r}:\n{stdout}"


def test_doctor_prints_no_empty_section_and_the_container_hint_only_where_it_matters(
    own_peer: testing.Peer,
) -> None:
    for res in (doctor(own_peer, "239.40.4.3"), doctor(own_peer, "ff15::4003")):
        assert_no_empty_section(res.stdout)
        evidence = _host.container_evidence()
        hint = [line for line in res.stdout.splitlines() if "looks like a container" in line]
        assert len(hint) == (1 if evidence else 0)
        if evidence:
            assert f"({evidence})" in hint[0] and f"{own_peer.peer_if} is a veth link" in hint[0]
    lo = run_in_fresh_netns(
        [
            "-c",
            "import subprocess, sys; subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True); "
            "from multicast_expert.cli import main; "
            "sys.exit(main(['doctor', '--iface', 'lo', '239.40.4.4']))",
        ],
        timeout=60,
    )
    assert lo.returncode == 0, lo.stdout
    assert "looks like a container" not in lo.stdout  # no veth: no bridge to blame
    assert_no_empty_section(lo.stdout)
    assert "info  loopback is not reverse-path filtered" in lo.stdout
