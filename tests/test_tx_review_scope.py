"""Adversarial review of the IPv6 scope-id rule (256a26e): a destination whose nonzero scope id is
not the index of every interface sent on is refused before anything is sent."""

from __future__ import annotations

import asyncio
import socket

import pytest
from udp_capture import V6, Capture

import multicast_expert as me
from multicast_expert import testing


def test_async_sendto_on_two_ifaces_scope_id_of_the_first_sends_nothing(
    two_peers: tuple[testing.Peer, testing.Peer], port: int
) -> None:
    """README: a scope id that is not the index of every interface sent on 'raises
    MulticastExpertError ... with nothing sent'. AsyncMcastTxSocket.sendto on [A, B] with A's
    index: the synchronous sendto refuses it before sending; the async one sends on A first."""
    a, b = two_peers
    group = "ff12::e:9"
    a_index = socket.if_nametoindex(a.host_if)
    caps = [Capture(a), Capture(b)]
    raised: list[BaseException] = []

    async def main() -> None:
        async with me.AsyncMcastTxSocket(V6, [group], ifaces=[a.host_if, b.host_if]) as tx:
            try:
                await tx.sendto(b"bad", (group, port, 0, a_index))
            except me.MulticastExpertError as exc:
                raised.append(exc)

    try:
        with (
            me.McastTxSocket(V6, [group], ifaces=[a.host_if, b.host_if]) as stx,
            pytest.raises(me.MulticastExpertError, match="scope id"),
        ):
            stx.sendto(b"sync", (group, port, 0, a_index))
        asyncio.run(main())
        seen = [sorted(f.payload for f in cap.drain(0.5) if f.dport == port) for cap in caps]
    finally:
        for cap in caps:
            cap.close()
    assert raised, "the async sendto raised nothing"
    assert seen == [[], []], f"refused, yet sent on {a.host_if}/{b.host_if}: {seen}"


