"""McastRxSocket's 1.2.0 / 1.6.0 argument forms, turned into the core's keyword arguments.

1.2.0: ``(addr_family, mcast_ips, port, iface_ip=None, iface_ips=None, source_ips=None,
blocking=True)``. 1.6.0 put ``timeout`` seventh and then ``blocking, enable_external_loopback,
iface_ip, iface_ips`` (where its ``iface_ip``/``iface_ips`` are the newer ``iface``/``ifaces``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, Final

from .._validate import check_bool, check_timeout
from ..interfaces import IfaceSpecifier


class Unset(enum.Enum):
    """The type of :data:`UNSET`: "not given" where None already means something (block)."""

    UNSET = "unset"

    def __repr__(self) -> str:
        return "UNSET"


#: ``timeout`` was not given.
UNSET: Final = Unset.UNSET


def timeout_from(blocking: object, timeout: float | Unset | None) -> float | None:
    """Combine 1.2.0's ``blocking`` and 1.6.0's ``timeout`` (and 1.6.0's 7th positional timeout)."""
    if blocking is not None and not isinstance(blocking, bool):
        if timeout is not UNSET or not isinstance(blocking, (int, float)):
            check_bool(blocking, "blocking")  # raises: blocking="no" is not False
        timeout, blocking = blocking, None  # type: ignore[assignment]  # 1.6.0: the 7th is the timeout
    if timeout is UNSET:
        return None if blocking in (None, True) else 0.0
    if blocking is False:
        check_timeout(timeout)
        return 0.0
    return check_timeout(timeout)


def from_1_6_positions(
    seventh: object,
    timeout: float | Unset | None,
    more: tuple[object, ...],
    loopback: bool,
    iface: IfaceSpecifier | None,
    ifaces: Iterable[IfaceSpecifier] | None,
) -> tuple[Any, Any, Any, Any, Any]:
    """Arguments 8 to 11 follow 1.6.0: (blocking, enable_external_loopback, iface_ip, iface_ips);
    the 7th is then 1.6.0's timeout. Returns (blocking, timeout, loopback, iface, ifaces)."""
    if len(more) > 4:
        raise TypeError(f"McastRxSocket() takes at most 11 positional arguments ({7 + len(more)} given)")
    if timeout is not UNSET:
        raise TypeError("McastRxSocket() got timeout both as the 7th positional argument (1.6.0) and by name")
    given = [*more, None, None, None][:4]
    if len(more) > 1:
        loopback = given[1]  # type: ignore[assignment]
    if given[2] is not None:
        if iface is not None:
            raise TypeError("McastRxSocket() got iface_ip both positionally (1.6.0) and as iface")
        iface = given[2]  # type: ignore[assignment]
    if given[3] is not None:
        if ifaces is not None:
            raise TypeError("McastRxSocket() got iface_ips both positionally (1.6.0) and as ifaces")
        ifaces = given[3]  # type: ignore[assignment]
    if given[0] is not None:  # 1.6.0: a blocking given overrides the timeout (True: block forever)
        return check_bool(given[0], "blocking"), UNSET, loopback, iface, ifaces
    return given[0], seventh, loopback, iface, ifaces
