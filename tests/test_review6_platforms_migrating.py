# ruff: noqa: F811  (the ``record`` fixture, imported from test_platform_tables, is each test's argument)
"""Review 6: README "Platforms" and the per-OS layer, by recorded calls (no socket is opened:
``socket.socket`` is the recorder of tests/test_platform_tables.py, and the per-OS objects are
swapped in ``_platform``). Checked and kept; no finding here fails."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from typing import Any

import pytest
from helpers import V4
from test_platform_tables import ETH, Recorder, _winerror, calls, record  # noqa: F401  (record: the fixture)

import multicast_expert as me
from multicast_expert import _platform
from multicast_expert._platform import darwin, windows

IPPROTO_IP = socket.IPPROTO_IP
LO = me.IfaceInfo("{lo}", 1, None, (ipaddress.IPv4Interface("127.0.0.1/8"),), ())
# ip_mreq_source in (group, source, interface) order: Windows ws2ipdef.h, xnu bsd/netinet/in.h
GSI = bytes([239, 1, 1, 1, 198, 18, 7, 9, 198, 18, 7, 1])


def test_unknown_os_refuses_sources_and_blocking_naming_the_os(record: Any) -> None:
    """README "Platforms": "source-specific joins and source blocking are refused when asked for,
    with an error naming the OS": at construction, at block_source() and at join_group()."""
    record(_platform.select_os("sunos5"))
    with pytest.raises(me.MulticastExpertError, match=r"source-specific multicast is not supported.*sunos5"):
        me.McastRxSocket(V4, ["232.1.1.1"], 5000, iface=ETH, source_ips=["198.18.7.9"])
    with me.McastRxSocket(V4, ["239.1.1.1"], 5000, iface=ETH) as rx:
        with pytest.raises(me.MulticastExpertError, match=r"source blocking is not supported.*sunos5"):
            rx.block_source("239.1.1.1", "198.18.7.9")
        with pytest.raises(
            me.MulticastExpertError, match=r"source-specific multicast is not supported.*sunos5"
        ):
            rx.join_group("232.1.1.2", ["198.18.7.9"])


def test_macos_ipv4_block_unblock_and_live_ssm_join(record: Any) -> None:
    """xnu bsd/netinet/in.h: IP_ADD_SOURCE_MEMBERSHIP 70, IP_BLOCK_SOURCE 72, IP_UNBLOCK_SOURCE 73."""
    log = record(darwin.DarwinMulticast())
    with me.McastRxSocket(V4, ["239.1.1.1"], 5000, iface=ETH) as rx:
        rx.block_source("239.1.1.1", "198.18.7.9")
        rx.unblock_source("239.1.1.1", "198.18.7.9")
        rx.join_group("232.1.1.5", ["198.18.7.8"])
    sets = calls(log, "setsockopt")
    assert ("setsockopt", IPPROTO_IP, 72, GSI) in sets
    assert ("setsockopt", IPPROTO_IP, 73, GSI) in sets
    assert ("setsockopt", IPPROTO_IP, 70, bytes([232, 1, 1, 5, 198, 18, 7, 8, 198, 18, 7, 1])) in sets
    assert ("bind", ("232.1.1.5", 5000)) in log  # bound to the group, as README says


def test_windows_ipv4_block_unblock_and_metadata_optional(record: Any) -> None:
    """ws2ipdef.h: IP_BLOCK_SOURCE 17, IP_UNBLOCK_SOURCE 18; metadata options are not set where the
    OS table lacks them (README: "the one optional feature")."""
    log = record(windows.WindowsMulticast())
    with me.McastRxSocket(
        V4, ["239.1.1.1"], 5000, iface=ETH, recv_ttl=True, recv_tos=True, timestamps=True
    ) as rx:
        rx.block_source("239.1.1.1", "198.18.7.9")
        rx.unblock_source("239.1.1.1", "198.18.7.9")
    sets = calls(log, "setsockopt")
    assert ("setsockopt", IPPROTO_IP, 17, GSI) in sets
    assert ("setsockopt", IPPROTO_IP, 18, GSI) in sets
    assert {c[2] for c in sets} == {4, 11, 19, 12, 17, 18}


def _loopback_send_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def sendto(self: Recorder, data: bytes, address: Any) -> int:
        raise _winerror(10051, errno.ENETUNREACH)

    monkeypatch.setattr(Recorder, "sendto", sendto, raising=False)
    monkeypatch.setattr(_platform, "IO", windows.WindowsIO())


def test_windows_loopback_10051_is_harmless_in_send_batch(
    record: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README "Platforms", Windows: "a loopback send with no listener (WinError 10051) is not an
    error": also for send_batch (one sendto per datagram there)."""
    record(windows.WindowsMulticast())
    _loopback_send_unreachable(monkeypatch)
    with me.McastTxSocket(V4, ["239.1.1.1"], LO) as tx:
        assert tx.send_batch([(b"x", ("239.1.1.1", 5000)), (b"y", ("239.1.1.1", 5000))]) == 2


def test_windows_loopback_10051_is_harmless_for_async_sends(
    record: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(windows.WindowsMulticast())
    _loopback_send_unreachable(monkeypatch)

    async def main() -> int:
        async with me.AsyncMcastTxSocket(V4, ["239.1.1.1"], LO) as tx:
            await tx.sendto(b"x", ("239.1.1.1", 5000))
            return await tx.send_batch([(b"x", ("239.1.1.1", 5000))])

    assert asyncio.run(main()) == 1
