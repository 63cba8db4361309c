"""The object a receive socket's OS socket is read through (``Unit.reader``): made on first need,
once even when several threads ask at the same moment, let go of with its unit, never made for a
closed one; opening and closing a socket makes none, nor does reading with the C accelerator."""

from __future__ import annotations

import errno
import gc
import socket
import threading
import warnings
from typing import ClassVar

import pytest
from helpers import V4, V6, Net

import multicast_expert as me
from multicast_expert import _platform
from multicast_expert._unit import Unit


class _Counting(socket.socket):
    """A real socket class that counts the socket objects made on an existing descriptor."""

    on_fd: ClassVar[list[int]] = []

    def __init__(self, family: int = -1, kind: int = -1, proto: int = -1, fileno: int | None = None) -> None:
        if fileno is not None:
            _Counting.on_fd.append(fileno)
        super().__init__(family, kind, proto, fileno)


def only_unit(rx: me.McastRxSocket) -> Unit:
    (unit,) = rx._members.all_units()
    return unit


@pytest.mark.parametrize(("family", "group"), [(V4, "239.141.0.1"), (V6, "ff15::141:1")])
def test_the_reader_is_made_once_for_threads_asking_together_and_let_go_with_its_unit(
    net: Net, port: int, family: int, group: str
) -> None:
    rx = me.McastRxSocket(family, [group], port, iface="lo")
    rx.open()
    unit = only_unit(rx)
    assert not unit.made  # (opening made none)
    start = threading.Barrier(8)
    got: list[socket.socket] = []

    def ask() -> None:
        start.wait()
        got.append(unit.reader)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(got) == 8 and all(r is got[0] for r in got)
    reader = got[0]
    assert unit.made and unit.reader is reader
    if _platform.IO.DONTWAIT:  # a second object on the same descriptor, never waiting itself
        assert reader is not unit.sock
        assert reader.fileno() == unit.fd and reader.gettimeout() is None and reader.family == family
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        rx.close()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert reader.fileno() == -1 and unit.sock.fileno() == -1  # let go of, and the socket closed


def test_no_reader_is_made_for_a_closed_unit(net: Net, port: int) -> None:
    rx = me.McastRxSocket(V4, ["239.141.1.1"], port, iface="lo")
    rx.open()
    unit = only_unit(rx)
    rx.close()
    with pytest.raises(OSError) as raised:
        unit.reader  # noqa: B018  (the access is the test)
    assert raised.value.errno == errno.EBADF and "239.141.1.1" in str(raised.value)
    assert not unit.made
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        unit.nothing  # noqa: B018  (other names: a plain AttributeError)


def test_open_and_close_make_no_second_socket_object_and_reads_make_at_most_one(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = "239.141.2.1"
    monkeypatch.setattr(socket, "socket", _Counting)
    monkeypatch.setattr(_Counting, "on_fd", [])
    with me.McastRxSocket(V4, [group], port, iface="lo", timeout=0) as rx:
        assert _Counting.on_fd == []  # opening made none
        with me.McastTxSocket(V4, [group], iface="lo") as tx:
            for n in range(3):
                tx.sendto(b"x%d" % n, (group, port))
            rx.settimeout(2)
            assert [rx.recv(), rx.recv_packet(), rx.recvfrom()] != [None] * 3
        fd = rx.filenos()[0]
        made = [n for n in _Counting.on_fd if n == fd]  # (the sending socket makes its own)
    if _platform.IO.recv_unit is not None:  # the C accelerator reads the descriptor itself
        assert made == []
    else:
        assert made == [fd]  # one reader, made by the first read, used by the next ones
    assert [n for n in _Counting.on_fd if n == fd] == made  # closing made none


def test_a_user_timeout_set_before_the_first_read_is_not_the_readers(net: Net, port: int) -> None:
    """The reader is made after the program may have changed the exposed socket: it takes none of
    its timeout (a timeout 0 receive then finds nothing at once instead of raising TimeoutError
    after the OS socket's long wait)."""
    with me.McastRxSocket(V4, ["239.141.3.1"], port, iface="lo", timeout=0) as rx:
        rx.sockets[0].settimeout(30.0)
        assert rx.recv() is None and rx.recv_packet() is None
        unit = only_unit(rx)
        if unit.made:  # (pure Python reads through it; the accelerator needs none)
            assert unit.reader.gettimeout() is None
        assert rx.sockets[0].gettimeout() == 30.0
