"""Regression tests for the Windows receive path (item 18), run as Windows CPython under Wine (see
scripts/check-windows): per-datagram metadata asked for where Windows has none, and fileno().

The docs promise that ``recv_ttl``, ``recv_tos`` and ``timestamps`` leave McastPacket's fields None
where the OS does not support them; on Windows both recv_packet and recv_batch raised "recvmsg
does not exist on Windows" instead. Whatever the metadata flags, the destination filter must still
apply: each datagram reported once, with the group it was sent to, and unicast to the interface
address and port never returned. ``fileno()`` was -1 while open; with one OS socket it is that
socket's, usable with select().
"""

from __future__ import annotations

import select
import socket
import time

import pytest

import multicast_expert as me

V4 = socket.AF_INET
PORTS = iter(range(42000, 43000))  # (test_windows_live.py uses 41000-41999)
#: The lane's link (scripts/check-windows): its address; it also holds the default route.
HOST_IP = "198.18.200.1"
META = ["recv_ttl", "recv_tos", "timestamps"]


def the_iface() -> me.IfaceInfo:
    (iface,) = [i for i in me.scan_interfaces() if any(str(a.ip) == HOST_IP for a in i.ip4_addrs)]
    return iface


def rx_with(meta: str, groups: list[str], port: int, iface: me.IfaceInfo) -> me.McastRxSocket:
    """A receive socket asking for ``meta`` ("all": every kind of metadata)."""
    wanted = set(META) if meta == "all" else {meta}
    return me.McastRxSocket(
        V4,
        groups,
        port,
        iface=iface,
        timeout=2,
        enable_external_loopback=True,
        recv_ttl="recv_ttl" in wanted,
        recv_tos="recv_tos" in wanted,
        timestamps="timestamps" in wanted,
    )


def send_unicast(port: int) -> None:
    with socket.socket(V4, socket.SOCK_DGRAM) as u:
        u.sendto(b"unicast", (HOST_IP, port))


@pytest.mark.parametrize("meta", [*META, "all"])
def test_recv_packet_with_metadata_flags_gives_none_fields(meta: str) -> None:
    port, groups = next(PORTS), ["239.215.0.1", "239.215.0.2"]
    iface = the_iface()
    with (
        rx_with(meta, groups, port, iface) as rx,
        me.McastTxSocket(V4, groups, iface=iface, enable_external_loopback=True) as tx,
    ):
        tx.sendto(b"to two", (groups[1], port))
        p = rx.recv_packet()  # today: OSError "recvmsg does not exist on Windows"
        assert p is not None and p.payload == b"to two" and p.group == groups[1]
        assert (p.ttl, p.tos, p.timestamp) == (None, None, None)
        assert p.iface_index == iface.index and p.src[0] == HOST_IP
        rx.settimeout(0.5)
        assert rx.recv_packet() is None  # reported once, not once per socket
        send_unicast(port)
        assert rx.recv_packet() is None  # the destination filter still applies


@pytest.mark.parametrize("meta", [*META, "all"])
def test_recv_batch_with_metadata_flags_gives_none_fields(meta: str) -> None:
    port, groups = next(PORTS), ["239.215.1.1", "239.215.1.2"]
    iface = the_iface()
    with (
        rx_with(meta, groups, port, iface) as rx,
        me.McastTxSocket(V4, groups, iface=iface, enable_external_loopback=True) as tx,
    ):
        sent = {b"one": groups[0], b"two": groups[1], b"three": groups[0]}
        for payload, g in sent.items():
            tx.sendto(payload, (g, port))
        send_unicast(port)
        time.sleep(0.2)
        got: list[me.McastPacket] = []
        deadline = time.monotonic() + 3
        while len(got) < len(sent) and time.monotonic() < deadline:
            got += rx.recv_batch(16)  # today: OSError "recvmsg does not exist on Windows"
        rx.settimeout(0.5)
        got += rx.recv_batch(16)  # anything more would be a duplicate or the unicast
        assert sorted(p.payload for p in got) == sorted(sent), [p.payload for p in got]
        assert all(p.group == sent[p.payload] for p in got), [(p.payload, p.group) for p in got]
        assert all((p.ttl, p.tos, p.timestamp) == (None, None, None) for p in got)


def test_fileno_is_usable_with_select_while_open() -> None:
    """With one OS socket, fileno() is that socket's descriptor while open, readable when a datagram
    is queued, and -1 once closed."""
    port, group = next(PORTS), "239.215.2.1"
    iface = the_iface()
    rx = me.McastRxSocket(V4, [group], port, iface=iface, timeout=0, enable_external_loopback=True)
    with rx, me.McastTxSocket(V4, [group], iface=iface, enable_external_loopback=True) as tx:
        fd = rx.fileno()
        assert fd != -1, "fileno() is -1 on an open socket"
        assert select.select([fd], [], [], 0)[0] == []
        tx.sendto(b"ready", (group, port))
        readable, _, _ = select.select([fd], [], [], 2)
        assert readable == [fd]
        assert rx.recv() == b"ready"
    assert rx.fileno() == -1


def test_several_groups_fileno_is_minus_one_and_filenos_serve_select() -> None:
    """As documented: Windows has no descriptor that stands for several sockets, so with two groups
    fileno() is -1 and select() watches filenos(); each group's socket turns readable for it."""
    port, groups = next(PORTS), ["239.215.3.1", "239.215.3.2"]
    iface = the_iface()
    with (
        me.McastRxSocket(V4, groups, port, iface=iface, timeout=0, enable_external_loopback=True) as rx,
        me.McastTxSocket(V4, groups, iface=iface, enable_external_loopback=True) as tx,
    ):
        assert rx.fileno() == -1
        fds = rx.filenos()
        assert len(fds) == 2
        for g in reversed(groups):
            tx.sendto(g.encode(), (g, port))
            readable, _, _ = select.select(fds, [], [], 2)
            assert readable, f"not readable after a datagram to {g}"
            p = rx.recv_packet()
            assert p is not None and p.group == g
            # (Under Wine each socket bound to the interface address may see the other group's
            # datagram too; the destination filter drops that copy, so nothing more comes.)
            assert rx.recv_packet() is None
