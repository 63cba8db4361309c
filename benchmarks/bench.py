"""Benchmark: multicast_expert against bare Python sockets doing the same work, in one run.

Runs inside its own private network namespace (loopback plus one veth peer for the
default-interface case). Each case alternates library and bare repetitions and reports the median
of the per-repetition time ratios (library / bare): 1.00 means bare-socket speed.

Usage: python benchmarks/bench.py [--reps N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import multicast_expert as me
from multicast_expert import testing

V4 = socket.AF_INET
LO = "127.0.0.1"
PORT = 47000


def bare_rx(group: str, port: int, iface_ip: str) -> socket.socket:
    s = socket.socket(V4, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((group, port))
    s.setsockopt(
        socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton(iface_ip)
    )
    return s


def bare_tx(iface_ip: str) -> socket.socket:
    s = socket.socket(V4, socket.SOCK_DGRAM)
    s.bind((iface_ip, 0))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface_ip))
    return s


def timed(fn: Callable[[int], None], n: int) -> float:
    t0 = time.perf_counter()
    fn(n)
    return time.perf_counter() - t0


Result = tuple[float, float, float, float | None]


def compare(
    lib: Callable[[int], None],
    bare: Callable[[int], None],
    n: int,
    reps: int,
    floor: Callable[[int], None] | None = None,
) -> Result:
    """Median ratios lib/bare (and floor/bare), and median microseconds per op of lib and bare."""
    for fn in (lib, bare, floor):
        if fn is not None:
            fn(max(1, n // 10))  # warm up
    ratios, floor_ratios, lib_t, bare_t = [], [], [], []
    for _ in range(reps):
        a = timed(lib, n)
        b = timed(bare, n)
        lib_t.append(a)
        bare_t.append(b)
        ratios.append(a / b)
        if floor is not None:
            floor_ratios.append(timed(floor, n) / b)
    return (
        statistics.median(ratios),
        statistics.median(lib_t) / n * 1e6,
        statistics.median(bare_t) / n * 1e6,
        statistics.median(floor_ratios) if floor_ratios else None,
    )


def case_pingpong(groups_count: int, n: int, reps: int, timed_rx: bool, bare_send: bool = False) -> Result:
    """Send one datagram, receive it, repeat, rotating over the groups. ``timed_rx``: both sides
    wait with a timeout (the library's timeout=1.0; bare sockets settimeout(1.0), so CPython polls
    before each recvfrom); else both block (the bare side: one recvfrom system call, the floor).
    ``bare_send``: the library side sends with a bare socket too, so only receiving is compared."""
    groups = [f"239.77.{i // 250}.{i % 250 + 1}" for i in range(groups_count)]
    port = PORT + groups_count + (300 if timed_rx else 0) + (600 if bare_send else 0)
    wait = 1.0 if timed_rx else None
    with (
        me.McastRxSocket(V4, groups, port, iface_ip=LO, timeout=wait) as rx,
        me.McastTxSocket(V4, groups, LO) as tx,
    ):
        bare_socks = [bare_rx(g, port + 1, LO) for g in groups]
        for s in bare_socks:
            s.settimeout(wait)
        epoll_socks = [bare_rx(g, port + 2, LO) for g in groups]
        btx = bare_tx(LO)
        addrs = [(g, port) for g in groups]
        baddrs = [(g, port + 1) for g in groups]
        eaddrs = [(g, port + 2) for g in groups]
        k = len(groups)
        ep = select.epoll()
        for s in epoll_socks:
            s.setblocking(False)
            ep.register(s.fileno(), select.EPOLLIN)
        by_fd = {s.fileno(): s for s in epoll_socks}

        def lib(count: int) -> None:
            send, recv = (btx.sendto if bare_send else tx.sendto), rx.recvfrom
            for i in range(count):
                send(b"ping", addrs[i % k])
                recv()

        def bare(count: int) -> None:
            send = btx.sendto
            for i in range(count):
                send(b"ping", baddrs[i % k])
                bare_socks[i % k].recvfrom(4096)

        def floor(count: int) -> None:
            """Bare sockets that, like the library, must ask epoll which socket is ready."""
            send, poll = btx.sendto, ep.poll
            for i in range(count):
                send(b"ping", eaddrs[i % k])
                by_fd[poll(wait)[0][0]].recvfrom(4096)

        try:
            return compare(lib, bare, n, reps, floor if k > 1 else None)
        finally:
            ep.close()
            for s in [*bare_socks, *epoll_socks, btx]:
                s.close()


def case_recv_packet(groups_count: int, n: int, reps: int) -> Result:
    """recv_packet (payload, sender, group, interface, truncation) against bare recvmsg, both
    waiting with a 1 s timeout; both sides send with a bare socket (only receiving is compared)."""
    groups = [f"239.80.{i // 250}.{i % 250 + 1}" for i in range(groups_count)]
    port = PORT + 500 + groups_count
    with me.McastRxSocket(V4, groups, port, iface_ip=LO, timeout=1.0) as rx:
        bare_socks = [bare_rx(g, port + 1, LO) for g in groups]
        for s in bare_socks:
            s.settimeout(1.0)
        btx = bare_tx(LO)
        addrs = [(g, port) for g in groups]
        baddrs = [(g, port + 1) for g in groups]
        k = len(groups)

        def lib(count: int) -> None:
            send, recv = btx.sendto, rx.recv_packet
            for i in range(count):
                send(b"ping", addrs[i % k])
                recv()

        def bare(count: int) -> None:
            send = btx.sendto
            for i in range(count):
                send(b"ping", baddrs[i % k])
                bare_socks[i % k].recvmsg(65535)

        try:
            return compare(lib, bare, n, reps)
        finally:
            for s in [*bare_socks, btx]:
                s.close()


def case_batch_drain(n: int, reps: int) -> Result:
    """Draining n queued datagrams on 16 groups: recv_batch() (default max_packets) against a bare
    epoll + recvfrom loop."""
    groups = [f"239.81.0.{i + 1}" for i in range(16)]
    port = PORT + 700
    with (
        me.McastRxSocket(V4, groups, port, iface_ip=LO, timeout=0, rcvbuf=8 << 20) as rx,
        me.McastTxSocket(V4, groups, LO) as tx,
    ):
        bare_socks = [bare_rx(g, port + 1, LO) for g in groups]
        ep = select.epoll()
        for s in bare_socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            s.setblocking(False)
            ep.register(s.fileno(), select.EPOLLIN)
        by_fd = {s.fileno(): s for s in bare_socks}
        lib_batch = [(b"x" * 64, (groups[i % 16], port)) for i in range(n)]
        bare_batch = [(b"x" * 64, (groups[i % 16], port + 1)) for i in range(n)]
        stats: dict[str, float] = {"lib": 0.0, "bare": 0.0}

        def fill(batch: list[tuple[bytes, tuple[str, int]]]) -> None:
            for i in range(0, len(batch), 64):
                tx.send_batch(batch[i : i + 64])

        def lib(count: int) -> None:
            fill(lib_batch[:count])
            t0 = time.perf_counter()
            got = 0
            while got < count:
                got += len(rx.recv_batch())
            stats["lib"] += time.perf_counter() - t0

        def bare(count: int) -> None:
            fill(bare_batch[:count])
            t0 = time.perf_counter()
            got = 0
            while got < count:
                for fd, _ in ep.poll(0):
                    sock = by_fd[fd]
                    while True:
                        try:
                            sock.recvfrom(65535)
                        except BlockingIOError:
                            break
                        got += 1
            stats["bare"] += time.perf_counter() - t0

        try:
            ratios = []
            for _ in range(reps):
                stats["lib"] = stats["bare"] = 0.0
                lib(n)
                bare(n)
                ratios.append(stats["lib"] / stats["bare"])
            return (statistics.median(ratios), 0.0, 0.0, None)
        finally:
            ep.close()
            for s in bare_socks:
                s.close()


def case_send_batch(n: int, reps: int) -> Result:
    """send_batch of n datagrams against a bare socket's sendto loop (the issue's baseline), time
    ratio; the fourth figure is the library's own sendto loop against the same bare loop."""
    groups = [f"239.82.0.{i + 1}" for i in range(16)]
    with me.McastTxSocket(V4, groups, LO) as tx, bare_tx(LO) as btx:
        batch = [(b"x" * 64, (groups[i % 16], PORT + 800)) for i in range(64)]

        def lib(count: int) -> None:
            for _ in range(count // 64):
                tx.send_batch(batch)

        def bare(count: int) -> None:
            send = btx.sendto
            for _ in range(count // 64):
                for data, addr in batch:
                    send(data, addr)

        def lib_loop(count: int) -> None:
            send = tx.sendto
            for _ in range(count // 64):
                for data, addr in batch:
                    send(data, addr)

        return compare(lib, bare, n, reps, lib_loop)


def _lib_drain(rx: me.McastRxSocket, done: threading.Event) -> int:
    got = 0
    while True:
        b = rx.recv_batch(256)
        if not b and done.is_set():
            return got
        got += len(b)


def _bare_drain(ep: select.epoll, by_fd: dict[int, socket.socket], done: threading.Event) -> int:
    got = 0
    while True:
        events = ep.poll(0.2)
        if not events and done.is_set():
            return got
        for fd, _ in events:
            sk = by_fd[fd]
            while True:
                try:
                    sk.recvfrom(65535)
                except BlockingIOError:
                    break
                got += 1


def _flood_once(n: int, port: int, drain: Callable[[threading.Event], int]) -> tuple[float, float]:
    groups = [f"239.83.0.{i + 1}" for i in range(16)]
    with me.McastTxSocket(V4, groups, LO) as tx:
        batch = [(b"x" * 64, (groups[i % 16], port)) for i in range(64)]
        done = threading.Event()
        result: list[int] = []
        t = threading.Thread(target=lambda: result.append(drain(done)))
        t.start()
        t0 = time.perf_counter()
        for _ in range(n // 64):
            tx.send_batch(batch)
        done.set()
        t.join()
        took = time.perf_counter() - t0
    sent = n // 64 * 64
    return result[0] / took, 100.0 * (1 - result[0] / sent)


def flood(n: int) -> dict[str, tuple[float, float]]:
    """A sender that outruns Python (sendmmsg batches) floods 16 groups with n datagrams while one
    receiver drains: the library with recv_batch, or bare sockets with an epoll + recvfrom loop.
    Returns {name: (datagrams received per second, loss %)} at the default receive buffer."""
    groups = [f"239.83.0.{i + 1}" for i in range(16)]
    with me.McastRxSocket(V4, groups, PORT + 900, iface_ip=LO, timeout=0.2) as rx:
        lib = _flood_once(n, PORT + 900, lambda done: _lib_drain(rx, done))
    socks = [bare_rx(g, PORT + 901, LO) for g in groups]
    ep = select.epoll()
    try:
        for sk in socks:
            sk.setblocking(False)
            ep.register(sk.fileno(), select.EPOLLIN)
        by_fd = {sk.fileno(): sk for sk in socks}
        bare = _flood_once(n, PORT + 901, lambda done: _bare_drain(ep, by_fd, done))
    finally:
        ep.close()
        for sk in socks:
            sk.close()
    return {"library recv_batch": lib, "bare epoll + recvfrom": bare}


def case_sendto(n: int, reps: int) -> Result:
    with me.McastTxSocket(V4, ["239.78.0.1"], LO) as tx, bare_tx(LO) as btx:
        addr = ("239.78.0.1", PORT)

        def lib(count: int) -> None:
            send = tx.sendto
            for _ in range(count):
                send(b"x", addr)

        def bare(count: int) -> None:
            send = btx.sendto
            for _ in range(count):
                send(b"x", addr)

        return compare(lib, bare, n, reps)


def case_open_close(n: int, reps: int, default: bool) -> Result:
    group = "239.79.0.1"
    ifaces = [i for i in me.scan_interfaces() if not i.is_localhost() and i.ip4_addrs] if default else []
    iface_ips = [str(i.ip4_addrs[0].ip) for i in ifaces] if default else [LO]

    def lib(count: int) -> None:
        for _ in range(count):
            rx = me.McastRxSocket(V4, [group], PORT, iface_ip=None if default else LO)
            rx.open()
            rx.close()

    def bare(count: int) -> None:
        for _ in range(count):
            socks = [bare_rx(group, PORT + 1, ip) for ip in iface_ips]
            for s in socks:
                s.close()

    names = [i.machine_name.encode() for i in ifaces] if default else [b"lo"]
    pairs = list(zip(iface_ips, names, strict=True))

    def floor(count: int) -> None:
        """Bare sockets making the library's system calls: SO_BINDTODEVICE too (Linux), which ties
        each socket to its interface (the bare side's sockets take any interface's datagrams)."""
        for _ in range(count):
            socks = []
            for ip, name in pairs:
                s = socket.socket(V4, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, name)
                s.bind((group, PORT + 2))
                mreq = socket.inet_aton(group) + socket.inet_aton(ip)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                socks.append(s)
            for s in socks:
                s.close()

    return compare(lib, bare, n, reps, floor if sys.platform == "linux" else None)


#: (case, target accelerated, target pure Python, run(scale, reps)); targets are library / bare.
CASES: list[tuple[str, float, float, Callable[[int, int], Result]]] = [
    ("ping-pong 1 group, timed", 1.00, 1.02, lambda sc, r: case_pingpong(1, 20000 // sc, r, True)),
    ("ping-pong 1 group, blocking", 1.08, 1.15, lambda sc, r: case_pingpong(1, 20000 // sc, r, False)),
    ("ping-pong 16 groups, timed", 1.10, 1.22, lambda sc, r: case_pingpong(16, 20000 // sc, r, True)),
    ("ping-pong 16 groups, blocking", 1.20, 9.99, lambda sc, r: case_pingpong(16, 20000 // sc, r, False)),
    ("ping-pong 200 groups, timed", 1.10, 1.22, lambda sc, r: case_pingpong(200, 20000 // sc, r, True)),
    ("ping-pong 200 groups, blocking", 1.20, 9.99, lambda sc, r: case_pingpong(200, 20000 // sc, r, False)),
    (
        "receive only, 1 group, blocking",
        1.08,
        1.15,
        lambda sc, r: case_pingpong(1, 20000 // sc, r, False, True),
    ),
    (
        "receive only, 16 groups, timed",
        1.10,
        1.22,
        lambda sc, r: case_pingpong(16, 20000 // sc, r, True, True),
    ),
    (
        "receive only, 16 groups, blocking",
        1.20,
        9.99,
        lambda sc, r: case_pingpong(16, 20000 // sc, r, False, True),
    ),
    ("recv_packet 16 groups, timed", 1.15, 1.32, lambda sc, r: case_recv_packet(16, 20000 // sc, r)),
    ("recv_batch drain vs bare loop", 0.65, 1.30, lambda sc, r: case_batch_drain(3200, r)),
    ("send_batch vs bare sendto loop", 0.90, 1.00, lambda sc, r: case_send_batch(64000 // sc, r)),
    ("sendto", 1.02, 1.05, lambda sc, r: case_sendto(50000 // sc, r)),
    ("open+close, explicit iface", 1.5, 1.8, lambda sc, r: case_open_close(1000 // sc, r, default=False)),
    ("open+close, default ifaces", 1.5, 1.8, lambda sc, r: case_open_close(1000 // sc, r, default=True)),
]


def run_here(scale: int, reps: int, only: str | None = None) -> dict[str, object]:
    """Every case in this process (accelerated or not, as ``multicast_expert.ACCELERATED`` says);
    with ``only``, the cases whose name contains it (and no flood)."""
    out: dict[str, object] = {"accelerated": me.ACCELERATED, "cases": {}, "flood": {}}
    with testing.peers(2):
        me.scan_interfaces()
        for name, _, _, run in CASES:
            if only is not None and only not in name:
                continue
            ratio, lib_us, bare_us, floor = run(scale, reps)
            out["cases"][name] = [ratio, lib_us, bare_us, floor]  # type: ignore[index]
        if only is None:
            out["flood"] = {k: list(v) for k, v in flood(200_000 // scale).items()}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=21)
    p.add_argument("--quick", action="store_true", help="fewer iterations (for CI smoke runs)")
    p.add_argument("--mode", choices=["both", "accelerated", "pure"], default="both")
    p.add_argument("--json", action="store_true", help="print this run's raw results as JSON")
    p.add_argument("--only", help="run only the cases whose name contains this text (no flood)")
    p.add_argument(
        "--runs",
        type=int,
        default=1,
        help="whole runs of both modes; the table shows the "
        "first run's ratios and the range over all of them",
    )
    args = p.parse_args()
    if args.mode == "both":
        return both_ways(args)
    testing.enter_private_netns([str(Path(__file__).resolve()), *sys.argv[1:]])
    scale = 10 if args.quick else 1
    reps = max(3, args.reps // (3 if args.quick else 1))
    if args.mode == "accelerated" and not me.ACCELERATED:
        print("the C accelerator is not built here; run: pip install -e .", file=sys.stderr)
        return 2
    result = run_here(scale, reps, args.only)
    result["reps"] = reps
    print(json.dumps(result))
    return 0


def spread_text(seen: list[float] | None) -> str:
    """`` (lowest-highest)`` of a case's ratios over the runs, or nothing."""
    return f" ({min(seen):.2f}-{max(seen):.2f})" if seen else ""


def both_ways(args: argparse.Namespace) -> int:
    """Run the cases accelerated and pure (each in its own process and namespace) and print the table."""
    runs: dict[str, dict[str, object]] = {}
    #: mode -> case -> the ratio of every run (the first run's is the table's; --runs N for the spread)
    spread: dict[str, dict[str, list[float]]] = {"accelerated": {}, "pure": {}}
    for run_no, mode in ((r, m) for r in range(args.runs) for m in ("accelerated", "pure")):
        env = dict(os.environ)
        env.pop(testing.MARKER_ENV, None)
        if mode == "pure":
            env["MULTICAST_EXPERT_PURE_PYTHON"] = "1"
        argv = [sys.executable, str(Path(__file__).resolve()), "--mode", mode, "--reps", str(args.reps)]
        if args.only is not None:
            argv += ["--only", args.only]
        done = subprocess.run(
            [*argv, *(["--quick"] if args.quick else [])],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(f"{mode}: {done.stderr.strip() or done.stdout.strip()}")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if run_no == 0:
            runs[mode] = result
        for name, values in result["cases"].items():
            spread[mode].setdefault(name, []).append(values[0])
    head = (
        f"{'case (library / bare, same run)':<32} {'accelerated':>11} {'target':>6} {'pure':>6} {'target':>6}"
    )
    print(f"{head}  {'lib us':>7} {'bare us':>7} {'also':>6}  verdict")
    for name, t_acc, t_pure, _ in CASES:
        acc = runs.get("accelerated", {}).get("cases", {}).get(name)  # type: ignore[attr-defined]
        pure = runs.get("pure", {}).get("cases", {}).get(name)  # type: ignore[attr-defined]
        if acc is None and pure is None:
            continue  # (not run: --only)
        verdict = []
        if acc is not None and acc[0] > t_acc:
            verdict.append(f"accelerated missed by {acc[0] - t_acc:.2f}")
        if pure is not None and pure[0] > t_pure:
            verdict.append(f"pure missed by {pure[0] - t_pure:.2f}")
        a = f"{acc[0]:.2f}x" if acc else "-"
        u = f"{pure[0]:.2f}x" if pure else "-"
        if args.runs > 1:  # the range over every run, after the first run's figure
            a += spread_text(spread["accelerated"].get(name))
            u += spread_text(spread["pure"].get(name))
        tp = f"{t_pure:.2f}x" if t_pure < 9 else "-"
        us = acc or pure
        lib_us = f"{us[1]:.2f}" if us and us[1] else "-"
        bare_us = f"{us[2]:.2f}" if us and us[2] else "-"
        also = f"{us[3]:.2f}x" if us and us[3] else "-"
        row = f"{name:<32} {a:>11} {t_acc:>5.2f}x {u:>6} {tp:>6}  {lib_us:>7} {bare_us:>7} {also:>6}"
        print(f"{row}  {'; '.join(verdict) or 'ok'}")
    for mode, run in runs.items():
        for name, (rate, loss) in run["flood"].items():  # type: ignore[attr-defined]
            print(
                f"flood, 16 groups, {mode:<11} {name:<22} {rate / 1000:>7.0f}k datagrams/s, {loss:5.1f}% lost"
            )
    reps = next(iter(runs.values()), {}).get("reps", "?")
    print(f"median of {reps} interleaved repetitions per case; ratio = library time / bare-socket time.")
    print("timed: both sides wait with a 1 s timeout (bare: settimeout, CPython polls then reads);")
    print("blocking: both block (bare: one recvfrom system call, the physical floor). recv_batch drain:")
    print("3,200 queued datagrams on 16 groups / a bare epoll + recvfrom loop; send_batch / a bare")
    print("sendto loop.")
    print("lib us / bare us: microseconds per operation of the accelerated run (pure if none). also,")
    print("over the same bare time: ping-pong on several groups, bare sockets asking epoll which is")
    print("ready; open + close, bare sockets making the library's system calls (SO_BINDTODEVICE too);")
    print("send_batch, the library's own sendto loop.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