def test_scope_matrix_nothing_sent(two_peers: tuple[testing.Peer, testing.Peer], port: int) -> None:
    """Bad scope ids (and a too-large flowinfo) through every sending path, caches warm: always
    refused, nothing sent anywhere."""
    a, b = two_peers
    group = "ff12::e:a"
    a_i, b_i = socket.if_nametoindex(a.host_if), socket.if_nametoindex(b.host_if)
    caps = [Capture(a), Capture(b)]
    failures: list[str] = []

    def expect(what: str, exc: type[BaseException], fn) -> None:  # type: ignore[no-untyped-def]
        try:
            fn()
        except exc:
            return
        except BaseException as e:
            failures.append(f"{what}: {type(e).__name__}: {e}")
            return
        failures.append(f"{what}: nothing raised")

    try:
        with me.McastTxSocket(V6, [group], iface=a.host_if) as one:
            one.setblocking(True)
            for _ in range(3):  # warm: the C sendto and the known batch destinations
                one.sendto(b"warm", (group, port + 1))
                one.send_batch([(b"warm", (group, port + 1))] * 3)
            w = (group, port + 1)
            expect("sendto", me.MulticastExpertError, lambda: one.sendto(b"bad", (*w, 0, b_i)))
            expect(
                "sendto iface=",
                me.MulticastExpertError,
                lambda: one.sendto(b"bad", (*w, 0, b_i), iface=a.host_if),
            )
            expect(
                "batch mixed",
                me.MulticastExpertError,
                lambda: one.send_batch([(b"bad", w)] * 5 + [(b"bad", (*w, 0, b_i))]),
            )
            expect(
                "batch mixed list",
                me.MulticastExpertError,
                lambda: one.send_batch(iter([(b"bad", w), (b"bad", (*w, 0, b_i))])),  # type: ignore[arg-type]
            )
            expect("sendto flow", OverflowError, lambda: one.sendto(b"bad", (*w, 1 << 20, 0)))
            expect(
                "batch flow",
                OverflowError,
                lambda: one.send_batch([(b"bad", w), (b"bad", (*w, 1 << 20, a_i))]),
            )
            expect("sendto flow u32", OverflowError, lambda: one.sendto(b"bad", (*w, 2**32 - 1, 0)))
        with me.McastTxSocket(V6, [group], ifaces=[a.host_if, b.host_if]) as two:
            two.send_batch([(b"warm", (group, port + 1))])
            expect("two sendto a", me.MulticastExpertError, lambda: two.sendto(b"bad", (*w, 0, a_i)))
            expect(
                "two sendto iface=b a_i",
                me.MulticastExpertError,
                lambda: two.sendto(b"bad", (*w, 0, a_i), iface=b.host_if),
            )
            expect(
                "two batch a",
                me.MulticastExpertError,
                lambda: two.send_batch([(b"bad", w), (b"bad", (*w, 0, a_i))]),
            )
            expect(
                "two batch b",
                me.MulticastExpertError,
                lambda: two.send_batch([(b"bad", w), (b"bad", (*w, 0, b_i))]),
            )
            expect(
                "two batch iface=a b_i",
                me.MulticastExpertError,
                lambda: two.send_batch([(b"bad", w), (b"bad", (*w, 0, b_i))], iface=a.host_if),
            )

        async def main() -> None:
            async with me.AsyncMcastTxSocket(V6, [group], ifaces=[a.host_if, b.host_if]) as atx:
                for bad in [(*w, 0, a_i), (*w, 0, b_i)]:
                    try:
                        await atx.send_batch([(b"bad", w), (b"bad", bad)])
                        failures.append("async batch: nothing raised")
                    except me.MulticastExpertError:
                        pass
            async with me.AsyncMcastTxSocket(V6, [group], iface=a.host_if) as atx1:
                await atx1.sendto(b"warm", w)
                try:
                    await atx1.sendto(b"bad", (*w, 0, b_i))
                    failures.append("async one sendto: nothing raised")
                except me.MulticastExpertError:
                    pass

        asyncio.run(main())
        seen = [
            sorted(f.payload for f in cap.drain(0.5) if f.dport == port + 1 and f.payload != b"warm")
            for cap in caps
        ]
    finally:
        for cap in caps:
            cap.close()
    assert failures == [] and seen == [[], []], (failures, seen)


class _Addr(tuple):  # type: ignore[type-arg]
    """A 4-tuple that compares (and hashes) equal to its (group, port): contrived, but a tuple."""

    def __eq__(self, other: object) -> bool:
        return tuple(self[:2]) == other

    def __hash__(self) -> int:
        return hash(tuple(self[:2]))


def test_tuple_subclass_equal_to_a_known_pair_carries_a_bad_scope_past_the_check(
    two_peers: tuple[testing.Peer, testing.Peer], port: int
) -> None:
    """check_batch's fast pass accepts any address ``in`` the known destinations whose port is an
    int, without checking its type or length, and returns the items unchanged: a tuple
    subclass equal to a known (group, port) whose real contents are (group, port, 0, B's index)
    is sent with that scope id."""
    a, b = two_peers
    group = "ff12::e:b"
    b_i = socket.if_nametoindex(b.host_if)
    caps = [Capture(a), Capture(b)]
    outcome: object = None
    try:
        with me.McastTxSocket(V6, [group], iface=a.host_if) as tx:
            tx.send_batch([(b"warm", (group, port + 1))])  # (group, port) becomes known
            try:
                outcome = tx.send_batch([(b"bad", _Addr((group, port + 1, 0, b_i)))])
            except me.MulticastExpertError as exc:
                outcome = exc
        seen = [sorted(f.payload for f in cap.drain(0.5) if f.dport == port + 1) for cap in caps]
    finally:
        for cap in caps:
            cap.close()
    assert isinstance(outcome, me.MulticastExpertError) and seen == [[b"warm"], []], (outcome, seen)
