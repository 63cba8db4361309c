"""Networks that change under an open receiver: interfaces that come and go (follow_interfaces,
refresh_interfaces), interfaces that can't join, and the descriptor limit. Live, in private
namespaces: every interface added or removed here is a peer link of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import subprocess
import sys
import threading
import time
import warnings

import pytest
from helpers import V4, V6, Net, drain, open_fds, send_from_peer

import multicast_expert as me
from multicast_expert import interfaces, testing


def wait_for(predicate: object, limit: float = 3.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("family", [V4, V6])
def test_follow_interfaces_joins_a_new_interface_and_drops_a_gone_one(
    net: Net, port: int, family: int
) -> None:
    group = "239.120.0.1" if family == V4 else "ff15::120"
    interfaces.rescan_interfaces()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rx = me.McastRxSocket(family, [group], port, follow_interfaces=True, timeout=0.2)
    with rx:
        names = {i.machine_name for i in rx.network_interfaces}
        assert names == {net.a.host_if, net.b.host_if}
        got: list[me.McastPacket] = []
        stop = threading.Event()

        def receive() -> None:  # a receiver already waiting when the interface appears
            while not stop.is_set():
                p = rx.recv_packet()
                if p is not None:
                    got.append(p)

        t = threading.Thread(target=receive)
        t.start()
        try:
            peer = testing.Peer(170 + (family == V6))
            try:
                assert wait_for(lambda: peer.host_if in {i.machine_name for i in rx.network_interfaces})
                send_from_peer(peer, family, group, port, [b"from the new interface"])
                assert wait_for(lambda: any(p.payload == b"from the new interface" for p in got))
                arrived = next(
                    p for p in got if isinstance(p, me.McastPacket) and p.payload == b"from the new interface"
                )
                assert arrived.iface_index == next(
                    i.index for i in rx.network_interfaces if i.machine_name == peer.host_if
                )
            finally:
                peer.close()
            assert wait_for(lambda: peer.host_if not in {i.machine_name for i in rx.network_interfaces})
            send_from_peer(net.a, family, group, port, [b"old interfaces still work"])
            assert wait_for(lambda: any(p.payload == b"old interfaces still work" for p in got))
        finally:
            stop.set()
            t.join(2)
    interfaces.rescan_interfaces()


def test_refresh_interfaces_without_following(net: Net, port: int) -> None:
    with me.McastRxSocket(V4, ["239.121.0.1"], port, timeout=0.3) as rx:
        before = {i.machine_name for i in rx.network_interfaces}
        peer = testing.Peer(172)
        try:
            assert {i.machine_name for i in rx.network_interfaces} == before  # fixed until asked
            rx.refresh_interfaces()
            assert peer.host_if in {i.machine_name for i in rx.network_interfaces}
            send_from_peer(peer, V4, "239.121.0.1", port, [b"after refresh"])
            assert rx.recv() == b"after refresh"
        finally:
            peer.close()
        rx.refresh_interfaces()
        assert {i.machine_name for i in rx.network_interfaces} == before
    with me.McastRxSocket(V4, ["239.121.0.2"], port, iface=net.a.host_if) as named:
        named.refresh_interfaces()  # named interfaces stay the same ones
        assert [i.machine_name for i in named.network_interfaces] == [net.a.host_if]
    with pytest.raises(me.MulticastExpertError, match="closed"):
        named.refresh_interfaces()
    interfaces.rescan_interfaces()


def test_default_set_skips_an_interface_that_cannot_join(net: Net, port: int) -> None:
    peer = testing.Peer(173)
    interfaces.rescan_interfaces()
    rx = me.McastRxSocket(V4, ["239.122.0.1"], port, timeout=0.5)  # the interface list includes the peer
    peer.close()  # ... which is now gone: joining there fails with ENODEV
    before = open_fds()
    with pytest.warns(RuntimeWarning, match=f"skipping interface {peer.host_if}"):
        rx.open()
    with contextlib.closing(rx):
        assert (
            peer.host_if in rx.skipped_interfaces
            and "no longer exists" in rx.skipped_interfaces[peer.host_if]
        )
        assert peer.host_if not in {i.machine_name for i in rx.network_interfaces}
        send_from_peer(net.a, V4, "239.122.0.1", port, [b"others work"])
        assert rx.recv() == b"others work"
    assert open_fds() == before
    # A named interface that can't join still fails the whole open, leaving nothing behind.
    gone = testing.Peer(174)
    interfaces.rescan_interfaces()
    named = me.McastRxSocket(V4, ["239.122.0.2"], port, ifaces=[net.a.host_if, gone.host_if])
    gone.close()
    with pytest.raises(me.MulticastExpertError, match="no longer exists"):
        named.open()
    assert open_fds() == before
    interfaces.rescan_interfaces()


@pytest.mark.parametrize("count", [2000, 10000])
def test_thousands_of_groups_under_the_default_soft_limit(net: Net, port: int, count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    groups = [f"239.{130 + i // 250}.{i % 250}.1" for i in range(count)]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rx = me.McastRxSocket(V4, groups, port, iface="lo", timeout=0.5)
            rx.open()
        with contextlib.closing(rx):
            new_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            assert new_soft > count
            raised = [w for w in caught if "RLIMIT_NOFILE" in str(w.message)]
            assert len(raised) <= 1 and all("raise_fd_limit=False" in str(w.message) for w in raised)
            sent = [groups[0], groups[count // 2], groups[-1]]
            with me.McastTxSocket(V4, sent, iface="lo") as tx:
                for g in sent:
                    tx.sendto(g.encode(), (g, port))
            assert sorted(p.group for p in drain(rx, 10)) == sorted(sent)  # the first receive works too
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_hard_limit_reached_names_the_limits(net: Net) -> None:
    """In a child process whose hard limit is low (lowering it here could not be undone)."""
    program = (
        "import multicast_expert as me\n"
        "rx = me.McastRxSocket(2, "
        "[f'239.140.0.{i}' for i in range(1, 200)], 5000, iface='lo')\n"
        "try:\n"
        "    rx.open()\n"
        "except me.MulticastExpertError as exc:\n"
        "    print('ERROR', exc)\n"
        "print('OPEN' if rx.is_opened else 'CLOSED')\n"
    )
    res = subprocess.run(
        ["sh", "-c", f'ulimit -n 64 && ulimit -Hn 64 && exec {sys.executable} -c "$0"', program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "ERROR" in res.stdout, res.stdout + res.stderr
    assert "hard limit 64" in res.stdout and "ulimit -Hn" in res.stdout
    assert res.stdout.rstrip().endswith("CLOSED")


def test_asyncio_socket_follows_interfaces(net: Net, port: int) -> None:
    async def main() -> bytes:
        async with me.AsyncMcastRxSocket(V4, ["239.123.0.1"], port, follow_interfaces=True, timeout=3) as rx:
            waiting = asyncio.ensure_future(rx.recv())
            await asyncio.sleep(0.05)
            peer = testing.Peer(175)
            try:
                for _ in range(100):  # until the socket has joined on the new link
                    if peer.host_if in {i.machine_name for i in rx.sync_socket.network_interfaces}:
                        break
                    await asyncio.sleep(0.02)
                await asyncio.to_thread(send_from_peer, peer, V4, "239.123.0.1", port, [b"async new link"])
                return await waiting
            finally:
                peer.close()

    interfaces.rescan_interfaces()
    assert asyncio.run(main()) == b"async new link"
    interfaces.rescan_interfaces()
