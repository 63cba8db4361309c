"""Review 5: interface lookups, a socket's own network namespace, CLI --iface / send -, doctor's
firewall reading, testing.peers numbering.

Every finding here is fixed; a finding's docstring describes the code as the review found it
(its "Cause" is history), and the test asserts the promised behaviour."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest
from helpers import Net, drain

import multicast_expert as me
from multicast_expert import interfaces, testing
from multicast_expert.cli import _firewall

V4, V6 = socket.AF_INET, socket.AF_INET6


def test_socket_made_before_private_network_refuses_open_inside(net: Net, port: int) -> None:
    """README, Interfaces: "A socket belongs to the namespace of the thread that made it:
    ``open()``, ``join_group()`` and ``refresh_interfaces()`` from a thread in another one raise
    ``MulticastExpertError`` and change nothing". A socket made on the main thread (pytest's)
    before ``private_network()`` and opened inside the block (the main thread is in another
    namespace now) opens there instead: its OS sockets are the private network's. Both modes.
    Cause: interfaces.py ``thread_netns`` records None ("the process's own") for a socket made on
    the main thread, and ``_away_now`` compares the thread with ``/proc/self/ns/net``, which is the
    main thread's namespace *now*: once the main thread moves, None means the new namespace, so
    ``check_netns(None, ...)`` passes there (and after the block, for sockets made inside it)."""
    rx = me.McastRxSocket(V4, ["239.5.5.1"], port, iface="lo")
    try:
        with testing.private_network(), pytest.raises(me.MulticastExpertError, match="namespace"):
            rx.open()
    finally:
        if rx.is_opened:
            rx.close()


def test_socket_made_before_private_network_refuses_refresh_inside(net: Net, port: int) -> None:
    """README, Interfaces (as above) and CHANGELOG Unreleased: "``refresh_interfaces()`` from a
    thread in another namespace raise ``MulticastExpertError`` and change nothing (... swapped the
    peer's interfaces for the host's)". A default-set socket opened on the main thread, refreshed
    inside ``private_network()``, swaps its interfaces for the private network's instead."""
    with me.McastRxSocket(V4, ["239.5.5.2"], port) as rx:
        before = sorted(i.machine_name for i in rx.network_interfaces)
        assert net.a.host_if in before
        with testing.private_network():
            try:
                rx.refresh_interfaces()
                raised = False
            except me.MulticastExpertError:
                raised = True
        after = sorted(i.machine_name for i in rx.network_interfaces)
        assert (raised, after) == (True, before)


# ---- interfaces: an interface's own address records ---------------------------------------------


def test_a_link_local_address_record_finds_its_own_interface(
    two_peers: tuple[testing.Peer, testing.Peer], port: int
) -> None:
    """README, Interfaces: "An interface's own address records (``ip4_addrs[0]``, an
    ``IPv4Interface``) find it as its address does"; CHANGELOG Unreleased: sockets' interface
    arguments "take an interface's own address records". A link-local record carries its scope
    (``fe80::1%mxv10h/64``), as the address string ``"fe80::1%mxv10h"`` does, and that string finds
    its interface; the record, when another interface holds the same link-local address (legal,
    and usual for routers' ``fe80::1``), is "ambiguous: it is held by mxv10h, mxv200h" for
    ``find_interface`` and both socket classes, and ``find_interfaces`` returns both interfaces:
    ``_match`` takes ``spec.ip``, which drops the scope (interfaces.py, ``ip = spec.ip``)."""
    p, q = two_peers
    for peer in (p, q):
        testing.ip("-6", "addr", "add", "fe80::1/64", "dev", peer.host_if, "nodad")
    interfaces.rescan_interfaces()
    info = interfaces.find_interface(p.host_if)
    rec = next(a for a in info.ip6_addrs if a.ip == ipaddress.IPv6Address("fe80::1"))
    assert interfaces.find_interface(f"fe80::1%{p.host_if}").machine_name == p.host_if  # the string does
    outcome: dict[str, object] = {}
    calls: tuple[tuple[str, Callable[[], list[me.IfaceInfo]]], ...] = (
        ("find_interface", lambda: [interfaces.find_interface(rec)]),
        ("find_interfaces", lambda: me.find_interfaces([rec])),
        ("McastRxSocket", lambda: me.McastRxSocket(V6, ["ff12::5"], port, iface=rec).network_interfaces),
        ("McastTxSocket", lambda: [me.McastTxSocket(V6, ["ff12::5"], iface=rec).network_interface]),
    )
    for what, call in calls:
        try:
            outcome[what] = [i.machine_name for i in call()]
        except me.MulticastExpertError as exc:
            outcome[what] = f"{type(exc).__name__}: {str(exc)[:90]}"
    assert outcome == {k: [p.host_if] for k in outcome}, outcome


