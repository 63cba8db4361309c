"""Helpers for the send tests on the wire: an AF_PACKET capture of UDP frames and bare receivers
inside a peer namespace (what actually left the sending host, checked apart from the library)."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from multicast_expert import testing

V4, V6 = socket.AF_INET, socket.AF_INET6
_T = TypeVar("_T")
ETH_P_ALL = 0x0003
IP_RECVTTL = 12
IP_PKTINFO = 8
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50


def slow_link(dev: str, rate: str = "8mbit", latency: str = "2s") -> None:
    """A token-bucket qdisc on ``dev`` sending at ``rate``: a sender's buffer fills and waits."""
    tc = ["tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", "1600", "latency", latency]
    subprocess.run(tc, check=True)


def big_mtu(peer: testing.Peer) -> None:
    """MTU 65535 on both ends of the peer's veth: no fragments for a datagram up to the limit."""
    testing.ip("link", "set", peer.host_if, "mtu", "65535")
    testing.ip("link", "set", peer.peer_if, "mtu", "65535", ns_pid=peer.pid)


@dataclass
class Frame:
    family: int
    src: str
    dst: str
    ttl: int
    dport: int
    payload: bytes


class Capture:
    """AF_PACKET capture of every UDP frame arriving on ``peer.peer_if`` (inside the peer)."""

    def __init__(self, peer: testing.Peer) -> None:
        def make() -> socket.socket:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
            s.setsockopt(socket.SOL_SOCKET, 33, 1 << 29)  # SO_RCVBUFFORCE
            s.bind((peer.peer_if, ETH_P_ALL))
            s.settimeout(0.5)
            return s

        self.sock = peer.run(make)
        self.raw: list[bytes] = []

    def drain(self, quiet: float = 0.5) -> list[Frame]:
        self.sock.settimeout(quiet)
        while True:
            try:
                data, addr = self.sock.recvfrom(70000)
            except TimeoutError:
                break
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            self.raw.append(data)
        frames = []
        for pkt in self.raw:
            f = parse(pkt)
            if f is not None:
                frames.append(f)
        return frames

    def close(self) -> None:
        self.sock.close()


def parse(pkt: bytes) -> Frame | None:
    if not pkt:
        return None
    version = pkt[0] >> 4
    if version == 4:
        ihl = (pkt[0] & 15) * 4
        if pkt[9] != 17:
            return None
        ttl = pkt[8]
        src = socket.inet_ntop(V4, pkt[12:16])
        dst = socket.inet_ntop(V4, pkt[16:20])
        total = struct.unpack("!H", pkt[2:4])[0]
        udp = pkt[ihl:total]
        return Frame(V4, src, dst, ttl, struct.unpack("!H", udp[2:4])[0], bytes(udp[8:]))
    if version == 6:
        if pkt[6] != 17:
            return None
        plen = struct.unpack("!H", pkt[4:6])[0]
        src = socket.inet_ntop(V6, pkt[8:24])
        dst = socket.inet_ntop(V6, pkt[24:40])
        udp = pkt[40 : 40 + plen]
        return Frame(V6, src, dst, pkt[7], struct.unpack("!H", udp[2:4])[0], bytes(udp[8:]))
    return None


@dataclass
class Got:
    payload: bytes
    group: str
    src: str
    ttl: int


class Receiver:
    """One bare socket inside ``peer`` joined to every group on its veth end, reporting each
    datagram's destination group, source and TTL / hop limit."""

    def __init__(self, peer: testing.Peer, family: int, groups: list[str], port: int) -> None:
        self.family = family
        index = socket.if_nametoindex  # (looked up inside the peer below)

        def make() -> socket.socket:
            if family == V4:
                testing.sysctl("net.ipv4.igmp_max_memberships", 5000, peer.pid)
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, 33, 1 << 29)  # SO_RCVBUFFORCE
            idx = index(peer.peer_if)
            if family == V4:
                s.bind(("0.0.0.0", port))
                s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
                for g in groups:
                    mreqn = socket.inet_aton(g) + bytes(4) + idx.to_bytes(4, "little")
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            else:
                s.bind(("::", port))
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
                for g in groups:
                    mreq = socket.inet_pton(V6, g) + idx.to_bytes(4, "little")
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            s.settimeout(0.5)
            return s

        self.sock = peer.run(make)

    def drain(self, quiet: float = 0.5) -> list[Got]:
        got: list[Got] = []
        self.sock.settimeout(quiet)
        while True:
            try:
                data, anc, _flags, src = self.sock.recvmsg(70000, 256)
            except TimeoutError:
                return got
            group, ttl = "?", -1
            for level, kind, cdata in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    group = socket.inet_ntop(V4, cdata[8:12])
                elif level == socket.IPPROTO_IP and kind == 2:  # IP_TTL
                    ttl = int.from_bytes(cdata[:4], "little")
                elif level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
                    group = socket.inet_ntop(V6, cdata[:16])
                elif level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT:
                    ttl = int.from_bytes(cdata[:4], "little")
            got.append(Got(data, group, src[0], ttl))

    def close(self) -> None:
        self.sock.close()


def in_thread(fn: Callable[..., _T], *args: object) -> _T:
    """Run fn(*args) on a fresh thread (fresh thread-local send buffers); return its result."""
    out: list[_T] = []
    err: list[BaseException] = []

    def body() -> None:
        try:
            out.append(fn(*args))
        except BaseException as e:
            err.append(e)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]
