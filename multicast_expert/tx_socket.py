"""McastTxSocket: sends multicast from one chosen interface, or several."""

from __future__ import annotations

import socket
import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import _fork_locks, _platform
from ._compat.names import (  # 1.2.0 exported these from this module
    LOCALHOST_IPV4,
    LOCALHOST_IPV6,
    get_default_gateway_iface_ip,
    get_interface_ips,
    is_mac,
    is_windows,
    validate_mcast_ip,
)
from ._compat.tx import legacy_tx_iface
from ._compat.values import LegacyIfaceInfo
from ._describe import describe, some
from ._errors import (
    MulticastExpertError,
    MulticastSendError,
    MulticastValueError,
    OSTTLError,
)
from ._lifecycle import OpenCloseContext, apply_sockopt
from ._packet import McastPacket
from ._platform import Action, translate_oserror
from ._tx_args import (
    Batch,
    Out,
    before_open,
    check_batch,
    check_destination,
    closed_meanwhile,
    interface_specs,
    looked_up_again,
    open_os_socket,
    open_sock,
    overflow_error,
    payload_and_address,
    records,
    signature_1_2,
    tx_closed,
)
from ._tx_replies import Replies
from ._validate import (
    IPv4Or6Address,
    MulticastAddress,
    check_bool,
    check_family,
    check_int_range,
    check_port,
    check_timeout,
    family_name,
    normalize_ip_list,
    normalize_mcast_ip,
)
from .interfaces import IfaceInfo, IfaceSpecifier, resolve_iface, thread_netns

_OsSocket = socket.socket  # (inside the class, ``socket`` is the 1.2.0 property)


