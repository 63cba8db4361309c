"""The fixes of the fourth review (README promises read sentence by sentence), on the sides the
reviewers' own tests (``test_review3_readme_*.py``) do not cover: the receive socket's side of a
close and reopen, the send socket's open from two threads, a socket used from a thread in
another network namespace, the asyncio socket's OS sockets after a live join, and the doctor's
reading of accepting rules."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings

import pytest
from helpers import V4, V6, Net, open_fds, run_script

import multicast_expert as me
from multicast_expert import testing
from multicast_expert.cli import _firewall


def waiting_receive(rx: me.McastRxSocket, method: str) -> tuple[threading.Thread, list[str]]:
    """Start ``method`` on ``rx`` in a thread; its outcome goes to the list."""
    outcome: list[str] = []

    def run() -> None:
        try:
            got = rx.recv_batch() if method == "recv_batch" else getattr(rx, method)()
            outcome.append(f"returned {got!r}")
        except me.SocketClosedError:
            outcome.append("SocketClosedError")
        except BaseException as exc:  # (reported, not lost in the thread)
            outcome.append(f"{type(exc).__name__}: {exc}")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, outcome


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("method", ["recvfrom", "recv_packet", "recv_batch"])
def test_close_and_reopen_wakes_a_waiting_receive_with_socket_closed_error(
    net: Net, port: int, groups: int, method: str
) -> None:
    """README, Receiving: "``close()`` from another thread wakes every waiting receive at once (it
    raises ...)". A receive that began before the close raises even when the closing thread opens
    the socket again at once: it began on the socket that was closed (before the fix it went on
    waiting on the new one, then returned None at its timeout). One group (the fast single-socket
    paths, the C methods with the accelerator) and three (several sockets behind one poll)."""
    group_list = [f"239.164.{groups}.{i + 1}" for i in range(groups)]
    rx = me.McastRxSocket(V4, group_list, port, iface="lo", timeout=3)
    rx.open()
    try:
        for attempt in range(10):
            t, outcome = waiting_receive(rx, method)
            time.sleep(0.15)  # (well inside its 3 s timeout: it waits)
            rx.close()
            rx.open()
            t.join(10)
            assert outcome == ["SocketClosedError"], f"attempt {attempt}: {outcome or 'still waiting'}"
    finally:
        rx.close()


def test_a_receive_begun_after_a_close_and_reopen_is_not_failed(net: Net, port: int) -> None:
    """The other side of the rule above: a receive begun on the reopened socket waits and gets
    its datagram (the count of closes it compares is the one when it began)."""
    group = "239.164.9.1"
    with me.McastRxSocket(V4, [group], port, iface="lo", timeout=3) as rx:
        rx.close()
        rx.open()
        t, outcome = waiting_receive(rx, "recvfrom")
        time.sleep(0.15)
        with me.McastTxSocket(V4, [group], iface="lo") as tx:
            tx.sendto(b"after the reopen", (group, port))
        t.join(10)
        assert outcome and outcome[0].startswith("returned (b'after the reopen'"), outcome


def test_two_threads_opening_one_send_socket_open_it_once(net: Net) -> None:
    """README, Sending: open() is "all or nothing", and a second open raises "already open" (as in
    1.2.0). Two threads calling open() at once used to both open it (each making OS sockets: the
    first ones leaked). Now exactly one succeeds and the other raises; closing it leaves no
    descriptor behind."""
    for attempt in range(40):
        tx = me.McastTxSocket(V4, ["239.164.10.1"], iface="lo")
        before = open_fds()
        errors: list[Exception] = []
        start = threading.Barrier(2)

        def opener(
            tx: me.McastTxSocket = tx, errors: list[Exception] = errors, start: threading.Barrier = start
        ) -> None:
            start.wait()
            try:
                tx.open()
            except me.MulticastExpertError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=opener) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        tx.close()
        assert len(errors) == 1 and "already open" in str(errors[0]), f"attempt {attempt}: {errors}"
        assert open_fds() == before, f"attempt {attempt}: descriptors leaked"


@pytest.mark.parametrize("kind", ["rx", "tx"])
def test_open_from_a_thread_in_another_namespace_is_refused(
    own_peer: testing.Peer, port: int, kind: str
) -> None:
    """README, Interfaces: the interface cache describes the main thread's namespace and a thread
    in another scans for itself. A socket made here and opened from a thread in a peer would look
    its interfaces up here and make its OS sockets there (another host's). It is refused with
    a MulticastExpertError that says so, and nothing is left open; opened here, it works."""
    if kind == "rx":
        sock: me.McastRxSocket | me.McastTxSocket = me.McastRxSocket(V4, ["239.164.11.1"], port, iface="lo")
    else:
        sock = me.McastTxSocket(V4, ["239.164.11.1"], iface="lo")
    before = open_fds()
    with pytest.raises(me.MulticastExpertError, match="another network namespace than the socket's"):
        own_peer.run(sock.open)
    assert not sock.is_opened and open_fds() == before
    sock.open()
    sock.close()


def test_join_from_a_thread_in_another_namespace_is_refused(own_peer: testing.Peer, port: int) -> None:
    """As above for a live join: nothing joined, the socket keeps its groups."""
    with me.McastRxSocket(V4, ["239.164.12.1"], port, iface="lo") as rx:
        with pytest.raises(me.MulticastExpertError, match="another network namespace"):
            own_peer.run(lambda: rx.join_group("239.164.12.2"))
        assert rx.mcast_ips == ["239.164.12.1"] and len(rx.sockets) == 1
        rx.join_group("239.164.12.2")
        assert rx.mcast_ips == ["239.164.12.1", "239.164.12.2"]


def test_async_receive_sockets_stay_non_blocking_after_a_live_join(net: Net, port: int) -> None:
    """README, asyncio: the async sockets' "OS sockets stay non-blocking"; also one a live join
    adds (any-source and source-specific), and after a close and reopen."""

    async def main() -> list[bool]:
        rx = me.AsyncMcastRxSocket(V6, ["ff15::164:1"], port, iface=net.a.host_if)
        async with rx:
            rx.join_group("ff15::164:2")
            rx.join_group("ff35::164:3", [net.a.peer_ip6])
            first = [s.getblocking() for s in rx.sockets]
        async with rx:
            return first + [s.getblocking() for s in rx.sockets]

    assert asyncio.run(main()) == [False] * 6
    with me.McastRxSocket(V4, ["239.164.13.1"], port, iface="lo") as rx:  # (the sync one: as 1.2.0)
        assert [s.getblocking() for s in rx.sockets] == [True]


# ---- doctor: what an accepting rule lets through ---------------------------------------------------
POLICY_DROP = """table inet filter {{
\tchain input {{
\t\ttype filter hook input priority filter; policy drop;
\t\t{rule}
\t}}
}}
"""


@pytest.mark.parametrize(
    ("rule", "dropped", "passed"),
    [
        # IGMP / MLD accepted: membership reports pass, the datagrams do not.
        ("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept", ["239.1.2.3", "ff15::1"], []),
        ("ip protocol igmp accept", ["239.1.2.3", "ff15::1"], []),
        # All multicast accepted: nothing dropped (no finding at all).
        ("meta pkttype multicast accept", [], ["239.1.2.3", "ff15::1"]),
        # One range of one version.
        ("ip daddr 239.0.0.0/8 accept", ["232.1.1.1", "ff15::1"], ["239.1.2.3"]),
        ("ip6 daddr ff15::/16 accept", ["239.1.2.3", "ff35::1"], ["ff15::1"]),
        # A negated match is not read: the policy's finding stands.
        ("ip daddr != 232.0.0.0/8 accept", ["239.1.2.3"], []),
    ],
)
def test_a_drop_policy_is_excused_only_for_what_an_accept_rule_reaches(
    rule: str, dropped: list[str], passed: list[str]
) -> None:
    """README, doctor: input chains "whose policy is drop with no rule accepting multicast"; "a
    rule counts only for the groups it can match ... and only for its table's IP version"."""
    found = _firewall.nft_findings(POLICY_DROP.format(rule=rule))
    for group in dropped:
        assert any(f.matches(group) for f in found), (rule, group, found)
    for group in passed:
        assert not any(f.matches(group) for f in found), (rule, group, found)


def test_iptables_drop_policy_with_only_igmp_accepted_still_drops_the_datagrams() -> None:
    text = "-P INPUT DROP\n-A INPUT -p igmp -j ACCEPT\n"
    found = _firewall.iptables_findings("iptables", text)
    assert [f.matches("239.1.2.3") for f in found] == [True]
    text = "-P INPUT DROP\n-A INPUT -m pkttype --pkt-type multicast -j ACCEPT\n"
    assert _firewall.iptables_findings("iptables", text) == []
    text = "-P INPUT DROP\n-A INPUT -d 239.0.0.0/8 -j ACCEPT\n"
    found = _firewall.iptables_findings("iptables", text)
    assert [(f.matches("239.1.2.3"), f.matches("232.1.1.1")) for f in found] == [(False, True)]


def test_a_socket_made_before_a_private_network_is_refused_inside_it(net: Net, port: int) -> None:
    """The namespace rule above holds for the calling thread moved by ``private_network()``: a
    socket made before the block belongs to the namespace outside; opened inside it is refused,
    and after the block it opens (the thread is back). One made inside works inside."""
    rx = me.McastRxSocket(V4, ["239.164.14.1"], port, iface="lo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (other threads of the session stay out)
        with testing.private_network():
            with pytest.raises(me.MulticastExpertError, match="another network namespace"):
                rx.open()
            with me.McastRxSocket(V4, ["239.164.14.2"], port, iface="lo") as inside:
                assert len(inside.sockets) == 1
    assert not rx.is_opened
    rx.open()
    rx.close()


def test_a_fork_while_another_thread_installs_a_scan_leaves_the_child_able_to_rescan() -> None:
    """README, Receiving: after fork() the child may use its copies. A child forked while another
    thread held the interface scan's lock (installing a scan) inherited it held: every later
    scan in the child waited forever. The lock is now taken before a fork (after the sockets'
    locks) and released in parent and child. Run in a child process of its own, bounded."""
    finished, out = run_script(
        """
        from multicast_expert import interfaces
        held = threading.Event()
        def hold() -> None:
            with interfaces._lock:
                held.set()
                time.sleep(0.5)
        threading.Thread(target=hold).start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            interfaces.rescan_interfaces()
            with me.McastRxSocket(socket.AF_INET, ["239.164.15.1"], 47015, iface="lo"):
                pass
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status))
        """,
        timeout=20,
    )
    assert finished and "child exit 0" in out, out


def test_a_fork_while_a_socket_lock_holder_waits_for_the_logging_lock_does_not_stall() -> None:
    """A thread holding a receive socket's membership lock (a join under way) may wait for the
    logging module's lock (a logger's level cache). The fork's handler must take the socket's
    lock before logging's handler takes logging's, or neither thread goes on: the fork waited
    30 s, then left the child the socket's lock held (its close() hung). Our handler is
    registered after logging's, so it runs first. Bounded, in a child process of its own."""
    finished, out = run_script(
        """
        import logging
        rx = me.McastRxSocket(socket.AF_INET, ["239.164.16.1"], 47016, iface="lo")
        rx.open()
        held = threading.Event()
        def join_under_way() -> None:
            with rx._members.lock:
                held.set()
                time.sleep(0.3)
                with logging._lock:  # (as a logger's level cache miss takes it)
                    pass
        threading.Thread(target=join_under_way).start()
        held.wait()
        began = time.monotonic()
        pid = os.fork()
        if pid == 0:
            rx.close()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status), "fork took", round(time.monotonic() - began))
        rx.close()
        """,
        timeout=25,
    )
    assert finished and "child exit 0 fork took 0" in out, out
