"""Adversarial review: many threads sending at once on one McastTxSocket (full buffers: a slow
qdisc; blocking and non-blocking), every datagram on the wire exactly once."""

from __future__ import annotations

import collections
import gc
import os
import resource
import socket
import threading

import pytest
from helpers import Net
from udp_capture import Capture, slow_link

import multicast_expert as me
from multicast_expert import testing


def use_up_descriptors(filler: list[int], hard: int) -> None:
    """Lower the soft descriptor limit to just above what is open and fill it (``filler`` holds
    what was opened, for the caller to close): the next duplicate fails with EMFILE."""
    gc.collect()
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
    while True:
        try:
            filler.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            break


@pytest.mark.parametrize("limit", [False, True], ids=["dup", "descriptor-limit"])
@pytest.mark.parametrize("blocking", [True, False], ids=["blocking", "nonblocking"])
@pytest.mark.parametrize("qdisc", [False, True], ids=["fast", "slow"])
def test_many_threads_each_datagram_once(
    net: Net, own_peer: testing.Peer, port: int, blocking: bool, qdisc: bool, limit: bool
) -> None:

    filler: list[int] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if qdisc:
        slow_link(own_peer.host_if, "20mbit", "5s")
    groups = [f"239.211.0.{i + 1}" for i in range(4)]
    accepted: list[bytes] = []
    lock = threading.Lock()
    errors: collections.Counter[str] = collections.Counter()
    cap = Capture(own_peer)
    try:
        with me.McastTxSocket(socket.AF_INET, groups, iface=own_peer.host_if) as tx:
            tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            tx.setblocking(blocking)

            def one(k: int) -> None:
                for i in range(300):
                    p = b"s%d-%d" % (k, i) + b"." * 400
                    while True:
                        try:
                            tx.sendto(p, (groups[i % 4], port))
                        except BlockingIOError:
                            continue
                        except BaseException as exc:
                            errors[repr(exc)] += 1
                            break
                        with lock:
                            accepted.append(p)
                        break

            def batch(k: int) -> None:
                items = [(b"b%d-%d" % (k, i) + b"." * 400, (groups[i % 4], port)) for i in range(300)]
                done = 0
                while done < len(items):
                    try:
                        n = tx.send_batch(items[done:])
                    except BaseException as exc:
                        errors[repr(exc)] += 1
                        break
                    with lock:
                        accepted.extend(d for d, _a in items[done : done + n])
                    done += n

            threads = [threading.Thread(target=one, args=(k,)) for k in range(6)]
            threads += [threading.Thread(target=batch, args=(k,)) for k in range(6)]
            if limit:
                use_up_descriptors(filler, hard)
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            for fd in filler:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        frames = collections.Counter(f.payload for f in cap.drain(1.5) if f.dport == port)
    finally:
        cap.close()
    assert errors == {}, errors
    want = collections.Counter(accepted)
    assert len(accepted) == 3600
    dup = {p: n for p, n in frames.items() if n > 1}
    lost = want - frames
    extra = frames - want
    assert not dup and not lost and not extra, (len(dup), len(lost), len(extra))


@pytest.mark.parametrize("limit", [False, True], ids=["dup", "descriptor-limit"])
def test_nonblocking_full_buffer_as_readme_says(
    net: Net, own_peer: testing.Peer, port: int, limit: bool
) -> None:
    """README: non-blocking, a send that finds the buffer full raises BlockingIOError, and
    send_batch returns how many went out."""

    slow_link(own_peer.host_if, "1mbit", "5s")
    group = "239.213.0.1"
    filler: list[int] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with me.McastTxSocket(socket.AF_INET, [group], iface=own_peer.host_if) as tx:
            tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            tx.setblocking(False)
            tx.sendto(b"w", (group, port))
            tx.send_batch([(b"w", (group, port))])
            if limit:
                use_up_descriptors(filler, hard)
            n = tx.send_batch([(b"X" * 1000, (group, port))] * 200)
            assert 0 < n < 200
            assert tx.send_batch([(b"X" * 1000, (group, port))] * 5) == 0
            with pytest.raises(BlockingIOError):
                for _ in range(50):
                    tx.sendto(b"X" * 1000, (group, port))
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
