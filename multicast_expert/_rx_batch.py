"""Reading many datagrams of one socket at once, for McastRxSocket.recv_batch.

Layering rule: uses the per-OS layer (recvmmsg where it exists) and the packet type only.
"""

from __future__ import annotations

from collections.abc import Callable

from . import _platform
from ._membership import Unit
from ._packet import McastPacket


def batch_reader(family: int, meta: bool, bufsize: int) -> Callable[[Unit, int], list[McastPacket]]:
    """``read_many(unit, n)`` for the engine's batch receive: recvmmsg where the OS has it."""
    ops = _platform.OPS
    size = min(bufsize, 65535)

    def read_many(u: Unit, n: int) -> list[McastPacket]:
        got = ops.recv_many(u.sock, n, size, meta)
        group, index = u.group, u.iface.index
        if got is not None:
            if not meta:  # tuple.__new__ skips the NamedTuple's Python-level __new__
                new = tuple.__new__
                return [new(McastPacket, (d, src, group, index, t, None, None, None)) for d, src, t, _ in got]
            decode = ops.decode_meta
            return [McastPacket(d, src, group, index, t, *decode(anc, family)) for d, src, t, anc in got]
        out: list[McastPacket] = []  # no recvmmsg here: one datagram at a time
        for _ in range(n):
            try:
                if meta:
                    d, src, trunc, m = ops.recv_packet_meta(u.sock, bufsize, family)
                    out.append(McastPacket(d, src, group, index, trunc, *m))
                else:
                    d, src, trunc = ops.recv_packet(u.sock, bufsize, group)
                    out.append(McastPacket(d, src, group, index, trunc))
            except (BlockingIOError, InterruptedError):
                break
        return out

    return read_many
