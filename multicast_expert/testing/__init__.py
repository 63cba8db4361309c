"""Private test networks for multicast code, on Linux: namespaces, veth links, peers.

Multicast code is hard to test without touching a real network. This module builds one that
exists only inside the calling process: :func:`enter_private_netns` moves the process into a new
network namespace holding only ``lo``; :class:`Peer` adds another namespace (a "host") linked to it
by a veth pair, with addresses from the benchmarking and documentation ranges 198.18.0.0/15 and
2001:db8::/32. Nothing is ever sent on the machine's own interfaces.

What is isolated, exactly (Linux places each *thread* in a network namespace, and a socket in
the namespace of the thread that created it):

- :func:`enter_private_netns` isolates the whole process: it refuses to run while any other
  thread exists, so every thread, and every socket any of them opens, is inside. Re-executed
  under ``unshare -rn`` (not root), the new process is inside from its first instruction.
- :func:`private_network` (and the ``mcast_network`` pytest fixture built on it) isolates the
  calling thread, and every thread that thread starts inside the block. Threads that already
  existed (a thread pool's workers started earlier, another test's helper thread) stay in the
  namespace they were in: their sockets reach that namespace's interfaces. It warns
  (``RuntimeWarning``, naming them) when such threads exist. Sockets opened inside the block stay
  in the private network after it ends (closing them is up to you).
- :meth:`Peer.run` runs a function on a new thread inside that peer's namespace.

Needs Linux, and root (or unprivileged user namespaces, with ``argv`` given to re-execute under
``unshare -rn``). Elsewhere :class:`NetnsError` says why.

Example::

    from multicast_expert import testing

    testing.enter_private_netns()          # call before starting any thread
    with testing.peers(1) as (host,):
        ...  # host.peer_ip4 is reachable over host.host_if; host.run(fn) runs fn inside it
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ..interfaces import namespace_changed
from ._netns import (
    CLONE_NEWNET,
    NetnsError,
    enter_private_netns,
    in_private_netns,
    libc,
    other_threads,
    quiet_ipv6,
)

# Internals this project's own tests and tools use; importable, but not part of the documented API.
from ._netns import MARKER_ENV as MARKER_ENV
from ._netns import finish_reexec as finish_reexec
from ._netns import ip as ip
from ._netns import setup_host_namespace as setup_host_namespace
from ._netns import sysctl as sysctl

_T = TypeVar("_T")


class Peer:
    """Another namespace (a 'host'), linked to this one by a veth pair.

    ``host_if`` is this namespace's end, ``peer_if`` the peer's; each gets ``/24`` and ``/64``
    addresses ``198.18.N.1`` / ``2001:db8:N::1`` (here) and ``.2`` / ``::2`` (there).

    Attributes:
        n: the peer's number N.
        host_if: this namespace's end of the veth pair (``mxvNh``).
        peer_if: the peer's end (``mxvNp``), where its default routes point.
        host_ip4: this end's IPv4 address (none on a bridged peer's host end).
        peer_ip4: the peer's IPv4 address.
        host_ip6: this end's IPv6 address.
        peer_ip6: the peer's IPv6 address.
        pid: a process inside the peer namespace (for ``nsenter -t PID -n``).
    """

    def __init__(self, n: int, bridge: str | None = None) -> None:
        self.n: int = n
        kind = "b" if bridge is not None else "v"
        self.host_if: str = f"mx{kind}{n}h"
        self.peer_if: str = f"mx{kind}{n}p"
        self.host_ip4: str = f"198.18.{n}.1"
        self.peer_ip4: str = f"198.18.{n}.2"
        self.host_ip6: str = f"2001:db8:{n}::1"
        self.peer_ip6: str = f"2001:db8:{n}::2"
        if bridge is not None:  # one shared link: peers share a subnet, the host side has no address
            self.peer_ip4 = f"198.18.0.{n + 1}"
            self.peer_ip6 = f"2001:db8::{n + 1}"
        self._proc = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "echo ready; exec sleep 100000"],
            stdout=subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        self._proc.stdout.readline()
        self.pid: int = self._proc.pid
        #: Whether this peer made its veth pair (close() deletes only a link it made: a failed
        #: Peer(n) must not take away the link of another Peer(n) still open).
        self._made_link = False
        try:
            quiet_ipv6(self.pid)
            ip(
                "link",
                "add",
                self.host_if,
                "type",
                "veth",
                "peer",
                "name",
                self.peer_if,
                "netns",
                str(self.pid),
            )
            self._made_link = True
            ip("link", "set", "lo", "up", ns_pid=self.pid)
            ip("link", "set", self.peer_if, "up", ns_pid=self.pid)
            ip("link", "set", self.host_if, "up")
            if bridge is None:
                self.add_addresses(self.host_if, self.host_ip4, self.host_ip6)
                wait_for_mcast_route(self.host_if)
            else:
                ip("link", "set", self.host_if, "master", bridge)
            self.add_addresses(self.peer_if, self.peer_ip4, self.peer_ip6, ns_pid=self.pid)
            ip("route", "add", "default", "dev", self.peer_if, ns_pid=self.pid)
            ip("-6", "route", "add", "default", "dev", self.peer_if, ns_pid=self.pid)
            wait_for_mcast_route(self.peer_if, ns_pid=self.pid)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def add_addresses(dev: str, ip4: str, ip6: str, ns_pid: int | None = None) -> None:
        """Add an IPv4 /24 and an IPv6 /64 (no duplicate-address wait) to ``dev``."""
        ip("addr", "add", f"{ip4}/24", "dev", dev, ns_pid=ns_pid)
        ip("-6", "addr", "add", f"{ip6}/64", "dev", dev, "nodad", ns_pid=ns_pid)

    def command(self, *argv: str) -> list[str]:
        """The argv that runs ``argv`` inside this peer namespace."""
        return ["nsenter", "-t", str(self.pid), "-n", *argv]

    def run(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on a thread inside the peer namespace (its sockets belong to the peer)."""
        result: list[_T] = []
        error: list[BaseException] = []

        def body() -> None:
            try:
                fd = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY)
                try:
                    if libc().setns(fd, CLONE_NEWNET) != 0:
                        raise NetnsError(f"setns failed: {os.strerror(ctypes.get_errno())}")
                finally:
                    os.close(fd)
                # (a fresh thread: the interface lookups find it in another namespace by themselves
                # and leave the process's cache, which describes the process's own, alone)
                result.append(fn())
            except BaseException as exc:
                error.append(exc)

        t = threading.Thread(target=body)
        t.start()
        t.join()
        if error:
            raise error[0]
        return result[0]

    def close(self) -> None:
        """End the peer namespace (its veth pair goes with it)."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()  # the pipe that said "ready"
        if self._made_link:
            self._made_link = False
            with contextlib.suppress(NetnsError):
                ip("link", "del", self.host_if)


def wait_for_mcast_route(dev: str, ns_pid: int | None = None, limit: float = 5.0) -> None:
    """Wait (bounded) until the kernel has installed ``ff00::/8`` in table local for ``dev``."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if f"dev {dev}" in ip("-6", "route", "show", "table", "local", "ff00::/8", ns_pid=ns_pid):
            return
        time.sleep(0.02)
    raise NetnsError(f"IPv6 multicast route for {dev} did not appear within {limit} s")


