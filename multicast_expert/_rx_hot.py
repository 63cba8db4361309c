"""The C receive methods of an open McastRxSocket (the accelerator's ``RxHot``): installing them,
keeping them told of the engine's fast-path state, and going on where they stop.

With the accelerator, ``rx.recvfrom`` and ``rx.recv_packet`` are bound methods of one ``RxHot``
per socket, put in the instance's dict over the class's methods, so a receive goes from the
caller straight into C. They serve the engine's fast paths only (one socket read or waited on;
several behind one epoll with nothing queued) and hand everything else to the class's methods
(other arguments, keywords, a closed socket) or to :func:`resume` (woken by another socket, a
join, a leave or a close; several sockets ready at once), so the behaviour is the Python code's.

Layering rule: knows the engine's state only as the values :func:`tell` is given; uses the
per-OS I/O layer (which makes the C object) and the packet type.
"""

from __future__ import annotations

import collections
import weakref
from typing import Any, Protocol

from . import _platform, _rx_read
from ._errors import EngineClosedError, SocketClosedError
from ._packet import McastPacket
from ._platform._poller import Poller


class HotPath(Protocol):
    """A copy of the engine's fast-path state kept outside it: the engine tells it every change,
    under its lock, through :func:`tell`."""

    def set_single(self, unit: Any, fd: int, poller: Poller, wake_fd: int, /) -> None: ...
    def set_multi(
        self, by_fd: dict[int, Any], ready: collections.deque[Any], poller: Poller, epfd: int, wake_fd: int, /
    ) -> None: ...
    def set_off(self) -> None: ...
    def set_closed(self) -> None: ...


def tell(
    hot: HotPath,
    closed: bool,
    poller: Poller | None,
    single: Any,
    multi: bool,
    by_fd: dict[int, Any],
    ready: collections.deque[Any],
) -> None:
    """Tell ``hot`` the engine's state: the same conditions as the engine's own fast paths
    (``single``: the only socket, nothing else watched; ``multi``: several sockets, nothing
    else watched), which need the poller (its descriptor wakes a single-socket wait)."""
    if closed:
        hot.set_closed()
    elif poller is None:
        hot.set_off()
    elif single is not None:
        hot.set_single(single, single.fd, poller, poller.fd)
    elif multi:
        hot.set_multi(by_fd, ready, poller, poller.fd, poller.waker.fd)
    else:
        hot.set_off()


def install(rx: Any, base: Any) -> None:
    """On opening ``rx`` (an McastRxSocket; ``base`` the class itself): where the OS layer in use
    has the C methods, make ``rx.recvfrom`` and ``rx.recv_packet`` them, unless a subclass
    overrides the method; elsewhere, or when the OS layer changed, the class's methods again."""
    make, cls, attrs = _platform.IO.rx_hot, type(rx), rx.__dict__
    hot = None
    if make is not None:
        packet_cls = None if rx._meta else McastPacket
        hot = make(weakref.ref(rx), base.recvfrom, base.recv_packet, resume, packet_cls, rx._timeout)
    rx._hot = hot
    rx._engine.set_hot_path(hot)
    for name in ("recvfrom", "recv_packet"):
        if hot is not None and getattr(cls, name) is getattr(base, name):
            attrs[name] = getattr(hot, name)
        else:
            attrs.pop(name, None)


def resume(rx: Any, kind: int, bufsize: int, timeout: float | None, polled: list[int] | None) -> Any:
    """Go on with a receive the C methods began (kind 0: recvfrom, 1: recv_packet) in the
    engine's general loop: they were woken, or found several sockets ready (``polled``)."""
    if kind == 0:
        readers = rx._plain_readers.get(bufsize)
        if readers is None:
            readers = rx._remember((0, bufsize, 0), _rx_read.datagram_readers(bufsize, 0))
    else:
        readers = rx._readers.get((1, bufsize, 0))
        if readers is None:
            made = _rx_read.packet_readers(bufsize, rx.addr_family, rx._meta)
            readers = rx._remember((1, bufsize, 0), made)
    try:
        return rx._engine.resume(readers[0], timeout, polled)
    except EngineClosedError:
        what = "recv_packet()" if kind else "recvfrom()"
        raise SocketClosedError(f"{what} on a closed McastRxSocket; open it first") from None
