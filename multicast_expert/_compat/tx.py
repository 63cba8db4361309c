"""McastTxSocket's positional forms of 1.2.0 and 1.6.0, mapped onto the core's arguments.

1.2.0 and 1.4.0: ``(addr_family, mcast_ips, iface_ip=None, ttl=1, enable_external_loopback=False)``.
1.6.0: ``(addr_family, mcast_ips, iface=None, ttl=1, enable_external_loopback=False,
iface_ip=None)``, where ``iface_ip`` is a legacy alias of ``iface`` and giving both is an error.
The third argument means the interface in every version, so only 1.6.0's sixth needs mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import MulticastValueError

if TYPE_CHECKING:
    from ..interfaces import IfaceSpecifier

#: For both interface arguments: this library's wording, then 1.6.0's (callers may match either).
BOTH_IFACES = "Both iface and iface_ip were given, but iface and iface_ip may not both be specified! Give one"


def legacy_tx_iface(
    third: IfaceSpecifier | None, extra: tuple[IfaceSpecifier | None, ...]
) -> IfaceSpecifier | None:
    """The interface a positional call names: the third argument, or 1.6.0's sixth (``iface_ip``).

    Raises:
        TypeError: more than six positional arguments.
        MulticastValueError: both the third and the sixth name an interface.
    """
    if not extra:
        return third
    if len(extra) > 1:
        raise TypeError(
            f"McastTxSocket() takes at most 6 positional arguments (1.6.0's addr_family, mcast_ips, "
            f"iface, ttl, enable_external_loopback, iface_ip) but {5 + len(extra)} were given"
        )
    sixth = extra[0]
    if sixth is None:
        return third
    if third is not None:
        raise MulticastValueError(BOTH_IFACES)
    return sixth


__all__ = ["BOTH_IFACES", "legacy_tx_iface"]
