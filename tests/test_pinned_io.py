"""Reads and sends that pin their socket with a duplicate of its number, and their edges (found
by review; each test failed before its fix): a batch read at the descriptor limit still reads
(on the checked number, GIL held), a large pure-Python batch read racing a leave skips the unit,
a metadata batch never reads a number the program closed and another socket took, and a
send_batch of several sendmmsg calls never goes out through a socket that took the number of
the closed McastTxSocket.

Live, in the session's private namespace (the ``net`` fixture); both ways.
"""

from __future__ import annotations

import errno
import os
import resource
import socket
import threading
import time
from typing import Any

import pytest
from helpers import V4, Net, run_for_a_while

import multicast_expert as me
from multicast_expert._platform import _mmsg

LO4 = "127.0.0.1"


def _fill_fds() -> tuple[list[int], tuple[int, int]]:
    """Use up every descriptor (soft limit lowered near the highest in use); returns the fillers
    and the old limits."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = max(int(x) for x in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (top + 20, old[1]))
    fillers: list[int] = []
    try:
        while True:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        assert exc.errno == errno.EMFILE
    return fillers, old


def _unfill(fillers: list[int], old: tuple[int, int]) -> None:
    for fd in fillers:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, old)


@pytest.mark.parametrize("groups", [1, 2])
def test_recv_batch_with_no_spare_descriptor_still_reads_what_is_queued(
    net: Net, port: int, groups: int
) -> None:
    """recv_batch()'s default (64 x 65535 bytes) is a large recvmmsg, which reads a duplicate of
    the descriptor: with the process at its descriptor limit the duplicate fails, and recv_batch
    raised EMFILE although datagrams were queued. It now reads the checked number itself, with
    the GIL held, as a small read does."""
    names = [f"239.185.1.{i + 1}" for i in range(groups)]
    with (
        me.McastRxSocket(V4, names, port, iface_ip=LO4, timeout=0) as rx,
        me.McastTxSocket(V4, names, LO4) as tx,
    ):
        assert rx.recv_batch() == []  # (makes the poller: a wait needs no new descriptor later)
        for g in names:
            tx.sendto(b"queued", (g, port))
        time.sleep(0.2)
        fillers, old = _fill_fds()
        try:
            got: Any = rx.recv_batch()
        except OSError as exc:
            got = exc
        finally:
            _unfill(fillers, old)
        assert not isinstance(got, OSError), f"recv_batch() raised {got!r} with {groups} datagram(s) queued"
        assert [p.payload for p in got] == [b"queued"] * groups


def test_a_large_pure_python_batch_read_racing_a_leave_skips_the_unit(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ctypes share (called directly: it is the pure-Python one in both modes): a unit found
    live at the top of its turn is left by another thread before its large read duplicates the
    number (a thread switch there). The duplicate failed with EBADF, which escaped the share;
    now the check after the duplicate skips the unit, and the other group's datagram is read."""
    a, b = "239.185.2.1", "239.185.2.2"
    with (
        me.McastRxSocket(V4, [a, b], port, iface_ip=LO4, timeout=0) as rx,
        me.McastTxSocket(V4, [a, b], LO4) as tx,
    ):
        assert rx.recv_batch() == []
        tx.sendto(b"to-a", (a, port))
        tx.sendto(b"to-b", (b, port))
        time.sleep(0.2)
        real = _mmsg._pinned_read
        fired: list[int] = []

        def other_thread_leaves_first(unit: Any, *args: Any) -> Any:
            if not fired:
                fired.append(1)
                t = threading.Thread(target=rx.leave_group, args=(unit.group,))
                t.start()
                t.join()
            return real(unit, *args)

        monkeypatch.setattr(_mmsg, "_pinned_read", other_thread_leaves_first)
        units = sorted(rx._members.all_units(), key=lambda u: u.group)
        got: list[me.McastPacket] = []
        _mmsg.recv_share(65535, me.McastPacket, units, 0, 64, got, rx._engine._gone)
        monkeypatch.setattr(_mmsg, "_pinned_read", real)
        assert fired
        assert [(p.group, p.payload) for p in got] == [(b, b"to-b")]


