"""multicast_expert._speedups: the optional Linux C accelerator (CPython limited API, abi3).

Import it through :mod:`multicast_expert._accel` (``ACCELERATED`` / ``speedups``), which honours
``MULTICAST_EXPERT_PURE_PYTHON=1``. Every function takes raw file descriptors of UDP sockets of
family AF_INET or AF_INET6 and is positional-only.

Common contract:

* errno becomes the matching OSError subclass (PyErr_SetFromErrno): nothing queued on a
  non-blocking read is BlockingIOError, EBADF is OSError(errno.EBADF), ...
* EINTR runs the Python signal handlers; an exception raised by one propagates out of the call,
  otherwise the call goes on (a wait with the time that is left).
* The GIL is released around the calls that can block (epoll_wait, sendmmsg) and a recvmmsg
  whose slots hold more than 256 KiB. Other reads (always MSG_DONTWAIT, never waiting) keep it:
  a read of a receive unit is one step with the check that the unit is live and its ``sock``
  still open on its ``fd`` (a unit is marked dead before its socket closes), so a number another
  thread closed and reused is never read; a large recvmmsg reads a duplicate of the number made
  right after the check (F_DUPFD_CLOEXEC), so it stays on the checked socket.
* A negative ``fd`` / ``epfd`` is ValueError; ``waker_fd`` may be -1 (no waker).
* ``recv_from``, ``recv_packet``, ``recv_batch`` and ``send_batch`` also take the socket object
  itself (``Socket``) for ``fd``: its ``fileno()`` is read in the same call as the system call,
  so no other thread can close it and reuse its number in between; a closed socket object
  (``fileno()`` -1) is OSError(EBADF). A value with neither form is TypeError.
* Sender addresses are exactly what ``socket.recvfrom`` returns: ``(ip, port)`` for AF_INET and
  ``(ip, port, flowinfo, scope_id)`` for AF_INET6, the ip as inet_ntop writes it (no ``%scope``
  suffix: a link-local sender is ``('fe80::1', port, 0, ifindex)``). A sender of any other family
  is ValueError (never for a UDP socket of these families).
"""

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Final, Protocol, TypeVar, overload

from _typeshed import ReadableBuffer

Address = tuple[str, int] | tuple[str, int, int, int]

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

#: A descriptor, or a socket object whose ``fileno()`` is read inside the call.
Socket = int | _HasFileno
_P = TypeVar("_P", bound=tuple[object, ...])
_U = TypeVar("_U")

#: recv_batch: payload bytes one recvmmsg call may use (1 MiB); see recv_batch.
ARENA_BYTES: Final[int]
#: Most messages the kernel takes in one recvmmsg/sendmmsg call (UIO_MAXIOV, 1024).
MAX_VLEN: Final[int]

def recv_from(fd: Socket, bufsize: int, flags: int = 0, /) -> tuple[bytes, Address]:
    """``recvfrom(fd, bufsize, MSG_DONTWAIT | flags)``: as ``socket.recvfrom(bufsize, flags)`` on a
    non-blocking socket. Nothing queued: BlockingIOError. A datagram longer than ``bufsize`` is
    cut to ``bufsize`` (also with MSG_TRUNC in ``flags``). Negative ``bufsize``: ValueError."""

def recv_packet(fd: Socket, bufsize: int, /) -> tuple[bytes, Address, bool]:
    """``recvmsg`` with MSG_DONTWAIT: ``(data, sender, truncated)``, byte for byte what
    ``data, _, msg_flags, sender = sock.recvmsg(bufsize)`` gives, ``truncated`` being
    ``bool(msg_flags & MSG_TRUNC)``. Nothing queued: BlockingIOError."""

