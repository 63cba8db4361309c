"""Review: the 1.2.0 / 1.6.0 compatibility contract and the per-OS struct layouts.

Compared against the released sources of multicast_expert 1.2.0 and 1.6.0 (PyPI wheels) and the
kernel ABI. Every difference found is fixed; the tests assert the released behaviour. Every test
that opens a socket runs inside the session's private network namespace.
"""

from __future__ import annotations

import importlib
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from helpers import V4, V6, Net

import multicast_expert as me
from multicast_expert._platform import _structs as st


# ---- 1.6.0 positional form: blocking=True wins over timeout ---------------------------------------
def test_1_6_positional_blocking_true_means_block_forever(net: Net) -> None:
    """README ("Receiving"): "an 8th to 11th positional argument are 1.6.0's ``blocking``,
    ``enable_external_loopback``, ``iface_ip``, ``iface_ips`` (the 7th is then the timeout)" and
    "Programs written for multicast_expert 1.2.0 or 1.6.0 run unchanged".

    In 1.6.0 (rx_socket.py, BaseMcastRxSocket.__init__) ``blocking`` overrides ``timeout``:
    "If set to True, timeout is set to None (block forever)". Run with 1.6.0 in a namespace,
    ``McastRxSocket(AF_INET, [g], port, None, None, None, 5, True, False, ip).timeout`` is None.
    Before the fix it was 5.0: a 1.6.0 program that asked to block forever gets None back after 5 s.
    """
    rx = me.McastRxSocket(V4, ["239.77.0.1"], 5000, None, None, None, 5, True, False, net.a.host_ip4)
    assert rx.timeout is None


# ---- 1.6.0 keyword name of sendto's payload ----------------------------------------------------
def test_1_6_sendto_accepts_its_tx_bytes_keyword(net: Net, port: int) -> None:
    """README: "Programs written for multicast_expert 1.2.0 or 1.6.0 run unchanged".

    1.6.0's ``McastTxSocket.sendto(self, tx_bytes, address)`` (tx_socket.py) names the payload
    ``tx_bytes``; 1.2.0 named it ``bytes``. Before the fix only ``bytes`` existed, so the 1.6.0 call
    ``tx.sendto(tx_bytes=b"...", address=(group, port))`` raises
    "TypeError: McastTxSocket.sendto() got an unexpected keyword argument 'tx_bytes'"
    (accelerated and pure).
    """
    with me.McastTxSocket(V4, ["239.77.0.2"], iface=net.a.host_ip4) as tx:
        tx.sendto(tx_bytes=b"1.6.0", address=("239.77.0.2", port))  # type: ignore[call-arg]


# ---- 1.2.0's public attributes keep 1.2.0's shapes -------------------------------------------
def test_1_2_tx_iface_info_is_the_1_2_record(net: Net) -> None:
    """README: "a drop-in replacement for multicast_expert 1.2.0: the same imports, class and
    function names, ... return shapes"; CHANGELOG lists ``tx.iface_info`` as a drop-in name.

    In 1.2.0 ``McastTxSocket.iface_info`` is ``os_multicast.get_iface_info(iface_ip)``: an
    ``os_multicast.IfaceInfo(iface_ip, iface_name, iface_idx)`` (1.6.0 has no public
    ``iface_info``: its attribute is ``_iface_info``). Before the fix it was the new ``IfaceInfo``
    (machine_name, index, ...), so 1.2.0's ``tx.iface_info.iface_idx`` raises AttributeError.
    The property's docstring calls it "1.6.0's name" (multicast_expert/tx_socket.py:162-164).
    """
    tx = me.McastTxSocket(V4, ["239.77.0.3"], net.a.host_ip4)
    info = tx.iface_info
    assert info.iface_ip == net.a.host_ip4
    assert info.iface_name == net.a.host_if
    assert info.iface_idx == socket.if_nametoindex(net.a.host_if)