def test_send_socket_on_an_ipv4_address_record_opens(net: Net, port: int) -> None:
    """CHANGELOG Unreleased: "``find_interfaces`` and the sockets' interface arguments take an
    interface's own address records (``IfaceInfo.ip4_addrs[0]``, an ``IPv4Interface``)"; README,
    Interfaces: a record finds its interface "as its address does". ``McastTxSocket(...,
    iface=info.ip4_addrs[0])`` is made, but its ``iface_ip`` is ``"198.18.1.1/24"`` (the
    prefix kept) and ``open()`` ends in a bare ``OSError: illegal IP address string passed to
    inet_pton`` (IPv6: ``iface_ip`` ``"2001:db8:1::1/64"``, a bare ``socket.gaierror: Name or
    service not known``), where the address string opens; both modes:
    _tx_args.py ``_given_address`` takes the record as an ``IPv4Address`` (``IPv4Interface`` is
    its subclass) and ``_scoped`` returns ``str(ip)`` with the prefix."""
    info = interfaces.find_interface(net.a.host_if)
    outcome = {}
    for family, group, rec in ((V4, "239.55.1.1", info.ip4_addrs[0]), (V6, "ff12::55", info.ip6_addrs[0])):
        try:
            with me.McastTxSocket(family, [group], iface=rec) as tx:
                outcome[str(rec)] = tx.iface_ip
        except Exception as exc:
            outcome[str(rec)] = f"{type(exc).__name__}: {exc}"
    assert outcome == {str(info.ip4_addrs[0]): net.a.host_ip4, str(info.ip6_addrs[0]): net.a.host_ip6}, (
        outcome
    )


# ---- CLI: send ----------------------------------------------------------------------------------

CLI = [sys.executable, "-m", "multicast_expert"]


