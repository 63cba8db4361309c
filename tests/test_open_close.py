"""Opening and closing receive sockets: the flat open of plain sockets (no undo stack) leaves
nothing behind whatever fails where, makes the same system calls as the general path, and the
cheap checks (socket plans, interface lookups, the descriptor limit) stay correct."""

from __future__ import annotations

import contextlib
import errno
import gc
import ipaddress
import logging
import resource
import socket
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from helpers import V4, V6, Net, open_fds

import multicast_expert as me
from multicast_expert import _fork_locks, _platform, _warn, interfaces, testing
from multicast_expert._platform import _posix, linux

IP_ADD_MEMBERSHIP = 35  # <linux/in.h>


def joined_here(groups: list[str]) -> set[tuple[str, str]]:
    """(interface, group) pairs of ``groups`` that this namespace's kernel lists as joined."""
    held = _platform.HOST.memberships()
    assert held is not None
    return {(dev, g) for dev, g in held if g in groups}


def blocker(group: str, port: int, device: str | None = None) -> socket.socket:
    """A socket bound to ``(group, port)`` without SO_REUSEADDR: binding there again fails with
    EADDRINUSE (only for sockets tied to ``device`` when it is given)."""
    s = socket.socket(V4, socket.SOCK_DGRAM)
    if device is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
    s.bind((group, port))
    return s