class McastTxSocket(OpenCloseContext):
    """A socket that sends UDP multicast to a fixed set of groups from one interface (or several).

    Use it as a context manager (``with McastTxSocket(...) as tx:``) or call open() and close().

    It also receives the unicast replies sent to its own address and port (SSDP, mDNS one-shot
    queries, ssmping): :meth:`recvfrom`, :meth:`recv_packet`, :meth:`recv_batch` (by :attr:`timeout`).

    Args:
        addr_family: ``socket.AF_INET`` or ``socket.AF_INET6``.
        mcast_ips: the groups this socket may send to (strings or ipaddress objects).
        iface_ip: the interface to send from (an IP, a name or an IfaceInfo). None: the interface
            of the default route of ``addr_family``.
        ttl: IPv4 TTL / IPv6 hop limit, 0..255. The default of 1 keeps traffic on the local link.
        enable_external_loopback: also deliver to receivers on this host on a non-loopback
            interface (they must set it too on Windows). Fifth positionally, as in 1.6.0.
        *legacy: 1.6.0's sixth positional argument, ``iface_ip`` (its third was ``iface``).
        iface: same as ``iface_ip`` (the newer spelling); give one or the other.
        ifaces: several interfaces to send every datagram on (instead of ``iface``).
        source_port: send from this UDP port instead of an ephemeral one.
        timeout: how long a receive of replies waits (:attr:`timeout`): None (the default)
            blocks, 0 never waits, else seconds.

    Raises:
        MulticastExpertError: a group is not multicast or of the wrong family, the interface is
            unknown ("does not seem to correspond to a valid interface"), or there is no default
            route ("unable to determine the default gateway").
        TypeError, ValueError: arguments of the wrong type or out of range.
    """

    def __init__(
        self,
        addr_family: int,
        mcast_ips: Iterable[MulticastAddress],
        iface_ip: IfaceSpecifier | None = None,
        ttl: int = 1,
        enable_external_loopback: bool = False,
        *legacy: IfaceSpecifier | None,
        iface: IfaceSpecifier | None = None,
        ifaces: Iterable[IfaceSpecifier] | None = None,
        source_port: int = 0,
        timeout: float | None = None,
    ) -> None:
        self.addr_family: int = check_family(addr_family)
        self.mcast_ips: list[str] = [
            normalize_mcast_ip(ip, addr_family) for ip in normalize_ip_list(mcast_ips, "mcast_ips")
        ]
        self.ttl: int = check_int_range(ttl, "ttl", 0, 255, OSTTLError)
        self.source_port: int = check_port(source_port, "source_port")
        self.enable_external_loopback: bool = check_bool(enable_external_loopback, "enable_external_loopback")
        specs = interface_specs(addr_family, legacy_tx_iface(iface_ip, legacy), iface, ifaces)
        self._specs = [s.machine_name if isinstance(s, IfaceInfo) else s for s in specs]  # (for open)
        self._netns = thread_netns()  # (interfaces are looked up, and OS sockets made, in it only)
        self._open_lock = threading.RLock()  # (re-entrant, as the receive socket's)
        _fork_locks.register(self)
        #: One record per interface, in the order given (each interface once).
        self._outs: list[Out] = records(specs, addr_family)
        self._many = len(self._outs) > 1
        self._iface = self._outs[0].iface
        self.iface_ip: str = self._outs[0].ip
        self._allowed = frozenset(self.mcast_ips)
        self._known: dict[object, object] = {}  # destinations found valid (see check_batch)
        self._sock: socket.socket | None = None  # the first interface's, for the one-interface path
        #: While open on one interface: the allowed groups sendto() was given (the caller's str
        #: objects: found by identity) -> the OS socket. Empty while closed.
        self._fast: dict[object, socket.socket] = {}
        #: The C sendto in use while open on one interface (see _install_hot), else None.
        self._hot: Any = None
        self.is_opened: bool = False
        self._replies = Replies()  # receiving the unicast replies to the socket's own port
        self._timeout: float | None = check_timeout(timeout)

    def _is_open(self) -> bool:
        return self.is_opened

    def __repr__(self) -> str:
        """``<McastTxSocket AF_INET to 239.1.2.3 on eth0 open>`` (long lists abbreviated)."""
        outs = getattr(self, "_outs", None)
        if outs is None:  # (a constructor that raised)
            return object.__repr__(self)
        return describe(
            type(self).__name__,
            family_name(self.addr_family),
            "to " + some(self.mcast_ips, "no groups"),
            "on " + some([o.name for o in outs], "no interface"),
            is_open=self.is_opened,
        )

    @property
    def network_interface(self) -> IfaceInfo:
        """The interface this socket sends from (the first one, when sending on several)."""
        return self._iface

    @property
    def network_interfaces(self) -> list[IfaceInfo]:
        """Every interface this socket sends on (``ifaces=``), else the one."""
        return [o.iface for o in self._outs]

    @property
    def sockets(self) -> list[socket.socket]:
        """The OS sockets, one per interface in the order of :attr:`network_interfaces`, while open."""
        return [o.sock for o in self._outs if o.sock is not None]

    @property
    def iface_info(self) -> LegacyIfaceInfo:
        """1.2.0's record of the (first) interface sent from: ``iface_ip``, ``iface_name``, ``iface_idx``."""
        return LegacyIfaceInfo(self.iface_ip, self._iface.machine_name, self._iface.index)

    @property
    def mcast_ips_set(self) -> frozenset[str]:
        """The groups this socket may send to, as a set (1.6.0)."""
        return self._allowed

    @property
    def socket(self) -> socket.socket | None:
        """The OS socket while open, else None (public in 1.2.0 and 1.6.0)."""
        return self._sock

    def open(self) -> None:
        """Create and configure the OS socket (one per interface). All or nothing. Interfaces whose
        name has another index now (re-created), or whose open fails (an address changed), are
        looked up again as the machine has them (by name unless named by IP) and opened as found.

        Raises:
            MulticastExpertError: already open, or the OS refused a setting (with the reason).
        """
        with self._open_lock:  # (one open or close at a time: two opens would both make sockets)
            if self._sock is not None:
                raise MulticastExpertError("Attempt to open an McastTxSocket that is already open!")
            self._use(before_open(self._netns, self._specs, self.addr_family, self._outs))
            try:
                self._open_all()
            except OSError:
                if not self._use(looked_up_again(self._specs, self.addr_family, self._outs)):
                    raise
                self._open_all()
            self._sock = self._outs[0].sock
            self._fast = {}
            self.is_opened = True
            self._install_hot()

    def _current(self) -> _OsSocket | None:
        return self._sock

    def _locks(self) -> list[Any]:  # (see _fork_locks)
        return [self._open_lock]

    def _use(self, fresh: list[Out] | None) -> bool:  # (False for None)
        if fresh is not None:
            self._outs, self._many, self._known, self._iface = fresh, len(fresh) > 1, {}, fresh[0].iface
            self.iface_ip = fresh[0].ip
        return fresh is not None

    def _open_all(self) -> None:  # (all or nothing)
        try:
            ttl, external, port = self.ttl, self.enable_external_loopback, self.source_port
            self._replies.open([open_os_socket(o, self.addr_family, ttl, external, port) for o in self._outs])
        except BaseException:
            self._replies.close()
            self._close_all()
            raise

    def _install_hot(self) -> None:
        """With the C accelerator and one interface: ``sendto`` is its C method on this instance
        (destinations :meth:`_sendto` checked; the rest to the Python method), holding the socket
        as a bound method does. Left alone: subclass overrides, class patches, the caller's own."""
        make, attrs, old = _platform.IO.tx_hot, self.__dict__, self._hot
        current = attrs.get("sendto")
        if current is not None and (old is None or current != old.sendto):
            return  # the caller's own
        hot = None
        if make is not None and not self._many and type(self).sendto is _TX_SENDTO and self._sock is not None:
            if old is None:
                hot = make(weakref.ref(self), _TX_SENDTO, _TX._sendto_checked, self.addr_family)
            else:
                hot = old
            hot.open(self._sock, self)
            attrs["sendto"] = hot.sendto
        else:
            attrs.pop("sendto", None)
        self._hot = hot

    def _close_all(self) -> None:
        for out in self._outs:
            if out.sock is not None:
                out.sock.close()
                out.sock = None

    def close(self) -> None:
        """Close the OS sockets. Raises MulticastExpertError if already closed."""
        with self._open_lock:
            if self._sock is None:
                raise MulticastExpertError("Attempt to close an McastTxSocket that is already closed!")
            if self._hot is not None:
                self._hot.close()  # (first: the C sendto then hands every call to the Python method)
            # Closed before the OS sockets close: a send in another thread that meets their close
            # finds the socket closed and says so (SocketClosedError, not the OS's EBADF).
            self._sock, self.is_opened = None, False
            self._fast = {}  # (after _sock: a sendto that saw it open fills the discarded dict)
            self._replies.close()  # wakes receives waiting in other threads (they raise)
            self._close_all()

    def setblocking(self, flag: bool) -> None:
        """Make every OS socket blocking (True, as opened) or non-blocking (False).

        Non-blocking, a send that finds a send buffer full raises BlockingIOError (on several
        interfaces: in :class:`MulticastSendError` ``failures``), and ``send_batch`` returns how
        many went out.
        """
        if self._sock is None:
            raise tx_closed("setblocking()")
        check_bool(flag, "flag")
        for sock in self.sockets:
            sock.setblocking(flag)

    def _sendto_any(  # sendto: see below the method
        self,
        bytes: bytes | None = None,  # noqa: A002
        address: IPv4Or6Address | None = None,
        *,
        iface: IfaceSpecifier | None = None,
        tx_bytes: bytes | None = None,
    ) -> None:
        """Send one datagram to ``address`` = ``(group, port)``, on every interface of the socket
        (or only on ``iface``, one of them). 1.6.0's keyword name for ``bytes``, ``tx_bytes``, is
        accepted too.

        Raises:
            MulticastExpertError: the group "was not one of the addresses given" to this socket,
                ``iface`` is not one of its interfaces, or the socket is closed.
            MulticastPortError: the port is outside 0..65535 (nothing was sent).
            MulticastSendError: sending on several interfaces, one or more refused (every other
                interface was still sent on).
            OSError: the OS refused the send on the one interface.
        """
        # The common case first: one interface, open, an allowed (group, port), 1.2.0's names.
        if iface is None and tx_bytes is None:
            try:
                group, port = address  # type: ignore[misc]  # (a 4-tuple: the full check, scope id too)
                sock = self._fast[group]
            except (TypeError, ValueError, LookupError):  # (the full check says what is wrong)
                pass
            else:
                if port is True or port is False:  # (an int to the OS: the full check refuses it)
                    return self._sendto(bytes, address, iface)  # type: ignore[arg-type]
                try:
                    sock.sendto(bytes, address)  # type: ignore[arg-type]  # (None: the socket's TypeError)
                except (OverflowError, OSError) as exc:
                    self._send_failed(exc, self._outs[0], address)  # type: ignore[arg-type]
                return
        self._sendto(*payload_and_address(bytes, address, tx_bytes), iface)

    if TYPE_CHECKING:  # 1.2.0's signature; at run time 1.6.0's name of the payload, tx_bytes, is taken too
        # fmt: off
        def sendto(self, bytes: bytes, address: IPv4Or6Address, *, iface: IfaceSpecifier | None = None) -> None: ...  # noqa: A002, E501
        # fmt: on

    else:
        sendto = _sendto_any

    def _sendto_checked(
        self,
        bytes: bytes = None,  # type: ignore[assignment]  # noqa: A002  (the names sendto's callers use)
        address: IPv4Or6Address = None,  # type: ignore[assignment]
        *,
        iface: IfaceSpecifier | None = None,
        tx_bytes: bytes | None = None,
    ) -> None:
        """:meth:`sendto` as the C sendto hands it over (anything it did not send itself): always
        checked in full, so a destination found valid is remembered for the C method."""
        self._sendto(*payload_and_address(bytes, address, tx_bytes), iface)

    def _sendto(self, data: bytes, address: IPv4Or6Address, iface: IfaceSpecifier | None) -> None:
        """:meth:`sendto` checked in full (closed, several interfaces, ``iface=``, a group new
        to :attr:`_fast`)."""
        fast, sock = self._fast, self._sock  # (in this order: see close)
        if sock is None:
            raise tx_closed("sendto()")
        group, outs = address[0], self._chosen(iface)
        plain = type(address) is tuple and len(address) == 2 and type(address[1]) is not bool
        if group not in self._allowed or not plain:
            address = check_destination(address, self.addr_family, self._allowed, [o.iface for o in outs])
        elif iface is None and not self._many and type(group) is str:
            fast[group] = sock  # the caller's own str: found without comparing next time
            hot = self._hot
            if hot is not None:
                hot.remember(address)  # (checked: the C sendto sends to it from now on)
        self._send_on(outs, data, address)

    def _send_on(self, outs: list[Out], data: bytes, address: IPv4Or6Address) -> None:
        """Send one datagram on each of ``outs`` whatever the others do, then raise for failures."""
        if len(outs) == 1:
            out = outs[0]
            try:
                open_sock(out, "sendto()").sendto(data, address)
            except (OverflowError, OSError) as exc:
                self._send_failed(exc, out, address)
            return
        failures: dict[str, OSError] = {}
        for out in outs:
            try:
                open_sock(out, "sendto()").sendto(data, address)
            except OverflowError as exc:  # the first socket refuses the address: nothing went out
                raise overflow_error(exc, address) from None
            except OSError as exc:
                if not _platform.OPS.harmless_send_error(exc, out.iface.is_localhost()):
                    failures[out.name] = self._explain(exc, f"Sending to {address[0]}", out)
        if failures:
            if self._sock is None:  # (closed by another thread during the send: its sockets' errors)
                raise tx_closed("sendto()")
            sent = {o.name: int(o.name not in failures) for o in outs}
            raise MulticastSendError(f"Sending to {address[0]}", failures, sent)

    def _send_failed(self, exc: OverflowError | OSError, out: Out, address: IPv4Or6Address) -> None:
        """Raise what a failed send on one interface means (nothing where the OS says it is harmless)."""
        if isinstance(exc, OverflowError):
            raise overflow_error(exc, address) from None
        if self._sock is None:  # (closed by another thread during the send: its socket's error)
            raise tx_closed("sendto()") from exc
        if _platform.OPS.harmless_send_error(exc, out.iface.is_localhost()):
            return
        better = self._explain(exc, f"Sending to {address[0]}", out)
        if better is exc:
            raise exc
        raise better from exc  # a MulticastOSError: still an OSError with the OS's errno

    def _explain(self, exc: OSError, action: str, out: Out) -> OSError:
        """The error to report for ``exc`` on one interface (see translate_oserror)."""
        return translate_oserror(exc, Action.SEND, self.addr_family, f"{action} on {out.name}")

    def _chosen(self, iface: IfaceSpecifier | None) -> list[Out]:
        """The records to send on: all of them, or the one of ``iface``."""
        if iface is None:
            return self._outs
        info = iface if isinstance(iface, IfaceInfo) else resolve_iface(iface, self.addr_family)
        for out in self._outs:
            if out.iface.index == info.index:
                return [out]
        raise MulticastValueError(
            f"Interface {info.machine_name} is not one this McastTxSocket sends on; "
            f"it sends on {[o.name for o in self._outs]}"
        )

    def send_batch(
        self, datagrams: Iterable[tuple[bytes, IPv4Or6Address]], *, iface: IfaceSpecifier | None = None
    ) -> int:
        """Send ``(payload, (group, port))`` pairs, on every interface of the socket (or only on
        ``iface``, one of them).

        Every pair is checked as :meth:`sendto` checks it before anything is sent. On Linux one
        ``sendmmsg`` system call sends many datagrams. Returns how many were sent (on every
        interface): fewer than given only when a non-blocking socket's buffer filled.

        Raises:
            MulticastExpertError: a destination not given to this socket, or the socket is closed.
            MulticastPortError: a port outside 0..65535 (nothing was sent).
            TypeError: a pair that is not ``(bytes-like, (group, port))`` (nothing was sent).
            MulticastSendError: the OS refused a datagram; its ``sent`` / ``sent_by_iface`` say
                how many went out before (every other interface was still sent on).
        """
        if self._sock is None:
            raise tx_closed("send_batch()")
        items = datagrams if type(datagrams) is list else list(datagrams)
        first = self._batch_known(self._outs[0], items) if iface is None and not self._many else None
        if first is not None:  # (every destination known valid: sent without the check in Python)
            count, results = len(items), [(self._outs[0], first)]
        else:
            outs = self._chosen(iface)
            ifaces = [o.iface for o in outs]
            checked = check_batch(items, self.addr_family, self._allowed, self._known, ifaces)
            results = [(out, self._batch_on(out, checked)) for out in outs]
            count = len(checked)
        sent: dict[str, int] = {}
        failures: dict[str, OSError] = {}
        for out, (n, exc) in results:
            sent[out.name] = n
            if exc is not None:
                failures[out.name] = self._explain(exc, "Sending a batch", out)
        if failures:
            if self._sock is None:  # (closed by another thread during the send: its sockets' errors)
                raise tx_closed("send_batch()")
            raise MulticastSendError(f"Sending a batch of {count}", failures, sent)
        return min(sent.values())

    def _batch_known(self, out: Out, items: Batch) -> tuple[int, OSError | None] | None:
        """:meth:`_batch_on` of a batch not checked yet, if the platform finds every datagram an
        exact ``(bytes, (str, int))`` tuple to a destination in :attr:`_known`; else None, nothing
        sent (see DatagramIO.send_known)."""
        sock = open_sock(out)
        try:
            n = _platform.IO.send_known(sock, self.addr_family, items, self._known)
        except BlockingIOError:
            return 0, None
        except OSError as exc:
            return 0, exc
        if n is None:
            return None
        return self._batch_on(out, items, n) if 0 < n < len(items) else (n, None)

    def _batch_on(self, out: Out, checked: Batch, done: int = 0) -> tuple[int, OSError | None]:
        """Send ``checked`` on one interface, from ``checked[done]`` on: (how many went out, the
        error that stopped it, if any). A full send buffer only stops it."""
        io, sock = _platform.IO, open_sock(out)
        while done < len(checked):
            try:
                n = io.send_many(sock, self.addr_family, checked[done:] if done else checked)
            except BlockingIOError:
                break
            except OSError as exc:
                return done, exc
            if n is None:  # no sendmmsg here: one at a time
                return self._one_by_one(out, checked, done)
            if not n:
                break
            done += n  # (fewer than all: the next call finds out why)
        return done, None

    def _one_by_one(self, out: Out, checked: Batch, done: int) -> tuple[int, OSError | None]:
        """:meth:`_batch_on` by one ``sendto`` per datagram, from ``checked[done]`` on."""
        sock, loopback = open_sock(out), out.iface.is_localhost()
        harmless = _platform.OPS.harmless_send_error
        for data, addr in checked[done:]:
            try:
                sock.sendto(data, addr)
            except BlockingIOError:
                break
            except OSError as exc:
                if not harmless(exc, loopback):
                    return done, exc
            done += 1
        return done, None

    @property
    def timeout(self) -> float | None:
        """How long a receive waits for a reply: None (the default) blocks, as a bare socket does;
        0 never waits; else seconds. A receive that times out returns None (``recv_batch``: []).
        Assignable. Independent of :meth:`setblocking`, which governs sends only."""
        return self._timeout

    @timeout.setter
    def timeout(self, timeout: float | None) -> None:
        self._timeout = check_timeout(timeout)

    def settimeout(self, timeout: float | None) -> None:
        """Set :attr:`timeout`: None blocks, 0 never waits, a positive number waits that many seconds."""
        self.timeout = timeout

    def recvfrom(self, bufsize: int = 4096, flags: int = 0) -> tuple[bytes, IPv4Or6Address] | None:
        """Receive one reply: a datagram sent by unicast to this socket's own address and port
        (on any of its interfaces), as ``(payload, sender address)``; None on timeout. Waits by
        :attr:`timeout`, whatever the OS sockets' blocking mode; ``flags`` are recvfrom(2)'s
        (``socket.MSG_PEEK`` leaves the datagram queued).

        Raises:
            MulticastExpertError: the socket is closed (also when closed by another thread while
                this call waits).
            ValueError, TypeError: a bufsize outside 1..2**31-1, or flags that are not an int.
        """
        return self._replies.recvfrom(bufsize, flags, self._timeout)

    def recv(self, bufsize: int = 4096, flags: int = 0) -> bytes | None:
        """Receive one reply's payload, or None on timeout (see :meth:`recvfrom`)."""
        got = self._replies.recvfrom(bufsize, flags, self._timeout)
        return None if got is None else got[0]

    def recv_packet(self, bufsize: int = 65535) -> McastPacket | None:
        """Receive one reply as an :class:`McastPacket`, or None on timeout: ``src`` the sender,
        ``group`` the local address it was sent to (unicast: no group), ``iface_index`` the
        interface whose OS socket received it, ``truncated`` whether it was longer than ``bufsize``.

        Raises:
            MulticastExpertError: the socket is closed (also while waiting).
            ValueError, TypeError: a bufsize outside 1..2**31-1.
        """
        return self._replies.recv_packet(bufsize, self._timeout)

    def recv_batch(self, max_packets: int = 64, bufsize: int = 65535) -> list[McastPacket]:
        """Receive up to ``max_packets`` replies (as :meth:`recv_packet` describes each).

        Waits by :attr:`timeout` for the first, then returns the replies already queued (the
        interfaces with some share ``max_packets`` fairly), without waiting more; [] on timeout.

        Raises:
            MulticastExpertError: the socket is closed (also while waiting).
            ValueError, TypeError: ``max_packets`` outside 1..1024 or ``bufsize`` outside 1..2**31-1.
        """
        return self._replies.recv_batch(max_packets, bufsize, self._timeout)

    def fileno(self) -> int:
        """The OS socket's file descriptor (the first interface's; -1 when closed)."""
        return self._sock.fileno() if self._sock is not None else -1

    def getsockname(self) -> IPv4Or6Address:
        """The local address the socket sends from: ``(ip, port)``, or for IPv6
        ``(ip, port, flowinfo, scope_id)`` as the socket module (and 1.2.0) return it."""
        sock = self._sock
        if sock is None:
            raise tx_closed("getsockname()")
        with closed_meanwhile(self._current, "getsockname()", sock):
            name: IPv4Or6Address = sock.getsockname()
        return name

    def setsockopt(self, level: int, opt: int, value: int | bytes) -> None:
        """Set an extra socket option on every underlying OS socket (closed: SocketClosedError)."""
        first, socks = self._sock, self.sockets
        if first is None or not socks:
            raise tx_closed("setsockopt()")
        with closed_meanwhile(self._current, "setsockopt()", first):
            apply_sockopt(socks, level, opt, value)


_TX = McastTxSocket
#: The class's sendto as defined (a patch of the class leaves this as it is).
_TX_SENDTO = McastTxSocket.sendto
# (A wrong call of the C sendto reaches this method: its errors name the method called.)
McastTxSocket._sendto_checked.__qualname__ = "McastTxSocket.sendto"
_TX_SENDTO.__name__, _TX_SENDTO.__qualname__ = "sendto", "McastTxSocket.sendto"
_TX_SENDTO.__signature__ = signature_1_2(_TX_SENDTO)  # type: ignore[attr-defined]

__all__ = [  # the socket class, and what 1.2.0 also exported from this module
    "LOCALHOST_IPV4",
    "LOCALHOST_IPV6",
    "IPv4Or6Address",
    "McastTxSocket",
    "MulticastExpertError",
    "get_default_gateway_iface_ip",
    "get_interface_ips",
    "is_mac",
    "is_windows",
    "validate_mcast_ip",
]
