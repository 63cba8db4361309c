"""The 1.2.0 and 1.6.0 contract: module paths and names, positional signatures, os_multicast helpers."""

from __future__ import annotations

import importlib
import inspect
import ipaddress
import socket
import struct
import sys

import pytest
from helpers import V4, V6, Net, send_from_peer

import multicast_expert as me
from multicast_expert import interfaces, os_multicast, utils


def test_legacy_os_multicast_helpers_live(net: Net, port: int) -> None:
    info = os_multicast.get_iface_info(net.a.host_ip4)
    assert info == os_multicast.IfaceInfo(net.a.host_ip4, net.a.host_if, socket.if_nametoindex(net.a.host_if))
    assert os_multicast.iface_ip_to_name(net.b.host_ip4) == net.b.host_if
    with pytest.raises(KeyError):
        os_multicast.iface_ip_to_name("198.19.0.77")
    # Drive a bare socket with the 1.2.0 helpers, then receive over veth.
    with socket.socket(V4, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("239.11.0.1", port))
        os_multicast.add_memberships(s, ["239.11.0.1"], info, V4)
        s.settimeout(2)
        send_from_peer(net.a, V4, "239.11.0.1", port, [b"legacy"])
        assert s.recv(100) == b"legacy"
    with socket.socket(V4, socket.SOCK_DGRAM) as s:
        os_multicast.set_multicast_if(s, ["239.11.0.1"], info, V4)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF) == int.from_bytes(
            socket.inet_aton(net.a.host_ip4), "little"
        )


def test_legacy_struct_builders() -> None:

    info = os_multicast.IfaceInfo("198.18.7.1", "eth7", 7)
    assert os_multicast.make_ip_mreqn_struct("239.1.2.3", info) == bytes(
        [239, 1, 2, 3, 198, 18, 7, 1]
    ) + struct.pack("=i", 7)
    assert os_multicast.make_ipv6_mreq_struct("ff02::1", info) == socket.inet_pton(
        V6, "ff02::1"
    ) + struct.pack("=I", 7)


def test_public_names() -> None:
    for name in me.__all__:
        assert hasattr(me, name), name
    assert me.LOCALHOST_IPV4 == "127.0.0.1" and me.LOCALHOST_IPV6 == "::1"
    assert me.os_multicast.IfaceInfo("1.2.3.4", "x", 3).iface_idx == 3
    for name in (
        "iface_ip_to_name",
        "iface_name_to_index",
        "get_iface_info",
        "make_ip_mreqn_struct",
        "make_ipv6_mreq_struct",
        "set_multicast_if",
        "add_memberships",
        "add_source_specific_memberships",
    ):
        assert callable(getattr(me.os_multicast, name))
    assert me.tx_socket.McastTxSocket is me.McastTxSocket and me.rx_socket.McastRxSocket is me.McastRxSocket
    assert not hasattr(socket, "IP_ADD_SOURCE_MEMBERSHIP") or socket.IP_ADD_SOURCE_MEMBERSHIP == 39


def positional(fn: object) -> list[tuple[str, object]]:

    params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    return [
        (p.name, p.default)
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
    ]


def test_positional_signatures_match_1_2_0() -> None:

    e = inspect.Parameter.empty
    assert positional(me.McastTxSocket.__init__) == [
        ("addr_family", e),
        ("mcast_ips", e),
        ("iface_ip", None),
        ("ttl", 1),
        ("enable_external_loopback", False),  # 1.6.0's fifth positional argument
    ]
    assert positional(me.McastRxSocket.__init__) == [
        ("addr_family", e),
        ("mcast_ips", e),
        ("port", e),
        ("iface_ip", None),
        ("iface_ips", None),
        ("source_ips", None),
        ("blocking", True),
    ]
    assert positional(me.McastRxSocket.recvfrom) == [("bufsize", 4096), ("flags", 0)]
    assert positional(me.McastRxSocket.recv) == [("bufsize", 4096), ("flags", 0)]
    assert positional(me.McastTxSocket.sendto) == [("bytes", e), ("address", e)]
    assert positional(me.get_interface_ips) == [("include_ipv4", True), ("include_ipv6", True)]
    assert positional(me.get_default_gateway_iface_ip) == [("addr_family", e)]
    assert positional(me.validate_mcast_ip) == [("mcast_ip", e), ("addr_family", e)]
    om = me.os_multicast
    assert positional(om.make_ip_mreqn_struct) == [("mcast_addr", e), ("iface_info", e)]
    assert positional(om.make_ipv6_mreq_struct) == [("mcast_ip", e), ("iface_info", e)]
    assert positional(om.set_multicast_if) == [
        ("mcast_socket", e),
        ("mcast_ips", e),
        ("iface_info", e),
        ("addr_family", e),
    ]
    assert positional(om.add_memberships) == [
        ("mcast_socket", e),
        ("mcast_ips", e),
        ("iface_info", e),
        ("addr_family", e),
    ]
    assert positional(om.add_source_specific_memberships) == [
        ("mcast_socket", e),
        ("mcast_ips", e),
        ("source_ips", e),
        ("iface_info", e),
    ]
    assert [f.name for f in __import__("dataclasses").fields(om.IfaceInfo)] == [
        "iface_ip",
        "iface_name",
        "iface_idx",
    ]


