"""Argument validation: every bad value gets a clear error naming it and what is valid."""

from __future__ import annotations

import ipaddress

import pytest
from helpers import V4, V6

import multicast_expert as me
from multicast_expert import _validate

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
        _validate.check_port(70000)
    assert issubclass(me.MulticastExpertError, RuntimeError)
