"""Micro-benchmark: each function of the C accelerator against its pure-Python equivalent.

Runs inside a private network namespace of its own (it unshares as root, or re-executes under
``unshare -rn``) and refuses to open a socket anywhere else; traffic is unicast UDP on loopback.
Prints, per case, the median time of one operation (over several repetitions) for the Python
path and the C path, and their ratio.

Usage: python benchmarks/accel_micro.py [--reps N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from multicast_expert import _accel, testing
from multicast_expert._packet import McastPacket
from multicast_expert._platform import linux

V4 = socket.AF_INET
LO = "127.0.0.1"
OPS = linux.LinuxIO()  # the pure-Python I/O, whatever _platform.IO is
Setup = Callable[[], None]
Op = Callable[[], object]


def udp(rcvbuf: int = 1 << 22) -> socket.socket:
    s = socket.socket(V4, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((LO, 0))
    return s


def fill(tx: socket.socket, rx: socket.socket, n: int, size: int = 64) -> Setup:
    payload, dest = b"x" * size, rx.getsockname()

    def go() -> None:
        drain(rx)
        for _ in range(n):
            tx.sendto(payload, dest)

    return go


def drain(rx: socket.socket) -> None:
    while True:
        try:
            rx.recv(65536)
        except BlockingIOError:
            return


def timed(setup: Setup, op: Op, n: int) -> float:
    """Nanoseconds per call of ``op`` over ``n`` calls, after ``setup`` (not timed)."""
    setup()
    start = time.perf_counter_ns()
    for _ in range(n):
        op()
    return (time.perf_counter_ns() - start) / n


def timed_each(setup: Setup, op: Op, n: int) -> float:
    """Nanoseconds per call of ``op``, with ``setup`` (not timed) before each call."""
    total = 0
    for _ in range(n):
        setup()
        start = time.perf_counter_ns()
        op()
        total += time.perf_counter_ns() - start
    return total / n


def compare(name: str, setup: Setup, py: Op, c: Op, n: int, reps: int, each: bool = False) -> None:
    run = timed_each if each else timed
    py_t, c_t = [], []
    for _ in range(reps):  # alternate, so drift hits both alike
        py_t.append(run(setup, py, n))
        c_t.append(run(setup, c, n))
    p, q = statistics.median(py_t), statistics.median(c_t)
    print(f"{name:<54} {p / 1000:>9.2f} us {q / 1000:>9.2f} us {p / q:>6.2f}x", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    args = ap.parse_args()
    testing.enter_private_netns([str(Path(__file__).resolve()), *sys.argv[1:]])
    if not testing.in_private_netns():
        print("refusing to run: not inside this benchmark's own network namespace", file=sys.stderr)
        return 2
    if not _accel.ACCELERATED:
        print(f"the C accelerator is off: {_accel.REASON}", file=sys.stderr)
        return 1
    from multicast_expert import _speedups as c  # noqa: PLC0415 (only once ACCELERATED; typed by the stub)

    scale, reps = (10, 3) if args.quick else (1, args.reps)
    rx, tx = udp(), udp()
    fd = rx.fileno()
    waker = os.eventfd(0, os.EFD_NONBLOCK)
    n = 2000 // scale
    print(f"{'case (time per call)':<54} {'Python':>12} {'C':>12} {'ratio':>7}")

    compare(
        "recv_from, 64 B queued",
        fill(tx, rx, n),
        lambda: rx.recvfrom(2048),
        lambda: c.recv_from(fd, 2048),
        n,
        reps,
    )
    compare(
        "recv_packet (ops.recv_packet: recvmsg), 64 B queued",
        fill(tx, rx, n),
        lambda: OPS.recv_packet(rx, 2048, ""),
        lambda: c.recv_packet(fd, 2048),
        n,
        reps,
    )

    class Unit:  # what recv_unit reads of a receive unit
        def __init__(self) -> None:
            self.fd, self.sock, self.live = fd, rx, True
            self.group, self.iface = "g", type("Iface", (), {"index": 1})()

    unit = Unit()
    compare(
        "recv_unit packet (the engine's read: liveness checked in the call), 64 B queued",
        fill(tx, rx, n),
        lambda: OPS.recv_packet(rx, 2048, ""),
        lambda: c.recv_unit(2048, 0, McastPacket, unit),
        n,
        reps,
    )

    others = [udp(1 << 16) for _ in range(32)]
    ep = select.epoll()
    for s in others:
        ep.register(s.fileno(), select.EPOLLIN)
        tx.sendto(b"ready", s.getsockname())  # level-triggered: stays ready
    ep.register(waker, select.EPOLLIN)
    os.eventfd_write(waker, 1)

    def py_epoll() -> list[int]:
        events = ep.poll(0, 64)
        return [f for f, _ in events if f != waker]

    compare(
        "epoll_recv, 32 ready + waker (epoll.poll)",
        lambda: None,
        py_epoll,
        lambda: c.epoll_recv(2048, None, {}, ep.fileno(), waker, 0),
        n,
        reps,
    )
    os.eventfd_read(waker)

    def py_batch(count: int, size: int) -> list[McastPacket]:  # what _rx_batch does today
        got = OPS.recv_many(rx, count, size, False)
        assert got is not None
        new = tuple.__new__
        return [new(McastPacket, (d, s, "g", 1, t, None, None, None)) for d, s, t, _ in got]

    nb = max(3, 50 // scale)
    for queued, count, size in ((1024, 1024, 2048), (64, 64, 1500), (1, 1024, 65535)):
        refill = fill(tx, rx, queued)
        compare(
            f"recv_batch, {queued} x 64 B queued, count {count}, bufsize {size}",
            refill,
            lambda count=count, size=size: py_batch(count, size),  # type: ignore[misc]
            lambda count=count, size=size: c.recv_batch(fd, count, size, "g", 1, McastPacket),  # type: ignore[misc]
            nb if queued > 1 else n,
            reps,
            each=True,
        )
    sinks = [udp(1 << 16) for _ in range(16)]
    batch = [(b"y" * 64, sinks[i % 16].getsockname()) for i in range(1024)]

    def drain_sinks() -> None:
        for s in sinks:
            drain(s)

    compare(
        "send_batch, 1024 x 64 B to 16 destinations",
        drain_sinks,
        lambda: OPS.send_many(tx, V4, batch),
        lambda: c.send_batch(tx.fileno(), V4, batch),
        max(3, 20 // scale),
        reps,
    )
    compare(
        "send_batch, 8 x 64 B to 1 destination",
        drain_sinks,
        lambda: OPS.send_many(tx, V4, batch[:128:16]),
        lambda: c.send_batch(tx.fileno(), V4, batch[:128:16]),
        max(3, 500 // scale),
        reps,
    )
    for s in [rx, tx, *others, *sinks]:
        s.close()
    ep.close()
    os.close(waker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