# ---- 1.2.0 and 1.6.0 module paths (issue: programs written for 1.6 run unchanged) -------------
NAMES_1_2_0 = {
    "multicast_expert": [
        "McastRxSocket",
        "McastTxSocket",
        "MulticastExpertError",
        "LOCALHOST_IPV4",
        "LOCALHOST_IPV6",
        "IPv4Or6Address",
        "get_default_gateway_iface_ip",
        "get_default_gateway_iface_ip_v4",
        "get_default_gateway_iface_ip_v6",
        "get_interface_ips",
        "validate_mcast_ip",
        "os_multicast",
    ],
    "multicast_expert.utils": [
        "MulticastExpertError",
        "LOCALHOST_IPV4",
        "LOCALHOST_IPV6",
        "IPv4Or6Address",
        "get_interface_ips",
        "get_default_gateway_iface_ip",
        "get_default_gateway_iface_ip_v4",
        "get_default_gateway_iface_ip_v6",
        "validate_mcast_ip",
        "is_windows",
        "is_mac",
    ],
    "multicast_expert.os_multicast": [
        "IfaceInfo",
        "iface_ip_to_name",
        "iface_name_to_index",
        "get_iface_info",
        "make_ip_mreqn_struct",
        "make_ipv6_mreq_struct",
        "set_multicast_if",
        "add_memberships",
        "add_source_specific_memberships",
        "is_windows",
        "is_mac",
    ],
    "multicast_expert.rx_socket": [
        "McastRxSocket",
        "LOCALHOST_IPV4",
        "LOCALHOST_IPV6",
        "get_default_gateway_iface_ip",
        "get_interface_ips",
        "validate_mcast_ip",
        "IPv4Or6Address",
        "MulticastExpertError",
        "is_windows",
        "is_mac",
    ],
    "multicast_expert.tx_socket": [
        "McastTxSocket",
        "LOCALHOST_IPV4",
        "LOCALHOST_IPV6",
        "get_default_gateway_iface_ip",
        "get_interface_ips",
        "validate_mcast_ip",
        "IPv4Or6Address",
        "MulticastExpertError",
        "is_windows",
        "is_mac",
    ],
}
NAMES_1_6_0 = {
    "multicast_expert": [
        "AsyncMcastRxSocket",
        "IfaceInfo",
        "IfaceSpecifier",
        "find_interfaces",
        "scan_interfaces",
        "get_default_gateway_iface",
        "MulticastAddress",
    ],
    "multicast_expert.async_rx_socket": [
        "AsyncMcastRxSocket",
        "BaseMcastRxSocket",
        "DEFAULT_RX_BUFSIZE",
        "PacketAndSenderAddress",
    ],
    "multicast_expert.name_to_index": ["iface_name_to_index"],
    "multicast_expert.interfaces": [
        "IfaceInfo",
        "IfaceSpecifier",
        "find_interfaces",
        "scan_interfaces",
        "get_default_gateway_iface",
        "get_default_gateway_iface_ip",
        "get_default_gateway_iface_ip_v4",
        "get_default_gateway_iface_ip_v6",
        "get_interface_ips",
        "iface_name_to_index",
        "ip_interface_to_ip_string",
        "LOCALHOST_IPV4",
        "LOCALHOST_IPV6",
    ],
    "multicast_expert.rx_socket": ["BaseMcastRxSocket", "DEFAULT_RX_BUFSIZE", "PacketAndSenderAddress"],
    "multicast_expert.utils": ["ip_interface_to_ip_string", "MulticastAddress"],
}


@pytest.mark.parametrize(
    ("release", "module", "name"),
    [("1.2.0", m, n) for m, ns in NAMES_1_2_0.items() for n in ns]
    + [("1.6.0", m, n) for m, ns in NAMES_1_6_0.items() for n in ns],
)
def test_every_public_name_imports_from_its_old_module(release: str, module: str, name: str) -> None:
    mod = importlib.import_module(module)
    assert hasattr(mod, name), f"{release}: from {module} import {name}"
    if name in ("is_windows", "is_mac"):
        assert getattr(mod, name) is (sys.platform == ("win32" if name == "is_windows" else "darwin"))


def test_compat_values() -> None:
    assert me.rx_socket.DEFAULT_RX_BUFSIZE == 4096
    assert interfaces.ip_interface_to_ip_string(ipaddress.IPv6Interface("fe80::1%eth0/64")) == "fe80::1%eth0"
    assert utils.ip_interface_to_ip_string(ipaddress.IPv4Interface("198.18.0.1/24")) == "198.18.0.1"


def test_scanning_looks_indexes_up_through_interfaces_iface_name_to_index(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(interfaces, "iface_name_to_index", lambda name: 1000 + len(name))
    try:
        found = {i.machine_name: i.index for i in me.scan_interfaces()}
        assert found["lo"] == 1002
    finally:
        monkeypatch.undo()
        me.scan_interfaces()


def test_find_interfaces_1_6_semantics_shared_address() -> None:
    a = me.IfaceInfo("A", 1, None, (ipaddress.IPv4Interface("10.0.0.10/24"),), ())
    b = me.IfaceInfo(
        "B", 2, None, (ipaddress.IPv4Interface("10.0.0.11/24"), ipaddress.IPv4Interface("10.0.0.10/24")), ()
    )
    assert me.find_interfaces(["10.0.0.11", "10.0.0.10"], [a, b]) == [b, a]
    with pytest.raises(me.MulticastExpertError, match="No matches found for interface IP address") as ei:
        me.find_interfaces(["10.0.0.99"], [a, b])
    assert "does not seem to correspond to a valid interface" in str(ei.value)
    with pytest.raises(me.MulticastExpertError, match="does not appear to be a valid interface name or IP"):
        me.find_interfaces(["not-an-iface"], [a, b])
