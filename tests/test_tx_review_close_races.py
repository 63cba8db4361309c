"""Adversarial review of 256a26e's send/close changes: sends racing close() with full send
buffers (a slow tbf qdisc on the sending veth), at the descriptor limit, with another socket
taking the closed one's descriptor number."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import Net
from test_tx_close_and_scope import race_close
from udp_capture import Capture, slow_link

import multicast_expert as me
from multicast_expert import testing

# The sender: a blocking McastTxSocket on A sends a large batch; the process is at its descriptor
# limit (so send_batch cannot duplicate the number). Another thread closes the socket while the
# batch waits for room, then opens a plain UDP socket sending on B: it takes the freed number.
SENDER = textwrap.dedent(
    """
    import os, resource, socket, sys, threading, time
    import multicast_expert as me
    a_if, b_ip, port, count, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    group = "239.208.0.1"
    tx = me.McastTxSocket(socket.AF_INET, [group], iface=a_if)
    tx.open()
    if warm == "warm":  # one batch first: whatever a first batch sets up is done
        tx.send_batch([(b"W", (group, port + 1))])
    number = tx.fileno()
    # Fill every free descriptor below the limit (dup needs one: it fails with EMFILE).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    filler = []
    while True:
        try:
            filler.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            break
    outcome = []
    def send():
        try:
            outcome.append(tx.send_batch([(b"X" * 1000, (group, port))] * count))
        except BaseException as exc:
            outcome.append(exc)
    t = threading.Thread(target=send)
    t.start()
    time.sleep(0.3)  # the batch is waiting for room in the send buffer
    tx.close()
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(b_ip))
    print("reused", other.fileno() == number, flush=True)
    t.join(30)
    print("alive", t.is_alive(), "outcome", repr(outcome), flush=True)
    other.close()
    """
)


@pytest.mark.parametrize("warm", ["warm"])
@pytest.mark.parametrize("mode", ["accelerated", "pure"])
def test_batch_at_descriptor_limit_never_sends_through_a_reused_number(
    two_peers: tuple[testing.Peer, testing.Peer], port: int, mode: str, warm: str
) -> None:
    """README: 'a send that meets the close raises SocketClosedError, and nothing goes out
    through another socket that took a closed one's descriptor number'."""
    a, b = two_peers
    slow_link(a.host_if)
    env = dict(os.environ)
    env.pop("MULTICAST_EXPERT_PURE_PYTHON", None)
    if mode == "pure":
        env["MULTICAST_EXPERT_PURE_PYTHON"] = "1"
    cap = Capture(b)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", SENDER, a.host_if, b.host_ip4, str(port), "3000", warm],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
            check=False,
        )
        leaked = [f for f in cap.drain(1.0) if f.dport == port]
    finally:
        cap.close()
    print(proc.stdout, proc.stderr)
    assert "reused True" in proc.stdout, proc.stdout + proc.stderr
    assert leaked == [], (
        f"{len(leaked)} datagrams of the closed socket on A went out on B ({b.host_if}); {proc.stdout}"
    )
    assert "SocketClosedError" in proc.stdout, proc.stdout + proc.stderr


def test_batch_keeps_sending_for_seconds_after_close_returned(
    two_peers: tuple[testing.Peer, testing.Peer], port: int
) -> None:
    """A blocking socket's large batch waits for room (slow qdisc); another thread closes the
    socket. README: 'a send that meets the close raises SocketClosedError'. The batch goes on
    through its private duplicate after close() returned, sending the rest of the batch on the
    closed socket's interface, and returns the full count."""

    a, _b = two_peers
    slow_link(a.host_if)
    group = "239.209.0.1"
    cap = Capture(a)
    outcome: list[object] = []
    try:
        tx = me.McastTxSocket(me_v4(), [group], iface=a.host_if)
        tx.open()

        def send() -> None:
            try:
                outcome.append(tx.send_batch([(b"X" * 1000, (group, port))] * 3000))
            except BaseException as exc:
                outcome.append(exc)

        t = threading.Thread(target=send)
        t.start()
        time.sleep(0.3)
        tx.close()
        closed_at = time.monotonic()
        t.join(30)
        finished_after = time.monotonic() - closed_at
        frames = [f for f in cap.drain(1.0) if f.dport == port]
    finally:
        cap.close()
    assert not t.is_alive()
    assert isinstance(outcome[0], me.SocketClosedError), (
        f"send_batch returned {outcome[0]!r} {finished_after:.1f} s after close() returned; "
        f"{len(frames)} datagrams on the wire"
    )


