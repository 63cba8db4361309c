"""The library's exception types.

Layering rule: this module is a leaf. It imports nothing from the package, so every other module
may import it.

Every error the library raises on purpose is a :class:`MulticastExpertError`. Where Python
convention (or multicast_expert 1.2.0) raised a built-in type, the error is an instance of that
type too, so ``except ValueError``, ``except OSError`` and ``except OverflowError`` keep working.
"""

from __future__ import annotations

import socket


class MulticastExpertError(RuntimeError):
    """Raised for every multicast-specific problem this library detects."""


class MulticastValueError(MulticastExpertError, ValueError):
    """A bad argument value. Catchable as either MulticastExpertError or ValueError."""


class MulticastPortError(MulticastValueError, OverflowError):
    """A port outside 0..65535 (an OverflowError too, as the socket module raises)."""


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


class EngineClosedError(Exception):
    """Inside the receive engine: a receive found the socket closed (the socket class words the
    error the user sees)."""


__all__ = [
    "MulticastExpertError",
    "MulticastFamilyError",
    "MulticastOSError",
    "MulticastPortError",
    "MulticastValueError",
    "OSTTLError",
    "UnknownFamilyError",
    "UnknownInterfaceError",
]
