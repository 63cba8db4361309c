"""Review 3 (d): the latest fixes, and bad input everywhere.

Tests whose docstring starts "Fixed" failed before this session's fixes and say which README promise they
break; the others are promises checked and found kept.

Live, in the session's private namespaces: sockets are opened on ``lo`` and the session's veth
links only; links made or changed here are the test's own (``own_peer``, or ``testing.Peer(250)``,
closed before the test ends). The doctor's rule reading is checked on rule texts (no firewall is
touched).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import V4, Net
from test_tx_review_threads import use_up_descriptors
from udp_capture import slow_link

import multicast_expert as me
from multicast_expert import interfaces, testing
from multicast_expert.cli import _firewall

CLI = [sys.executable, "-m", "multicast_expert"]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@contextlib.contextmanager
def descriptors_used_up() -> Iterator[None]:
    """Within the block the descriptor table is full: the next descriptor made fails (EMFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    filler: list[int] = []
    try:
        use_up_descriptors(filler, hard)
        yield
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def outcome(call: Callable[[], Any]) -> Any:
    """What ``call`` returned, or the exception it raised."""
    try:
        return call()
    except Exception as exc:
        return exc


# ==== findings ======================================================================================
def test_async_send_waiting_for_room_at_the_descriptor_limit_is_not_called_closed(
    own_peer: testing.Peer, port: int
) -> None:
    """Fixed (regression of the last asyncio fix). README (Sending): ``AsyncMcastTxSocket``: "an
    interface whose send buffer is full is waited for without blocking the loop"; (Errors) "Any
    operation on a closed socket raises ``SocketClosedError``" and "a full descriptor table names
    ``ulimit -n``". An open AsyncMcastTxSocket on a slow link whose send buffer fills while the
    process's descriptor table is full: ``await tx.sendto()`` raises ``SocketClosedError``
    ("sendto() on a closed AsyncMcastTxSocket; open it first") although the socket is open
    (``is_opened`` stays True). Cause (guess): aio.py ``_writable`` (about line 354) now watches
    ``os.dup`` copies of the numbers and turns any OSError of the dup, EMFILE included, into
    SocketClosedError; before the fix the wait needed no descriptor at all."""
    group = "239.250.0.1"
    slow_link(own_peer.host_if, "1mbit", "5s")

    async def main() -> tuple[BaseException | None, int, bool]:
        sent, error = 0, None
        async with me.AsyncMcastTxSocket(V4, [group], iface=own_peer.host_if) as tx:
            tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            with descriptors_used_up():
                try:
                    async with asyncio.timeout(8):
                        for _ in range(40):
                            await tx.sendto(b"x" * 1000, (group, port))
                            sent += 1
                except Exception as exc:  # (TimeoutError, OSError, MulticastExpertError)
                    error = exc
            still_open = tx.is_opened
        return error, sent, still_open

    error, sent, still_open = asyncio.run(main())
    assert still_open
    assert error is None or (isinstance(error, me.MulticastOSError) and error.errno == errno.EMFILE), (
        f"after {sent} of 40 sends, on an open socket: {type(error).__name__}: {error}"
    )


@pytest.mark.parametrize("kind", ["McastRxSocket", "McastTxSocket-replies", "AsyncMcastRxSocket"])
def test_first_receive_at_the_descriptor_limit_names_ulimit(net: Net, port: int, kind: str) -> None:
    """Fixed. README (Errors): "Known OS errors are translated by one function into
    ``MulticastOSError`` ...: a full descriptor table names ``ulimit -n``". An open socket's
    first receive while the descriptor table is full raises a bare ``OSError: [Errno 24] Too
    many open files`` (not a MulticastOSError, no advice), from recvfrom, recv_packet, recv_batch
    and fileno() alike, on McastRxSocket, on McastTxSocket's reply receives and on
    AsyncMcastRxSocket. Cause (guess): the engine's poller (epoll + wake-up descriptor) is made
    on first need, _engine.py ``poller()`` (about line 240) -> ``_platform.IO.poller``, and
    that path has no translation (AsyncMcastRxSocket: also the dup in _async_rx.py ``_watch``)."""
    group = "239.250.0.2"
    iface = net.a.host_if

    def receive() -> Any:
        if kind == "McastRxSocket":
            with me.McastRxSocket(V4, [group], port, iface=iface, timeout=0.2) as rx, descriptors_used_up():
                return outcome(rx.recv_packet)
        if kind == "McastTxSocket-replies":
            with me.McastTxSocket(V4, [group], iface=iface, timeout=0.2) as tx, descriptors_used_up():
                return outcome(tx.recv_packet)

        async def main() -> Any:
            async with me.AsyncMcastRxSocket(V4, [group], port, iface=iface, timeout=0.2) as arx:
                with descriptors_used_up():
                    try:
                        return await arx.recv_packet()
                    except (OSError, TimeoutError) as exc:
                        return exc

        return asyncio.run(main())

    got = receive()
    if isinstance(got, TimeoutError) or got is None:
        return  # (nothing arrived: the receive worked)
    assert isinstance(got, me.MulticastOSError) and "ulimit" in str(got), f"{type(got).__name__}: {got}"


def test_fork_child_follows_an_interface_whose_notifications_the_parent_read(net: Net, port: int) -> None:
    """Fixed (a case the fork fix missed). README (Receiving): "After ``fork()`` ... the child may
    use or close its copy"; ("Interfaces that come and go") a following socket "joins every group
    on an interface that appears ... Changes are applied by the receive that is waiting (at once)
    or by the next one". A following socket forks; the child has received (made its own poller)
    and is busy; the parent keeps receiving; an interface appears and the parent joins it. The
    child's next receives never join it: ``network_interfaces`` in the child lacks it. Cause
    (guess): _follow.py ``_on_change`` (about line 57) replaces the inherited rtnetlink socket only
    when the child sees it readable; the parent, reading the same socket, drains the notifications
    first, so the child never learns of the change (its own watch is made only by a later one)."""
    group = "239.250.0.3"
    interfaces.rescan_interfaces()
    with quiet():
        rx = me.McastRxSocket(V4, [group], port, follow_interfaces=True, timeout=0.2)
        rx.open()
    stop = threading.Event()
    peer: testing.Peer | None = None
    pid = -1
    try:
        rx.recv_packet()  # the parent's poller, before the fork
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        seen_r, seen_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: receive once, wait (busy elsewhere), then receive and report
            code = 0
            try:
                with quiet():
                    rx.recv_packet()
                    os.write(ready_w, b"r")
                    os.read(go_r, 1)
                    for _ in range(5):
                        rx.recv_packet()
                os.write(seen_w, " ".join(sorted(i.machine_name for i in rx.network_interfaces)).encode())
            except BaseException:
                code = 2
            os._exit(code)
        for fd in (ready_w, go_r, seen_w):
            os.close(fd)
        os.read(ready_r, 1)

        def parent_receives() -> None:
            with quiet(), contextlib.suppress(me.MulticastExpertError):
                while not stop.is_set():
                    rx.recv_packet()

        thread = threading.Thread(target=parent_receives, daemon=True)
        thread.start()
        peer = testing.Peer(250)
        deadline = time.monotonic() + 5
        while peer.host_if not in {i.machine_name for i in rx.network_interfaces}:
            assert time.monotonic() < deadline, "the parent itself never joined the new interface"
            time.sleep(0.05)
        time.sleep(2.0)  # (the link's later notifications, read by the parent too)
        os.write(go_w, b"g")
        seen = os.read(seen_r, 4096).decode().split()
        _, status = os.waitpid(pid, 0)
        pid = -1
        assert os.waitstatus_to_exitcode(status) == 0
        assert peer.host_if in seen, f"the child listens on {seen}; the parent joined {peer.host_if}"
    finally:
        stop.set()
        if pid > 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        rx.close()
        if peer is not None:
            peer.close()
        interfaces.rescan_interfaces()


@pytest.mark.parametrize("rate", ["1e-300", "5e-324"])
def test_cli_send_tiny_rate_is_a_bad_argument_not_a_traceback(net: Net, port: int, rate: str) -> None:
    """Fixed (a case the CLI fix missed). README (Command-line tool): "Errors end in one line on
    stderr, never a traceback"; exit status "2 a bad argument". ``send --rate 1e-300 --count 2``
    sends one datagram, then ends in a traceback (``OverflowError: timestamp out of range for
    platform time_t`` from time.sleep) with exit 1. The fix bounded ``--rate`` above (1e9) but not
    away from 0: the interval 1/rate is a duration far above 2,000,000 s, which the CHANGELOG says
    are bad arguments. Cause: cli/send.py ``--rate`` (about line 71: positive(float, 1e9)) and
    ``interval = 1.0 / args.rate`` (about line 108), slept in _send_all (about line 174)."""
    res = subprocess.run(
        [
            *CLI,
            "send",
            "239.250.0.4",
            "--port",
            str(port),
            "--iface",
            "lo",
            "--rate",
            rate,
            "--count",
            "2",
            "hi",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 2, (res.returncode, res.stderr)


def _nft(rule: str, sets: str = "") -> str:
    return (
        "table ip filter {\n" + sets + "\tchain input {\n"
        "\t\ttype filter hook input priority filter; policy accept;\n"
        f"\t\t{rule}\n\t}}\n}}\n"
    )


_ALLOWED_SET = "\tset allowed {\n\t\ttype ipv4_addr\n\t\telements = { 239.250.1.1 }\n\t}\n"


@pytest.mark.parametrize(
    ("tool", "text"),
    [
        ("nft", _nft("ip daddr != @allowed drop", _ALLOWED_SET)),
        ("nft", _nft("ip daddr != 232.0.0.0/8 drop")),
        ("nft", _nft("ip daddr != 10.0.0.0/8 drop")),
        ("iptables", "-P INPUT ACCEPT\n-A INPUT ! -d 10.0.0.0/8 -j DROP\n"),
    ],
    ids=["nft-not-in-named-set", "nft-not-ssm-range", "nft-not-unicast-net", "iptables-not-unicast-net"],
)
def test_doctor_reads_negated_address_matches(tool: str, text: str) -> None:
    """Fixed. README (doctor): "firewall (read-only): nftables and iptables rules that drop
    multicast ... a rule counts only for the groups it can match (one dropping ``239.0.0.0/8`` is
    reported, not failed, for ``232.1.1.1``)". A rule that drops everything *except* some
    addresses (``ip daddr != @allowed drop``, ``ip daddr != 232.0.0.0/8 drop``, iptables
    ``! -d 10.0.0.0/8 -j DROP``) drops 239.250.9.9, yet doctor finds no rule matching it (it
    says "no firewall rule ... drops 239.250.9.9"); with the allow-list set it instead fails
    the group the set lets through. The negation is ignored: the addresses named (or the named
    set's elements, now read since the last fix) are taken as what is dropped. Cause:
    cli/_firewall.py ``multicast_nets`` / ``mentions_multicast`` / ``_with_sets`` (about lines
    71-95, 155) never look at ``!=`` or ``!``. Checked on the doctor's own reading of the rule
    texts (doctor.py line 151 calls Finding.matches)."""
    dropped, allowed = "239.250.9.9", "239.250.1.1"
    findings = _firewall.nft_findings(text) if tool == "nft" else _firewall.iptables_findings(tool, text)
    hits = [f.text for f in findings if f.matches(dropped)]
    assert hits, f"no finding matches {dropped}; findings: {[(f.text, f.nets) for f in findings]}"
    if "@allowed" in text:
        wrong = [f.text for f in findings if f.matches(allowed)]
        assert not wrong, f"{allowed}, which the rule lets through, is failed by {wrong}"


def test_sendto_refuses_a_bool_port_as_send_batch_does(net: Net) -> None:
    """Fixed. README (Sending): "``send_batch([(payload, (group, port)), ...])`` checks every pair
    as ``sendto`` does"; (Errors) "Wrong *types* (``"no"`` for a boolean, say) raise
    ``TypeError``"; (Migrating) "booleans must be booleans". ``send_batch`` refuses port ``True``
    ("port must be an int in 0..65535, not bool True"), but ``sendto(b"...", (group, True))``
    sends the datagram to port 1, both modes. Cause (guess): tx_socket.py ``sendto``'s fast path
    (about line 270) and ``_sendto`` (about line 297) skip check_destination for a 2-tuple to an
    allowed group, leaving the port to the OS, which takes True as 1."""
    group = "239.250.0.5"
    with me.McastTxSocket(V4, [group], iface="lo") as tx:
        batch = outcome(lambda: tx.send_batch([(b"bool port", (group, True))]))
        assert isinstance(batch, TypeError), batch
        first = outcome(lambda: tx.sendto(b"bool port", (group, True)))  # (the checked path)
        again = outcome(lambda: tx.sendto(b"bool port", (group, True)))  # (the fast path)
    assert isinstance(first, TypeError) and isinstance(again, TypeError), (first, again)


def test_async_send_batch_on_a_closed_socket_raises_socket_closed(net: Net) -> None:
    """Fixed. README (Errors): "Any operation on a closed socket raises ``SocketClosedError``";
    the synchronous ``send_batch([])`` on a closed socket does. ``await
    AsyncMcastTxSocket.send_batch([])`` on a closed (never opened, or closed) socket returns 0.
    Cause (guess): aio.py ``send_batch`` checks the batch and hands an empty one to ``_on_each``,
    which has nothing to send and so never meets the closed socket."""

    async def main() -> Any:
        atx = me.AsyncMcastTxSocket(V4, ["239.250.0.6"], iface="lo")
        async with atx:
            pass
        try:
            return await atx.send_batch([])
        except me.MulticastExpertError as exc:
            return exc

    with me.McastTxSocket(V4, ["239.250.0.6"], iface="lo") as tx:
        pass
    assert isinstance(outcome(lambda: tx.send_batch([])), me.SocketClosedError)
    got = asyncio.run(main())
    assert isinstance(got, me.SocketClosedError), got


# ==== promises checked and found kept ================================================================
@pytest.mark.parametrize("follow", [False, True], ids=["named", "following"])
def test_timeout_zero_returns_at_once_on_many_sockets(net: Net, port: int, follow: bool) -> None:
    """README (Receiving): ``timeout`` 0 never waits; asyncio: ``TimeoutError`` at once when
    nothing is queued. Several OS sockets (two groups), named interfaces or following the default
    set: recvfrom, recv, recv_packet return None, recv_batch [], and the async receives raise
    TimeoutError, each at once; a queued datagram is returned."""
    groups = ["239.250.0.7", "239.250.0.8"]
    kw: dict[str, Any] = {"follow_interfaces": True} if follow else {"iface": net.a.host_if}
    with quiet(), me.McastRxSocket(V4, groups, port, timeout=0, **kw) as rx:
        for method in (rx.recvfrom, rx.recv, rx.recv_packet, rx.recv_batch):
            done: list[Any] = []
            t = threading.Thread(target=lambda m=method, d=done: d.append(m()), daemon=True)
            start = time.monotonic()
            t.start()
            t.join(5)
            assert done and not done[0], (method.__name__, done)
            assert time.monotonic() - start < 2, method.__name__

    async def main() -> list[str]:
        with quiet():
            arx = me.AsyncMcastRxSocket(V4, groups, port, timeout=0, **kw)
        out = []
        async with arx:
            for name in ("recvfrom", "recv_packet", "recv_batch"):
                start = time.monotonic()
                try:
                    await asyncio.wait_for(getattr(arx, name)(), 3)
                    out.append(f"{name}: got something")
                except TimeoutError:
                    out.append(f"{name}: TimeoutError" + (" (late)" if time.monotonic() - start > 2 else ""))
        return out

    assert asyncio.run(main()) == [f"{n}: TimeoutError" for n in ("recvfrom", "recv_packet", "recv_batch")]