def me_v4() -> int:

    return socket.AF_INET


class AlarmError(Exception):
    pass


@pytest.mark.parametrize("nofile", ["dup", "descriptor-limit"])
def test_signal_handler_raising_interrupts_a_blocked_batch_promptly(
    net: Net, own_peer: testing.Peer, port: int, nofile: str
) -> None:
    """A SIGALRM handler that raises, during a blocking send_batch waiting for room (slow
    qdisc): the handler's exception should come out promptly (as CPython's sendall, and the
    pure-Python send_batch, check signals after a partial send), not after the whole batch."""

    slow_link(own_peer.host_if)
    group = "239.210.0.1"

    def handler(signum: int, frame: object) -> None:
        raise AlarmError

    old = signal.signal(signal.SIGALRM, handler)
    filler: list[int] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with me.McastTxSocket(socket.AF_INET, [group], iface=own_peer.host_if) as tx:
            tx.send_batch([(b"W", (group, port + 1))])
            if nofile == "descriptor-limit":
                resource.setrlimit(
                    resource.RLIMIT_NOFILE, (max(64, len(os.listdir("/proc/self/fd")) + 8), hard)
                )
                while True:
                    try:
                        filler.append(os.open("/dev/null", os.O_RDONLY))
                    except OSError:
                        break
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            start = time.monotonic()
            try:
                got: object = tx.send_batch([(b"X" * 1000, (group, port))] * 3000)
            except AlarmError:
                got = "Alarm"
            took = time.monotonic() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert got == "Alarm" and took < 1.0, f"send_batch gave {got!r} after {took:.1f} s (alarm at 0.3 s)"


def test_accelerated_sendto_on_a_full_buffer_never_sends_through_a_reused_number(
    two_peers: tuple[testing.Peer, testing.Peer], port: int
) -> None:
    """With the accelerator, a full buffer hands sendto to CPython's sendto: does anything leak
    through a reused number then?"""

    a, b = two_peers
    slow_link(a.host_if, "2mbit")
    groups = ["239.214.0.1"]

    def send(tx: me.McastTxSocket) -> None:
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        while True:
            tx.sendto(b"T" * 1200, (groups[0], port))

    def on_b() -> list[socket.socket]:
        made = []
        for _ in range(4):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(b.host_ip4))
            made.append(s)
        return made

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    cap = Capture(b)
    try:
        errors = race_close(a.host_if, socket.AF_INET, groups, send, 150, on_b)
        leaked = [f for f in cap.drain(0.5) if f.dport == port]
    finally:
        sys.setswitchinterval(old)
        cap.close()
    assert leaked == [] and not errors, (len(leaked), dict(errors))


FIRST_BATCH_AT_LIMIT = textwrap.dedent(
    """
    import os, resource, socket, sys
    import multicast_expert as me
    group, port = "239.215.0.1", int(sys.argv[2])
    with me.McastTxSocket(socket.AF_INET, [group], iface=sys.argv[1]) as tx:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        filler = []
        while True:
            try:
                filler.append(os.open("/dev/null", os.O_RDONLY))
            except OSError:
                break
        try:
            print("sent", tx.send_batch([(b"X", (group, port))] * 3))
        except Exception as exc:
            print("raised", repr(exc))
    """
)


def test_pure_python_first_batch_at_descriptor_limit_sends(
    net: Net, own_peer: testing.Peer, port: int
) -> None:
    """A process at its descriptor limit sends its first batch: sendmmsg needs no descriptor
    (the accelerated send_batch sends it on the number). Without the accelerator the first
    send_batch looks libc up with ctypes.util.find_library, which needs temporary files and a
    subprocess: MulticastSendError errno 2 'No usable temporary directory found'."""
    env = dict(os.environ, MULTICAST_EXPERT_PURE_PYTHON="1")
    proc = subprocess.run(
        [sys.executable, "-c", FIRST_BATCH_AT_LIMIT, own_peer.host_if, str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert "sent 3" in proc.stdout, proc.stdout + proc.stderr