def test_1_2_rx_iface_infos_is_keyed_by_interface_ip(net: Net) -> None:
    """README: same "return shapes" as 1.2.0; CHANGELOG lists ``rx.iface_infos`` as a drop-in name.

    In 1.2.0 ``McastRxSocket.iface_infos`` is a dict ``{iface_ip: os_multicast.IfaceInfo}``
    (rx_socket.py: ``self.iface_infos[iface_ip] = os_multicast.get_iface_info(iface_ip)``); 1.6.0
    has only the private ``_iface_infos``. Before the fix it was a list of the new ``IfaceInfo``
    (multicast_expert/rx_socket.py:216-219), so ``rx.iface_infos[ip]`` raises
    "TypeError: list indices must be integers or slices, not str".
    """
    rx = me.McastRxSocket(V4, ["239.77.0.4"], 5000, net.a.host_ip4)
    info = rx.iface_infos[net.a.host_ip4]
    assert info.iface_idx == socket.if_nametoindex(net.a.host_if)


# ---- 1.6.0's public base class ----------------------------------------------------------------
def test_1_6_base_rx_socket_class_is_importable() -> None:
    """README ("Migrating from 1.2 and 1.6"): programs for 1.6.0 "run unchanged", and a test
    "imports every public name of both releases from its old module".

    1.6.0's ``multicast_expert.rx_socket`` defines the public ``BaseMcastRxSocket``, the base of
    both ``McastRxSocket`` and ``AsyncMcastRxSocket`` (``async_rx_socket`` imports it too), the
    type to annotate or ``isinstance``-check "either receive socket" with. Here
    ``from multicast_expert.rx_socket import BaseMcastRxSocket`` raised ImportError (the name was
    missing from tests/test_compat.py's NAMES_1_6_0 as well).
    """
    rx_socket = importlib.import_module("multicast_expert.rx_socket")
    base = getattr(rx_socket, "BaseMcastRxSocket", None)
    assert base is not None, "from multicast_expert.rx_socket import BaseMcastRxSocket fails"
    assert issubclass(me.McastRxSocket, base) and issubclass(me.AsyncMcastRxSocket, base)


# ---- group_source_req on 32-bit Linux ----------------------------------------------------------
_GSR_PROGRAM = r"""
static const unsigned char req[] = { REQ };
static long sys(long n, long a, long b, long c, long d, long e) {
    long r;
    __asm__ volatile ("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e) : "memory");
    return r;
}
void _start(void) {
    long fd = sys(359, FAMILY, 2, 0, 0, 0);                                  /* socket(FAMILY, SOCK_DGRAM) */
    long r = fd < 0 ? fd : sys(366, fd, LEVEL, 46, (long)req, sizeof req);  /* MCAST_JOIN_SOURCE_GROUP */
    sys(1, r < 0 ? -r : 0, 0, 0, 0, 0);                                      /* exit(errno) */
    for (;;) {}
}
"""


def _setsockopt_from_32_bit_process(tmp_path: Path, name: str, family: int, level: int, req: bytes) -> int:
    """Hand ``req`` to setsockopt(level, MCAST_JOIN_SOURCE_GROUP) from an i386 process (as a 32-bit
    Python would: setsockopt passes the bytes through unchanged). Returns the errno, 0 on success."""
    gcc = shutil.which("gcc")
    assert gcc, "gcc is needed to build the i386 probe"
    src, exe = tmp_path / f"{name}.c", tmp_path / name
    src.write_text(_GSR_PROGRAM)
    flags = ["-m32", "-O1", "-nostdlib", "-static", "-ffreestanding", "-fno-pie", "-no-pie"]
    macros = [f"-DREQ={','.join(map(str, req))}", f"-DFAMILY={family}", f"-DLEVEL={level}"]
    subprocess.run([gcc, *flags, *macros, str(src), "-o", str(exe)], check=True, capture_output=True)
    return subprocess.run([str(exe)], check=False, timeout=10).returncode