@overload
def recv_unit(bufsize: int, flags: int, packet_cls: None, unit: object, /) -> tuple[bytes, Address]: ...
@overload
def recv_unit(bufsize: int, flags: int, packet_cls: type[_P], unit: object, /) -> _P:
    """One read of a unit's descriptor without waiting (``unit.fd``; the unit also has ``live``,
    ``sock``, ``group`` and ``iface.index``): recv_from's ``(data, sender)`` with ``flags`` when
    ``packet_cls`` is None, else ``tuple.__new__(packet_cls, (data, sender, unit.group,
    unit.iface.index, truncated, None, None, None))`` (``flags`` must be 0). Nothing queued:
    BlockingIOError. A unit no longer live, or whose socket is no longer open on ``unit.fd``
    (closed by hand): OSError (EBADF), nothing read. The checks and the read are one step for
    other threads (the GIL is held throughout), and a unit is marked dead before its socket
    closes, so a descriptor number another thread freed and reused is never read."""

def epoll_recv(
    bufsize: int,
    packet_cls: type[_P] | None,
    by_fd: dict[int, object],
    epfd: int,
    waker_fd: int,
    timeout: float | None,
    /,
) -> tuple[bytes, Address] | _P | list[int] | None:
    """The wait and the read of a receive over many sockets, in one call.

    ``epoll_wait(epfd, 64, timeout)`` without the GIL (``timeout`` None waits forever, else
    seconds rounded up to whole milliseconds as ``select.epoll.poll`` does; 0 or negative does not
    wait; NaN is ValueError). The epoll set's event data must hold the descriptor, as
    ``select.epoll.register`` stores it. ``by_fd`` maps each socket's descriptor to its unit, an
    object with attributes ``group`` (str), ``iface.index`` (int), ``live`` and ``sock`` (the
    socket object: a unit whose ``sock.fileno()`` is no longer its descriptor, a socket the
    program closed, counts as not live). Then:

    * nothing ready: None;
    * exactly one descriptor ready, not ``waker_fd``, and a live unit of ``by_fd``: one
      non-blocking read of it, with the GIL held from the lookup in ``by_fd`` through the read (so
      Python code cannot close the descriptor and reuse its number in between). A datagram:
      recv_from's ``(data, sender)`` when ``packet_cls`` is None, else ``tuple.__new__(packet_cls,
      (data, sender, unit.group, unit.iface.index, truncated, None, None, None))``. A read error
      raises the OSError, with ``exc.fd`` set, when the unit is still live; else ``[]``;
    * otherwise (several ready, the waker ready, a descriptor that is not a live unit of
      ``by_fd``, or the read found nothing queued): the ready
      descriptors in the kernel's order without ``waker_fd``, a list (possibly empty); nothing
      was read. The waker is never read or drained.
    """

def recv_batch(
    fd: Socket, count: int, bufsize: int, group: str, ifindex: int, packet_cls: type[_P], /
) -> list[_P]:
    """Up to ``count`` queued datagrams of ``fd`` (recvmmsg, MSG_DONTWAIT), never waiting.

    Each is ``tuple.__new__(packet_cls, (data, sender, group, ifindex, truncated, None, None,
    None))``: ``packet_cls`` is a tuple subclass of 8 fields such as McastPacket (its Python
    ``__new__`` is not called). Returns [] when nothing is queued (never BlockingIOError).
    ``data`` is cut to ``bufsize``; ``truncated`` is MSG_TRUNC of that datagram.

    Memory bound, whatever ``count``: per call ``slots = min(count, MAX_VLEN, max(1, ARENA_BYTES
    // bufsize))`` message slots, i.e. at most max(ARENA_BYTES, bufsize) payload bytes and ~110
    bytes of headers per slot, freed before returning. Nothing is zero-filled and only the slots
    a call uses are initialised: the first recvmmsg uses 16 slots and only a full one is followed
    by calls with every slot, so the cost follows the datagrams read, not ``count * bufsize``.
    An error after some datagrams were read in the same call returns those (a lasting error such
    as EBADF shows on the next call); an error before any is raised. Given a socket object, its
    ``fileno()`` is checked again before each recvmmsg (changed: closed or detached meanwhile, by
    code a garbage collection ran: the call returns what it read).
    """

