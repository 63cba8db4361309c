"""Review of README.rst's Interfaces, Command-line tool, Troubleshooting, Migrating and Testing
sections (and the docstrings of ``interfaces``, ``cli`` and ``testing``) against the code.

Each test that shows a bug says, in its docstring, which promise it breaks and what happens
instead. Everything runs inside the test session's private network namespace, or a peer of its
own; nothing touches the machine's interfaces.

Every finding here is fixed; a finding's docstring describes the code as the review found it
(its "Cause" is history), and the test asserts the promised behaviour."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from helpers import CLI, Net, cli, in_peer
from udp_capture import Capture

import multicast_expert as me
from multicast_expert import testing

# ---- send: bad arguments ------------------------------------------------------------------------


def test_send_rate_zero_is_a_bad_argument_not_a_flood(net: Net) -> None:
    """README, Command-line tool: ``send ... [--interval S | --rate N]``; exit status "2 a bad
    argument". ``--rate`` is datagrams per second, and send refuses a rate too slow to pace
    (``--rate 1e-9``: "--rate 1e-09 is too slow; give at least ... datagrams per second", exit 2).
    ``--rate 0``, slower still, is accepted and sends every datagram back to back as fast as it can
    (exit 0): ``if args.rate and ...`` in cli/send.py treats 0 as "no --rate given"."""
    slow = cli("send", "239.1.2.3", "-p", "5000", "-i", "lo", "--rate", "1e-9", "-n", "3", "x")
    assert slow.returncode == 2, slow.stderr  # (the existing refusal, for comparison)
    res = cli("send", "239.1.2.3", "-p", "5000", "-i", "lo", "--rate", "0", "-n", "3", "x")
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "--rate" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_send_from_stdin_with_bytes_that_are_not_utf8_is_no_traceback(net: Net, port: int) -> None:
    """README, Command-line tool: ``send ... [MESSAGE | -]`` (the help's example: ``journalctl -f |
    multicast-expert send ff15::1 -p 5000 -i eth0 -``); "Errors end in one line on stderr, never a
    traceback". A line of stdin that is not UTF-8 (a log line with a Latin-1 byte, binary
    data) ends send with a Python traceback (UnicodeEncodeError: ... surrogates not allowed) and
    exit 1, after the lines before it were sent: cli/send.py ``_messages`` reads stdin as text
    and encodes each line back with strict UTF-8."""
    res = subprocess.run(
        [*CLI, "send", "239.44.0.4", "-p", str(port), "-i", "lo", "-"],
        input=b"plain\ncaf\xe9 latin-1\n",
        capture_output=True,
        timeout=30,
        check=False,
    )
    err = res.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert res.returncode in (0, 2), (res.returncode, err)


# ---- doctor: firewall ---------------------------------------------------------------------------


def test_doctor_policy_drop_is_not_excused_by_an_ipv6_neighbour_discovery_rule(
    own_peer: testing.Peer,
) -> None:
    """README, doctor: "firewall (read-only): ... input chains whose policy is drop with no rule
    accepting multicast ... a rule counts only for the groups it can match ... and only for its
    table's IP version"; "Each problem is printed as FAIL with its fix". The usual nftables input
    chain (policy drop, IPv6 neighbour discovery accepted) drops every IPv4 multicast datagram,
    yet doctor says "ok no firewall rule or chain policy drops 239.1.2.3": any accept rule whose
    text says ``icmpv6`` counts as "accepting multicast" for every group of both versions
    (cli/_firewall.py nft_findings: ``elif _ACCEPT.search(rule) and mentions_multicast(rule)``).
    Only the self-test then fails, pointing at "the firewall findings above", which are empty."""
    in_peer(own_peer, "nft", "add", "table", "inet", "mxf")
    in_peer(own_peer, "nft", "add chain inet mxf in { type filter hook input priority 0 ; policy drop ; }")
    in_peer(
        own_peer,
        "nft",
        "add rule inet mxf in icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept",
    )
    res = cli("doctor", "--iface", own_peer.peer_if, "239.1.2.3", peer=own_peer, timeout=60)
    firewall = res.stdout.split("Firewall (read-only)")[1].split("Environment")[0]
    assert "FAIL" in firewall and "policy drop" in firewall, res.stdout


# ---- interfaces: the cached lookups -------------------------------------------------------------


def test_an_interfaces_own_address_objects_find_it(net: Net) -> None:
    """README, Interfaces: ``find_interfaces`` looks up "by name, IP, ipaddress object or
    IfaceInfo"; "Every problem the library detects raises ``MulticastExpertError``". The address
    objects an ``IfaceInfo`` itself holds (``ip4_addrs[0]``, an ``ipaddress.IPv4Interface``, which
    is an ``IPv4Address`` subclass, and so an ``IfaceSpecifier`` to a type checker) do not find
    their interface: the IPv4 one raises "No matches found for interface IP address
    198.18.1.1/24" although that interface holds it, the IPv6 one a bare
    ``ipaddress.AddressValueError`` ("Unexpected '/' in '2001:db8:1::1/64'"), not a
    MulticastExpertError (interfaces.py ``IfaceInfo.has_ip``: ``a.ip == ip`` is False for an
    IPv4Interface, whose ``__eq__`` also compares the network, and ``IPv6Address(str(ip)...)``
    fails on the prefix)."""
    info = me.find_interfaces([net.a.host_if])[0]
    found: dict[str, object] = {}
    for spec in (info.ip4_addrs[0], info.ip6_addrs[0]):
        try:
            found[str(spec)] = [i.machine_name for i in me.find_interfaces([spec])]
        except Exception as exc:  # (recorded: the assertion below shows every outcome at once)
            found[str(spec)] = f"{type(exc).__name__}: {str(exc)[:80]}"
    assert found == {str(info.ip4_addrs[0]): [net.a.host_if], str(info.ip6_addrs[0]): [net.a.host_if]}, found


def test_a_lookup_by_ip_finds_the_interface_that_holds_it_now(
    two_peers: tuple[testing.Peer, testing.Peer],
) -> None:
    """README, Interfaces: "Lookups use a cached scan and rescan once when something is not found,
    so ... a new interface or address is still found"; "``find_interfaces`` returns every
    interface holding a given IP". An address moved from one interface to another (a DHCP lease
    on another NIC, a floating IP) is looked up from the cache by IP and still "found" on the
    interface that no longer holds it, so nothing rescans: ``find_interfaces`` returns the old
    interface, and a send socket opened on that IP sends out of the old interface
    (interfaces.py ``_lookup``: a remembered hit in ``_lookups`` / ``_resolved`` is never checked
    against a newer scan)."""
    a, b = two_peers
    moving = f"198.18.{a.n}.77"
    testing.ip("addr", "add", f"{moving}/32", "dev", a.host_if)
    assert [i.machine_name for i in me.find_interfaces([moving])] == [a.host_if]
    with me.McastTxSocket(socket.AF_INET, ["239.1.2.3"], iface=moving):
        pass
    testing.ip("addr", "del", f"{moving}/32", "dev", a.host_if)
    testing.ip("addr", "add", f"{moving}/32", "dev", b.host_if)
    time.sleep(me.interfaces.LOOKUP_MAX_AGE + 0.1)  # (fixed: a lookup uses a scan this young at most)

    found = [i.machine_name for i in me.find_interfaces([moving])]
    cap = Capture(b)
    try:
        with me.McastTxSocket(socket.AF_INET, ["239.1.2.3"], iface=moving) as tx:
            on = tx.network_interface.machine_name
            tx.sendto(b"from the moved address", ("239.1.2.3", 5077))
        frames = [f for f in cap.drain() if f.dport == 5077]
    finally:
        cap.close()
    assert (found, on, bool(frames)) == ([b.host_if], b.host_if, True), (found, on, frames)


# ---- interfaces: threads and network namespaces -------------------------------------------------


def test_refreshing_a_socket_made_in_a_peer_keeps_the_peers_interfaces(
    own_peer: testing.Peer, port: int
) -> None:
    """README, Interfaces: "The cache describes the main thread's network namespace: a thread found
    in another one (``testing.Peer.run``'s ...) scans for itself"; Troubleshooting: "Without
    ``follow_interfaces`` the set is fixed when the socket is made; ``refresh_interfaces()``
    applies changes on demand". A receive socket made inside a peer (``Peer.run``) on the default
    set joins the peer's interface. Nothing changes; calling ``refresh_interfaces()`` from the main
    thread rescans the *main thread's* namespace and applies that: it leaves the peer's interface
    and joins the main namespace's interfaces with new OS sockets made there, so the socket no
    longer receives what arrives in the peer (_membership.py ``refresh``: ``rescan_interfaces()``
    / ``listenable_interfaces()`` in the calling thread, whatever namespace the socket is in).
    Fixed: a socket's interfaces are looked up, and its OS sockets made, from threads in its own
    namespace; from another, open/join/refresh raise and change nothing."""
    group = "239.44.0.1"
    rx = own_peer.run(lambda: me.McastRxSocket(socket.AF_INET, [group], port, timeout=2).__enter__())
    try:
        before = [i.machine_name for i in rx.network_interfaces]
        assert before == [own_peer.peer_if], before
        with pytest.raises(me.MulticastExpertError, match="another network namespace than the socket's"):
            rx.refresh_interfaces()  # (fixed: refused, nothing changed; from the peer it applies)
        own_peer.run(rx.refresh_interfaces)
        after = [i.machine_name for i in rx.network_interfaces]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(own_peer.host_ip4))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)  # (only the peer gets it)
            s.sendto(b"to the peer", (group, port))
        got = rx.recv()
    finally:
        rx.close()
    assert (after, got) == (before, b"to the peer"), (after, got)


# ---- listen ----------------------------------------------------------------------------------------


def test_listen_without_iface_follows_an_interface_that_appears(net: Net, port: int) -> None:
    """README, Troubleshooting: "``multicast-expert listen`` follows interfaces unless ``--iface``
    is given" (a socket with ``follow_interfaces=True`` "joins every group on an interface that
    appears"). listen is started with no --iface; then a new host appears on a new veth link and
    sends to the group: listen prints its datagram and exits 0 after ``-n 1``."""
    group = "239.44.0.2"
    proc = subprocess.Popen(
        [*CLI, "listen", group, "-p", str(port), "-n", "1", "-t", "20", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    newcomer: testing.Peer | None = None
    try:
        assert proc.stderr is not None
        assert "listening on" in proc.stderr.readline()
        newcomer = testing.Peer(190)
        sent = cli(
            "send",
            group,
            "-p",
            str(port),
            "-i",
            newcomer.peer_if,
            "-n",
            "20",
            "--interval",
            "0.1",
            "arrived",
            peer=newcomer,
        )
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if newcomer is not None:
            newcomer.close()
    assert sent.returncode == 0, sent.stderr
    assert proc.returncode == 0, (proc.returncode, out, err)
    assert '"payload": "arrived"' in out, out


# ---- ping ------------------------------------------------------------------------------------------


def test_ping_refuses_an_iface_ip_held_by_two_interfaces(
    two_peers: tuple[testing.Peer, testing.Peer], port: int
) -> None:
    """README, Interfaces: "A socket needs one interface, so there an IP held by two interfaces
    raises, naming both; name the interface instead"; Command-line tool: "2 a bad argument".
    ``send --iface IP`` keeps that promise (exit 2, "is ambiguous: it is held by A, B"). ``ping
    --iface IP`` with the same IP silently picks the first interface holding it and runs its probes
    there (cli/ping.py ``_pick_iface``: ``find_interfaces`` returns both, ``chosen[0]`` is used,
    and the socket gets the IfaceInfo, so the library never sees the ambiguity)."""
    a, b = two_peers
    shared = f"198.18.{a.n}.88"
    for peer in (a, b):
        testing.ip("addr", "add", f"{shared}/32", "dev", peer.host_if)
    send = cli("send", "239.44.0.3", "-p", str(port), "-i", shared, "x")
    assert send.returncode == 2 and "ambiguous" in send.stderr, send.stderr  # (the promise kept)
    res = cli("ping", "239.44.0.3", "-p", str(port), "-i", shared, "-n", "1", "--timeout", "0")
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert a.host_if in res.stderr and b.host_if in res.stderr, res.stderr


# ---- the testing helpers ----------------------------------------------------------------------------


def test_peers_add_hosts_inside_a_private_network(net: Net) -> None:
    """README, Testing your own multicast code: ``with testing.private_network(peers=2) as network:``
    makes a private network around a block; "``Peer(n)``, ``peers(n)`` and ``bridged_peers(n)``
    add hosts on veth links". Inside a private network (the ``mcast_network`` fixture is one),
    ``peers(1)`` cannot add a host: it always numbers its peers from 1, and the network's own
    default peer is already Peer 1, so it fails with NetnsError "ip link add mxv1h ... File
    exists" (testing/__init__.py ``peers``: ``Peer(n) for n in range(1, count + 1)``)."""
    with testing.private_network(peers=1) as network, testing.peers(1) as (extra,):
        names = {i.machine_name for i in me.scan_interfaces()}
        assert {network.default_peer.host_if, extra.host_if} <= names, names
        assert extra.host_if != network.default_peer.host_if