def failed_open(
    sock: me.McastRxSocket | me.McastTxSocket, kind: type[BaseException], match: str | None = None
) -> tuple[str, Any]:
    """Open ``sock``, which must raise ``kind``; returns the error's text and errno. Fails if a socket
    object was dropped still holding its descriptor (a reader not let go, say): its destructor
    would close a descriptor number that may belong to someone else by then."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(kind, match=match) as raised:
            sock.open()
        text, code = str(raised.value), getattr(raised.value, "errno", None)
        del raised  # (its traceback holds the frames, and so every object they held)
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert unclosed == []
    return text, code


def test_plain_open_failing_midway_leaves_nothing(net: Net, port: int) -> None:
    groups = [f"239.140.0.{i}" for i in range(1, 6)]
    with contextlib.closing(blocker(groups[3], port)):
        before = open_fds()
        rx = me.McastRxSocket(V4, groups, port, iface="lo")
        text, code = failed_open(rx, me.MulticastOSError, "did not set SO_REUSEADDR")
        assert code == errno.EADDRINUSE and f"Joining {groups[3]} on lo" in text
        assert open_fds() == before
        assert not rx.is_opened and rx.sockets == [] and rx.filenos() == []
        assert joined_here(groups) == set()  # no half-joined group
    with rx:  # the same object opens once the address is free
        assert len(rx.sockets) == 5
        assert joined_here(groups) == {("lo", g) for g in groups}
    assert joined_here(groups) == set()
    assert open_fds() == before - 1  # (the blocker is closed too)


def test_plain_open_failing_on_the_second_interface_closes_the_first(net: Net, port: int) -> None:
    groups = ["239.140.1.1", "239.140.1.2"]
    with contextlib.closing(blocker(groups[1], port, device=net.b.host_if)):
        before = open_fds()
        for kwargs in ({"ifaces": ["lo", net.b.host_if]}, {}):  # named, then the default set
            rx = me.McastRxSocket(V4, groups, port, **kwargs)  # type: ignore[arg-type]
            # (EADDRINUSE is no reason to skip an interface of the default set)
            failed_open(rx, me.MulticastOSError, f"Joining {groups[1]} on {net.b.host_if}")
            assert open_fds() == before
            assert joined_here(groups) == set()
            assert not rx.is_opened


class _Refusing(linux.LinuxMulticast):
    """Linux, but prepare_rx raises a new ``kind`` for the ``when``-th socket."""

    def __init__(self, when: int, kind: type[BaseException]) -> None:
        self.calls, self.when, self.kind = 0, when, kind

    def prepare_rx(self, sock: socket.socket, plan: Any) -> None:
        self.calls += 1
        if self.calls == self.when:
            raise self.kind("refused by the test")
        super().prepare_rx(sock, plan)


@pytest.mark.parametrize("kind", [RuntimeError, KeyboardInterrupt])
def test_any_exception_midway_leaves_nothing(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch, kind: type[BaseException]
) -> None:
    groups = [f"239.140.2.{i}" for i in range(1, 5)]
    before = open_fds()
    ops = _Refusing(3, kind)
    monkeypatch.setattr(_platform, "OPS", ops)
    rx = me.McastRxSocket(V4, groups, port, ifaces=["lo", net.a.host_if])
    failed_open(rx, kind)
    assert ops.calls == 3
    assert open_fds() == before
    assert joined_here(groups) == set()
    assert not rx.is_opened


class _FailingJoin(socket.socket):
    """A socket whose ``n``-th IP_ADD_MEMBERSHIP fails with ENOBUFS (as a full per-socket table)."""

    joins = 0
    fail_at = 0

    def setsockopt(self, level: int, opt: int, value: Any, *rest: Any) -> None:
        if level == socket.IPPROTO_IP and opt == IP_ADD_MEMBERSHIP:
            _FailingJoin.joins += 1
            if _FailingJoin.joins == _FailingJoin.fail_at:
                raise OSError(errno.ENOBUFS, "No buffer space available")
        super().setsockopt(level, opt, value, *rest)


def test_a_join_refused_after_bind_is_worded_and_leaves_nothing(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = [f"239.140.3.{i}" for i in range(1, 5)]
    before = open_fds()
    monkeypatch.setattr(_FailingJoin, "joins", 0)
    monkeypatch.setattr(_FailingJoin, "fail_at", 3)
    monkeypatch.setattr(socket, "socket", _FailingJoin)
    rx = me.McastRxSocket(V4, groups, port, iface="lo")
    text, code = failed_open(rx, me.MulticastOSError, r"net\.ipv4\.igmp_max_memberships")
    assert code == errno.ENOBUFS and f"Joining {groups[2]} on lo" in text
    monkeypatch.undo()
    assert open_fds() == before
    assert joined_here(groups) == set()


class _Recording(socket.socket):
    """A real socket that logs its setsockopt and bind calls (not its descriptor numbers)."""

    log: ClassVar[list[tuple[Any, ...]]] = []

    def setsockopt(self, level: int, opt: int, value: Any, *rest: Any) -> None:
        _Recording.log.append(("setsockopt", level, opt, value))
        super().setsockopt(level, opt, value, *rest)

    def bind(self, address: Any) -> None:
        _Recording.log.append(("bind", address))
        super().bind(address)


@pytest.mark.parametrize(
    ("family", "group", "lo_ip"), [(V4, "239.140.4.1", "127.0.0.1"), (V6, "ff15::140:1", "::1")]
)
def test_flat_and_general_paths_make_the_same_calls(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch, family: int, group: str, lo_ip: str
) -> None:
    monkeypatch.setattr(socket, "socket", _Recording)
    monkeypatch.setattr(_Recording, "log", [])
    with me.McastRxSocket(family, [group], port, iface=lo_ip):  # plain: the flat path
        pass
    flat = list(_Recording.log)
    _Recording.log.clear()
    with me.McastRxSocket(family, [group], port, iface=lo_ip, recv_ttl=True):  # the general path
        pass
    ttl = _platform.OPS.OPTIONS[(_platform.Concern.RECV_TTL, family)]
    general = [c for c in _Recording.log if c[1:3] != (ttl.level, ttl.name)]
    assert len(general) == len(_Recording.log) - 1  # (exactly the one metadata option more)
    assert flat == general
    assert flat[0] == ("setsockopt", socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    assert ("setsockopt", socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo") in flat
    assert [c[0] for c in flat][-2:] == ["bind", "setsockopt"]  # bind, then the join


def test_socket_plans_are_reused_and_follow_the_interface_address() -> None:
    ops = _platform.OPS
    one = ops.cached_rx_plan(V4, "239.140.5.1", 6000, 7, "eth7", "198.18.7.1", False)
    assert ops.cached_rx_plan(V4, "239.140.5.1", 6000, 7, "eth7", "198.18.7.1", False) is one
    moved = ops.cached_rx_plan(V4, "239.140.5.1", 6000, 7, "eth7", "198.18.7.2", False)
    assert moved is not one
    # Linux: ip_mreqn (group, interface address, index) names the new address.
    assert one.join is not None and moved.join is not None
    assert one.join[2] == bytes([239, 140, 5, 1, 198, 18, 7, 1, 7, 0, 0, 0])
    assert moved.join[2] == bytes([239, 140, 5, 1, 198, 18, 7, 2, 7, 0, 0, 0])
    assert one.address == ("239.140.5.1", 6000) and one.device == (socket.SOL_SOCKET, 25, b"eth7")
    assert one.target.group == "239.140.5.1" and one.target.ifindex == 7
    other_os = _platform.select_os("win32")  # (each OS's table builds its own plans)
    win = other_os.cached_rx_plan(V4, "239.140.5.1", 6000, 7, "eth7", "198.18.7.1", False)
    assert win.address == ("198.18.7.1", 6000) and win.device is None


def test_open_close_cycles_leave_no_descriptor_and_close_every_socket(net: Net, port: int) -> None:
    before = open_fds()
    for kwargs in ({"iface": "lo"}, {}):
        for _ in range(20):
            rx = me.McastRxSocket(V4, ["239.140.6.1", "239.140.6.2"], port, **kwargs)  # type: ignore[arg-type]
            rx.open()
            socks = rx.sockets
            assert socks and all(s.fileno() >= 0 for s in socks)
            rx.close()
            assert all(s.fileno() == -1 for s in socks)  # closed, not merely forgotten
            assert rx.sockets == [] and not rx.is_opened
    assert open_fds() == before
    assert joined_here(["239.140.6.1", "239.140.6.2"]) == set()


def test_debug_line_per_os_socket_and_nothing_when_disabled(
    net: Net, port: int, caplog: pytest.LogCaptureFixture
) -> None:
    groups = ["239.140.7.1", "239.140.7.2"]
    with caplog.at_level(logging.DEBUG, logger="multicast_expert.rx"):
        with me.McastRxSocket(V4, groups, port, iface="lo") as rx:
            fds = rx.filenos()
        opened = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
        assert opened == [
            f"opened fd {fd}: {g} port {port} on lo (index 1), any source"
            for fd, g in zip(fds, groups, strict=True)
        ]
        assert any(r.levelno == logging.INFO and "['lo']" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="multicast_expert.rx"),
        me.McastRxSocket(V4, groups, port, iface="lo"),
    ):
        pass
    assert caplog.records == []


def test_small_opens_reuse_the_soft_limit_seen_last(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = []
    real = resource.getrlimit

    def counting(which: int) -> tuple[int, int]:
        reads.append(which)
        return real(which)

    monkeypatch.setattr(resource, "getrlimit", counting)
    monkeypatch.setattr(_posix, "_soft_seen", None)
    assert _posix.posix_fd_room(3, cached=True) is None
    assert len(reads) == 1  # (nothing seen yet: read)
    assert _posix.posix_fd_room(3, cached=True) is None
    assert len(reads) == 1  # small, and allowed to trust the last reading
    _posix.posix_fd_room(3)
    assert len(reads) == 2  # not allowed: read
    _posix.posix_fd_room(3, cached=True, force=True)
    assert len(reads) == 3  # after an EMFILE: always read
    soft = real(resource.RLIMIT_NOFILE)[0]
    _posix.posix_fd_room(soft, cached=True)
    assert len(reads) == 4  # a large request: read


def test_a_stale_soft_limit_still_opens_by_retrying_after_emfile(
    net: Net, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = [f"239.140.8.{i}" for i in range(1, 31)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    monkeypatch.setattr(_posix, "_soft_seen", 10**6)  # seen long ago; the program has lowered it since
    monkeypatch.setattr(_warn, "_warned_fd_limit", False)
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_fds() + 8, hard))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rx = me.McastRxSocket(V4, groups, port, iface="lo")
            rx.open()
        with contextlib.closing(rx):
            assert len(rx.sockets) == len(groups)
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > len(groups)
            assert any("RLIMIT_NOFILE" in str(w.message) for w in caught)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def scan_after() -> Iterator[None]:
    yield
    interfaces.rescan_interfaces()


def test_interface_lookups_are_remembered_per_scan_only(own_peer: testing.Peer, scan_after: None) -> None:
    name = own_peer.host_if
    first = interfaces.resolve_iface(name, V4)
    assert interfaces.resolve_iface(name, V4) is first  # remembered within the scan
    testing.ip("addr", "add", "198.18.140.1/24", "dev", name)
    assert interfaces.resolve_iface(name, V4) is first  # (a lookup does not rescan, as before)
    interfaces.rescan_interfaces()
    again = interfaces.resolve_iface(name, V4)
    assert again is not first
    assert ipaddress.IPv4Interface("198.18.140.1/24") in again.ip4_addrs
    assert interfaces.resolve_iface(ipaddress.IPv4Address("198.18.140.1"), V4) is again


def test_an_interface_without_the_family_is_refused_every_time(scan_after: None) -> None:
    lo = interfaces.find_interface("lo")
    bare = me.IfaceInfo("lo", lo.index, None, lo.ip4_addrs, ())  # lo, as if it had no IPv6 address
    for _ in range(2):
        with pytest.raises(me.MulticastExpertError, match="has no AF_INET6 address"):
            interfaces.resolve_iface(bare, V6)


def test_default_interface_list_is_a_fresh_list_and_follows_rescans(
    own_peer: testing.Peer, scan_after: None
) -> None:
    first = interfaces.listenable_interfaces(V4)
    assert own_peer.host_if in {i.machine_name for i in first}
    first.clear()
    assert interfaces.listenable_interfaces(V4) != []  # the caller's list was a copy
    own_peer.close()
    assert own_peer.host_if in {i.machine_name for i in interfaces.listenable_interfaces(V4)}  # same scan
    interfaces.rescan_interfaces()
    assert own_peer.host_if not in {i.machine_name for i in interfaces.listenable_interfaces(V4)}


def test_constructor_fast_checks_keep_values_and_errors(net: Net) -> None:
    rx = me.McastRxSocket(
        V4, ("239.140.9.1", "239.140.9.1", ipaddress.IPv4Address("239.140.9.2")), 5000, iface="lo"
    )
    assert rx.addr_family is V4 and rx.mcast_ips == ["239.140.9.1", "239.140.9.2"]
    plain_int = me.McastRxSocket(2, ["239.140.9.1"], 5000, iface="lo")
    assert plain_int.addr_family == 2 and type(plain_int.addr_family) is int
    zero: Any = 0  # (0 and 1 are accepted as False and True, as check_bool documents)
    one: Any = 1
    assert (
        me.McastRxSocket(V4, ["239.140.9.1"], 5000, iface="lo", raise_fd_limit=zero)._members.raise_fd_limit
        is False
    )
    assert me.McastRxSocket(
        V4, ["239.140.9.1"], 5000, iface="lo", enable_external_loopback=one
    ).enable_external_loopback
    with pytest.raises(TypeError, match=r"addr_family must be socket.AF_INET or socket.AF_INET6, not \[\]"):
        me.McastRxSocket([], ["239.140.9.1"], 5000, iface="lo")  # type: ignore[arg-type]
    with pytest.raises(me.MulticastExpertError, match="addr_family 7 is not supported"):
        me.McastRxSocket(7, ["239.140.9.1"], 5000, iface="lo")
    with pytest.raises(TypeError, match="port must be an int"):
        me.McastRxSocket(V4, ["239.140.9.1"], True, iface="lo")
    with pytest.raises(me.MulticastExpertError, match="port 0 would give each group"):
        me.McastRxSocket(V4, ["239.140.9.1"], 0, iface="lo")
    with pytest.raises(me.MulticastExpertError, match="port 70000 is out of range"):
        me.McastRxSocket(V4, ["239.140.9.1"], 70000, iface="lo")
    with pytest.raises(me.MulticastExpertError, match=r"mcast_ip 10\.0\.0\.1 is not a multicast address"):
        me.McastRxSocket(V4, ["239.140.9.1", "10.0.0.1"], 5000, iface="lo")  # the first one was seen before
    with pytest.raises(TypeError, match="mcast_ip must be a str or an ipaddress address, not list"):
        me.McastRxSocket(V4, ["239.140.9.1", ["239.140.9.2"]], 5000, iface="lo")  # type: ignore[list-item]
    with pytest.raises(TypeError, match="enable_external_loopback must be True or False"):
        me.McastRxSocket(V4, ["239.140.9.1"], 5000, iface="lo", enable_external_loopback="no")  # type: ignore[arg-type]
    with pytest.raises(me.MulticastExpertError, match="Both iface_ips and iface_ip may not be specified"):
        me.McastRxSocket(V4, ["239.140.9.1"], 5000, iface_ip="lo", iface="lo")


def test_send_socket_open_failing_on_the_second_interface_leaves_nothing(net: Net) -> None:
    source_port = 47_123
    taken = socket.socket(V4, socket.SOCK_DGRAM)  # no SO_REUSEADDR: the port is taken on b's address
    taken.bind((net.b.host_ip4, source_port))
    with contextlib.closing(taken):
        before = open_fds()
        tx = me.McastTxSocket(V4, ["239.140.10.1"], ifaces=["lo", net.b.host_if], source_port=source_port)
        text, code = failed_open(tx, me.MulticastOSError, "did not set SO_REUSEADDR")
        assert code == errno.EADDRINUSE
        assert text.startswith(f"Opening a multicast send socket on {net.b.host_if} (index ")
        assert open_fds() == before and tx.sockets == [] and not tx.is_opened
    with tx:  # once the port is free
        assert [s.getsockname() for s in tx.sockets] == [
            ("127.0.0.1", source_port),
            (net.b.host_ip4, source_port),
        ]
        assert [s.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) for s in tx.sockets] == [1, 1]
        assert tx.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1


def test_send_plans_are_reused_and_hold_every_option() -> None:
    ops = _platform.OPS
    plan = ops.cached_tx_plan(V4, "198.18.7.1", 7, "eth7", 5, True, 0)
    assert ops.cached_tx_plan(V4, "198.18.7.1", 7, "eth7", 5, True, 0) is plan
    assert plan.before == () and plan.address == ("198.18.7.1", 0)  # no source port: no SO_REUSEADDR
    assert plan.after == (
        (socket.IPPROTO_IP, socket.IP_MULTICAST_IF, bytes([0, 0, 0, 0, 198, 18, 7, 1, 7, 0, 0, 0])),
        (socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 5),
        (socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1),
    )
    v6 = ops.cached_tx_plan(V6, "fe80::1%eth7", 7, "eth7", 1, False, 5000)
    assert v6.before == ((socket.SOL_SOCKET, socket.SO_REUSEADDR, 1),)
    assert v6.address == ("fe80::1", 5000, 0, 7)  # the scope as the index
    assert v6.after[0] == (socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, 7)


def test_an_engine_is_listed_for_fork_handling_once_it_has_a_poller(net: Net, port: int) -> None:
    """Opening and closing does not list the engine (nothing to forget after a fork without a
    poller); the first need of a poller does, so a fork from then on drops the child's copy."""
    with me.McastRxSocket(V4, ["239.140.11.1"], port, iface="lo") as rx:
        assert rx._engine not in _fork_locks.pollers
        assert rx.fileno() >= 0  # (makes the poller)
        assert rx._engine in _fork_locks.pollers