@overload
def send_batch(fd: Socket, family: int, datagrams: Sequence[tuple[ReadableBuffer, Address]], /) -> int: ...
@overload
def send_batch(
    fd: Socket,
    family: int,
    datagrams: Sequence[tuple[ReadableBuffer, Address]],
    known: AbstractSet[object] | Mapping[object, object] | None,
    /,
) -> int | None:
    """Send ``(data, address)`` tuples with sendmmsg (GIL released, flags 0: a blocking socket
    blocks); returns how many were sent, in order.

    Every pair is checked before anything is sent, with socket.sendto's exception types: an
    address that is not a tuple or has the wrong length is TypeError; a port outside 0-65535 is
    OverflowError ("port must be 0-65535."), so is an IPv6 flowinfo above 0xfffff; a host that is
    not an inet_pton literal of ``family`` is socket.gaierror (no name is ever resolved here;
    an IPv6 ``%scope`` suffix is dropped, the tuple's scope_id counts, as in CPython); data that
    is not a C-contiguous bytes-like object is TypeError / BufferError. ``family`` other than
    AF_INET / AF_INET6 is OSError(EAFNOSUPPORT). Each destination gets its own sockaddr owned by
    this call.

    sendmmsg is called until all are sent. When the socket's buffer fills (EAGAIN) after at least
    one was sent, returns the count so far (fewer than given). Any other error, or EAGAIN before
    the first, raises the OSError with ``exc.sent`` = how many of this call were already sent
    (every OSError from here has ``sent``; a signal handler's exception gets it too when some were
    sent and the exception type allows the attribute).

    ``known`` (a set, frozenset or dict): send only if every item is an exact
    ``(bytes, (str, int))`` tuple whose address is in ``known``; else return None at once, nothing
    sent (the caller checks the batch and calls again without it).
    """

def recv_share(
    bufsize: int,
    packet_cls: type[_P],
    units: list[_U],
    start: int,
    room: int,
    out: list[_P],
    gone: Callable[[_U], object],
    /,
) -> None:
    """A fair share of ``room`` datagrams over several sockets in one call: what recv_batch does
    for one socket, with the receive engine's sharing rule, appending packets to ``out``.

    Each unit is an object with ``fd`` (int), ``group`` (str) and ``iface.index`` (int), read once
    at the start, and ``live`` and ``sock``, checked before each recvmmsg (not live, or
    ``sock.fileno()`` no longer ``fd``: nothing more read of it in this call; a recvmmsg large
    enough to release the GIL reads a duplicate of ``fd`` made right after the check); the
    packets are recv_batch's with that group and index. The units are served
    from ``units[start % len(units)]`` on, wrapping round, in rounds: the room left is divided
    equally among the units still active, the first ``room % active`` of them one more; each
    reads up to its quota (recvmmsg, MSG_DONTWAIT, never waiting) and only those that filled it
    stay active for the next round. It ends when the room is spent or no unit is active; each
    socket's datagrams stay in arrival order. Memory: recv_batch's bound, one arena for the call.

    Errors: a read that fails before any datagram of that read calls ``gone(unit)``: truthy (the
    socket was closed or left under us) skips the unit for the rest of the call, falsy raises the
    OSError (``out`` keeps what was read before). An error after some datagrams of a read keeps
    them and ends that unit's read (as recv_batch). A signal handler's exception, or one of
    ``gone``, propagates. ``units`` and ``out`` must be lists, ``gone`` callable; a unit missing an
    attribute, or one of the wrong type, is AttributeError / TypeError before anything is read
    (the pure-Python one reads them at each unit's turn).
    """

def recv_poll_share(
    bufsize: int,
    packet_cls: type[_P],
    epfd: int,
    by_fd: dict[int, _U],
    turn: int,
    room: int,
    out: list[_P],
    gone: Callable[[_U], object],
    /,
) -> int:
    """``epoll_wait(epfd, timeout 0)``, then recv_share over the ready units, in one call.

    The ready descriptors (at most 1,023, epoll.poll's default) that are keys of ``by_fd`` are
    the units, in ascending descriptor order; others (a waker) are left alone, neither counted nor
    read. The share starts at unit ``turn % ready``. Returns how many units were ready (0: none;
    nothing read). The poll never waits and keeps the GIL; a failed poll (a closed or non-epoll
    ``epfd``) returns -1 without an exception, so the caller can find out why its own way.
    ``by_fd`` must be a dict; otherwise arguments and errors as recv_share.
    """

