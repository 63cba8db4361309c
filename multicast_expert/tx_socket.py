"""McastTxSocket: sends multicast from one chosen interface."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from . import _platform
from ._compat.names import (  # 1.2.0 exported these from this module
    LOCALHOST_IPV4,
    LOCALHOST_IPV6,
    get_default_gateway_iface_ip,
    get_interface_ips,
    is_mac,
    is_windows,
    validate_mcast_ip,
)
from ._errors import (
    MulticastExpertError,
    MulticastFamilyError,
    MulticastPortError,
    MulticastValueError,
    OSTTLError,
)
from ._lifecycle import OpenCloseContext, apply_sockopt
from ._platform import Action, os_errors, translate_oserror
from ._platform._structs import Target
from ._rx_args import normalize_iface_list
from ._validate import (
    IPv4Or6Address,
    MulticastAddress,
    check_bool,
    check_family,
    check_int_range,
    check_port,
    family_name,
    normalize_ip_list,
    normalize_mcast_ip,
)
from .interfaces import (
    IfaceInfo,
    IfaceSpecifier,
    get_default_gateway_iface,
    resolve_iface,
)
from .interfaces import iface_ip as primary_ip

_OsSocket = socket.socket  # (inside the class, ``socket`` is the 1.2.0 property)


class McastTxSocket(OpenCloseContext):
    """A socket that sends UDP multicast to a fixed set of groups from one interface.

    Use it as a context manager (``with McastTxSocket(...) as tx:``) or call open() and close().

    Args:
        addr_family: ``socket.AF_INET`` or ``socket.AF_INET6``.
        mcast_ips: the groups this socket may send to (strings or ipaddress objects).
        iface_ip: the interface to send from (an IP, a name or an IfaceInfo). None: the interface
            of the default route of ``addr_family``.
        ttl: IPv4 TTL / IPv6 hop limit, 0..255. The default of 1 keeps traffic on the local link.
        iface: same as ``iface_ip`` (the newer spelling); give one or the other.
        enable_external_loopback: also deliver to receivers on this host on a non-loopback
            interface (they must set it too on Windows). Fifth positionally, as in 1.6.0.
        source_port: send from this UDP port instead of an ephemeral one.

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
        *,
        iface: IfaceSpecifier | None = None,
        ifaces: Iterable[IfaceSpecifier] | None = None,
        source_port: int = 0,
    ) -> None:
        self.addr_family: int = check_family(addr_family)
        self.mcast_ips: list[str] = [
            normalize_mcast_ip(ip, addr_family) for ip in normalize_ip_list(mcast_ips, "mcast_ips")
        ]
        self.ttl: int = check_int_range(ttl, "ttl", 0, 255, OSTTLError)
        self.source_port: int = check_port(source_port, "source_port")
        self.enable_external_loopback: bool = check_bool(enable_external_loopback, "enable_external_loopback")
        if iface is not None and iface_ip is not None:
            raise MulticastValueError("Both iface and iface_ip may not be specified; give one of them")
        spec = iface if iface is not None else iface_ip
        if ifaces is not None:
            if spec is not None:
                raise MulticastValueError("Give either iface/iface_ip (one interface) or ifaces (several)")
            specs = normalize_iface_list(ifaces)
        elif spec is None:
            default = get_default_gateway_iface(addr_family)
            if default is None:
                raise MulticastExpertError(
                    "iface_ip not specified but unable to determine the default gateway on this "
                    "machine; pass iface_ip (an interface IP or name)"
                )
            specs = [default]
        else:
            specs = [spec]
        #: (interface, the address datagrams leave from: the one given, if an address was given,
        #: since an interface may hold several; else the interface's primary address).
        self._outs: list[tuple[IfaceInfo, str]] = []
        for sp in specs:
            info = resolve_iface(sp, addr_family)
            if all(info.index != i.index for i, _ in self._outs):
                self._outs.append(
                    (info, _given_address(sp, info, addr_family) or primary_ip(info, addr_family))
                )
        self._iface = self._outs[0][0]
        self.iface_ip: str = self._outs[0][1]
        self._allowed = frozenset(self.mcast_ips)
        self._sock: socket.socket | None = None
        self._socks: list[socket.socket] = []
        self.is_opened: bool = False

    def _is_open(self) -> bool:
        return self._sock is not None

    @property
    def network_interface(self) -> IfaceInfo:
        """The interface this socket sends from (the first one, when sending on several)."""
        return self._iface

    @property
    def network_interfaces(self) -> list[IfaceInfo]:
        """Every interface this socket sends on (``ifaces=``), else the one."""
        return [i for i, _ in self._outs]

    @property
    def sockets(self) -> list[socket.socket]:
        """The OS sockets, one per interface, while open."""
        return list(self._socks)

    @property
    def iface_info(self) -> IfaceInfo:
        """1.6.0's name for :attr:`network_interface`."""
        return self._iface

    @property
    def mcast_ips_set(self) -> frozenset[str]:
        """The groups this socket may send to, as a set (1.6.0)."""
        return self._allowed

    @property
    def socket(self) -> socket.socket | None:
        """The OS socket while open, else None (public in 1.2.0 and 1.6.0)."""
        return self._sock

    def open(self) -> None:
        """Create and configure the OS socket (one per interface). All or nothing.

        Raises:
            MulticastExpertError: already open, or the OS refused a setting (with the reason).
        """
        if self._sock is not None:
            raise MulticastExpertError("Attempt to open an McastTxSocket that is already open!")
        family = self.addr_family
        ops = _platform.OPS
        socks: list[socket.socket] = []
        try:
            for iface, ip in self._outs:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                socks.append(sock)
                with os_errors(Action.OPEN_TX, family, f"Opening a multicast send socket on {iface}"):
                    ops.configure_tx(
                        sock,
                        family,
                        Target(iface_ip=ip, ifindex=iface.index, ifname=iface.machine_name),
                        self.ttl,
                        ops.tx_loopback(iface.is_localhost(), self.enable_external_loopback),
                        self.source_port,
                    )
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        self._socks = socks
        self._sock = socks[0]
        self.is_opened = True

    def close(self) -> None:
        """Close the OS sockets. Raises MulticastExpertError if already closed."""
        if self._sock is None:
            raise MulticastExpertError("Attempt to close an McastTxSocket that is already closed!")
        for sock in self._socks:
            sock.close()
        self._sock = None
        self._socks = []
        self.is_opened = False

    def sendto(self, bytes: bytes, address: IPv4Or6Address, *, iface: IfaceSpecifier | None = None) -> None:  # noqa: A002
        """Send one datagram to ``address`` = ``(group, port)``, on every interface of the socket
        (or only on ``iface``, one of them).

        Raises:
            MulticastExpertError: the group "was not one of the addresses given" to this socket,
                ``iface`` is not one of its interfaces, or the socket is closed.
            OSError: the OS refused the send.
        """
        sock = self._sock
        if sock is None:
            raise MulticastExpertError("sendto() on a closed McastTxSocket; open it first")
        if address[0] not in self._allowed:
            address = self._check_destination(address)
        if iface is not None or len(self._socks) > 1:
            for s in self._chosen(iface):
                self._send(s, bytes, address)
            return
        try:  # the common case inline: one socket, no extra call on the hot path
            sock.sendto(bytes, address)
        except (OverflowError, OSError) as exc:
            self._send_failed(exc, sock, address)

    def _send(self, sock: _OsSocket, data: bytes, address: IPv4Or6Address) -> None:
        try:
            sock.sendto(data, address)
        except (OverflowError, OSError) as exc:
            self._send_failed(exc, sock, address)

    def _send_failed(self, exc: OverflowError | OSError, sock: _OsSocket, address: IPv4Or6Address) -> None:
        """Raise what a failed send means (nothing where the OS says it is harmless)."""
        if isinstance(exc, OverflowError):
            raise MulticastPortError(
                f"port {address[1]!r} is out of range; valid ports are 0..65535"
            ) from None
        iface = self._outs[self._socks.index(sock)][0] if sock in self._socks else self._iface
        if _platform.OPS.harmless_send_error(exc, iface.is_localhost()):
            return
        better = translate_oserror(
            exc, Action.SEND, self.addr_family, f"Sending to {address[0]} on {iface.machine_name}"
        )
        if better is exc:
            raise exc
        raise better from exc  # a MulticastOSError: still an OSError with the OS's errno

    def _chosen(self, iface: IfaceSpecifier | None) -> list[_OsSocket]:
        if iface is None:
            return list(self._socks)
        info = resolve_iface(iface, self.addr_family)
        for (i, _), sock in zip(self._outs, self._socks, strict=True):
            if i.index == info.index:
                return [sock]
        raise MulticastValueError(
            f"Interface {info.machine_name} is not one this McastTxSocket sends on; "
            f"it sends on {[i.machine_name for i, _ in self._outs]}"
        )

    def send_batch(self, datagrams: Iterable[tuple[bytes, IPv4Or6Address]]) -> int:
        """Send ``(payload, (group, port))`` pairs, on every interface of the socket.

        Each destination is checked as :meth:`sendto` checks it. On Linux one ``sendmmsg`` system
        call sends many datagrams. Returns how many datagrams were sent (on every interface):
        fewer than given only when a non-blocking socket's buffer filled.

        Raises:
            MulticastExpertError: a destination not given to this socket, or the socket is closed.
            OSError: the OS refused the send.
        """
        if self._sock is None:
            raise MulticastExpertError("send_batch() on a closed McastTxSocket; open it first")
        allowed = self._allowed
        checked = [
            (data, addr if addr[0] in allowed else self._check_destination(addr)) for data, addr in datagrams
        ]
        family = self.addr_family
        sent = len(checked)
        for sock in self._socks:
            try:
                with os_errors(
                    Action.SEND,
                    family,
                    f"Sending a batch on {self._outs[self._socks.index(sock)][0].machine_name}",
                ):
                    n = _platform.IO.send_many(sock, family, checked)
            except BlockingIOError:
                n = 0
            if n is None:  # no sendmmsg here: one at a time
                n = 0
                for data, addr in checked:
                    try:
                        self._send(sock, data, addr)
                    except BlockingIOError:
                        break
                    n += 1
            sent = min(sent, n)
        return sent

    def _check_destination(self, address: object) -> IPv4Or6Address:
        if not isinstance(address, tuple) or len(address) not in (2, 4):
            raise TypeError(f"address must be a (group, port) tuple, not {address!r}")
        try:
            group = normalize_mcast_ip(address[0], self.addr_family)
        except (MulticastExpertError, TypeError):
            group = str(address[0])
        if group not in self._allowed:
            raise MulticastExpertError(
                f"The given destination address ({address[0]}) was not one of the addresses given "
                f"for this McastTxSocket to transmit to! Allowed: {sorted(self._allowed)}"
            )
        check_port(address[1])
        return (group, *address[1:])

    def fileno(self) -> int:
        """The OS socket's file descriptor (the first interface's; -1 when closed)."""
        return self._sock.fileno() if self._sock is not None else -1

    def getsockname(self) -> IPv4Or6Address:
        """The local address the socket sends from: ``(ip, port)``, or for IPv6
        ``(ip, port, flowinfo, scope_id)`` as the socket module (and 1.2.0) return it."""
        if self._sock is None:
            raise MulticastExpertError("getsockname() on a closed McastTxSocket; open it first")
        name: IPv4Or6Address = self._sock.getsockname()
        return name

    def setsockopt(self, level: int, opt: int, value: int | bytes) -> None:
        """Set an extra socket option on every underlying OS socket."""
        apply_sockopt(self._socks, level, opt, value)


def _given_address(spec: IfaceSpecifier, iface: IfaceInfo, family: int) -> str | None:
    """The address ``spec`` names, if it is an address (not a name or an IfaceInfo)."""
    if isinstance(spec, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = spec
    elif isinstance(spec, str) and spec != iface.machine_name:
        try:
            ip = ipaddress.ip_address(spec)
        except ValueError:
            return None
    else:
        return None
    if (ip.version == 4) != (family == socket.AF_INET):
        raise MulticastFamilyError(
            f"iface_ip {ip} is IPv{ip.version} but this is an {family_name(family)} socket! "
            f"Give an IPv{6 if ip.version == 4 else 4} address of {iface.machine_name}, or its name"
        )
    if ip.version == 6 and ip.is_link_local and "%" not in str(ip):
        return f"{ip}%{iface.machine_name}"
    return str(ip)


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
