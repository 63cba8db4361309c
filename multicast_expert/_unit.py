"""One OS socket of a receiving socket (a group on one interface), and the object the library
reads it through, made on first need.

Where the OS has MSG_DONTWAIT the library reads through a second socket object on the same
descriptor (see ``DatagramIO.reader``). Most sockets never need it (the C accelerator reads the
descriptor itself; a socket opened and closed unread needs nothing), so it is made on the first
access to :attr:`Unit.reader`, once, and let go of by :meth:`Unit.close`. Where the OS has no such
flag (Windows) the socket itself is the reader, set when the unit is made.

Layering rule: uses the per-OS I/O layer only; the membership makes units, the receive engine and
the read functions use them.
"""

from __future__ import annotations

import errno
import socket
import threading

from . import _platform
from ._platform._structs import Target
from .interfaces import IfaceInfo

#: Guards making a reader against closing its unit (rare and short: one lock for every unit).
_reader_lock = threading.Lock()


class Unit:
    """One OS socket: a group (with some of its sources) on one interface."""

    __slots__ = ("fd", "group", "iface", "live", "made", "reader", "sock", "sources", "target")

    #: What the library reads the socket through (see ``DatagramIO.reader``): set when the unit is
    #: made where the OS needs it from the start, else made by :meth:`__getattr__` on first access.
    reader: socket.socket

    def __init__(
        self,
        sock: socket.socket,
        reader: socket.socket | None,
        group: str,
        iface: IfaceInfo,
        sources: tuple[str, ...],
        target: Target,
    ) -> None:
        #: The OS socket, as the socket class exposes it.
        self.sock = sock
        #: Whether :attr:`reader` is set (then :meth:`close` lets go of it).
        self.made = reader is not None
        if reader is not None:
            self.reader = reader
        self.fd = sock.fileno()
        self.group = group
        self.iface = iface
        self.sources = sources
        self.target = target
        self.live = True

    def __getattr__(self, name: str) -> socket.socket:
        """Make :attr:`reader` on its first access (only unset attributes come here). Raises
        OSError (EBADF) once the unit is closed, or its socket was closed by the program: a
        reader is never made on a descriptor number that may belong to another socket by then."""
        if name != "reader":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        with _reader_lock:
            if self.made:  # made by another thread meanwhile
                return self.reader
            if not self.live or self.sock.fileno() != self.fd:  # (also one the program closed)
                raise OSError(errno.EBADF, f"the socket for {self.group} is closed")
            reader = _platform.IO.reader(self.sock)
            self.reader = reader
            self.made = True
            return reader

    def close(self) -> None:
        """Close the OS socket (leaving its group on its interface), and let go of its reader."""
        with _reader_lock:  # (no reader is made after this)
            self.live = False
            made = self.made
        if made:
            _platform.IO.release(self.reader, self.sock)
        else:
            self.sock.close()
