"""The command line and the examples, run as subprocesses across private namespaces."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import Net, run_in_fresh_netns, send_from_peer

from multicast_expert import testing

ROOT = Path(__file__).resolve().parent.parent


CLI = [sys.executable, "-m", "multicast_expert"]


def run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def send_cmd(peer: testing.Peer, group: str, port: int, *extra: str) -> list[str]:
    """argv for `multicast-expert send` run inside ``peer``, from its veth end."""
    return peer.command(*CLI, "send", group, "--port", str(port), "--iface", peer.peer_if, *extra)


def start_listener(argv: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*CLI, "listen", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.startswith("listening on"), line
    return proc


def test_demo(net: Net) -> None:
    res = run([*CLI, "demo"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "IPv4: received b'hello IPv4 multicast'" in res.stdout
    assert "IPv6: received b'hello IPv6 multicast'" in res.stdout
    assert "Demo finished: multicast works." in res.stdout


def test_console_script_installed(net: Net) -> None:
    script = Path(sys.executable).with_name("multicast-expert")
    res = run([str(script), "--help"])
    assert res.returncode == 0
    assert "doctor" in res.stdout


def test_ifaces_json_marks_default_route(net: Net) -> None:
    res = run([*CLI, "ifaces", "--json"])
    assert res.returncode == 0
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows[net.a.host_if]["default_route"] == ["IPv4", "IPv6"]
    assert rows[net.a.host_if]["up"] is True and rows[net.a.host_if]["multicast"] is True
    assert f"{net.b.host_ip4}/24" in rows[net.b.host_if]["ipv4"]
    text = run([*CLI, "ifaces"]).stdout
    assert net.a.host_if in text and "IPv4+IPv6" in text


def test_send_in_one_namespace_listen_in_another(net: Net, port: int) -> None:
    listener = start_listener(
        ["239.20.0.1", "--port", str(port), "--iface", net.a.host_if, "--count", "3", "--json"]
    )
    sent = run(send_cmd(net.a, "239.20.0.1", port, "--count", "3", "--seq", "hello"))
    assert sent.returncode == 0, sent.stderr
    out, err = listener.communicate(timeout=10)
    assert listener.returncode == 0, err
    *records, last = [json.loads(line) for line in out.splitlines()]
    assert [bytes.fromhex(r["payload_hex"]) for r in records] == [
        b"seq=0 hello",
        b"seq=1 hello",
        b"seq=2 hello",
    ]
    assert {(r["src"], r["group"], r["iface"]) for r in records} == {
        (net.a.peer_ip4, "239.20.0.1", net.a.host_if)
    }
    assert "received 3 packets" in err
    summary = last["summary"]  # the totals close the JSON stream
    assert (summary["packets"], summary["numbered"], summary["lost"]) == (3, 3, 0)
    assert summary["bytes"] == sum(len(r["payload_hex"]) // 2 for r in records)


def test_listen_text_hex_and_stdin_send(net: Net, port: int) -> None:
    listener = start_listener(
        ["ff15::20", "--port", str(port), "--iface", net.a.host_if, "--count", "2", "--hex"]
    )
    sent = subprocess.run(
        send_cmd(net.a, "ff15::20", port, "-"),
        input="line one\nline two\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    out, _ = listener.communicate(timeout=10)
    lines = out.splitlines()
    assert len(lines) == 2
    assert "[2001:db8:1::" in lines[0] and "-> ff15::20 on " + net.a.host_if in lines[0]
    assert b"line one".hex(" ") in lines[0] and b"line two".hex(" ") in lines[1]


def test_listen_stats_counts_gaps(net: Net, port: int) -> None:
    listener = start_listener(
        ["239.20.0.2", "--port", str(port), "--iface", net.a.host_if, "--stats", "--timeout", "1.5"]
    )
    sent = run(send_cmd(net.a, "239.20.0.2", port, "--count", "300", "--interval", "0.005", "--seq", "x"))
    assert sent.returncode == 0
    out, err = listener.communicate(timeout=20)
    assert "pkt/s" in out
    assert "received 300 packets" in err and "lost 0 of 300 numbered" in err


def test_ctrl_c_ends_listen_with_summary(net: Net, port: int) -> None:
    listener = start_listener(["239.20.0.3", "--port", str(port), "--iface", net.a.host_if])
    listener.send_signal(signal.SIGINT)
    _, err = listener.communicate(timeout=10)
    assert listener.returncode == 0
    assert "received 0 packets" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["listen", "10.1.2.3", "--port", "5000"], "not a multicast group"),
        (["listen", "239.1.1.1", "--port", "70000"], "out of range"),
        (["listen", "239.1.1.1", "--port", "5000", "--iface", "nosuch0"], "nosuch0"),
        (["send", "239.1.1.1", "--port", "5000", "--iface", "198.19.250.1", "x"], "198.19.250.1"),
        (["send", "not-an-ip", "--port", "5000"], "not an IP address"),
        (["send", "239.1.1.1", "--port", "5000", "--ttl", "300"], "--ttl: 300 is out of range (0..255)"),
        (["send", "239.1.1.1", "--port", "0", "-i", "lo", "x"], "port 0 is out of range (1..65535)"),
        (["send", "239.1.1.1", "-p", "5000", "-i", "lo", "--size", "70000", "x"], "70000 is out of range"),
        (["send", "239.1.1.1", "-p", "5000", "-i", "lo", "--size", "65508", "x"], "at most 65507"),
        (["send", "239.1.1.1", "-p", "5000", "-i", "lo", "x" * 65508], "MESSAGE is 65508 bytes"),
        (["ping", "239.1.1.1", "-p", "5000", "-i", "lo", "--size", "65508"], "at most 65507"),
        (["listen", "239.1.1.1", "-p", "5000", "--count", "0"], "0 is out of range (at least 1)"),
        (["listen", "239.1.1.1", "-p", "5000", "--hex", "--json"], "not allowed with argument"),
        (["listen", "239.1.1.1", "-p", "5000", "--stats", "--json"], "not allowed with argument"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_one_line_exit_2(net: Net, argv: list[str], needle: str) -> None:
    res = run([*CLI, *argv])
    assert res.returncode == 2
    assert needle in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_doctor_finds_planted_problems_and_passes_when_fixed(own_peer: testing.Peer) -> None:
    iface = own_peer.host_if
    healthy = run([*CLI, "doctor", "--iface", iface])
    assert healthy.returncode == 0, healthy.stdout
    assert "received it back" in healthy.stdout
    testing.sysctl(f"net.ipv4.conf.{iface}.rp_filter", 1)
    try:
        strict = run([*CLI, "doctor", "--iface", iface])
        assert strict.returncode == 1
        assert "strict reverse-path filtering" in strict.stdout
        assert f"net.ipv4.conf.{iface}.rp_filter=2" in strict.stdout
        assert "received it back" in strict.stdout  # looped-back multicast is not reverse-path filtered
    finally:
        testing.sysctl(f"net.ipv4.conf.{iface}.rp_filter", 0)
    testing.ip("link", "set", "dev", iface, "multicast", "off")
    try:
        noflag = run([*CLI, "doctor", "--iface", iface])
        assert noflag.returncode == 1
        assert "MULTICAST flag" in noflag.stdout and f"ip link set dev {iface} multicast on" in noflag.stdout
    finally:
        testing.ip("link", "set", "dev", iface, "multicast", "on")
    testing.ip("link", "set", "dev", iface, "down")
    try:
        down = run([*CLI, "doctor", "--iface", iface])
        assert down.returncode == 1 and f"{iface} is down" in down.stdout
    finally:
        testing.ip("link", "set", "dev", iface, "up")
        testing.wait_for_mcast_route(iface)
    again = run([*CLI, "doctor", "--iface", iface, "239.30.0.1"])
    assert again.returncode == 0, again.stdout
    assert f"239.30.0.1 can be sent on {iface}" in again.stdout  # routing for the interface asked about


def test_example_sender_receiver_pair(net: Net) -> None:
    recv = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "receiver.py"), "lo"], stdout=subprocess.PIPE, text=True
    )
    assert recv.stdout is not None
    assert recv.stdout.readline().startswith("listening")
    sent = run([sys.executable, str(ROOT / "examples" / "sender.py"), "lo"])
    assert sent.returncode == 0
    out, _ = recv.communicate(timeout=20)
    assert recv.returncode == 0
    assert [line.rsplit(": ", 1)[1] for line in out.splitlines()] == [f"message {i}" for i in range(5)]


def test_example_chat_on_bridged_hosts(net: Net) -> None:
    res = run_in_fresh_netns([str(ROOT / "examples" / "run_chat_in_namespaces.py"), "3"], timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("shared group OK, neighbour") == 3


def test_listen_source_specific(net: Net, port: int) -> None:
    listener = start_listener(
        [
            "ff35::30",
            "--port",
            str(port),
            "--iface",
            net.a.host_if,
            "--source",
            "2001:db8:1::2",
            "--count",
            "1",
            "--json",
        ]
    )
    send_from_peer(net.a, socket.AF_INET6, "ff35::30", port, [b"unlisted"], src_ip="2001:db8:1::3")
    send_from_peer(net.a, socket.AF_INET6, "ff35::30", port, [b"listed"], src_ip="2001:db8:1::2")
    out, _ = listener.communicate(timeout=10)
    *records, last = [json.loads(line) for line in out.splitlines()]
    assert [bytes.fromhex(r["payload_hex"]) for r in records] == [b"listed"]
    assert last["summary"]["packets"] == 1
    assert records[0]["src"] == "2001:db8:1::2" and records[0]["group"] == "ff35::30"