def _free_numbers(count: int, kind: str = "v") -> list[int]:
    """The ``count`` lowest peer numbers whose links this namespace does not have yet (peers made
    before, by ``Peer(n)`` or a private network, keep theirs)."""
    taken = {name for _, name in socket.if_nameindex()}
    free = [n for n in range(1, 255) if f"mx{kind}{n}h" not in taken][:count]
    if len(free) < count:
        raise NetnsError(f"no {count} free peer numbers left in 1..254 (links: {sorted(taken)})")
    return free


@contextlib.contextmanager
def peers(count: int) -> Iterator[list[Peer]]:
    """``count`` peers, closed on exit, numbered from the lowest number no peer here has."""
    made: list[Peer] = []
    try:
        for n in _free_numbers(count):
            made.append(Peer(n))
        yield made
    finally:
        for p in made:
            p.close()


@contextlib.contextmanager
def bridged_peers(count: int) -> Iterator[list[Peer]]:
    """``count`` peers on one Ethernet segment (a bridge in this namespace), closed on exit.

    Peer N has ``198.18.0.N+1/24`` and ``2001:db8::N+1/64``; multicast between them crosses the
    bridge. Numbered from the lowest number no bridged peer here has.
    """
    bridge = "mxbr0"
    ip("link", "add", bridge, "type", "bridge", "mcast_snooping", "0")
    ip("link", "set", bridge, "up")
    made: list[Peer] = []
    try:
        for n in _free_numbers(count, "b"):
            made.append(Peer(n, bridge=bridge))
        for p in made:
            wait_for_mcast_route(p.peer_if, ns_pid=p.pid)
        yield made
    finally:
        for p in made:
            p.close()
        with contextlib.suppress(NetnsError):
            ip("link", "del", bridge)


