"""The CLI's debugging tools: ping between hosts, group ranges, sizes and rates, per-group gaps,
JSON output, and doctor's hints. Hosts are private namespaces linked by veth pairs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest
from helpers import IN_CI, V4, V6, Net, sender

from multicast_expert import testing
from multicast_expert.cli import _common
from multicast_expert.cli import doctor as doctor_mod

CLI = [sys.executable, "-m", "multicast_expert"]


#: Pings each side sends. The two processes start together, but on a loaded machine one may be
#: importing for a second while the other sends: 1.5 s of sending leaves room for that.
PING_COUNT = 10


def ping_pair(net: Net, group: str, port: int, *extra: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    args = [group, "--port", str(port), "--count", str(PING_COUNT), "--interval", "0.15", "--timeout", "0.8"]
    args += extra
    here = subprocess.Popen(
        [*CLI, "ping", "--iface", net.a.host_if, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    there = subprocess.Popen(
        net.a.command(*CLI, "ping", "--iface", net.a.peer_if, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results = []
    for proc in (here, there):
        out, err = proc.communicate(timeout=30)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return tuple(results)


@pytest.mark.parametrize("family", [V4, V6])
def test_ping_between_two_hosts_measures_both_paths(net: Net, port: int, family: int) -> None:
    group = "239.160.0.1" if family == V4 else "ff15::160"
    here, there = ping_pair(net, group, port, "--json")
    a = net.a
    peer_ips = {a.peer_ip4, "198.18.1.3"} if family == V4 else {a.peer_ip6, "2001:db8:1::3"}
    host_ips = {a.host_ip4} if family == V4 else {a.host_ip6}
    for res, expected in ((here, peer_ips), (there, host_ips)):  # peer a also holds a second address
        assert res.returncode == 0, res.stdout + res.stderr
        lines = [json.loads(line) for line in res.stdout.splitlines()]
        assert any("rtt_ms" in rec and rec.get("path") == "multicast" for rec in lines[:-1])
        (summary,) = lines[-1]["summary"]
        assert summary["peer"] in expected
        for path in ("multicast", "unicast"):
            s = summary[path]
            assert s["received"] >= 1 and s["loss_pct"] <= 100 and s["duplicates"] == 0
            assert s["received"] <= s["sent"] <= PING_COUNT
            assert 0 < s["rtt_ms"]["min"] <= s["rtt_ms"]["avg"] <= s["rtt_ms"]["max"] < 1000


def test_ping_alone_exits_1_and_says_why(net: Net, port: int) -> None:
    res = subprocess.run(
        [
            *CLI,
            "ping",
            "239.160.0.2",
            "--port",
            str(port),
            "--iface",
            net.a.host_if,
            "--count",
            "2",
            "--interval",
            "0.05",
            "--timeout",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 1 and "no peer answered" in res.stdout


def test_group_ranges() -> None:
    assert _common.expand_groups(["239.1.1.254+4"]) == [
        "239.1.1.254",
        "239.1.1.255",
        "239.1.2.0",
        "239.1.2.1",
    ]
    assert _common.expand_groups(["ff15::fe+3", "ff15::ff"]) == ["ff15::fe", "ff15::ff", "ff15::100"]
    for bad, needle in (
        ("239.1.1.1+x", "must be a number"),
        ("239.1.1.1+0", "1..65536"),
        ("239.255.255.255+2", "past the multicast range"),
    ):
        with pytest.raises(_common.UsageError, match=needle):
            _common.expand_groups([bad])
    with pytest.raises(_common.UsageError, match="ping takes one group"):
        _common.one_group("239.1.1.1+2", "ping")


def test_range_send_size_rate_and_per_group_gaps(net: Net, port: int) -> None:
    listener = subprocess.Popen(
        [*CLI, "listen", "239.161.0.1+4", "--port", str(port), "--iface", "lo", "--stats", "--timeout", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert listener.stderr is not None
    assert "239.161.0.1, 239.161.0.2, 239.161.0.3, 239.161.0.4" in listener.stderr.readline()
    sent = subprocess.run(
        [
            *CLI,
            "send",
            "239.161.0.1+4",
            "--port",
            str(port),
            "--iface",
            "lo",
            "--count",
            "40",
            "--seq",
            "--size",
            "100",
            "--rate",
            "400",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "sent 40 datagrams" in sent.stderr and "4 groups from 239.161.0.1" in sent.stderr
    rate = float(sent.stderr.split("(")[1].split("/s")[0])
    assert 200 < rate < 600  # --rate 400 paces the sends
    _, err = listener.communicate(timeout=10)
    assert "received 40 packets, 4000 bytes" in err and "lost 0 of 40 numbered" in err


def test_listen_json_payload_text_and_hex(net: Net, port: int) -> None:
    listener = subprocess.Popen(
        [*CLI, "listen", "239.162.0.1", "--port", str(port), "--iface", "lo", "--json", "--count", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert listener.stderr is not None and "listening" in listener.stderr.readline()
    with sender(V4, "127.0.0.1", 1) as tx:
        tx.sendto(b"caf\xc3\xa9", ("239.162.0.1", port))
        tx.sendto(b"\xff\xfe", ("239.162.0.1", port))
    out, _ = listener.communicate(timeout=10)
    first, second, last = (json.loads(line) for line in out.splitlines())  # only JSON on stdout
    assert first["payload"] == "café" and first["payload_hex"] == "636166c3a9"
    assert "payload" not in second and second["payload_hex"] == "fffe"
    assert last["summary"]["packets"] == 2 and last["summary"]["numbered"] == 0


def test_doctor_hints() -> None:
    hints = doctor_mod.environment_hints(
        platform="linux",
        osrelease="5.15.90.1-microsoft-standard-WSL2",
        container="/.dockerenv exists",
        veths=["eth0"],
    )
    assert any("WSL" in h for h in hints)
    (container,) = [h for h in hints if "container" in h]
    assert "(/.dockerenv exists)" in container and "eth0 is a veth link" in container  # says why
    # In a container without a veth (host networking, macvlan) the bridge can't be the problem.
    assert doctor_mod.environment_hints(platform="linux", osrelease="6.1.0", container="x", veths=[]) == []
    assert any("Local Network" in h for h in doctor_mod.environment_hints(platform="darwin"))
    assert any("Windows Defender Firewall" in h for h in doctor_mod.environment_hints(platform="win32"))
    assert (
        doctor_mod.environment_hints(platform="linux", osrelease="6.1.0", container=None, veths=["v"]) == []
    )


def test_doctor_warns_about_accept_local_with_two_interfaces(own_peer: testing.Peer) -> None:
    ns = own_peer.pid
    testing.ip("link", "add", "mxq0", "type", "veth", "peer", "name", "mxq1", ns_pid=ns)  # a second link
    testing.ip("addr", "add", "198.18.250.1/24", "dev", "mxq0", ns_pid=ns)
    testing.ip("link", "set", "mxq0", "up", ns_pid=ns)
    testing.ip("link", "set", "mxq1", "up", ns_pid=ns)
    testing.sysctl("net.ipv4.conf.all.accept_local", 0, ns_pid=ns)
    res = subprocess.run(
        own_peer.command(*CLI, "doctor", "--iface", own_peer.peer_if),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "accept_local" in res.stdout and "sysctl -w net.ipv4.conf.all.accept_local=1" in res.stdout
    assert res.returncode == 0, res.stdout  # a hint, not a failure


def test_ping_reports_a_multicast_stream_that_stops(own_peer: testing.Peer, port: int) -> None:
    """What a snooping switch without an IGMP querier does after a few minutes, planted after 1 s:
    the peer's multicast is dropped while its unicast still flows."""
    if shutil.which("iptables") is None:
        if IN_CI:
            pytest.fail("iptables is missing; scripts/check installs it")
        pytest.skip("iptables not installed")
    args = [
        "239.163.0.1",
        "--port",
        str(port),
        "--duration",
        "6",
        "--interval",
        "0.2",
        "--timeout",
        "0.5",
        "--json",
    ]
    here = subprocess.Popen(
        [*CLI, "ping", "--iface", own_peer.host_if, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    there = subprocess.Popen(
        own_peer.command(*CLI, "ping", "--iface", own_peer.peer_if, *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.2)
        subprocess.run(
            own_peer.command("iptables", "-A", "OUTPUT", "-d", "239.0.0.0/8", "-j", "DROP"), check=True
        )
        out, _ = here.communicate(timeout=30)
    finally:
        there.wait(timeout=30)
    records = [json.loads(line) for line in out.splitlines()]
    stopped = [r for r in records if r.get("event") == "multicast stopped"]
    assert stopped and stopped[0]["peer"] == own_peer.peer_ip4
    (summary,) = records[-1]["summary"]
    assert (
        summary["multicast"]["loss_pct"] > 20
        and summary["unicast"]["received"] > summary["multicast"]["received"]
    )
