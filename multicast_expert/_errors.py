"""The library's exception types.

Layering rule: this module is a leaf. It imports nothing from the package, so every other module
may import it.

Every error the library raises on purpose is a :class:`MulticastExpertError`. Where Python
convention (or multicast_expert 1.2.0) raised a built-in type, the error is an instance of that
type too, so ``except ValueError``, ``except OSError`` and ``except OverflowError`` keep working.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping


class MulticastExpertError(RuntimeError):
    """Raised for every multicast-specific problem this library detects."""


class MulticastValueError(MulticastExpertError, ValueError):
    """A bad argument value. Catchable as either MulticastExpertError or ValueError."""


class MulticastPortError(MulticastValueError, OverflowError):
    """A port outside 0..65535 (an OverflowError too, as the socket module raises)."""


class MulticastRangeError(MulticastValueError, OverflowError):
    """A number outside what the OS takes where the socket module raises OverflowError (an IPv6
    flowinfo above 2**20-1), found before anything is sent."""


class MulticastFamilyError(MulticastValueError, socket.gaierror):
    """An address of the wrong family (a socket.gaierror, hence an OSError, too, as in 1.2.0)."""


class MulticastOSError(MulticastExpertError, OSError):
    """The OS refused a socket operation; the message says why and what to do.

    Keeps the OS's ``errno`` (and ``winerror`` on Windows), so code that inspects it still works.
    """

    def __init__(self, errno: int | None, message: str) -> None:
        OSError.__init__(self, errno, message)

    def __str__(self) -> str:
        return str(self.strerror)


class OSTTLError(MulticastValueError, OSError):
    """A TTL / hop limit out of range (an OSError too: 1.2.0 let setsockopt reject it)."""


class UnknownFamilyError(MulticastValueError, KeyError):
    """An address family other than AF_INET / AF_INET6: a ValueError, and a KeyError as in 1.6.0."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownInterfaceError(MulticastExpertError, KeyError):
    """No interface holds the given IP (a KeyError too, as 1.2.0 raised)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SocketClosedError(MulticastExpertError):
    """An operation on a closed socket, or a receive or send that was waiting when the socket was
    closed (by ``close()`` in another thread or task). Open the socket (again) first.

    A :class:`MulticastExpertError`, so code written for 1.2.0's ``except MulticastExpertError``
    still catches it; the message keeps 1.2.0's words ("... on a closed McastRxSocket; open it
    first").
    """


class EngineClosedError(Exception):
    """Inside the receive engine: a receive found the socket closed (the socket class words the
    error the user sees)."""


class MulticastSendError(MulticastOSError):
    """A send failed on at least one interface; every other interface was still sent on.

    Raised by ``send_batch`` whenever the OS refuses a datagram, and by ``sendto`` when a socket
    sends on several interfaces (``ifaces=``). An OSError whose ``errno`` is the first failure's.

    Attributes:
        failures: interface name -> the error it gave (each with its own errno and advice).
        sent_by_iface: interface name -> how many datagrams went out there (in order: the first
            ``n`` of those given), for every interface the send was for.
        sent: how many went out on every one of them (the smallest of ``sent_by_iface``).
        sent_on: the interfaces that sent everything, in the socket's order.
    """

    def __init__(self, what: str, failures: Mapping[str, OSError], sent_by_iface: Mapping[str, int]) -> None:
        self.failures: dict[str, OSError] = dict(failures)
        self.sent_by_iface: dict[str, int] = dict(sent_by_iface)
        self.sent: int = min(self.sent_by_iface.values(), default=0)
        self.sent_on: list[str] = [name for name in self.sent_by_iface if name not in self.failures]
        first = next(iter(self.failures.values()), None)
        reasons = "; ".join(f"on {name}: {err}" for name, err in self.failures.items())
        counts = ", ".join(f"{n} on {name}" for name, n in self.sent_by_iface.items())
        ok = ", ".join(self.sent_on) or "none"
        super().__init__(
            first.errno if first is not None else None,
            f"{what} failed {reasons}. Sent {counts}; interfaces that sent everything: {ok}",
        )


__all__ = [
    "MulticastExpertError",
    "MulticastFamilyError",
    "MulticastOSError",
    "MulticastPortError",
    "MulticastSendError",
    "MulticastValueError",
    "OSTTLError",
    "SocketClosedError",
    "UnknownFamilyError",
    "UnknownInterfaceError",
]