#: The documented API. ``ip``, ``sysctl``, ``finish_reexec``, ``setup_host_namespace`` and
#: ``MARKER_ENV`` stay importable for this project's own tests but are internals: not part of it.
__all__ = [
    "NetnsError",
    "Network",
    "Peer",
    "bridged_peers",
    "enter_new_netns_on_this_thread",
    "enter_private_netns",
    "in_private_netns",
    "peers",
    "private_network",
    "wait_for_mcast_route",
]


def enter_new_netns_on_this_thread() -> None:
    """Move the calling *thread* (not the process) into a new network namespace holding only a
    ``lo`` that is down. Root only. Sockets the thread opens afterwards live there."""
    if libc().unshare(CLONE_NEWNET) != 0:
        raise NetnsError(f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}")
    namespace_changed()


@dataclass
class Network:
    """A private test network (see :func:`private_network`).

    ``peers`` are the other hosts; the first one holds the default routes (IPv4 and IPv6), so code
    that sends "on the default interface" sends to it.
    """

    peers: list[Peer]

    @property
    def default_peer(self) -> Peer:
        """The peer the default routes point at."""
        return self.peers[0]


@contextlib.contextmanager
def private_network(peers: int = 1) -> Iterator[Network]:
    """Run the ``with`` block in a network of its own, then come back.

    The calling thread (and any thread it starts inside the block) moves into a new network
    namespace; threads that already exist do not, and a ``RuntimeWarning`` names them. The new
    namespace has ``lo`` up with IPv4 and IPv6 multicast routes, and ``peers`` further namespaces
    linked by veth pairs (see :class:`Peer`), the first holding the default routes. Sockets those
    threads open in the block live there and never reach the machine's own interfaces. On exit
    the peers are removed and the thread returns to the namespace it was in. Linux and root
    (CAP_NET_ADMIN) only; elsewhere raises NetnsError saying why.

    Raises:
        NetnsError: not Linux, not permitted, or a link could not be configured.
    """
    if sys.platform != "linux":
        raise NetnsError(f"private networks need Linux network namespaces (this is {sys.platform})")
    if peers < 1:
        raise ValueError(f"peers must be at least 1, not {peers}")
    others = other_threads()
    if others:
        warnings.warn(
            f"private_network() isolates only the calling thread (and threads it starts inside the "
            f"block); {len(others)} other thread(s) already running stay on the network they were on: "
            f"{', '.join(others)}",
            RuntimeWarning,
            stacklevel=3,  # (through contextmanager's __enter__)
        )
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    made: list[Peer] = []
    try:
        enter_new_netns_on_this_thread()
        try:
            setup_host_namespace()
            for n in range(1, peers + 1):
                made.append(Peer(n))
            first = made[0]
            ip("route", "add", "default", "via", first.peer_ip4, "dev", first.host_if)
            ip("-6", "route", "add", "default", "via", first.peer_ip6, "dev", first.host_if)
            _rescan()
            yield Network(made)
        finally:
            for p in made:
                p.close()
            if libc().setns(original, CLONE_NEWNET) != 0:
                raise NetnsError(f"setns back failed: {os.strerror(ctypes.get_errno())}")
            _rescan()
    finally:
        os.close(original)


def _rescan() -> None:
    namespace_changed()  # the library caches the interface list; the namespace changed under it
