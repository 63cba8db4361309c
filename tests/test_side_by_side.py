"""Small programs written the way 1.2.0 and 1.6.0 users wrote them, run unchanged here; each must
produce the outcome those releases documented. Live, over ``lo`` in the private namespace."""

from __future__ import annotations

import textwrap

import pytest
from helpers import Net

# (name, program, expected value of `result`). Programs get PORT, a fresh port.
PROGRAMS: list[tuple[str, str, object]] = [
    (
        "1.2.0 loopback round trip, non-blocking receive",
        """
        import socket
        import multicast_expert
        with multicast_expert.McastTxSocket(socket.AF_INET, ["239.200.0.1"], iface_ip="127.0.0.1") as tx, \\
             multicast_expert.McastRxSocket(socket.AF_INET, ["239.200.0.1"], PORT, iface_ip="127.0.0.1",
                                             blocking=False) as rx:
            tx.sendto(b"hi", ("239.200.0.1", PORT))
            import time; time.sleep(0.05)
            result = (rx.recv(), rx.recv())
        """,
        (b"hi", None),
    ),
    (
        "1.2.0 positional blocking=False",
        """
        import socket
        from multicast_expert import McastRxSocket
        with McastRxSocket(socket.AF_INET, ["239.200.0.2"], PORT, "127.0.0.1", None, None, False) as rx:
            result = rx.recvfrom()
        """,
        None,
    ),
    (
        "1.6.0 positional timeout (7th argument)",
        """
        import socket
        from multicast_expert import McastRxSocket
        rx = McastRxSocket(socket.AF_INET, ["239.200.0.3"], PORT, "127.0.0.1", None, None, 0.1)
        with rx:
            result = (rx.timeout, rx.recv())
        """,
        (0.1, None),
    ),
    (
        "1.6.0 positional blocking, loopback, iface_ip (8th-10th)",
        """
        import socket
        from multicast_expert import McastRxSocket
        g = ["239.200.0.4"]
        rx = McastRxSocket(socket.AF_INET, g, PORT, None, None, None, None, False, True, "127.0.0.1")
        with rx:
            names = [i.machine_name for i in rx.network_interfaces]
            result = (rx.blocking, rx.enable_external_loopback, names)
        """,
        (False, True, ["lo"]),
    ),
    (
        "1.6.0 Tx positional enable_external_loopback",
        """
        import socket
        from multicast_expert import McastTxSocket
        with McastTxSocket(socket.AF_INET, ["239.200.0.5"], "127.0.0.1", 1, True) as tx:
            result = tx.socket.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP)
        """,
        1,
    ),
    (
        "1.2.0 'except OSError' catches a wrong-family group",
        """
        import socket
        import multicast_expert
        try:
            with multicast_expert.McastRxSocket(socket.AF_INET, ["ff15::1"], PORT, iface_ip="127.0.0.1"):
                result = "opened"
        except OSError:
            result = "OSError"
        """,
        "OSError",
    ),
    (
        "1.2.0 'except OverflowError' catches a bad port",
        """
        import socket
        import multicast_expert
        try:
            with multicast_expert.McastRxSocket(socket.AF_INET, ["239.200.0.6"], 70000, iface_ip="127.0.0.1"):
                result = "opened"
        except OverflowError:
            result = "OverflowError"
        """,
        "OverflowError",
    ),
    (
        "1.2.0 source_ips=[] is any-source; assignable timeout",
        """
        import socket
        import multicast_expert
        rx = multicast_expert.McastRxSocket(socket.AF_INET, ["239.200.0.7"], PORT, iface_ip="127.0.0.1",
                                            source_ips=[])
        with rx, multicast_expert.McastTxSocket(socket.AF_INET, ["239.200.0.7"], "127.0.0.1") as tx:
            rx.timeout = 1
            tx.sendto(b"any", ("239.200.0.7", PORT))
            result = rx.recv()
        """,
        b"any",
    ),
    (
        "1.6.0 IfaceInfo addresses compare with lists; find_interfaces de-duplicates",
        """
        import ipaddress
        import multicast_expert
        (lo,) = multicast_expert.find_interfaces(["lo", "lo", "127.0.0.1"])
        result = (lo.ip4_addrs == [ipaddress.IPv4Interface("127.0.0.1/8")], lo.machine_name)
        """,
        (True, "lo"),
    ),
    (
        "1.2.0 IPv6 Tx getsockname is the socket module's 4-tuple",
        """
        import socket
        import multicast_expert
        with multicast_expert.McastTxSocket(socket.AF_INET6, ["ff15::200"], "::1") as tx:
            name = tx.getsockname()
            result = (len(name), name[0], name == tx.socket.getsockname())
        """,
        (4, "::1", True),
    ),
    (
        "1.2.0 utils names",
        """
        from multicast_expert.utils import (LOCALHOST_IPV4, LOCALHOST_IPV6, MulticastExpertError, is_mac,
                                            is_windows, validate_mcast_ip)
        validate_mcast_ip("239.1.1.1", __import__("socket").AF_INET)
        result = (LOCALHOST_IPV4, LOCALHOST_IPV6, is_windows, is_mac)
        """,
        ("127.0.0.1", "::1", False, False),
    ),
    (
        "1.2.0 get_default_gateway_iface_ip of an unknown family",
        """
        import multicast_expert
        result = multicast_expert.get_default_gateway_iface_ip(12345)
        """,
        None,
    ),
]


@pytest.mark.parametrize(("name", "program", "expected"), PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_program_runs_unchanged(net: Net, port: int, name: str, program: str, expected: object) -> None:
    scope: dict[str, object] = {"PORT": port}
    exec(compile(textwrap.dedent(program), name, "exec"), scope)
    assert scope["result"] == expected