def _send_from_peer(
    peer: testing.Peer, group: str, port: int, *argv: bytes | str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    cmd = peer.command(*CLI, "send", group, "-p", str(port), "-i", peer.peer_if)
    return subprocess.run(
        [*(c.encode() for c in cmd), *(a if isinstance(a, bytes) else a.encode() for a in argv)],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_send_message_argument_that_is_not_utf8_is_sent_as_its_bytes(net: Net, port: int) -> None:
    """CHANGELOG Unreleased / brief of the fix: "a MESSAGE argument that is not UTF-8 is sent as its
    bytes" (cli/send.py ``_messages``: "os.fsencode: the bytes the command line had, also where they
    are not UTF-8"); README, Command-line tool: "Errors end in one line on stderr, never a
    traceback". ``send GROUP ... $'caf\\xe9'`` ends in a traceback (UnicodeEncodeError: surrogates
    not allowed) with exit 1 and sends nothing: the size check before it,
    ``check_datagram_size(len(args.message.encode()), ...)`` (cli/send.py, in ``run``), encodes
    strictly."""
    with me.McastRxSocket(V4, ["239.55.2.1"], port, iface=net.a.host_if, timeout=1) as rx:
        res = _send_from_peer(net.a, "239.55.2.1", port, b"caf\xe9")
        got = [p.payload for p in drain(rx)]
    err = res.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert (res.returncode, got) == (0, [b"caf\xe9"]), (res.returncode, got, err)


def test_send_stdin_keeps_data_bytes_that_are_not_the_line_ending(net: Net, port: int) -> None:
    """README, Command-line tool: "``send -`` sends each line of stdin, without its line ending, as
    one datagram of the bytes read (UTF-8 or not)". Every trailing CR of a line is dropped with
    its ending: binary ``b"bin\\x00\\xff\\r\\r\\n"`` goes out as ``b"bin\\x00\\xff"`` (its ending is one
    CRLF; the CR before it is data), and a last line ``b"last\\r"`` that has no line ending at all
    (stdin ends there) as ``b"last"``: cli/send.py ``_messages``: ``line.rstrip(b"\\r\\n")`` strips
    any number of CR and LF bytes."""
    with me.McastRxSocket(V4, ["239.55.3.1"], port, iface=net.a.host_if, timeout=1) as rx:
        res = _send_from_peer(net.a, "239.55.3.1", port, "-", stdin=b"crlf\r\n\nbin\x00\xff\r\r\nlast\r")
        got = [p.payload for p in drain(rx)]
    assert res.returncode == 0, res.stderr
    assert got == [b"crlf", b"", b"bin\x00\xff\r", b"last\r"], got


def test_send_stdin_binary_and_empty_lines_go_out_as_read(net: Net, port: int) -> None:
    """README: ``send -`` sends each line "as one datagram of the bytes read (UTF-8 or not)" (checked:
    holds; an empty line is an empty datagram)."""
    lines = [b"\x00\x01\xfe\xff", b"", b"caf\xe9", b"\xc3\x28 bad utf-8", b"x" * 60000]
    with me.McastRxSocket(V4, ["239.55.4.1"], port, iface=net.a.host_if, timeout=1) as rx:
        res = _send_from_peer(net.a, "239.55.4.1", port, "-", stdin=b"\n".join(lines) + b"\n")
        got = [p.payload for p in drain(rx)]
    assert res.returncode == 0, res.stderr
    assert got == lines


# ---- CLI: --iface ---------------------------------------------------------------------------------


def test_cli_ambiguous_iface_ip_is_exit_2_in_the_options_words(
    two_peers: tuple[testing.Peer, testing.Peer], port: int
) -> None:
    """README, Command-line tool: exit "2 a bad argument (... an ``--iface`` IP that two interfaces
    hold, as for a socket: each ``--iface`` names one interface)"; "Errors end in one line on
    stderr ... and use the options' names (``--iface``, not the library's parameter names)".
    ``send`` says "... held by A, B; name the interface", but ``listen`` and ``doctor`` tell a
    command-line user to "(or pass its IfaceInfo)", the library's advice that ``cli_words`` is
    there to take out: cli/_common.py ``ifaces_of`` raises ``UsageError(str(exc))``, not
    ``error_text(exc)``."""
    p, q = two_peers
    for peer in (p, q):
        testing.ip("addr", "add", "198.18.243.9/32", "dev", peer.host_if)
    runs = {
        "listen": ["listen", "239.55.5.1", "-p", str(port), "-i", "198.18.243.9", "-n", "1"],
        "send": ["send", "239.55.5.1", "-p", str(port), "-i", "198.18.243.9"],
        "doctor": ["doctor", "-i", "198.18.243.9", "239.55.5.1"],
    }
    seen = {}
    for name, argv in runs.items():
        res = subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=60, check=False)
        seen[name] = (res.returncode, res.stderr.strip())
    for rc, err in seen.values():
        assert rc == 2 and p.host_if in err and q.host_if in err, seen
        assert "IfaceInfo" not in err and len(err.splitlines()) == 1, seen


def test_cli_listen_iface_given_by_name_and_by_ip_is_one_interface(net: Net, port: int) -> None:
    """README: each ``--iface`` names one interface; the same interface named twice (by name, by
    IP) is listened on once (checked: holds)."""
    a = net.a
    listener = subprocess.Popen(
        [
            *CLI,
            "listen",
            "239.55.6.1",
            "-p",
            str(port),
            "-i",
            a.host_if,
            "-i",
            a.host_ip4,
            "-n",
            "2",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stderr is not None
        line = listener.stderr.readline()
        assert line.startswith("listening on"), line
        res = _send_from_peer(a, "239.55.6.1", port, "-n", "2", "hi")
        assert res.returncode == 0, res.stderr
        out, err = listener.communicate(timeout=15)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.communicate()
    assert listener.returncode == 0, err
    assert out.count('"payload_hex"') == 2, out


# ---- doctor: firewall reading ---------------------------------------------------------------------

_NFT = """table inet filter {{
	chain input {{
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iif "lo" accept
{rules}
	}}
}}
"""


def _policy(findings: list[_firewall.Finding]) -> list[_firewall.Finding]:
    return [f for f in findings if "policy" in f.text]


def test_doctor_an_accept_of_everything_but_multicast_excuses_no_drop_policy() -> None:
    """cli/_firewall.py ``data_accept``: an accepting rule lets multicast data through "None when
    it lets none through for sure: ... or it has a negated match (not read: the policy's finding
    stands)"; README, doctor: it reports "input chains whose policy is drop with no rule accepting
    multicast"; CHANGELOG Unreleased: "a rule excuses the policy only for the groups and IP version
    it lets datagrams through for". A rule accepting everything *but* multicast (nft ``meta pkttype
    != multicast accept``; iptables ``-m pkttype ! --pkt-type multicast`` or ``-m addrtype !
    --dst-type MULTICAST``) excuses the drop policy for every group: no finding at all, so doctor
    says "ok no firewall rule or chain policy drops 239.1.2.3". The word "multicast" counts as
    naming multicast, and ``_NEGATED`` only knows negated destination addresses."""
    hit: dict[str, bool] = {}
    nft = _NFT.format(rules="\t\tmeta pkttype != multicast accept")
    hit["nft"] = any(f.matches("239.1.2.3") for f in _policy(_firewall.nft_findings(nft)))
    for rule in (
        "-A INPUT -m pkttype ! --pkt-type multicast -j ACCEPT",
        "-A INPUT -m addrtype ! --dst-type MULTICAST -j ACCEPT",
    ):
        text = f"-P INPUT DROP\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-A INPUT -p igmp -j ACCEPT\n{rule}\n"
        hit[rule] = any(
            f.matches("239.1.2.3") for f in _policy(_firewall.iptables_findings("iptables", text))
        )
    assert all(hit.values()), hit


def test_doctor_a_udp_accept_that_also_names_igmp_excuses_its_groups() -> None:
    """README, doctor: a drop policy counts "with no rule accepting multicast"; CHANGELOG
    Unreleased: "a rule excuses the policy only for the groups and IP version it lets datagrams
    through for (an IGMP- or ICMPv6-only accept lets none through)"; ``data_accept``: None when "it
    is limited to the membership protocols". An accept of UDP *and* IGMP to 224.0.0.0/4 (nft
    ``meta l4proto { udp, igmp }``), or a UDP accept whose comment says IGMP, is no IGMP-only rule,
    yet it excuses nothing: doctor FAILs 239.1.2.3 (policy drop) on a firewall that lets its
    datagrams in. ``data_accept`` returns None whenever ``_PROTOCOLS`` finds igmp/icmpv6 anywhere
    in the rule text."""
    hit: dict[str, bool] = {}
    for rule in (
        "ip daddr 224.0.0.0/4 meta l4proto { udp, igmp } accept",
        'ip daddr 224.0.0.0/4 udp dport 1-65535 accept comment "data; igmp is accepted below"',
    ):
        hit[rule] = any(
            f.matches("239.1.2.3") for f in _firewall.nft_findings(_NFT.format(rules="\t\t" + rule))
        )
    text = (
        "-P INPUT DROP\n-A INPUT -p igmp -j ACCEPT\n"
        '-A INPUT -d 224.0.0.0/4 -p udp -m comment --comment "multicast data, IGMP above" -j ACCEPT\n'
    )
    hit["iptables comment"] = any(
        f.matches("239.1.2.3") for f in _firewall.iptables_findings("iptables", text)
    )
    assert not any(hit.values()), hit


def test_doctor_policy_excused_per_group_and_version_in_a_realistic_ruleset() -> None:
    """README, doctor: a rule counts "only for the groups it can match ... and only for its table's
    IP version"; IGMP/ICMPv6-only accepts excuse nothing (checked: holds for an inet table with a
    set, a range, counters, ``meta nfproto`` and ``ip6 nexthdr``, and for ``iptables -S``)."""
    nft = """table inet filter {
	set mcast4 {
		type ipv4_addr
		flags interval
		elements = { 224.0.0.251,
			239.10.0.0/16 }
	}
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related counter packets 10 bytes 900 accept
		ip protocol igmp counter packets 3 bytes 96 accept
		ip6 nexthdr icmpv6 counter packets 5 bytes 400 accept
		ip daddr @mcast4 udp dport 5353 counter packets 0 bytes 0 accept
		meta nfproto ipv6 ip6 daddr ff15::1000-ff15::1fff accept
		tcp dport 22 accept
	}
	chain output {
		type filter hook output priority filter; policy accept;
	}
}
table ip6 other {
	chain input {
		type filter hook input priority 0; policy drop;
		ip6 nexthdr udp ip6 daddr ff15::/16 accept
	}
}
"""
    found = _policy(_firewall.nft_findings(nft))
    want = {
        "224.0.0.251": False,
        "239.10.3.4": False,
        "239.11.0.1": True,
        "ff15::1234": False,
        "ff15::2000": True,
        "ff05::1": True,
    }
    assert {g: any(f.matches(g) for f in found) for g in want} == want
    ipt = (
        "-P INPUT DROP\n-A INPUT -p igmp -j ACCEPT\n"
        "-A INPUT -m iprange --dst-range 239.1.0.0-239.1.255.255 -p udp -j ACCEPT\n"
    )
    f4 = _firewall.iptables_findings("iptables", ipt)
    assert [f.matches(g) for g in ("239.1.9.9", "239.2.0.1") for f in f4] == [False, True]