class RxHot:
    """The receive methods of one open McastRxSocket in C (see ``multicast_expert._rx_hot``).

    ``RxHot(owner_ref, slow_from, slow_packet, resume, packet_cls, timeout)``: ``owner_ref`` a
    weak reference to the socket (``hold`` makes it a strong one while open, as a bound method
    holds its object; ``set_closed`` lets go). ``slow_from`` / ``slow_packet`` are the class's
    ``recvfrom`` / ``recv_packet`` as defined: every call not served here goes to the class's
    method with the caller's own arguments (keywords, other positional forms, flags, a buffer
    size that is not an int in 1..2**31-1, timeout 0, no fast-path state, metadata packets when
    ``packet_cls`` is None), and so does every call once the class's method is no longer that
    function (a test patched the class). ``resume(owner, kind, bufsize, timeout, polled)`` goes on
    with a receive begun here (kind 0 recvfrom, 1 recv_packet; ``polled`` None, or the ready
    descriptors when several were ready, nothing read, or False when ``set_closed`` came while
    it waited; ``timeout`` what is left).
    ReferenceError when the socket is gone by then (only after it was closed).

    Served here: one socket (``set_single``): a first read (only while the unit is live and
    ``unit.sock.fileno()`` is still its descriptor), then ``epoll_recv``'s wait and read on the
    engine's epoll set (the socket's own descriptor is never polled: a poll would pin it, so a
    leave would keep the membership while the wait lasts); several (``set_multi``), while the
    ready queue is empty: ``epoll_recv``'s. An OSError of a read is raised while its unit is live
    and the state not closed, else the receive resumes in Python; any other exception (a signal
    handler's) propagates.
    """

    def __new__(
        cls,
        owner_ref: Callable[[], object],
        slow_from: Callable[..., object],
        slow_packet: Callable[..., object],
        resume: Callable[..., object],
        packet_cls: type[tuple[object, ...]] | None,
        timeout: float | None,
        /,
    ) -> RxHot: ...
    @property
    def mode(self) -> int:
        """-1 closed, 0 off (open, no fast path), 1 one socket, 2 several."""
    def recvfrom(self, bufsize: int = 4096, flags: int = 0) -> tuple[bytes, Address] | None: ...
    def recv_packet(self, bufsize: int = 65535) -> object: ...
    def set_single(
        self, unit: object, fd: int, by_fd: dict[int, object], poller: object, epfd: int, wake_fd: int, /
    ) -> None: ...
    def set_multi(
        self, by_fd: dict[int, object], ready: object, poller: object, epfd: int, wake_fd: int, /
    ) -> None: ...
    def set_off(self) -> None: ...
    def set_closed(self) -> None: ...
    def set_timeout(self, timeout: float | None, /) -> None: ...
    def hold(self, owner: object, /) -> None: ...

class TxHot:
    """``sendto`` of one McastTxSocket open on one interface, in C.

    ``TxHot(owner_ref, original, slow, family)``: ``original`` is the class's ``sendto`` as
    defined; ``slow(owner, *args, **kwargs)`` the method that checks in full (and calls
    ``remember``). Sent here: exactly bytes to an address that is exactly a tuple of a str and
    ints, remembered, while the socket given to ``open`` is still open on its descriptor (its
    ``fileno()`` is checked before each send) and the class's ``sendto`` is still ``original``.
    Everything else goes to ``slow`` (or, once the class was patched, to the class's method), and
    so does a failed ``sendto(2)`` (nothing went out; the Python method sends and says why). The
    GIL is released around the system call. At most 4,096 destinations are remembered (then the
    table starts again). While open the object holds the socket and its McastTxSocket.
    """

    def __new__(
        cls,
        owner_ref: Callable[[], object],
        original: Callable[..., object],
        slow: Callable[..., object],
        family: int,
        /,
    ) -> TxHot: ...
    @property
    def fd(self) -> int: ...
    @property
    def remembered(self) -> int: ...
    def sendto(self, bytes: ReadableBuffer, address: Address, *, iface: object = None) -> None: ...  # noqa: A002
    def remember(self, address: object, /) -> None: ...
    def open(self, sock: object, owner: object, /) -> None: ...
    def close(self) -> None: ...