def test_send_batch_never_sends_through_a_number_reused_after_close(net: Net, port: int) -> None:
    """send_batch releases the GIL around every sendmmsg (chunks of 1024; pure Python: Python
    code runs between them too): another thread's close() and a new socket on the same number
    between two chunks made the rest of the batch go out through that new socket. Now every
    chunk goes through a duplicate of the number made (and checked) first."""
    group, other_port = "239.185.3.1", port + 1000
    batch = [(b"x", (group, port))] * 4000
    recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    recv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    recv.bind((group, port))
    recv.setsockopt(
        socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton(LO4)
    )
    recv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    recv.setblocking(False)
    stop = threading.Event()
    seen: list[Any] = []
    bad: list[str] = []
    holder: list[Any] = [None]
    lock = threading.Lock()

    def sender() -> None:
        while not stop.is_set():
            tx = me.McastTxSocket(V4, [group], LO4)
            tx.open()
            holder[0] = tx
            try:
                tx.send_batch(batch)
            except (OSError, me.MulticastExpertError):
                pass  # (closed under it: SocketClosedError, or the OS's error)
            except Exception as exc:  # (an AssertionError escaped here once: collected)
                bad.append(repr(exc))
            with lock:
                if tx.is_opened:
                    tx.close()

    def closer() -> None:
        while not stop.is_set():
            tx = holder[0]
            if tx is None:
                continue
            with lock:
                if not tx.is_opened:
                    continue
                tx.close()
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LO4))
            s.bind((LO4, other_port))
            time.sleep(0.002)
            s.close()

    def drain() -> None:
        while not stop.is_set():
            try:
                _data, src = recv.recvfrom(100)
            except BlockingIOError:
                time.sleep(0.0005)
                continue
            if src[1] == other_port:
                seen.append(src)
                stop.set()

    run_for_a_while(stop, sender, closer, drain)
    recv.close()
    assert not seen, f"datagrams of a closed McastTxSocket went out through another socket: {seen[:3]}"
    assert not bad, bad[:3]


def test_a_metadata_batch_never_reads_a_number_the_program_closed_and_another_socket_took(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """recv_batch with metadata reads through _mmsg.recv_many, one recvmmsg per 64 slots (65535-byte
    datagrams). The program closing the socket (one of rx.sockets) between two calls (a thread
    switch in recv_many's loop) and a new socket taking the number: the second call read the new
    socket's datagram and labelled it with the group; each call now checks the unit's socket is
    still on its number first."""
    group = "239.185.4.1"
    other_port = port + 1000
    with (
        me.McastRxSocket(V4, [group], port, iface_ip=LO4, timeout=0, recv_ttl=True) as rx,
        me.McastTxSocket(V4, [group], LO4) as tx,
    ):
        assert rx.recv_batch(128) == []
        tx.send_batch([(b"ours", (group, port))] * 64)
        time.sleep(0.2)
        real = _mmsg._recv_into
        calls: list[int] = []
        keep: list[socket.socket] = []

        def program_closes_between_calls(bufs: Any, fd: int, *args: Any) -> Any:
            calls.append(fd)
            if len(calls) == 2:
                rx.sockets[0].close()  # (the program, in another thread)
                intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                if intruder.fileno() != fd:
                    os.dup2(intruder.fileno(), fd)
                    intruder.close()
                    intruder = socket.socket(fileno=fd)
                intruder.bind((LO4, other_port))
                keep.append(intruder)
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(b"intruder", (LO4, other_port))
                time.sleep(0.05)
            return real(bufs, fd, *args)

        monkeypatch.setattr(_mmsg, "_recv_into", program_closes_between_calls)
        try:
            got = rx.recv_batch(128)
        except OSError:
            got = []
        monkeypatch.setattr(_mmsg, "_recv_into", real)
        for s in keep:
            s.close()
        assert len(calls) >= 2
        wrong = [p for p in got if p.payload == b"intruder"]
        assert not wrong, f"another socket's datagram labelled {wrong[0].group}: {wrong[0]}"


def test_the_duplicate_flag_is_the_oss() -> None:
    """_mmsg names F_DUPFD_CLOEXEC itself (Linux <linux/fcntl.h>; the module must import on any
    OS for type checks): the number the fcntl module has."""
    fcntl = pytest.importorskip("fcntl")
    assert fcntl.F_DUPFD_CLOEXEC == _mmsg.F_DUPFD_CLOEXEC
