"""doctor and an old querier on the link: an IGMPv2 (or MLDv1) query makes Linux speak that version
on the interface for minutes, and a source-specific join then goes out without its sources.

The queries are crafted here and sent from this test's namespace over the veth to the peer
namespace, where doctor runs (the peer is the host under diagnosis). Formats:

- IGMPv2 general query, RFC 2236 section 2: 8 bytes, type 0x11, max response time (1/10 s)
  nonzero, checksum, group 0.0.0.0; sent to 224.0.0.1 with TTL 1 and the IP Router Alert option
  (RFC 2113: type 0x94, length 4, value 0). RFC 3376 section 7.1 tells the versions apart by
  length and max response time: 8 bytes with a nonzero code is IGMPv2 (code 0: IGMPv1; 12 bytes
  or more: IGMPv3).
- MLDv1 general query, RFC 2710 section 3: 24 bytes, ICMPv6 type 130, code 0, checksum, maximum
  response delay (ms), reserved, multicast address :: ; sent from a link-local address to ff02::1
  with hop limit 1 and a hop-by-hop Router Alert option (RFC 2711: option type 5, length 2, value
  0 = MLD). RFC 3810 section 8.1: a 24-byte query is MLDv1 (MLDv2 queries are 28 bytes or more).
  Linux ignores MLD queries from a non-link-local source.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from multicast_expert import testing

CLI = [sys.executable, "-m", "multicast_expert"]


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def send_igmpv2_query(src_ip: str) -> None:
    """An IGMPv2 general query from ``src_ip`` (this namespace) to 224.0.0.1, built to the byte."""
    igmp = struct.pack("!BBH4s", 0x11, 100, 0, bytes(4))  # max response time 10 s, group 0
    igmp = igmp[:2] + struct.pack("!H", checksum(igmp)) + igmp[4:]
    router_alert = bytes([0x94, 0x04, 0x00, 0x00])
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x46,  # version 4, header length 6 words (20 bytes + the 4-byte option)
        0xC0,  # TOS: internetwork control, as routers send IGMP
        24 + len(igmp),
        0,  # identification: the kernel fills it in
        0,
        1,  # TTL 1: link-local
        socket.IPPROTO_IGMP,
        0,  # header checksum: the kernel fills it in for IP_HDRINCL
        socket.inet_aton(src_ip),
        socket.inet_aton("224.0.0.1"),
    )
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src_ip))
        s.sendto(header + router_alert + igmp, ("224.0.0.1", 0))


def link_local(dev: str) -> str:
    end = time.monotonic() + 5
    while time.monotonic() < end:
        for line in testing.ip("-6", "-o", "addr", "show", "dev", dev, "scope", "link").splitlines():
            return line.split()[3].split("/")[0]
        time.sleep(0.05)
    raise AssertionError(f"{dev} has no link-local address")


def send_mldv1_query(dev: str) -> None:
    """An MLDv1 general query from ``dev``'s link-local address to ff02::1."""
    index = socket.if_nametoindex(dev)
    # type 130, code 0, checksum (the kernel computes ICMPv6 checksums on raw sockets, RFC 3542
    # section 3.1), max response delay 1000 ms, reserved, multicast address :: (general query)
    query = struct.pack("!BBHHH16s", 130, 0, 0, 1000, 0, bytes(16))
    assert len(query) == 24  # the MLDv1 length
    # Hop-by-hop header: next header (the kernel sets it), length 0 (8 bytes), Router Alert
    # (type 5, length 2, value 0: MLD), then PadN of 2 bytes (type 1, length 0).
    hop_by_hop = bytes([0, 0, 5, 2, 0, 0, 1, 0])
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
        s.bind((link_local(dev), 0, 0, index))
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, hop_by_hop)
        s.sendto(query, ("ff02::1", 0, 0, index))