@pytest.mark.parametrize("family", [V4, V6])
def test_group_source_req_layout_on_32_bit_linux(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, family: int
) -> None:
    """README: "the right socket options and struct layouts for each OS" and "SSM and source
    blocking work for IPv4 and IPv6 on Linux ... with each system's own ``group_source_req``
    layout".

    Linux's ``struct group_source_req`` (<linux/in.h>) is ``{__u32 gsr_interface; struct
    __kernel_sockaddr_storage gsr_group, gsr_source;}``, and ``__kernel_sockaddr_storage``
    (<linux/socket.h>) is aligned like a pointer: 8 bytes on 64-bit, 4 on 32-bit. So a 32-bit
    process (i386, armhf: a 32-bit Raspberry Pi OS) must pass 260 bytes with the group at offset 4
    (a 32-bit process on a 64-bit kernel goes through compat_group_source_req, packed to 4: also
    260 bytes, group at 4).
    Review finding, fixed: the library built the 64-bit layout (264 bytes, group at 8) whatever
    the ABI, which an i386 process's kernel call refuses (IPv4 EINVAL, IPv6 EADDRNOTAVAIL), so
    every source-specific join, block and unblock failed on 32-bit Linux. The padding now follows
    the pointer size (``_structs.SS_ALIGN``): the bytes made as in a 32-bit Python are handed to
    the kernel from an i386 probe (built freestanding with ``gcc -m32``) and accepted.
    """
    level = socket.IPPROTO_IP if family == V4 else socket.IPPROTO_IPV6
    group, source = ("232.77.0.1", "198.18.77.9") if family == V4 else ("ff3e::77:1", "2001:db8:77::9")
    index = socket.if_nametoindex("lo")
    shape = st.GROUP_SOURCE_REQ4 if family == V4 else st.GROUP_SOURCE_REQ6
    target = st.Target(group=group, source=source, ifindex=index)
    native = shape(target)
    assert isinstance(native, bytes) and len(native) == 2 * 128 + struct.calcsize("P")  # (264 on 64-bit)
    monkeypatch.setattr(st, "SS_ALIGN", 4)  # the bytes a 32-bit Python makes (its pointers are 4 bytes)
    ours = shape(target)
    assert isinstance(ours, bytes)

    def storage(ip: str) -> bytes:
        if family == V4:
            return struct.pack("=HH4s8x", family, 0, socket.inet_pton(family, ip)).ljust(128, b"\0")
        return struct.pack("=HHI16sI", family, 0, 0, socket.inet_pton(family, ip), 0).ljust(128, b"\0")

    abi32 = struct.pack("=I", index) + storage(group) + storage(source)  # group at 4: 260 bytes
    # The probe works: the kernel takes the 32-bit layout from a 32-bit process.
    assert _setsockopt_from_32_bit_process(tmp_path, "abi32", family, level, abi32) == 0
    # The library's bytes as a 32-bit Python makes them.
    assert _setsockopt_from_32_bit_process(tmp_path, "library", family, level, ours) == 0, (
        f"library's group_source_req is {len(ours)} bytes; a 32-bit process needs {len(abi32)}"
    )


# ---- kept promises -------------------------------------------------------------------------
def test_1_2_error_texts_and_types_kept(net: Net) -> None:
    """Checked and kept: 1.2.0's error substrings and built-in types for the common mistakes
    (compared with 1.2.0 run in a namespace)."""
    with pytest.raises(me.MulticastExpertError, match="is not a multicast address!"):
        me.McastRxSocket(V4, ["10.1.2.3"], 5000, net.a.host_ip4)
    with pytest.raises(ValueError, match="'garbage' does not appear to be an IPv4 or IPv6 address"):
        me.McastRxSocket(V4, ["garbage"], 5000, net.a.host_ip4)
    with pytest.raises(me.MulticastExpertError, match="Both iface_ips and iface_ip may not be specified"):
        me.McastRxSocket(V4, ["239.77.0.5"], 5000, net.a.host_ip4, [net.a.host_ip4])
    with pytest.raises(me.MulticastExpertError, match="does not seem to correspond to a valid interface"):
        me.McastTxSocket(V4, ["239.77.0.5"], "198.19.77.77")
    with me.McastTxSocket(V4, ["239.77.0.5"], net.a.host_ip4) as tx:
        with pytest.raises(me.MulticastExpertError, match="was not one of the addresses given"):
            tx.sendto(b"x", ("239.77.0.6", 5000))
        with pytest.raises(
            me.MulticastExpertError, match="Attempt to open an McastTxSocket that is already open!"
        ):
            tx.__enter__()
