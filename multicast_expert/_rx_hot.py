"""The C receive methods of an open McastRxSocket (the accelerator's ``RxHot``): installing them,
keeping them told of the engine's fast-path state, and going on where they stop.

With the accelerator, ``rx.recvfrom`` and ``rx.recv_packet`` are bound methods of one ``RxHot``
per socket, put in the instance's dict over the class's methods, so a receive goes from the
caller straight into C. They serve the engine's fast paths only (one socket read or waited on;
several behind one epoll with nothing queued) and hand everything else to the class's methods
(other arguments, keywords, a closed socket) or to :func:`resume` (woken by another socket, a
join, a leave or a close; several sockets ready at once), so the behaviour is the Python code's.

Without the accelerator, :class:`PyHot` does the same in Python where the OS layer reads
without a destination filter (POSIX): its two closures serve the same fast paths as the engine's
own pure ones with one Python frame per receive instead of three.

Layering rule: knows the engine's state only as the values :func:`tell` is given; uses the
per-OS I/O layer (which makes the C object) and the packet type.
"""

from __future__ import annotations

import collections
import functools
import inspect
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Literal, Protocol

from . import _platform, _rx_read
from ._errors import EngineClosedError, SocketClosedError
from ._packet import McastPacket
from ._platform._poller import Poller
from ._wait_policy import ReadFirstPolicy

_MAX_BUF = 2**31
#: The default of the PyHot closures' arguments: the caller left it out.
_NOT_GIVEN: Any = object()
_KW = inspect.Parameter.POSITIONAL_OR_KEYWORD
_RECVFROM_SIGNATURE = inspect.Signature(
    [inspect.Parameter("bufsize", _KW, default=4096), inspect.Parameter("flags", _KW, default=0)]
)
_PACKET_SIGNATURE = inspect.Signature([inspect.Parameter("bufsize", _KW, default=65535)])
_new = tuple.__new__


class HotPath(Protocol):
    """A copy of the engine's fast-path state kept outside it: the engine tells it every change,
    under its lock, through :func:`tell`."""

    def set_single(
        self, unit: Any, fd: int, by_fd: dict[int, Any], poller: Poller, epfd: int, wake_fd: int, /
    ) -> None: ...
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
        hot.set_single(single, single.fd, by_fd, poller, poller.fd, poller.waker.fd)
    elif multi:
        hot.set_multi(by_fd, ready, poller, poller.fd, poller.waker.fd)
    else:
        hot.set_off()