def doctor(host: testing.Peer, group: str) -> subprocess.CompletedProcess[str]:
    argv = host.command(*CLI, "doctor", "--iface", host.peer_if, group)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def igmp_version_there(host: testing.Peer) -> str:
    """The Querier column of the peer's /proc/net/igmp for its veth end."""
    for line in Path(f"/proc/{host.pid}/net/igmp").read_text().splitlines():
        if f"\t{host.peer_if}" in line or line.split()[1:2] == [host.peer_if]:
            return line.split()[-1]
    raise AssertionError(f"{host.peer_if} not in /proc/{host.pid}/net/igmp")


def mld_queries_there(host: testing.Peer) -> int:
    for line in Path(f"/proc/{host.pid}/net/dev_snmp6/{host.peer_if}").read_text().splitlines():
        name, value = line.split()
        if name == "Icmp6InGroupMembQueries":
            return int(value)
    raise AssertionError("no Icmp6InGroupMembQueries counter")


def test_igmpv2_querier_fails_a_source_specific_group(own_peer: testing.Peer) -> None:
    before = doctor(own_peer, "232.1.1.1")
    assert before.returncode == 0, before.stdout
    assert f"{own_peer.peer_if}: IGMPv3 in use (no older querier heard)" in before.stdout
    assert igmp_version_there(own_peer) == "V3"

    send_igmpv2_query(own_peer.host_ip4)
    end = time.monotonic() + 5
    while igmp_version_there(own_peer) != "V2" and time.monotonic() < end:
        time.sleep(0.02)
    assert igmp_version_there(own_peer) == "V2"  # the kernel fell back on that interface

    res = doctor(own_peer, "232.1.1.1")
    assert res.returncode == 1, res.stdout
    assert f"FAIL  232.1.1.1 is a source-specific group, but {own_peer.peer_if} speaks IGMPv2" in res.stdout
    assert "reports carry no sources" in res.stdout
    assert (
        "make the querier speak IGMPv3" in res.stdout
        and f"tcpdump -vni {own_peer.peer_if} igmp" in res.stdout
    )
    assert "IGMPv3 in use" not in res.stdout
    # Any-source groups don't care which version is spoken.
    anysource = doctor(own_peer, "239.40.1.1")
    assert anysource.returncode == 0, anysource.stdout
    assert f"{own_peer.peer_if}: IGMPv2 in use; 239.40.1.1 is any-source" in anysource.stdout


def test_mldv1_querier_fails_an_ipv6_source_specific_group(own_peer: testing.Peer) -> None:
    before = doctor(own_peer, "ff35::4001")
    assert before.returncode == 0, before.stdout
    assert "MLDv2 in use (joining ff35::4001 sent an MLDv2 report)" in before.stdout

    queries = mld_queries_there(own_peer)
    send_mldv1_query(own_peer.host_if)
    end = time.monotonic() + 5
    while mld_queries_there(own_peer) == queries and time.monotonic() < end:
        time.sleep(0.02)
    assert mld_queries_there(own_peer) == queries + 1  # the peer took the query in

    res = doctor(own_peer, "ff35::4001")
    assert res.returncode == 1, res.stdout
    assert f"FAIL  ff35::4001 is a source-specific group, but {own_peer.peer_if} speaks MLDv1" in res.stdout
    assert "sent an MLDv1 report" in res.stdout and "make the querier speak MLDv2" in res.stdout
    assert f"net.ipv6.conf.{own_peer.peer_if}.force_mld_version=2" in res.stdout
    anysource = doctor(own_peer, "ff15::4001")
    assert anysource.returncode == 0, anysource.stdout

    # The fix doctor names for a host whose router speaks MLDv2: ignore MLDv1 queries.
    testing.sysctl(f"net.ipv6.conf.{own_peer.peer_if}.force_mld_version", 2, ns_pid=own_peer.pid)
    fixed = doctor(own_peer, "ff35::4001")
    assert fixed.returncode == 0, fixed.stdout
    assert "MLDv2 in use" in fixed.stdout
