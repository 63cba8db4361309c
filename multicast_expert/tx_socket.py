"""McastTxSocket: sends multicast from one chosen interface."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from ._common import OpenCloseContext, apply_sockopt, explained, iface_ip, resolve_iface
from ._platform import OPS
from .interfaces import IfaceInfo, IfaceSpecifier, get_default_gateway_iface
from .utils import (
    IPv4Or6Address,
    MulticastAddress,
    MulticastExpertError,
    MulticastValueError,
    check_family,
    check_int_range,
    check_port,
    normalize_ip_list,
    normalize_mcast_ip,
)


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
            interface (they must set it too on Windows).
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
        *,
        iface: IfaceSpecifier | None = None,
        enable_external_loopback: bool = False,
        source_port: int = 0,
    ) -> None:
        self.addr_family = check_family(addr_family)
        self.mcast_ips = [
            normalize_mcast_ip(ip, addr_family) for ip in normalize_ip_list(mcast_ips, "mcast_ips")
        ]
        self.ttl = check_int_range(ttl, "ttl", 0, 255)
        self.source_port = check_port(source_port, "source_port")
        self.enable_external_loopback = bool(enable_external_loopback)
        if iface is not None and iface_ip is not None:
            raise MulticastValueError("Both iface and iface_ip may not be specified; give one of them")
        spec = iface if iface is not None else iface_ip
        if spec is None:
            default = get_default_gateway_iface(addr_family)
            if default is None:
                raise MulticastExpertError(
                    "iface_ip not specified but unable to determine the default gateway on this "
                    "machine; pass iface_ip (an interface IP or name)"
                )
            spec = default
        self._iface = resolve_iface(spec, addr_family)
        self.iface_ip = iface_ip if isinstance(iface_ip, str) else self._iface.primary_ip(addr_family)
        self._allowed = frozenset(self.mcast_ips)
        self._sock: socket.socket | None = None
        self.is_opened = False

    @property
    def network_interface(self) -> IfaceInfo:
        """The interface this socket sends from."""
        return self._iface

    def open(self) -> None:
        """Create and configure the OS socket.

        Raises:
            MulticastExpertError: already open, or the OS refused a setting (with the reason).
        """
        if self._sock is not None:
            raise MulticastExpertError("Attempt to open an McastTxSocket that is already open!")
        family = self.addr_family
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            with explained(f"Opening a multicast send socket on {self._iface}", family):
                OPS.configure_tx(
                    sock,
                    family,
                    iface_ip(self._iface, family),
                    self._iface.index,
                    self.ttl,
                    OPS.tx_loopback(self._iface.is_localhost(), self.enable_external_loopback),
                    self.source_port,
                )
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self.is_opened = True

    def close(self) -> None:
        """Close the OS socket. Raises MulticastExpertError if it is already closed."""
        if self._sock is None:
            raise MulticastExpertError("Attempt to close an McastTxSocket that is already closed!")
        self._sock.close()
        self._sock = None
        self.is_opened = False

    def sendto(self, bytes: bytes, address: IPv4Or6Address) -> None:  # noqa: A002 (1.2.0 name)
        """Send one datagram to ``address`` = ``(group, port)``.

        Raises:
            MulticastExpertError: the group "was not one of the addresses given" to this socket,
                or the socket is closed.
            OSError: the OS refused the send.
        """
        sock = self._sock
        if sock is None:
            raise MulticastExpertError("sendto() on a closed McastTxSocket; open it first")
        if address[0] not in self._allowed:
            address = self._check_destination(address)
        try:
            sock.sendto(bytes, address)
        except OverflowError:
            raise MulticastValueError(
                f"port {address[1]!r} is out of range; valid ports are 0..65535"
            ) from None
        except OSError as exc:
            where = f"Sending to {address[0]} on {self._iface.machine_name}"
            better = OPS.explain_oserror(exc, where, self.addr_family)
            if better is None:
                raise
            raise OSError(exc.errno, str(better)) from exc  # still an OSError, as from a plain socket

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
        """The OS socket's file descriptor (-1 when closed)."""
        return self._sock.fileno() if self._sock is not None else -1

    def getsockname(self) -> tuple[str, int]:
        """The local (address, port) the socket sends from."""
        if self._sock is None:
            raise MulticastExpertError("getsockname() on a closed McastTxSocket; open it first")
        name = self._sock.getsockname()
        return (name[0], name[1])

    def setsockopt(self, level: int, opt: int, value: int | bytes) -> None:
        """Set an extra socket option on the underlying OS socket."""
        apply_sockopt([self._sock] if self._sock is not None else [], level, opt, value)


__all__ = ["McastTxSocket"]