class PyHot:
    """:class:`HotPath` in Python: ``recvfrom`` and ``recv_packet`` closures over the engine's
    fast-path state with the C ``RxHot``'s constructor and hand-overs (for a POSIX OS layer, whose
    reads are ``reader.recvfrom``/``recvmsg`` with MSG_DONTWAIT). One socket: the engine's
    read-first policy, then one poll of the poller (which also reports the waker) and a read;
    several: one poll and, when one socket is ready, its read. The rest goes to ``resume``."""

    def __init__(
        self,
        owner_ref: Callable[[], Any],
        slow_from: Callable[..., Any],
        slow_packet: Callable[..., Any],
        resume: Callable[..., Any],
        packet_cls: type[McastPacket] | None,
        timeout: float | None,
        policy: ReadFirstPolicy,
    ) -> None:
        #: [go, timeout, closed, the socket while open (see hold), state]. state: (unit, poller,
        #: None, None) for one socket, (None, poller, by_fd, ready) for several, None when the
        #: engine's own paths serve; go: state + (timeout,), or None when state is None or the
        #: timeout is 0 (one tuple read per receive, replaced whole by either's change). (The
        #: poller itself, not its poll method: a receive holds it, so a close that drops the
        #: engine's cannot close its waker under the wait and swallow the wake-up.)
        self._cell: list[Any] = [None, timeout, False, None, None]
        #: Serializes the writers of ``go`` (the engine's changes and timeout changes come from
        #: different threads, and each combines its value with the other's).
        self._lock = threading.Lock()
        cell, io = self._cell, _platform.IO
        self.recvfrom = _receiver(self._cell, owner_ref, slow_from, resume, policy, None, io.DONTWAIT)
        if packet_cls is None:  # (metadata: always the engine's own path)

            def recv_packet(*args: Any, **kwargs: Any) -> Any:
                return _call_class(cell, owner_ref, "recv_packet", slow_packet, *args, **kwargs)

            recv_packet.__signature__ = _PACKET_SIGNATURE  # type: ignore[attr-defined]

        else:
            cls, dontwait, trunc = packet_cls, io.DONTWAIT, io.TRUNC

            def read_packet(u: Any, bufsize: int) -> Any:
                data, _anc, msg_flags, src = u.reader.recvmsg(bufsize, 0, dontwait)
                if not u.live:  # (see _rx_read.gone: the read may have met a reused number)
                    raise _rx_read.gone(u)
                return _new(
                    cls, (data, src, u.group, u.iface.index, msg_flags & trunc != 0, None, None, None)
                )

            recv_packet = _receiver(self._cell, owner_ref, slow_packet, resume, policy, read_packet, dontwait)

        self.recv_packet = recv_packet

    def set_single(
        self, unit: Any, fd: int, by_fd: dict[int, Any], poller: Poller, epfd: int, wake_fd: int, /
    ) -> None:
        self._set_state((unit, poller, None, None))

    def set_multi(
        self, by_fd: dict[int, Any], ready: collections.deque[Any], poller: Poller, epfd: int, wake_fd: int, /
    ) -> None:
        self._set_state((None, poller, by_fd, ready))

    def set_off(self) -> None:
        self._set_state(None)

    def set_closed(self) -> None:
        cell = self._cell
        with self._lock:
            cell[0], cell[4], cell[2], cell[3] = None, None, True, None

    def _set_state(self, state: tuple[Any, Any, Any, Any] | None) -> None:
        cell = self._cell
        with self._lock:
            timeout = cell[1]
            cell[4], cell[2] = state, False
            cell[0] = None if state is None or timeout == 0 else (*state, timeout)

    def hold(self, owner: Any, /) -> None:
        """While open, the methods keep their socket alive, as bound methods would (a cycle the
        garbage collector clears; :meth:`set_closed` breaks it)."""
        self._cell[3] = owner

    def set_timeout(self, timeout: float | None, /) -> None:
        cell = self._cell
        with self._lock:
            cell[1], state = timeout, cell[4]
            cell[0] = None if state is None or timeout == 0 else (*state, timeout)


def _call_class(
    cell: list[Any], ref: Callable[[], Any], name: str, original: Any, *args: Any, **kwargs: Any
) -> Any:
    """The socket's method ``name`` as its class has it, called: ``original`` itself, or what a
    test patched on the class since (bound as an attribute lookup binds it)."""
    owner = _owner(cell, ref)
    attr = getattr(type(owner), name)
    if attr is original:
        return original(owner, *args, **kwargs)
    get = getattr(type(attr), "__get__", None)
    return (attr if get is None else get(attr, owner, type(owner)))(*args, **kwargs)


