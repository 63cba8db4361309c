"""Clear errors for bad arguments, named as the core issue lists them (no socket is opened)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

import multicast_expert as me
from multicast_expert import utils

V4, V6 = socket.AF_INET, socket.AF_INET6
LO = me.IfaceInfo(
    "lo", 1, None, (ipaddress.IPv4Interface("127.0.0.1/8"),), (ipaddress.IPv6Interface("::1/128"),)
)


def test_validate_mcast_ip() -> None:
    me.validate_mcast_ip("239.1.2.3", V4)
    me.validate_mcast_ip("ff02::1", V6)
    me.validate_mcast_ip(ipaddress.IPv6Address("ff15::1"), V6)
    with pytest.raises(me.MulticastExpertError, match="not a multicast address"):
        me.validate_mcast_ip("10.1.2.3", V4)
    with pytest.raises(me.MulticastExpertError, match="is IPv6 but this is an AF_INET socket"):
        me.validate_mcast_ip("ff15::1", V4)
    with pytest.raises(me.MulticastExpertError, match="is IPv4 but this is an AF_INET6 socket"):
        me.validate_mcast_ip("239.1.2.3", V6)
    with pytest.raises(ValueError, match=r"'239\.1\.2' is not a valid"):
        me.validate_mcast_ip("239.1.2", V4)
    with pytest.raises(TypeError, match="not int 5"):
        me.validate_mcast_ip(5, V4)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "exc", "needle"),
    [
        (
            {"mcast_ips": ["ff15::1"]},
            me.MulticastExpertError,
            "ff15::1 is IPv6 but this is an AF_INET socket",
        ),
        ({"mcast_ips": ["239.1.2.300"]}, ValueError, "239.1.2.300"),
        ({"mcast_ips": []}, ValueError, "mcast_ips is empty"),
        ({"port": 65536}, ValueError, "port 65536 is out of range; valid ports are 0..65535"),
        ({"port": -1}, ValueError, "port -1 is out of range"),
        ({"port": "80"}, TypeError, "port must be an int"),
        ({"source_ips": ["2001:db8::1"]}, me.MulticastExpertError, "2001:db8::1 is IPv6"),
        ({"source_ips": ["239.9.9.9"]}, ValueError, "source_ip 239.9.9.9 is not a unicast address"),
        ({"timeout": -2}, ValueError, "timeout -2 is invalid"),
        ({"rcvbuf": 0}, ValueError, "rcvbuf 0 is out of range"),
        ({"addr_family": 99}, ValueError, "addr_family 99 is not supported"),
    ],
)
def test_rx_bad_arguments(kwargs: dict[str, object], exc: type[Exception], needle: str) -> None:
    args: dict[str, object] = {
        "addr_family": V4,
        "mcast_ips": ["239.1.2.3"],
        "port": 5000,
        "iface": LO,
        **kwargs,
    }
    with pytest.raises(exc) as ei:
        me.McastRxSocket(**args)  # type: ignore[arg-type]
    assert needle in str(ei.value)


@pytest.mark.parametrize(
    ("kwargs", "exc", "needle"),
    [
        ({"ttl": 256}, ValueError, "ttl 256 is out of range; valid values are 0..255"),
        ({"ttl": -1}, ValueError, "ttl -1 is out of range"),
        ({"mcast_ips": ["10.0.0.1"]}, me.MulticastExpertError, "10.0.0.1 is not a multicast address"),
        ({"mcast_ips": "239.1.2.3.4"}, ValueError, "239.1.2.3.4"),
        ({"source_port": 70000}, ValueError, "source_port 70000 is out of range"),
        ({"iface": "lo", "iface_ip": "lo"}, ValueError, "Both iface and iface_ip"),
    ],
)
def test_tx_bad_arguments(kwargs: dict[str, object], exc: type[Exception], needle: str) -> None:
    args: dict[str, object] = {"addr_family": V4, "mcast_ips": ["239.1.2.3"], "iface_ip": LO, **kwargs}
    if "iface" in kwargs:
        args["iface_ip"] = kwargs["iface_ip"]
    with pytest.raises(exc) as ei:
        me.McastTxSocket(**args)  # type: ignore[arg-type]
    assert needle in str(ei.value)


def test_value_errors_are_also_multicast_expert_errors() -> None:
    with pytest.raises(me.MulticastExpertError):
        utils.check_port(70000)
    assert issubclass(me.MulticastExpertError, RuntimeError)


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
    import inspect

    params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    return [
        (p.name, p.default)
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
    ]


def test_positional_signatures_match_1_2_0() -> None:
    import inspect

    e = inspect.Parameter.empty
    assert positional(me.McastTxSocket.__init__) == [
        ("addr_family", e),
        ("mcast_ips", e),
        ("iface_ip", None),
        ("ttl", 1),
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