def _given(bufsize: Any, flags: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments a receive was called with (``_NOT_GIVEN`` for one left out), to hand on as
    given: ``flags`` by keyword (the same call for the class's method; recv_packet, which has
    none, refuses it as an unexpected keyword)."""
    args = () if bufsize is _NOT_GIVEN else (bufsize,)
    return args, ({} if flags is _NOT_GIVEN else {"flags": flags})


def _owner(cell: list[Any], ref: Callable[[], Any]) -> Any:
    owner = cell[3]
    if owner is None:
        owner = ref()
    if owner is None:
        raise ReferenceError("the socket this method was taken from no longer exists")
    return owner


def _receiver(
    cell: list[Any],
    ref: Callable[[], Any],
    slow: Callable[..., Any],
    resume: Callable[..., Any],
    policy: ReadFirstPolicy,
    read_packet: Callable[[Any, int], Any] | None,
    dontwait: int,
) -> Callable[..., Any]:
    """One of PyHot's closures: datagrams (``read_packet`` None: ``recvfrom(bufsize=4096,
    flags=0)`` itself, its read inline) or packets (``recv_packet(bufsize=65535)``). Arguments
    left out are ``_NOT_GIVEN``, so a call the Python method serves (flags given, odd values, a
    class patched since) gets the arguments as the caller gave them; recv_packet's hidden
    ``flags``, given, goes there too, to be refused."""
    kind = 0 if read_packet is None else 1
    name = "recvfrom" if read_packet is None else "recv_packet"
    default_size = 4096 if kind == 0 else 65535
    monotonic = time.monotonic

    def receive(bufsize: int = _NOT_GIVEN, flags: int = _NOT_GIVEN) -> Any:
        go, owner = cell[0], cell[3]
        size = default_size if bufsize is _NOT_GIVEN else bufsize
        if (
            go is None  # (the engine's own paths serve, or the timeout is 0)
            or flags is not _NOT_GIVEN
            or size.__class__ is not int
            or not 0 < size < _MAX_BUF
            or (  # (patched on the class since)
                owner is not None
                and (owner.__class__.recvfrom if kind == 0 else owner.__class__.recv_packet) is not slow
            )
        ):
            args, kwargs = _given(bufsize, flags)
            return _call_class(cell, ref, name, slow, *args, **kwargs)
        bufsize = size
        unit, poller, by_fd, ready, timeout = go
        polled: list[int] | None = None
        if unit is not None:  # one socket (the engine's pure single-socket path)
            if policy.read_first and unit.live and unit.sock.fileno() == unit.fd:
                # A burst is likely queued: one read, no poll. (Only of a live unit whose socket
                # is open: a socket closed by hand may have its number reused by another.)
                try:
                    if read_packet is None:
                        return unit.reader.recvfrom(bufsize, dontwait)
                    return read_packet(unit, bufsize)
                except (BlockingIOError, InterruptedError):
                    policy.missed()  # nothing queued: wait, as for ping-pong traffic
                except OSError:
                    if unit.live and not cell[2]:
                        raise
                    return resume(_owner(cell, ref), kind, bufsize, timeout, False if cell[2] else None)
            start = 0.0 if timeout is None else monotonic()
            try:
                events = poller.poll(timeout)
            except (ValueError, OSError):  # closed under us: the general loop says so
                return resume(_owner(cell, ref), kind, bufsize, timeout, False if cell[2] else None)
            if not events:
                return None
            if unit.live and unit.sock.fileno() == unit.fd:  # (as above)
                try:
                    got = (
                        unit.reader.recvfrom(bufsize, dontwait)
                        if read_packet is None
                        else read_packet(unit, bufsize)
                    )
                except (BlockingIOError, InterruptedError):
                    pass  # (another thread took it, or the wake-up was a close or a join)
                except OSError:
                    if unit.live and not cell[2]:
                        raise
                else:
                    policy.found(True)
                    return got
            if timeout is not None:
                timeout = start + timeout - monotonic()
        elif ready:  # several sockets, some already queued by another receive: the general loop
            return _call_class(cell, ref, name, slow, bufsize)
        else:  # several sockets: one poll; one ready socket is read here
            try:
                events = poller.poll(timeout)
            except (ValueError, OSError):
                events = [(-1, 0)]
            if not events:
                return None
            if len(events) == 1:
                # (No check that first's socket is still on its number: epoll reports only the
                # numbers of registered sockets still open, which the poller's creation and each
                # join register, and a socket the program closed leaves the set at once.)
                first = by_fd.get(events[0][0])
                if first is not None and first.live:
                    try:
                        if read_packet is None:
                            return first.reader.recvfrom(bufsize, dontwait)
                        return read_packet(first, bufsize)
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        if first.live and not cell[2]:
                            raise
            else:
                polled = [fd for fd, _ in events]
        return resume(_owner(cell, ref), kind, bufsize, timeout, False if cell[2] else polled)

    receive.__name__ = receive.__qualname__ = name
    receive.__signature__ = _RECVFROM_SIGNATURE if kind == 0 else _PACKET_SIGNATURE  # type: ignore[attr-defined]
    return receive


def install(rx: Any, methods: dict[str, Any]) -> None:
    """On opening ``rx`` (an McastRxSocket; ``methods`` its class's own ``recvfrom`` and
    ``recv_packet`` as defined): put the OS layer's C methods, or :class:`PyHot`'s closures where
    it reads without a destination filter, in the instance's dict over those methods. Left alone:
    a method that a subclass overrides or a test patched on the class (both are called instead),
    and an instance attribute the caller set. While open the methods keep their socket alive, as
    bound methods do."""
    io, attrs, timeout = _platform.IO, rx.__dict__, rx._timeout
    old, hot = rx._hot, None
    # (a receive these methods begin began after this open: a close from now on ends it)
    go_on = functools.partial(resume, closes=rx._engine.closes)
    if io.rx_hot is not None:
        packet_cls = None if rx._meta else McastPacket
        hot = io.rx_hot(
            weakref.ref(rx), methods["recvfrom"], methods["recv_packet"], go_on, packet_cls, timeout
        )
    elif io.UNFILTERED and io.DONTWAIT:
        packet_cls, policy = None if rx._meta else McastPacket, rx._engine.policy
        hot = PyHot(
            weakref.ref(rx), methods["recvfrom"], methods["recv_packet"], go_on, packet_cls, timeout, policy
        )
    if hot is not None:
        hot.hold(rx)
    rx._hot = hot
    if hot is not None and rx._timeout != timeout:
        hot.set_timeout(rx._timeout)  # (assigned meanwhile: the setter told the old one)
    rx._engine.set_hot_path(hot)
    cls = type(rx)
    if (  # (the usual case: a first open of the class itself or a subclass that overrides neither)
        old is None
        and hot is not None
        and "recvfrom" not in attrs
        and "recv_packet" not in attrs
        and cls.recvfrom is methods["recvfrom"]
        and cls.recv_packet is methods["recv_packet"]
    ):
        attrs["recvfrom"], attrs["recv_packet"] = hot.recvfrom, hot.recv_packet
        return
    for name, original in methods.items():
        current = attrs.get(name)
        if current is not None and (old is None or current != getattr(old, name)):
            continue  # the caller's own instance attribute
        if hot is not None and getattr(cls, name) is original:
            attrs[name] = getattr(hot, name)
        else:
            attrs.pop(name, None)


def resume(
    rx: Any,
    kind: int,
    bufsize: int,
    timeout: float | None,
    polled: list[int] | Literal[False] | None,
    *,
    closes: int = -1,
) -> Any:
    """Go on with a receive the C methods began (kind 0: recvfrom, 1: recv_packet) in the
    engine's general loop: they were woken, or found several sockets ready (``polled``).
    ``polled`` False: the socket was closed while the receive waited (it may be open again by
    now, but this receive began on the one closed): it raises. ``closes``: the engine's count of
    closes when the methods were installed (bound by :func:`install`): a close since raises too."""
    what = "recv_packet()" if kind else "recvfrom()"
    if polled is False:
        raise SocketClosedError(f"{what} on a closed McastRxSocket; open it first")
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
        return rx._engine.resume(readers[0], timeout, polled or None, closes)
    except EngineClosedError:
        raise SocketClosedError(f"{what} on a closed McastRxSocket; open it first") from None
