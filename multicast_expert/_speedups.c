/*
 * multicast_expert._speedups: the optional Linux accelerator (issue 22, item 2).
 *
 * A few receive/send loops of the library done in C: one call into the kernel per datagram (or per
 * batch) with the argument parsing, address decoding and result building that the pure-Python
 * version does with struct/ctypes. Everything takes raw file descriptors, so it never needs the
 * socket objects' internals. Built against CPython's limited API (stable ABI, abi3) for 3.11+.
 *
 * Contracts (the Python-visible ones are written out in _speedups.pyi):
 *   - errno becomes the matching OSError subclass through PyErr_SetFromErrno (EAGAIN ->
 *     BlockingIOError, ECONNREFUSED -> ConnectionRefusedError, ...).
 *   - EINTR: PyErr_CheckSignals() runs the Python signal handlers; an exception from one propagates,
 *     otherwise the system call is retried (waits with the time that is left).
 *   - The GIL is released around every call that can block (epoll_wait, sendmmsg) or copy a
 *     lot (a recvmmsg into more than HOLD_GIL_BYTES of slots). Other reads (always MSG_DONTWAIT)
 *     keep it: a read of a unit is then one step with the check that the unit is still live and
 *     open on its number (see unit_readable), so a number another thread closed and reused is
 *     never read; a large recvmmsg reads a duplicate of the number made right after the check.
 *
 * References: recv(2), recvmsg(2), recvmmsg(2), sendmmsg(2), epoll_wait(2), fcntl(2)
 * (F_DUPFD_CLOEXEC), inet_ntop(3), inet_pton(3), <sys/socket.h> (struct mmsghdr, MSG_TRUNC,
 * MSG_DONTWAIT; glibc declares recvmmsg/sendmmsg under _GNU_SOURCE), <netinet/in.h>
 * (sockaddr_in, sockaddr_in6).
 */
#define _GNU_SOURCE 1 /* recvmmsg, sendmmsg, struct mmsghdr, EAI_ADDRFAMILY */
#define PY_SSIZE_T_CLEAN
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* recv_batch: payload bytes allotted to one recvmmsg call (see _speedups.pyi). */
#define ARENA_BYTES (1024 * 1024)
/* recv_batch: slots in its first recvmmsg call; later calls use as many as fit in ARENA_BYTES. */
#define FIRST_CHUNK 16
/* recv_batch/recv_share: a recvmmsg whose slots hold at most this many bytes keeps the GIL (it
 * never waits, and releasing costs more than a few small datagrams); a larger one releases it and
 * reads a duplicate of the descriptor (see arena_read). */
#define HOLD_GIL_BYTES (256 * 1024)
/* The kernel caps one recvmmsg/sendmmsg call at UIO_MAXIOV (1024) messages. */
#define MAX_VLEN 1024
/* recv_from/recv_packet/recv_unit read into the C stack up to this size, else into the heap. */
/* send_batch waits for room in a blocking socket's buffer this long at a time (milliseconds),
 * checking between waits that the socket is still open. */
#define SEND_WAIT_MS 50
#define STACK_BUF 8192
/* epoll_recv: most events one epoll_wait reports (readiness is level-triggered: the rest stay). */
#define EPOLL_BATCH 64

typedef union {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
} sockaddr_any;

/* CPython 3.12+ headers define Py_RETURN_NONE as a bare `return Py_None` (None is immortal
 * there), also for a limited-API build aimed at 3.11: such an abi3 build, run on 3.11, would give
 * away a reference to None it never took. This one always takes it. */
#define RETURN_NONE return Py_NewRef(Py_None)

/* tuple.__new__, looked up once: builds instances of tuple subclasses (NamedTuples) the way
 * tuple.__new__(cls, items) does, so hash caching and GC tracking are the interpreter's own. */
static newfunc tuple_new;
/* Attribute names recv_unit, epoll_recv and RxHot read of a unit, interned once (exec_module). */
static PyObject *str_fd, *str_group, *str_iface, *str_index, *str_live;
static PyObject *str_sock, *str_fileno, *str_recvfrom, *str_recv_packet, *str_sendto;

/* ---- argument helpers ------------------------------------------------------------------------ */

static int
check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t min, Py_ssize_t max)
{
    if (nargs < min || nargs > max) {
        if (min == max)
            PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)", name, min, nargs);
        else
            PyErr_Format(PyExc_TypeError, "%s() takes %zd to %zd arguments (%zd given)", name, min, max,
                         nargs);
        return -1;
    }
    return 0;
}

static int
get_int(PyObject *obj, int *out)
{
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C int");
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int
get_fd(PyObject *obj, int *out, int allow_negative)
{
    if (get_int(obj, out) < 0)
        return -1;
    if (*out < 0 && !allow_negative) {
        PyErr_Format(PyExc_ValueError, "file descriptor cannot be a negative integer (%d)", *out);
        return -1;
    }
    return 0;
}

/* A socket's descriptor: an int, or an object's fileno() (a socket object) read here, under the
 * GIL: no other thread can close the socket and reuse its number until the GIL is released, so
 * a caller that releases it around a system call on the number sends or reads through a
 * duplicate made (with the GIL held) after checking the socket again (send_batch), or keeps the
 * GIL through the call (TxHot.sendto). A closed socket object (fileno() -1): OSError EBADF. */
static int
get_sock_fd(PyObject *obj, int *out)
{
    if (PyLong_Check(obj))
        return get_fd(obj, out, 0);
    PyObject *fileno = PyObject_GetAttrString(obj, "fileno");
    if (fileno == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "expected a descriptor (int) or a socket, got %R", obj);
        }
        return -1;
    }
    PyObject *num = PyObject_CallNoArgs(fileno);
    Py_DECREF(fileno);
    if (num == NULL)
        return -1;
    int rc = get_int(num, out);
    Py_DECREF(num);
    if (rc == 0 && *out < 0) {
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return rc;
}

static int
get_size(PyObject *obj, Py_ssize_t *out, const char *what)
{
    Py_ssize_t v = PyLong_AsSsize_t(obj);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0) {
        PyErr_Format(PyExc_ValueError, "negative %s", what);
        return -1;
    }
    *out = v;
    return 0;
}

/* timeout: None -> *forever = 1; otherwise seconds (a real number, not NaN); <= 0 means "do not wait". */
static int
get_timeout(PyObject *obj, double *out, int *forever)
{
    *forever = 0;
    if (obj == Py_None) {
        *forever = 1;
        return 0;
    }
    double v = PyFloat_AsDouble(obj);
    if (v == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(v)) {
        PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
        return -1;
    }
    *out = v;
    return 0;
}

static double
monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds left before deadline, never below 0 and at most a year per wait (the caller loops). */
static double
remaining(double deadline)
{
    double left = deadline - monotonic_now();
    if (left < 0)
        return 0;
    return left > 31536000.0 ? 31536000.0 : left;
}

/* ---- addresses ------------------------------------------------------------------------------ */

/* PyTuple_SetItem for a freshly made tuple, failing when the item could not be made. */
static int
set_item(PyObject *tuple, Py_ssize_t i, PyObject *item)
{
    if (item == NULL)
        return -1;
    return PyTuple_SetItem(tuple, i, item);
}

/* The sender address exactly as socket.recvfrom() gives it: (ip, port) for AF_INET and
 * (ip, port, flowinfo, scope_id) for AF_INET6, ip as inet_ntop(3) writes it (CPython's
 * makesockaddr does the same: no "%scope" suffix; the scope is the 4th item). */
static PyObject *
make_addr(const sockaddr_any *a, socklen_t len)
{
    char text[INET6_ADDRSTRLEN];
    PyObject *result;

    if (len >= sizeof(struct sockaddr_in) && a->sa.sa_family == AF_INET) {
        if (inet_ntop(AF_INET, &a->v4.sin_addr, text, sizeof text) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        result = PyTuple_New(2);
        if (result == NULL)
            return NULL;
        if (set_item(result, 0, PyUnicode_FromString(text)) < 0 ||
            set_item(result, 1, PyLong_FromLong(ntohs(a->v4.sin_port))) < 0)
            goto fail;
        return result;
    }
    if (len >= sizeof(struct sockaddr_in6) && a->sa.sa_family == AF_INET6) {
        if (inet_ntop(AF_INET6, &a->v6.sin6_addr, text, sizeof text) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        result = PyTuple_New(4);
        if (result == NULL)
            return NULL;
        if (set_item(result, 0, PyUnicode_FromString(text)) < 0 ||
            set_item(result, 1, PyLong_FromLong(ntohs(a->v6.sin6_port))) < 0 ||
            set_item(result, 2, PyLong_FromUnsignedLong(ntohl(a->v6.sin6_flowinfo))) < 0 ||
            set_item(result, 3, PyLong_FromUnsignedLong(a->v6.sin6_scope_id)) < 0)
            goto fail;
        return result;
    }
    PyErr_Format(PyExc_ValueError, "unsupported sender address (family %d, length %u): only AF_INET and AF_INET6",
                 len >= sizeof(sa_family_t) ? a->sa.sa_family : -1, (unsigned)len);
    return NULL;
fail:
    Py_DECREF(result);
    return NULL;
}

static PyObject *
type_name(PyObject *obj)
{
    return PyType_GetName(Py_TYPE(obj));
}


/* socket.gaierror(code, message), as socket.sendto raises for a host it cannot resolve. */
static void
raise_gaierror(int code)
{
    PyObject *mod = PyImport_ImportModule("socket");
    if (mod == NULL)
        return;
    PyObject *cls = PyObject_GetAttrString(mod, "gaierror");
    Py_DECREF(mod);
    if (cls == NULL)
        return;
    PyObject *exc = PyObject_CallFunction(cls, "is", code, gai_strerror(code));
    if (exc != NULL) {
        PyErr_SetObject(cls, exc);
        Py_DECREF(exc);
    }
    Py_DECREF(cls);
}

/* Host text of an address tuple into buf (str, bytes or bytearray, as socket.sendto takes). */
static int
host_text(PyObject *host, char *buf, size_t bufsize, int *too_long)
{
    const char *s;
    Py_ssize_t n;
    *too_long = 0;
    if (PyUnicode_Check(host)) {
        s = PyUnicode_AsUTF8AndSize(host, &n);
        if (s == NULL)
            return -1;
    } else if (PyBytes_Check(host)) {
        if (PyBytes_AsStringAndSize(host, (char **)&s, &n) < 0)
            return -1;
    } else if (PyByteArray_Check(host)) {
        s = PyByteArray_AsString(host);
        n = PyByteArray_Size(host);
    } else {
        PyObject *name = type_name(host);
        if (name != NULL) {
            PyErr_Format(PyExc_TypeError, "str, bytes or bytearray expected, not %U", name);
            Py_DECREF(name);
        }
        return -1;
    }
    if ((Py_ssize_t)strlen(s) != n) {
        PyErr_SetString(PyExc_TypeError, "host name must not contain null character");
        return -1;
    }
    if ((size_t)n >= bufsize) {
        *too_long = 1;
        return 0;
    }
    memcpy(buf, s, (size_t)n + 1);
    return 0;
}

/* An (ip, port[, flowinfo[, scope_id]]) tuple into a sockaddr owned by the caller. Exception
 * types follow socket.sendto: TypeError for the wrong shape, OverflowError for a port outside
 * 0-65535 or a flowinfo above 2**20-1, socket.gaierror for a host that is not an IP literal
 * (no name is ever resolved here; for IPv6 a "%scope" suffix is dropped and the tuple's scope_id
 * is used, as CPython does). */
static int
parse_addr(int family, PyObject *addr, sockaddr_any *out, socklen_t *len)
{
    char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    int too_long;
    Py_ssize_t size;
    long port;
    unsigned long flowinfo = 0, scope = 0;

    if (family != AF_INET && family != AF_INET6) {
        errno = EAFNOSUPPORT;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (!PyTuple_Check(addr)) {
        PyObject *name = type_name(addr);
        if (name != NULL) {
            PyErr_Format(PyExc_TypeError, "send_batch(): %s address must be tuple, not %U",
                         family == AF_INET ? "AF_INET" : "AF_INET6", name);
            Py_DECREF(name);
        }
        return -1;
    }
    size = PyTuple_Size(addr);
    if (family == AF_INET && size != 2) {
        PyErr_SetString(PyExc_TypeError, "AF_INET address must be a pair (host, port)");
        return -1;
    }
    if (family == AF_INET6 && (size < 2 || size > 4)) {
        PyErr_SetString(PyExc_TypeError, "AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])");
        return -1;
    }
    if (host_text(PyTuple_GetItem(addr, 0), text, sizeof text, &too_long) < 0)
        return -1;
    port = PyLong_AsLong(PyTuple_GetItem(addr, 1));
    if (port == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        port = -1; /* reported below, as socket.sendto does */
    }
    if (port < 0 || port > 0xffff) {
        PyErr_SetString(PyExc_OverflowError, "send_batch(): port must be 0-65535.");
        return -1;
    }
    if (size >= 3) {
        flowinfo = PyLong_AsUnsignedLongMask(PyTuple_GetItem(addr, 2));
        if (flowinfo == (unsigned long)-1 && PyErr_Occurred())
            return -1;
        if ((unsigned int)flowinfo > 0xfffff) {
            PyErr_SetString(PyExc_OverflowError, "send_batch(): flowinfo must be 0-1048575.");
            return -1;
        }
    }
    if (size == 4) {
        scope = PyLong_AsUnsignedLongMask(PyTuple_GetItem(addr, 3));
        if (scope == (unsigned long)-1 && PyErr_Occurred())
            return -1;
    }
    memset(out, 0, sizeof *out);
    if (family == AF_INET) {
        out->v4.sin_family = AF_INET;
        out->v4.sin_port = htons((uint16_t)port);
        if (too_long || inet_pton(AF_INET, text, &out->v4.sin_addr) != 1) {
            struct in6_addr other;
            raise_gaierror(!too_long && inet_pton(AF_INET6, text, &other) == 1 ? EAI_ADDRFAMILY : EAI_NONAME);
            return -1;
        }
        *len = sizeof out->v4;
    } else {
        char *pct = strchr(text, '%');
        if (pct != NULL)
            *pct = '\0';
        out->v6.sin6_family = AF_INET6;
        out->v6.sin6_port = htons((uint16_t)port);
        out->v6.sin6_flowinfo = htonl((uint32_t)flowinfo);
        out->v6.sin6_scope_id = (uint32_t)scope;
        if (too_long || inet_pton(AF_INET6, text, &out->v6.sin6_addr) != 1) {
            struct in_addr other;
            raise_gaierror(!too_long && inet_pton(AF_INET, text, &other) == 1 ? EAI_ADDRFAMILY : EAI_NONAME);
            return -1;
        }
        *len = sizeof out->v6;
    }
    return 0;
}

/* ---- one datagram ---------------------------------------------------------------------------- */

/* One non-blocking read into buf. Returns 1 with *result set, 0 when nothing is queued (EAGAIN,
 * no exception set), -1 with an exception set. packet=0: recvfrom -> (bytes, addr);
 * packet=1: recvmsg -> (bytes, addr, truncated). */
static int
read_once(int fd, char *buf, Py_ssize_t bufsize, int flags, int packet, PyObject **result)
{
    sockaddr_any name;
    socklen_t namelen;
    ssize_t n;
    int msg_flags = 0;
    PyObject *data, *addr;

    for (;;) {
        namelen = sizeof name;
        memset(&name, 0, sizeof name);
        if (packet) {
            struct iovec iov = {.iov_base = buf, .iov_len = (size_t)bufsize};
            struct msghdr mh;
            memset(&mh, 0, sizeof mh);
            mh.msg_name = &name;
            mh.msg_namelen = namelen;
            mh.msg_iov = &iov;
            mh.msg_iovlen = 1;
            n = recvmsg(fd, &mh, MSG_DONTWAIT);
            namelen = mh.msg_namelen;
            msg_flags = mh.msg_flags;
        } else {
            n = recvfrom(fd, buf, (size_t)bufsize, flags | MSG_DONTWAIT, &name.sa, &namelen);
        }
        if (n >= 0)
            break;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
    if (n > bufsize) /* recvfrom with MSG_TRUNC in flags returns the datagram's real length */
        n = bufsize;
    if (namelen > sizeof name)
        namelen = sizeof name;
    data = PyBytes_FromStringAndSize(buf, n);
    if (data == NULL)
        return -1;
    addr = make_addr(&name, namelen);
    if (addr == NULL) {
        Py_DECREF(data);
        return -1;
    }
    if (packet) {
        PyObject *trunc = PyBool_FromLong(msg_flags & MSG_TRUNC);
        *result = PyTuple_Pack(3, data, addr, trunc);
        Py_DECREF(trunc);
    } else {
        *result = PyTuple_Pack(2, data, addr);
    }
    Py_DECREF(data);
    Py_DECREF(addr);
    return *result == NULL ? -1 : 1;
}

/* A read buffer for bufsize bytes: the caller's stack buffer when it fits, else the heap. */
static char *
get_buffer(char *stack, Py_ssize_t bufsize)
{
    if (bufsize <= STACK_BUF)
        return stack;
    char *p = PyMem_Malloc((size_t)bufsize);
    if (p == NULL)
        PyErr_NoMemory();
    return p;
}

static void
put_buffer(char *stack, char *buf)
{
    if (buf != stack)
        PyMem_Free(buf);
}

static PyObject *
single_read(int fd, Py_ssize_t bufsize, int flags, int packet)
{
    char stack[STACK_BUF];
    PyObject *result = NULL;
    char *buf = get_buffer(stack, bufsize);
    if (buf == NULL)
        return NULL;
    int r = read_once(fd, buf, bufsize, flags, packet, &result);
    put_buffer(stack, buf);
    if (r == 0) {
        errno = EAGAIN;
        return PyErr_SetFromErrno(PyExc_OSError); /* BlockingIOError */
    }
    return r > 0 ? result : NULL;
}

static PyObject *
sp_recv_from(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, flags = 0;
    Py_ssize_t bufsize;
    (void)mod;
    if (check_nargs("recv_from", nargs, 2, 3) < 0 || get_sock_fd(args[0], &fd) < 0 ||
        get_size(args[1], &bufsize, "buffersize in recv_from") < 0 || (nargs > 2 && get_int(args[2], &flags) < 0))
        return NULL;
    return single_read(fd, bufsize, flags, 0);
}

static PyObject *
sp_recv_packet(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    int fd;
    Py_ssize_t bufsize;
    (void)mod;
    if (check_nargs("recv_packet", nargs, 2, 2) < 0 || get_sock_fd(args[0], &fd) < 0 ||
        get_size(args[1], &bufsize, "buffersize in recv_packet") < 0)
        return NULL;
    return single_read(fd, bufsize, 0, 1);
}

/* tuple.__new__(cls, (data, src, group, ifindex, truncated, None, None, None)): steals nothing. */
static PyObject *
make_packet(PyObject *cls, PyObject *data, PyObject *src, PyObject *group, PyObject *ifindex, int truncated)
{
    PyObject *items = PyTuple_Pack(8, data, src, group, ifindex, truncated ? Py_True : Py_False, Py_None,
                                   Py_None, Py_None);
    if (items == NULL)
        return NULL;
    PyObject *holder = PyTuple_Pack(1, items);
    Py_DECREF(items);
    if (holder == NULL)
        return NULL;
    PyObject *pkt = tuple_new((PyTypeObject *)cls, holder, NULL);
    Py_DECREF(holder);
    return pkt;
}

/* The packet for a datagram `got` = (data, src, truncated) read from `unit`'s socket:
 * packet_cls(data, src, unit.group, unit.iface.index, truncated, None, None, None). */
static PyObject *
unit_packet(PyObject *cls, PyObject *unit, PyObject *got)
{
    PyObject *group = PyObject_GetAttr(unit, str_group);
    PyObject *iface = group == NULL ? NULL : PyObject_GetAttr(unit, str_iface);
    PyObject *index = iface == NULL ? NULL : PyObject_GetAttr(iface, str_index);
    PyObject *pkt = NULL;
    if (index != NULL)
        pkt = make_packet(cls, PyTuple_GetItem(got, 0), PyTuple_GetItem(got, 1), group, index,
                          PyTuple_GetItem(got, 2) == Py_True);
    Py_XDECREF(group);
    Py_XDECREF(iface);
    Py_XDECREF(index);
    return pkt;
}

/* packet_cls arguments: None (datagram tuples) or a tuple subclass of 8 fields. */
static int
check_packet_cls_or_none(const char *name, PyObject *cls)
{
    if (cls != Py_None && (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type))) {
        PyErr_Format(PyExc_TypeError, "%s(): packet_cls must be None or a tuple subclass", name);
        return -1;
    }
    return 0;
}

/* ---- waiting --------------------------------------------------------------------------------- */

/* unit.live as 1 or 0; -1 with an exception set. */
static int
unit_live(PyObject *unit)
{
    PyObject *flag = PyObject_GetAttr(unit, str_live);
    if (flag == NULL)
        return -1;
    int live = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    return live;
}

/* sock.fileno() == fd: 1 or 0 (closed, or another descriptor); -1 with an exception set. */
static int
sock_on_fd(PyObject *sock, int fd)
{
    PyObject *num = PyObject_CallMethodObjArgs(sock, str_fileno, NULL);
    if (num == NULL)
        return -1;
    long v = PyLong_AsLong(num);
    Py_DECREF(num);
    if (v == -1 && PyErr_Occurred())
        return -1;
    return v == fd;
}

/* Whether a unit's descriptor may be read now: the unit is live and its socket (unit.sock) is
 * still open on fd (not closed by the program, whose number another socket may have taken).
 * 1, 0, or -1 with an exception set. Every read of a unit makes this check with the GIL held
 * from it through the system call, with nothing in between that could run Python code: a unit
 * is marked dead before its socket is closed, so a number closed and reused by another thread
 * is never read. */
static int
unit_readable(PyObject *unit, int fd)
{
    int ok = unit_live(unit);
    if (ok > 0) {
        PyObject *sock = PyObject_GetAttr(unit, str_sock);
        ok = sock == NULL ? -1 : sock_on_fd(sock, fd);
        Py_XDECREF(sock);
    }
    return ok;
}

/* One read of a unit's descriptor, only while unit_readable. 2: not readable (nothing read);
 * else read_once's result. */
static int
read_live(PyObject *unit, int fd, char *buf, Py_ssize_t bufsize, int packet, PyObject **result)
{
    int ok = unit_readable(unit, fd);
    if (ok <= 0)
        return ok < 0 ? -1 : 2;
    return read_once(fd, buf, bufsize, 0, packet, result);
}

/* Set exc.<name> = value on the exception being raised (best effort: an exception type without a
 * __dict__ just goes without it). */
static void
attach_int(const char *name, Py_ssize_t value)
{
    PyObject *type, *val, *tb;
    PyErr_Fetch(&type, &val, &tb);
    PyErr_NormalizeException(&type, &val, &tb);
    if (val != NULL) {
        PyObject *num = PyLong_FromSsize_t(value);
        if (num == NULL || PyObject_SetAttrString(val, name, num) < 0)
            PyErr_Clear();
        Py_XDECREF(num);
    }
    PyErr_Restore(type, val, tb);
}

/* The read of fd failed (an exception is set): keep it for a live unit of by_fd (with exc.fd);
 * a socket left or closed meanwhile is passed over: [] (see the .pyi). */
static PyObject *
read_failed(PyObject *by_fd, int fd)
{
    PyObject *type, *val, *tb;
    PyErr_Fetch(&type, &val, &tb);
    PyObject *key = PyLong_FromLong(fd);
    PyObject *unit = key == NULL ? NULL : PyDict_GetItemWithError(by_fd, key);
    Py_XDECREF(key);
    int live = 0;
    if (unit != NULL) {
        PyObject *flag = PyObject_GetAttr(unit, str_live);
        live = flag == NULL ? -1 : PyObject_IsTrue(flag);
        Py_XDECREF(flag);
    }
    if (PyErr_Occurred()) { /* the lookup itself failed: report that one */
        Py_XDECREF(type);
        Py_XDECREF(val);
        Py_XDECREF(tb);
        return NULL;
    }
    if (live > 0) {
        PyErr_Restore(type, val, tb);
        attach_int("fd", fd);
        return NULL;
    }
    Py_XDECREF(type);
    Py_XDECREF(val);
    Py_XDECREF(tb);
    return PyList_New(0);
}

/* The wait and the read of epoll_recv on raw values (see the .pyi for the results). */
static PyObject *
epoll_read(PyObject *by_fd, PyObject *cls, int epfd, int waker, Py_ssize_t bufsize, int forever, double timeout)
{
    int n;
    double deadline = 0;
    struct epoll_event events[EPOLL_BATCH];
    PyObject *fds;

    if (!forever)
        deadline = monotonic_now() + (timeout > 0 ? timeout : 0);
    for (;;) {
        int ms = -1;
        if (!forever) {
            double left = ceil(remaining(deadline) * 1e3); /* round up, as select.epoll does */
            ms = left > (double)INT_MAX ? INT_MAX : (int)left;
        }
        Py_BEGIN_ALLOW_THREADS
        n = epoll_wait(epfd, events, EPOLL_BATCH, ms);
        Py_END_ALLOW_THREADS
        if (n >= 0)
            break;
        if (errno != EINTR)
            return PyErr_SetFromErrno(PyExc_OSError);
        if (PyErr_CheckSignals() < 0)
            return NULL;
    }
    if (n == 0)
        RETURN_NONE;
    if (n == 1 && events[0].data.fd != waker) {
        /* The common case: one socket ready. Read it now, if it is a live unit of by_fd: the GIL
         * is held from that lookup through the read, so no Python code can close the descriptor
         * and reuse its number in between (a unit is marked dead before its socket closes). */
        int fd = events[0].data.fd, r = 0;
        PyObject *key = PyLong_FromLong(fd), *unit;
        if (key == NULL)
            return NULL;
        unit = PyDict_GetItemWithError(by_fd, key); /* borrowed */
        Py_DECREF(key);
        if (unit == NULL && PyErr_Occurred())
            return NULL;
        if (unit != NULL) {
            Py_INCREF(unit);
            char stack[STACK_BUF];
            PyObject *got = NULL, *result;
            char *buf = get_buffer(stack, bufsize);
            r = buf == NULL ? -1 : read_live(unit, fd, buf, bufsize, cls != Py_None, &got);
            if (buf != NULL)
                put_buffer(stack, buf);
            if (r < 0) {
                Py_DECREF(unit);
                return buf == NULL ? NULL : read_failed(by_fd, fd);
            }
            if (r == 1) {
                result = cls == Py_None ? Py_NewRef(got) : unit_packet(cls, unit, got);
                Py_DECREF(got);
                Py_DECREF(unit);
                return result;
            }
            Py_DECREF(unit);
        }
        /* Not a live unit (left or closed meanwhile), or nothing after all (another reader took
         * it): nothing read; the caller's general loop decides. */
    }
    fds = PyList_New(0);
    if (fds == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        int fd = events[i].data.fd;
        if (fd == waker)
            continue;
        PyObject *num = PyLong_FromLong(fd);
        if (num == NULL || PyList_Append(fds, num) < 0) {
            Py_XDECREF(num);
            Py_DECREF(fds);
            return NULL;
        }
        Py_DECREF(num);
    }
    return fds;
}

/* epoll_recv: the wait and the read of a receive over many sockets in one call (see the .pyi). */
static PyObject *
sp_epoll_recv(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    int epfd, waker, forever;
    Py_ssize_t bufsize;
    double timeout = 0;
    PyObject *cls, *by_fd;
    (void)mod;

    if (check_nargs("epoll_recv", nargs, 6, 6) < 0 || get_size(args[0], &bufsize, "buffersize in epoll_recv") < 0)
        return NULL;
    cls = args[1];
    by_fd = args[2];
    if (check_packet_cls_or_none("epoll_recv", cls) < 0)
        return NULL;
    if (!PyDict_Check(by_fd)) {
        PyErr_SetString(PyExc_TypeError, "epoll_recv(): by_fd must be a dict");
        return NULL;
    }
    if (get_fd(args[3], &epfd, 0) < 0 || get_fd(args[4], &waker, 1) < 0 ||
        get_timeout(args[5], &timeout, &forever) < 0)
        return NULL;
    return epoll_read(by_fd, cls, epfd, waker, bufsize, forever, timeout);
}

/* ---- batches --------------------------------------------------------------------------------- */

/* The buffers of one recv_batch / recv_share call. Memory bound: `slots` message headers (mmsghdr
 * + iovec + sockaddr, about 110 bytes each) and slots * bufsize payload bytes, where slots =
 * min(count, 1024, max(1, ARENA_BYTES / bufsize)): at most ~1 MiB of payload area (or one bufsize
 * when that is larger) plus ~110 KiB of headers, whatever count is. Nothing is zero-filled: only
 * the headers of the slots a recvmmsg call uses are written, and the kernel writes only the bytes
 * it delivers, so the cost follows the datagrams read. The first recvmmsg of each read uses at
 * most FIRST_CHUNK slots; only a full one is followed by a call with every slot. The arena also
 * keeps the last sender's address tuple (datagrams from one sender share it) and the argument
 * tuple of tuple.__new__, reused for every packet. */
typedef struct {
    Py_ssize_t slots, bufsize;
    struct mmsghdr *hdrs;
    struct iovec *iovs;
    sockaddr_any *names;
    char *payload;
    PyObject *holder, *prev_src;
    sockaddr_any prev_name;
    socklen_t prev_len;
} rx_arena;

static int
arena_open(rx_arena *a, Py_ssize_t count, Py_ssize_t bufsize)
{
    Py_ssize_t slots = bufsize > 0 ? ARENA_BYTES / bufsize : MAX_VLEN;
    if (slots < 1)
        slots = 1;
    if (slots > MAX_VLEN)
        slots = MAX_VLEN;
    if (slots > count)
        slots = count;
    memset(a, 0, sizeof *a);
    a->slots = slots;
    a->bufsize = bufsize;
    a->hdrs = PyMem_Malloc((size_t)slots * sizeof *a->hdrs);
    a->iovs = PyMem_Malloc((size_t)slots * sizeof *a->iovs);
    a->names = PyMem_Malloc((size_t)slots * sizeof *a->names);
    a->payload = PyMem_Malloc((size_t)slots * (size_t)bufsize + 1); /* +1: never a 0-byte malloc */
    if (a->hdrs == NULL || a->iovs == NULL || a->names == NULL || a->payload == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    a->holder = PyTuple_New(1);
    return a->holder == NULL ? -1 : 0;
}

static void
arena_close(rx_arena *a)
{
    Py_CLEAR(a->prev_src);
    Py_CLEAR(a->holder);
    PyMem_Free(a->hdrs);
    PyMem_Free(a->iovs);
    PyMem_Free(a->names);
    PyMem_Free(a->payload);
    a->hdrs = NULL;
    a->iovs = NULL;
    a->names = NULL;
    a->payload = NULL;
}

/* One packet_cls tuple (data, sender, group, ifindex, truncated, None, None, None) for slot i of
 * the last recvmmsg, appended to out. 0, or -1 with an exception set. */
static int
arena_packet(rx_arena *a, int i, PyObject *group, PyObject *ifindex, PyObject *cls, PyObject *out)
{
    struct msghdr *h = &a->hdrs[i].msg_hdr;
    size_t len = a->hdrs[i].msg_len < (size_t)a->bufsize ? a->hdrs[i].msg_len : (size_t)a->bufsize;
    socklen_t namelen = h->msg_namelen < sizeof(sockaddr_any) ? h->msg_namelen : sizeof(sockaddr_any);
    PyObject *src, *data, *items, *pkt;

    if (a->prev_src != NULL && namelen == a->prev_len && memcmp(&a->names[i], &a->prev_name, namelen) == 0) {
        src = Py_NewRef(a->prev_src); /* same sender as the last datagram: share its tuple */
    } else {
        src = make_addr(&a->names[i], namelen);
        if (src == NULL)
            return -1;
        Py_XDECREF(a->prev_src);
        a->prev_src = Py_NewRef(src);
        memcpy(&a->prev_name, &a->names[i], namelen);
        a->prev_len = namelen;
    }
    data = PyBytes_FromStringAndSize(a->iovs[i].iov_base, (Py_ssize_t)len);
    items = data == NULL ? NULL : PyTuple_New(8);
    if (items == NULL) {
        Py_XDECREF(data);
        Py_DECREF(src);
        return -1;
    }
    /* A fresh tuple of 8 and valid indexes: PyTuple_SetItem cannot fail; it steals each. */
    PyTuple_SetItem(items, 0, data);
    PyTuple_SetItem(items, 1, src);
    PyTuple_SetItem(items, 2, Py_NewRef(group));
    PyTuple_SetItem(items, 3, Py_NewRef(ifindex));
    PyTuple_SetItem(items, 4, PyBool_FromLong(h->msg_flags & MSG_TRUNC));
    PyTuple_SetItem(items, 5, Py_NewRef(Py_None));
    PyTuple_SetItem(items, 6, Py_NewRef(Py_None));
    PyTuple_SetItem(items, 7, Py_NewRef(Py_None));
    if (PyTuple_SetItem(a->holder, 0, items) < 0) /* drops the previous packet's items */
        return -1;
    pkt = tuple_new((PyTypeObject *)cls, a->holder, NULL);
    if (pkt == NULL)
        return -1;
    int r = PyList_Append(out, pkt);
    Py_DECREF(pkt);
    return r;
}

/* Up to count queued datagrams of fd (recvmmsg, MSG_DONTWAIT) appended to out as packets.
 * Returns how many (0: nothing queued); -1: the socket's error before any datagram of this read
 * (an OSError is set); -2: any other exception (a signal handler's, no memory). An error after
 * some datagrams were read ends the read with those (a lasting error shows on the next read). */
static Py_ssize_t
arena_read(rx_arena *a, int fd, PyObject *unit, PyObject *sock, Py_ssize_t count, PyObject *group,
           PyObject *ifindex, PyObject *cls, PyObject *out)
{
    Py_ssize_t got = 0;
    Py_ssize_t chunk = a->slots < FIRST_CHUNK ? a->slots : FIRST_CHUNK;
    while (got < count) {
        int n;
        if (chunk > count - got)
            chunk = count - got;
        for (Py_ssize_t i = 0; i < chunk; i++) {
            a->iovs[i].iov_base = a->payload + i * a->bufsize;
            a->iovs[i].iov_len = (size_t)a->bufsize;
            memset(&a->hdrs[i], 0, sizeof a->hdrs[i]);
            a->hdrs[i].msg_hdr.msg_name = &a->names[i];
            a->hdrs[i].msg_hdr.msg_namelen = sizeof a->names[i];
            a->hdrs[i].msg_hdr.msg_iov = &a->iovs[i];
            a->hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        /* Checked before every chunk: making the last chunk's packets may have run Python code
         * (a garbage collection's finalizers) that left the unit or closed the socket. Nothing
         * runs Python code from the check on. */
        int ok = unit != NULL ? unit_readable(unit, fd) : sock != NULL ? sock_on_fd(sock, fd) : 1;
        if (ok < 0)
            return -2;
        if (ok == 0)
            break; /* left or closed meanwhile: what was read stays, the rest is not ours to read */
        if ((size_t)chunk * (size_t)a->bufsize <= HOLD_GIL_BYTES) {
            n = recvmmsg(fd, a->hdrs, (unsigned int)chunk, MSG_DONTWAIT, NULL); /* GIL held */
        } else {
            /* A large read lets other threads run. It reads its own duplicate of the number,
             * made under the GIL right after the check: another thread may close the number
             * meanwhile and a new socket take it, but this read stays on the checked socket. */
            int pin = fcntl(fd, F_DUPFD_CLOEXEC, 0), saved;
            if (pin < 0) { /* no descriptor to spare (EMFILE): the checked number, GIL held */
                n = recvmmsg(fd, a->hdrs, (unsigned int)chunk, MSG_DONTWAIT, NULL);
            } else {
                Py_BEGIN_ALLOW_THREADS
                n = recvmmsg(pin, a->hdrs, (unsigned int)chunk, MSG_DONTWAIT, NULL);
                saved = errno;
                close(pin);
                errno = saved;
                Py_END_ALLOW_THREADS
            }
        }
        if (n < 0) {
            if (errno == EINTR) {
                if (PyErr_CheckSignals() < 0)
                    return -2;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || got > 0)
                break;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        for (int i = 0; i < n; i++)
            if (arena_packet(a, i, group, ifindex, cls, out) < 0)
                return -2;
        got += n;
        if (n < chunk) /* the queue ran dry */
            break;
        chunk = a->slots;
    }
    return got;
}

static int
check_packet_cls(const char *name, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
        PyErr_Format(PyExc_TypeError, "%s(): packet_cls must be a tuple subclass", name);
        return -1;
    }
    return 0;
}

static int
check_bufsize_uint(const char *name, Py_ssize_t bufsize)
{
    if ((size_t)bufsize > (size_t)UINT_MAX) {
        PyErr_Format(PyExc_OverflowError, "%s(): buffersize too large", name);
        return -1;
    }
    return 0;
}

static PyObject *
sp_recv_batch(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    int fd;
    Py_ssize_t count, bufsize;
    PyObject *group, *ifindex, *cls, *out;
    rx_arena a;
    (void)mod;

    if (check_nargs("recv_batch", nargs, 6, 6) < 0 || get_sock_fd(args[0], &fd) < 0 ||
        get_size(args[1], &count, "count in recv_batch") < 0 ||
        get_size(args[2], &bufsize, "buffersize in recv_batch") < 0)
        return NULL;
    group = args[3];
    ifindex = args[4];
    cls = args[5];
    if (!PyUnicode_Check(group)) {
        PyErr_SetString(PyExc_TypeError, "recv_batch(): group must be a str");
        return NULL;
    }
    if (!PyLong_Check(ifindex)) {
        PyErr_SetString(PyExc_TypeError, "recv_batch(): ifindex must be an int");
        return NULL;
    }
    if (check_packet_cls("recv_batch", cls) < 0 || check_bufsize_uint("recv_batch", bufsize) < 0)
        return NULL;
    out = PyList_New(0);
    if (out == NULL || count == 0)
        return out;
    if (arena_open(&a, count, bufsize) < 0 ||
        arena_read(&a, fd, NULL, PyLong_Check(args[0]) ? NULL : args[0], count, group, ifindex, cls, out) < 0)
        Py_CLEAR(out);
    arena_close(&a);
    return out;
}

/* recv_share's view of one unit: its descriptor, group and interface index (new references). */
typedef struct {
    PyObject *unit, *group, *ifindex;
    int fd;
} share_src;

/* Attribute names recv_share reads, interned once. */
static PyObject *attr_fd, *attr_group, *attr_iface, *attr_index;

static int
share_names(void)
{
    if (attr_index != NULL)
        return 0;
    attr_fd = PyUnicode_InternFromString("fd");
    attr_group = PyUnicode_InternFromString("group");
    attr_iface = PyUnicode_InternFromString("iface");
    attr_index = PyUnicode_InternFromString("index");
    return attr_fd == NULL || attr_group == NULL || attr_iface == NULL || attr_index == NULL ? -1 : 0;
}

/* src->* from the unit's attributes fd (int), group (str) and iface.index (int). */
static int
share_source(PyObject *unit, share_src *src)
{
    PyObject *fd, *iface;
    int bad;
    src->unit = Py_NewRef(unit);
    fd = PyObject_GetAttr(unit, attr_fd);
    if (fd == NULL)
        return -1;
    bad = !PyLong_Check(fd) || get_fd(fd, &src->fd, 0) < 0;
    Py_DECREF(fd);
    if (bad) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "recv_share(): unit.fd must be an int");
        return -1;
    }
    src->group = PyObject_GetAttr(unit, attr_group);
    if (src->group == NULL)
        return -1;
    if (!PyUnicode_Check(src->group)) {
        PyErr_SetString(PyExc_TypeError, "recv_share(): unit.group must be a str");
        return -1;
    }
    iface = PyObject_GetAttr(unit, attr_iface);
    if (iface == NULL)
        return -1;
    src->ifindex = PyObject_GetAttr(iface, attr_index);
    Py_DECREF(iface);
    if (src->ifindex == NULL)
        return -1;
    if (!PyLong_Check(src->ifindex)) {
        PyErr_SetString(PyExc_TypeError, "recv_share(): unit.iface.index must be an int");
        return -1;
    }
    return 0;
}

/* A unit's read failed (the OSError is set): ask gone(unit). Returns 1 (it was gone: the error is
 * dropped), 0 (live: the error stays set) or -1 (gone() raised: its exception is set). */
static int
share_gone(PyObject *gone, PyObject *unit)
{
    PyObject *type, *value, *tb, *answer;
    int truth;
    PyErr_Fetch(&type, &value, &tb);
    answer = PyObject_CallFunctionObjArgs(gone, unit, NULL);
    truth = answer == NULL ? -1 : PyObject_IsTrue(answer);
    Py_XDECREF(answer);
    if (truth == 0) {
        PyErr_Restore(type, value, tb);
        return 0;
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return truth > 0 ? 1 : -1;
}

/* The rounds of a share over srcs[0..n) (already in serving order), appending to out. 0, or -1
 * with an exception set. */
static int
share_run(share_src *srcs, Py_ssize_t n, Py_ssize_t bufsize, Py_ssize_t room, PyObject *cls, PyObject *out,
          PyObject *gone)
{
    Py_ssize_t nactive = n;
    Py_ssize_t *active = PyMem_Malloc((size_t)n * sizeof *active);
    rx_arena a;
    int r = -1;

    if (active == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        active[i] = i;
    if (arena_open(&a, room, bufsize) < 0)
        goto done;
    /* Rounds: the room is shared equally among the active units, the first `extra` one more;
     * a unit that filled its quota may hold more and stays for the next round. */
    while (nactive > 0 && room > 0) {
        Py_ssize_t base = room / nactive, extra = room % nactive, more = 0;
        for (Py_ssize_t k = 0; k < nactive; k++) {
            share_src *s = &srcs[active[k]];
            Py_ssize_t quota = base + (k < extra), got;
            if (quota == 0)
                continue;
            /* arena_read reads only while the unit is live and its socket open on its number
             * (unit_readable, checked before every recvmmsg): a unit left, or a socket closed by
             * the program, since the call began gives nothing (skipped). */
            got = arena_read(&a, s->fd, s->unit, NULL, quota, s->group, s->ifindex, cls, out);
            if (got == -2)
                goto done;
            if (got == -1) {
                if (share_gone(gone, s->unit) != 1)
                    goto done; /* a live unit's error, or gone()'s own */
                continue;      /* left or closed under us: skipped */
            }
            room -= got;
            if (got == quota)
                active[more++] = active[k]; /* (more <= k: compacts in place) */
        }
        nactive = more;
    }
    r = 0;
done:
    arena_close(&a);
    PyMem_Free(active);
    return r;
}

static void
share_free(share_src *srcs, Py_ssize_t made)
{
    for (Py_ssize_t i = 0; i < made; i++) {
        Py_XDECREF(srcs[i].unit);
        Py_XDECREF(srcs[i].group);
        Py_XDECREF(srcs[i].ifindex);
    }
    PyMem_Free(srcs);
}

static int
share_check(const char *name, Py_ssize_t bufsize, PyObject *cls, PyObject *out, PyObject *gone)
{
    if (check_packet_cls(name, cls) < 0 || check_bufsize_uint(name, bufsize) < 0)
        return -1;
    if (!PyList_Check(out)) {
        PyErr_Format(PyExc_TypeError, "%s(): out must be a list", name);
        return -1;
    }
    if (!PyCallable_Check(gone)) {
        PyErr_Format(PyExc_TypeError, "%s(): gone must be callable", name);
        return -1;
    }
    return share_names();
}

static PyObject *
sp_recv_share(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t bufsize, start, room, n, made = 0;
    PyObject *cls, *units, *out, *gone, *result = NULL;
    share_src *srcs = NULL;
    (void)mod;

    if (check_nargs("recv_share", nargs, 7, 7) < 0 || get_size(args[0], &bufsize, "buffersize in recv_share") < 0 ||
        get_size(args[3], &start, "start in recv_share") < 0 || get_size(args[4], &room, "room in recv_share") < 0)
        return NULL;
    cls = args[1];
    units = args[2];
    out = args[5];
    gone = args[6];
    if (!PyList_Check(units)) {
        PyErr_SetString(PyExc_TypeError, "recv_share(): units must be a list");
        return NULL;
    }
    if (share_check("recv_share", bufsize, cls, out, gone) < 0)
        return NULL;
    n = PyList_Size(units);
    if (n == 0 || room == 0)
        RETURN_NONE;
    if ((size_t)n > SIZE_MAX / sizeof *srcs)
        return PyErr_NoMemory();
    srcs = PyMem_Calloc((size_t)n, sizeof *srcs);
    if (srcs == NULL)
        return PyErr_NoMemory();
    /* Every unit's details first, in the order served (from `start`, wrapping round); the units
     * are held, so a list changed by gone() or another thread does not matter. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *unit = PyList_GetItem(units, (start + i) % n); /* (NULL: the list shrank) */
        if (unit == NULL)
            goto done;
        made = i + 1;
        if (share_source(unit, &srcs[i]) < 0)
            goto done;
    }
    if (share_run(srcs, n, bufsize, room, cls, out, gone) == 0)
        result = Py_NewRef(Py_None);
done:
    share_free(srcs, made);
    return result;
}

static int
compare_fds(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

/* epoll.poll's default maxevents (FD_SETSIZE - 1): the same ready sockets as a Python poll. */
#define POLL_SHARE_MAX 1023

static PyObject *
sp_recv_poll_share(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    int epfd, nev, nfds = 0;
    Py_ssize_t bufsize, turn, room, made = 0;
    PyObject *cls, *by_fd, *out, *gone, *result = NULL;
    struct epoll_event stack[64];
    struct epoll_event *events = stack;
    int fds_stack[64];
    int *fds = fds_stack;
    share_src *srcs = NULL;
    (void)mod;

    if (check_nargs("recv_poll_share", nargs, 8, 8) < 0 ||
        get_size(args[0], &bufsize, "buffersize in recv_poll_share") < 0 || get_fd(args[2], &epfd, 0) < 0 ||
        get_size(args[4], &turn, "turn in recv_poll_share") < 0 ||
        get_size(args[5], &room, "room in recv_poll_share") < 0)
        return NULL;
    cls = args[1];
    by_fd = args[3];
    out = args[6];
    gone = args[7];
    if (!PyDict_Check(by_fd)) {
        PyErr_SetString(PyExc_TypeError, "recv_poll_share(): by_fd must be a dict");
        return NULL;
    }
    if (share_check("recv_poll_share", bufsize, cls, out, gone) < 0)
        return NULL;
    Py_ssize_t want = PyDict_Size(by_fd) + 1; /* (+1: the waker, also registered) */
    int maxevents = want > POLL_SHARE_MAX ? POLL_SHARE_MAX : (int)want;
    if (maxevents > 64) {
        events = PyMem_Malloc((size_t)maxevents * sizeof *events);
        fds = PyMem_Malloc((size_t)maxevents * sizeof *fds);
        if (events == NULL || fds == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    for (;;) {
        nev = epoll_wait(epfd, events, maxevents, 0);
        if (nev >= 0)
            break;
        if (errno != EINTR) { /* (a closed poller: the caller's general path finds out why) */
            result = PyLong_FromLong(-1);
            goto done;
        }
        if (PyErr_CheckSignals() < 0)
            goto done;
    }
    for (int i = 0; i < nev; i++)
        fds[i] = events[i].data.fd;
    qsort(fds, (size_t)nev, sizeof *fds, compare_fds);
    srcs = PyMem_Calloc((size_t)(nev > 0 ? nev : 1), sizeof *srcs);
    if (srcs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* The ready units in descriptor order (fds not in by_fd, such as the waker, left out). */
    for (int i = 0; i < nev; i++) {
        PyObject *key = PyLong_FromLong(fds[i]), *unit;
        if (key == NULL)
            goto done;
        unit = PyDict_GetItemWithError(by_fd, key); /* borrowed */
        Py_DECREF(key);
        if (unit == NULL) {
            if (PyErr_Occurred())
                goto done;
            continue;
        }
        srcs[nfds].unit = Py_NewRef(unit);
        made = ++nfds;
    }
    if (nfds > 0 && room > 0) {
        /* Rotate to start at turn % nfds: fill the details in serving order. */
        share_src *ordered = PyMem_Calloc((size_t)nfds, sizeof *ordered);
        Py_ssize_t start = turn % nfds, filled = 0;
        int bad = 0;
        if (ordered == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < nfds && !bad; i++) {
            filled = i + 1;
            bad = share_source(srcs[(start + i) % nfds].unit, &ordered[i]) < 0;
        }
        if (!bad)
            bad = share_run(ordered, nfds, bufsize, room, cls, out, gone) < 0;
        share_free(ordered, filled);
        if (bad)
            goto done;
    }
    result = PyLong_FromLong(nfds);
done:
    if (srcs != NULL)
        share_free(srcs, made);
    if (events != stack)
        PyMem_Free(events);
    if (fds != fds_stack)
        PyMem_Free(fds);
    return result;
}

/* 1 if every item of ``seq`` is an exact (bytes, (str, int)) tuple whose address is in ``known``
 * (a set or a dict's keys), 0 if one is not, -1 with an exception set. Only exact types, so no
 * Python code runs (hashing and comparing str, int and tuples of them). */
static int
all_known(PyObject *seq, Py_ssize_t count, PyObject *known)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_GetItem(seq, i), *addr;
        int ok;
        if (item == NULL)
            return -1;
        ok = PyTuple_CheckExact(item) && PyTuple_Size(item) == 2 && PyBytes_CheckExact(PyTuple_GetItem(item, 0));
        addr = ok ? PyTuple_GetItem(item, 1) : NULL;
        ok = ok && PyTuple_CheckExact(addr) && PyTuple_Size(addr) == 2 &&
             PyUnicode_CheckExact(PyTuple_GetItem(addr, 0)) && PyLong_CheckExact(PyTuple_GetItem(addr, 1));
        if (ok)
            ok = PyDict_Check(known) ? PyDict_Contains(known, addr) : PySet_Contains(known, addr);
        Py_DECREF(item);
        if (ok != 1)
            return ok;
    }
    return 1;
}

static PyObject *
sp_send_batch(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    int pin = -1; /* a duplicate of fd that every chunk goes through (see below), or -1 */
    int fd, family;
    Py_ssize_t count, parsed = 0, sent = 0;
    PyObject *seq;
    struct mmsghdr *hdrs = NULL;
    struct iovec *iovs = NULL;
    Py_buffer *views = NULL;
    sockaddr_any *names = NULL;
    PyObject *result = NULL;
    (void)mod;

    if (check_nargs("send_batch", nargs, 3, 4) < 0 || get_sock_fd(args[0], &fd) < 0 || get_int(args[1], &family) < 0)
        return NULL;
    seq = args[2];
    if (nargs == 4 && args[3] != Py_None && !PyAnySet_Check(args[3]) && !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "send_batch(): known must be a set, a dict or None");
        return NULL;
    }
    count = PySequence_Size(seq);
    if (count < 0)
        return NULL;
    if (nargs == 4 && args[3] != Py_None) { /* send only if every datagram goes to a known place */
        int known = all_known(seq, count, args[3]);
        if (known < 0)
            return NULL;
        if (known == 0)
            RETURN_NONE;
    }
    if (count == 0)
        return PyLong_FromLong(0);
    /* This call's own arrays: every destination gets its own sockaddr, alive until the last
     * sendmmsg of this call returns (nothing is shared with another call or another thread). */
    if ((size_t)count > SIZE_MAX / (sizeof *hdrs + sizeof *iovs + sizeof *views + sizeof *names))
        return PyErr_NoMemory();
    hdrs = PyMem_Malloc((size_t)count * sizeof *hdrs);
    iovs = PyMem_Malloc((size_t)count * sizeof *iovs);
    views = PyMem_Malloc((size_t)count * sizeof *views);
    names = PyMem_Malloc((size_t)count * sizeof *names);
    if (hdrs == NULL || iovs == NULL || views == NULL || names == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* Check everything before sending anything. */
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_GetItem(seq, i);
        socklen_t namelen = 0;
        int bad;
        if (item == NULL)
            goto done;
        if (!PyTuple_Check(item) || PyTuple_Size(item) != 2) {
            Py_DECREF(item);
            PyErr_SetString(PyExc_TypeError, "send_batch(): each datagram must be a (data, address) tuple");
            goto done;
        }
        if (PyObject_GetBuffer(PyTuple_GetItem(item, 0), &views[i], PyBUF_SIMPLE) < 0) {
            Py_DECREF(item);
            goto done;
        }
        parsed = i + 1; /* views[0..parsed) are held */
        bad = parse_addr(family, PyTuple_GetItem(item, 1), &names[i], &namelen);
        Py_DECREF(item);
        if (bad < 0)
            goto done;
        iovs[i].iov_base = views[i].buf;
        iovs[i].iov_len = (size_t)views[i].len;
        memset(&hdrs[i], 0, sizeof hdrs[i]);
        hdrs[i].msg_hdr.msg_name = &names[i];
        hdrs[i].msg_hdr.msg_namelen = namelen;
        hdrs[i].msg_hdr.msg_iov = &iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    /* Another thread may close the socket (and a new socket take its number) whenever the GIL
     * is released. So every call goes through a duplicate made here, with the GIL held, right
     * after checking the socket is still open on its number (parsing may have run Python code);
     * with no descriptor to spare, the number itself with the GIL held through each call. Every
     * call is MSG_DONTWAIT: a blocking socket whose buffer is full is waited for (poll, without
     * the GIL) in slices of SEND_WAIT_MS, and between calls and slices the socket is checked
     * again (closed: EBADF, which the caller reports as closed) and signals are run, so a close
     * or a raising signal handler stops a long batch promptly. A bare number (an int) is the
     * caller's to keep open. */
    int held = 0, blocking = -1, number = fd, is_sock = !PyLong_Check(args[0]);
    if (is_sock) {
        int on = sock_on_fd(args[0], fd);
        if (on < 0)
            goto done;
        if (on == 0) {
            errno = EBADF;
            PyErr_SetFromErrno(PyExc_OSError);
            goto done;
        }
        pin = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (pin >= 0)
            fd = pin;
        else
            held = 1;
    }
    while (sent < count) {
        int n, waited = 0;
        unsigned int vlen = (unsigned int)(count - sent > MAX_VLEN ? MAX_VLEN : count - sent);
        if (held) {
            n = sendmmsg(fd, hdrs + sent, vlen, MSG_DONTWAIT);
        } else {
            Py_BEGIN_ALLOW_THREADS
            n = sendmmsg(fd, hdrs + sent, vlen, MSG_DONTWAIT);
            Py_END_ALLOW_THREADS
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (blocking < 0) {
                int fl = fcntl(fd, F_GETFL);
                blocking = fl >= 0 && !(fl & O_NONBLOCK);
            }
            if (blocking) { /* wait for room, a slice at a time */
                struct pollfd want = {.fd = fd, .events = POLLOUT, .revents = 0};
                Py_BEGIN_ALLOW_THREADS
                (void)poll(&want, 1, SEND_WAIT_MS);
                Py_END_ALLOW_THREADS
                n = 0;
                waited = 1;
            } else {
                if (sent > 0)
                    break; /* the send buffer is full: report how many went */
                errno = EAGAIN;
            }
        }
        if (n < 0 && errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            goto done;
        }
        if (n == 0 && !waited)
            break; /* (sent nothing, refused nothing: stop rather than spin) */
        if (n > 0)
            sent += n;
        if (sent < count) { /* more to send: signals, and the socket still open? */
            int on = 1;
            if (PyErr_CheckSignals() < 0 || (is_sock && (on = sock_on_fd(args[0], number)) < 0))
                goto done;
            if (on == 0) {
                errno = EBADF;
                PyErr_SetFromErrno(PyExc_OSError);
                goto done;
            }
        }
    }
    result = PyLong_FromSsize_t(sent);
done:
    /* Every OSError (and, best effort, an exception from a signal handler after some were sent)
     * says how many datagrams of this call went out. */
    if (result == NULL && PyErr_Occurred() && (sent > 0 || PyErr_ExceptionMatches(PyExc_OSError)))
        attach_int("sent", sent);
    if (pin >= 0)
        close(pin);
    for (Py_ssize_t i = 0; i < parsed; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(hdrs);
    PyMem_Free(iovs);
    PyMem_Free(views);
    PyMem_Free(names);
    return result;
}

/* ---- per-socket hot paths ---------------------------------------------------------------------
 *
 * RxHot and TxHot are the receive and send methods of one open McastRxSocket / McastTxSocket as C
 * callables: the socket class puts their bound methods in its instance dict (recvfrom,
 * recv_packet, sendto), so a call goes from the caller's bytecode straight into C, with no Python
 * frame. Each holds a copy of what the common case needs (the engine's fast-path state: the one
 * socket, or the socket map and epoll descriptor; the remembered destinations), kept current by the
 * Python side under its own locks. Anything else (other arguments, keywords, a closed or changing
 * socket, a wake-up, an error) is handed to the Python method, which does the full job, so the
 * behaviour is the Python code's. The socket is referred to weakly (no reference cycle: dropping an
 * unclosed socket frees it at once, as before). */

#define HOT_CLOSED (-1) /* the engine is closed: errors of an in-flight read are not the caller's */
#define HOT_OFF 0       /* open, but no fast path (no poller yet, services, no socket, ...) */
#define HOT_SINGLE 1    /* one socket: a first read, then epoll_read on the poller's set */
#define HOT_MULTI 2     /* several: epoll_read on the poller, while the ready queue is empty */

typedef struct {
    PyObject_HEAD
    int mode, fd, wake_fd, epfd, forever;
    double timeout;
    PyObject *unit, *poller, *by_fd, *ready; /* the engine's objects (unit: SINGLE only) */
    PyObject *owner;                         /* weakref to the McastRxSocket */
    PyObject *strong;                        /* the McastRxSocket itself while open (see hold), or NULL */
    PyObject *slow_from, *slow_packet;       /* the Python methods, unbound: f(owner, *args, **kw) */
    PyObject *resume;                        /* resume(owner, kind, bufsize, timeout, polled); polled False: closed */
    PyObject *packet_cls;                    /* McastPacket, or None: recv_packet always in Python */
} RxHot;

/* Attribute and method names the hot objects use, interned once (exec_module). */

/* The owner (a new reference): the one held while open, else through the weak reference; NULL
 * with ReferenceError once it was collected. */
static PyObject *
hot_owner(PyObject *strong, PyObject *ref)
{
    if (strong != NULL)
        return Py_NewRef(strong);
    PyObject *owner = PyObject_CallNoArgs(ref);
    if (owner == Py_None) {
        Py_DECREF(owner);
        PyErr_SetString(PyExc_ReferenceError, "the socket this method was taken from no longer exists");
        return NULL;
    }
    return owner;
}

/* type(owner).<name>, bound to owner as an attribute lookup binds it when the instance's own
 * dict has no entry: what the class (a subclass's override, a test's patch) says the method is. */
static PyObject *
class_method(PyObject *owner, PyObject *name)
{
    PyObject *func = PyObject_GetAttr((PyObject *)Py_TYPE(owner), name);
    if (func == NULL)
        return NULL;
    descrgetfunc get = (descrgetfunc)PyType_GetSlot(Py_TYPE(func), Py_tp_descr_get);
    if (get == NULL)
        return func;
    PyObject *bound = get(func, owner, (PyObject *)Py_TYPE(owner));
    Py_DECREF(func);
    return bound;
}

/* Whether type(owner).<name> is still `original` (1), or a test patched the class (0); -1 with
 * an exception set. No owner held (a bare object in tests): 1. */
static int
class_unpatched(PyObject *owner, PyObject *name, PyObject *original)
{
    if (owner == NULL)
        return 1;
    PyObject *func = PyObject_GetAttr((PyObject *)Py_TYPE(owner), name);
    if (func == NULL)
        return -1;
    Py_DECREF(func);
    return func == original;
}

/* The full Python method for a vectorcall's arguments: `func(owner, *args, **kwargs)`, or, when
 * func is NULL or the class's method is no longer `original`, the class's method as bound. */
static PyObject *
hot_forward(PyObject *name, PyObject *original, PyObject *func, PyObject *strong, PyObject *ref,
            PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_Size(kwnames), skip = 1;
    PyObject *owner, *pos, *kw = NULL, *result = NULL, *target;
    owner = hot_owner(strong, ref);
    if (owner == NULL)
        return NULL;
    int same = func == NULL ? 0 : class_unpatched(owner, name, original);
    if (same < 0) {
        Py_DECREF(owner);
        return NULL;
    }
    if (same) {
        target = Py_NewRef(func);
        skip = 0;
    } else {
        target = class_method(owner, name);
        if (target == NULL) {
            Py_DECREF(owner);
            return NULL;
        }
    }
    pos = PyTuple_New(nargs + 1 - skip);
    if (pos == NULL) {
        Py_DECREF(owner);
        Py_DECREF(target);
        return NULL;
    }
    if (skip)
        Py_DECREF(owner);
    else
        PyTuple_SetItem(pos, 0, owner); /* steals */
    for (Py_ssize_t i = 0; i < nargs; i++)
        PyTuple_SetItem(pos, i + 1 - skip, Py_NewRef(args[i]));
    if (nkw > 0) {
        kw = PyDict_New();
        if (kw == NULL)
            goto done;
        for (Py_ssize_t i = 0; i < nkw; i++)
            if (PyDict_SetItem(kw, PyTuple_GetItem(kwnames, i), args[nargs + i]) < 0)
                goto done;
    }
    result = PyObject_Call(target, pos, kw);
done:
    Py_DECREF(target);
    Py_DECREF(pos);
    Py_XDECREF(kw);
    return result;
}

/* An exact int in 1..2**31-1 (a buffer size the Python method would accept as is), else 0. */
static Py_ssize_t
hot_bufsize(PyObject *obj)
{
    if (!PyLong_CheckExact(obj))
        return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return overflow == 0 && v > 0 && v < 2147483648LL ? (Py_ssize_t)v : 0;
}

/* An exception is set by a read or a wait: 1 if it is an OSError that is not the caller's (the
 * socket was left, or the engine closed, meanwhile: the error is cleared and the receive goes on
 * in Python), else 0 (it stays set: a signal handler's exception, say, always propagates). */
static int
hot_stale_error(RxHot *self, PyObject *unit)
{
    if (!PyErr_ExceptionMatches(PyExc_OSError))
        return 0;
    int stale = self->mode == HOT_CLOSED;
    if (!stale && unit != NULL) {
        PyObject *type, *val, *tb;
        PyErr_Fetch(&type, &val, &tb);
        int live = unit_live(unit);
        if (live < 0) { /* (the check itself failed: report that one) */
            Py_XDECREF(type);
            Py_XDECREF(val);
            Py_XDECREF(tb);
            return 0;
        }
        PyErr_Restore(type, val, tb);
        stale = !live;
    }
    if (stale)
        PyErr_Clear();
    return stale;
}

/* One non-waiting read of a unit's descriptor (SINGLE's first read; recv_unit): the datagram (a
 * new reference), Py_False (nothing queued), Py_True (not to be read: the unit is no longer live,
 * or its socket was closed by hand, so the descriptor number may now be another socket's), or
 * NULL with an exception set. The GIL is held from the checks through the read: a unit is marked
 * dead before its socket is closed, so no other thread can close the socket and reuse its number
 * in between. `flags` (recvfrom's) only with cls None. */
static PyObject *
unit_read(PyObject *unit, int fd, Py_ssize_t bufsize, int flags, PyObject *cls)
{
    int ok = unit_readable(unit, fd);
    if (ok <= 0)
        return ok < 0 ? NULL : Py_NewRef(Py_True);
    char stack[STACK_BUF];
    PyObject *raw = NULL, *got;
    char *buf = get_buffer(stack, bufsize);
    if (buf == NULL)
        return NULL;
    int r = read_once(fd, buf, bufsize, flags, cls != Py_None, &raw);
    put_buffer(stack, buf);
    if (r <= 0)
        return r < 0 ? NULL : Py_NewRef(Py_False);
    got = cls == Py_None ? Py_NewRef(raw) : unit_packet(cls, unit, raw);
    Py_DECREF(raw);
    return got;
}

/* recv_unit(bufsize, flags, packet_cls, unit, /): the engine's read of one unit (see the .pyi). */
static PyObject *
sp_recv_unit(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, flags, rc;
    Py_ssize_t bufsize;
    (void)mod;
    if (check_nargs("recv_unit", nargs, 4, 4) < 0 || get_size(args[0], &bufsize, "buffersize in recv_unit") < 0 ||
        get_int(args[1], &flags) < 0 || check_packet_cls_or_none("recv_unit", args[2]) < 0)
        return NULL;
    if (flags && args[2] != Py_None) {
        PyErr_Format(PyExc_ValueError, "recv_unit(): flags (%d) only without packet_cls", flags);
        return NULL;
    }
    PyObject *fdobj = PyObject_GetAttr(args[3], str_fd);
    if (fdobj == NULL)
        return NULL;
    rc = get_fd(fdobj, &fd, 0);
    Py_DECREF(fdobj);
    if (rc < 0)
        return NULL;
    PyObject *got = unit_read(args[3], fd, bufsize, flags, args[2]);
    if (got == Py_False || got == Py_True) {
        errno = got == Py_False ? EAGAIN : EBADF; /* BlockingIOError, or the unit's socket is gone */
        Py_DECREF(got);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return got;
}

/* The common receive (kind 0: recvfrom, 1: recv_packet) with the engine's fast-path state; NULL
 * with an exception, or with none set when the Python method must do the whole job.
 * One socket: a first read (one system call when a datagram is queued), then the wait on the
 * engine's epoll set and the read of epoll_read. Several: epoll_read while nothing is queued.
 * The socket's own descriptor is never polled directly: a poll would pin its socket, so a leave
 * during the wait would keep the membership until the wait ends. */
static PyObject *
rxhot_receive(RxHot *self, int kind, Py_ssize_t bufsize)
{
    int mode = self->mode, forever = self->forever;
    double timeout = self->timeout, start = forever ? 0 : monotonic_now();
    PyObject *cls = kind ? self->packet_cls : Py_None;
    PyObject *got = NULL, *unit = NULL, *owner, *result;

    if (kind && cls == Py_None)
        return NULL; /* packets with metadata: the Python reader */
    if (!forever && timeout <= 0)
        return NULL; /* non-blocking receives: the engine's general loop */
    if (mode != HOT_SINGLE && mode != HOT_MULTI)
        return NULL;
    if (mode == HOT_MULTI) {
        Py_ssize_t queued = PyObject_Length(self->ready);
        if (queued != 0) { /* (something queued by another receive: the engine's general loop) */
            if (queued < 0)
                PyErr_Clear();
            return NULL;
        }
    }
    /* Held for this call: a close or a change may drop them from self meanwhile. */
    PyObject *by_fd = Py_NewRef(self->by_fd), *poller = Py_NewRef(self->poller);
    int epfd = self->epfd, wake = self->wake_fd;
    if (mode == HOT_SINGLE) {
        unit = Py_NewRef(self->unit);
        got = unit_read(unit, self->fd, bufsize, 0, cls);
    } else {
        got = Py_NewRef(Py_False);
    }
    if (got == Py_False) { /* nothing queued: wait */
        Py_DECREF(got);
        got = epoll_read(by_fd, cls, epfd, wake, bufsize, forever, timeout);
    }
    if (got == NULL && hot_stale_error(self, unit))
        got = Py_NewRef(Py_True);
    Py_XDECREF(unit);
    Py_DECREF(by_fd);
    Py_DECREF(poller);
    if (got == NULL)
        return NULL;
    if (got != Py_True && !PyList_CheckExact(got))
        return got; /* a datagram, or None: timed out */
    /* Woken (a close, a join, a leave, several ready) or not to be read here: the engine's
     * general loop goes on, with the time left. */
    PyObject *polled = Py_None;
    if (self->mode == HOT_CLOSED)
        polled = Py_False; /* closed while this receive waited (perhaps opened again since): resume raises */
    else if (mode == HOT_MULTI && got != Py_True)
        polled = got; /* the ready descriptors, nothing read */
    owner = hot_owner(self->strong, self->owner);
    if (owner == NULL) {
        Py_DECREF(got);
        return NULL;
    }
    if (!forever)
        timeout = start + timeout - monotonic_now();
    PyObject *k = PyLong_FromLong(kind), *b = PyLong_FromSsize_t(bufsize);
    PyObject *t = forever ? Py_NewRef(Py_None) : PyFloat_FromDouble(timeout);
    result = k == NULL || b == NULL || t == NULL
                 ? NULL
                 : PyObject_CallFunctionObjArgs(self->resume, owner, k, b, t, polled, NULL);
    Py_XDECREF(k);
    Py_XDECREF(b);
    Py_XDECREF(t);
    Py_DECREF(owner);
    Py_DECREF(got);
    if (result == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_SystemError, "resume failed without an exception");
    return result;
}

/* recvfrom(bufsize=4096, flags=0): the common case here, the rest in McastRxSocket.recvfrom. */
static PyObject *
rxhot_recvfrom(RxHot *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t bufsize = 4096;
    if ((kwnames != NULL && PyTuple_Size(kwnames) > 0) || nargs > 2)
        goto slow;
    if (nargs >= 1 && (bufsize = hot_bufsize(args[0])) == 0)
        goto slow;
    if (nargs == 2 && !(PyLong_CheckExact(args[1]) && PyObject_Not(args[1]) == 1))
        goto slow; /* flags other than 0 */
    int same = class_unpatched(self->strong, str_recvfrom, self->slow_from);
    if (same < 0)
        return NULL;
    if (same) {
        PyObject *got = rxhot_receive(self, 0, bufsize);
        if (got != NULL || PyErr_Occurred())
            return got;
    }
slow:
    return hot_forward(str_recvfrom, self->slow_from, self->slow_from, self->strong, self->owner, args, nargs,
                       kwnames);
}

/* recv_packet(bufsize=65535): the common case here, the rest in McastRxSocket.recv_packet. */
static PyObject *
rxhot_recv_packet(RxHot *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t bufsize = 65535;
    if ((kwnames != NULL && PyTuple_Size(kwnames) > 0) || nargs > 1)
        goto slow;
    if (nargs == 1 && (bufsize = hot_bufsize(args[0])) == 0)
        goto slow;
    int same = class_unpatched(self->strong, str_recv_packet, self->slow_packet);
    if (same < 0)
        return NULL;
    if (same) {
        PyObject *got = rxhot_receive(self, 1, bufsize);
        if (got != NULL || PyErr_Occurred())
            return got;
    }
slow:
    return hot_forward(str_recv_packet, self->slow_packet, self->slow_packet, self->strong, self->owner, args,
                       nargs, kwnames);
}

static void
rxhot_drop_state(RxHot *self)
{
    Py_CLEAR(self->unit);
    Py_CLEAR(self->poller);
    Py_CLEAR(self->by_fd);
    Py_CLEAR(self->ready);
    self->fd = self->wake_fd = self->epfd = -1;
}

/* set_single(unit, fd, by_fd, poller, epfd, wake_fd) / set_multi(by_fd, ready, poller, epfd,
 * wake_fd) / set_off() / set_closed(): the engine's fast-path state, told by the engine. */
static PyObject *
rxhot_set_single(RxHot *self, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, epfd, wake;
    if (check_nargs("set_single", nargs, 6, 6) < 0 || get_fd(args[1], &fd, 0) < 0 || get_fd(args[4], &epfd, 0) < 0 ||
        get_fd(args[5], &wake, 1) < 0)
        return NULL;
    if (!PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "set_single(): by_fd must be a dict");
        return NULL;
    }
    rxhot_drop_state(self);
    self->unit = Py_NewRef(args[0]);
    self->by_fd = Py_NewRef(args[2]);
    self->poller = Py_NewRef(args[3]);
    self->fd = fd;
    self->epfd = epfd;
    self->wake_fd = wake;
    self->mode = HOT_SINGLE;
    RETURN_NONE;
}

static PyObject *
rxhot_set_multi(RxHot *self, PyObject *const *args, Py_ssize_t nargs)
{
    int epfd, wake;
    if (check_nargs("set_multi", nargs, 5, 5) < 0 || get_fd(args[3], &epfd, 0) < 0 || get_fd(args[4], &wake, 1) < 0)
        return NULL;
    if (!PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "set_multi(): by_fd must be a dict");
        return NULL;
    }
    rxhot_drop_state(self);
    self->by_fd = Py_NewRef(args[0]);
    self->ready = Py_NewRef(args[1]);
    self->poller = Py_NewRef(args[2]);
    self->epfd = epfd;
    self->wake_fd = wake;
    self->mode = HOT_MULTI;
    RETURN_NONE;
}

static PyObject *
rxhot_set_off(RxHot *self, PyObject *unused)
{
    (void)unused;
    rxhot_drop_state(self);
    self->mode = HOT_OFF;
    RETURN_NONE;
}

/* set_closed(): the engine closed; the socket is no longer held (see hold). */
static PyObject *
rxhot_set_closed(RxHot *self, PyObject *unused)
{
    (void)unused;
    rxhot_drop_state(self);
    self->mode = HOT_CLOSED;
    Py_CLEAR(self->strong);
    RETURN_NONE;
}

/* hold(owner): while open, the methods keep their socket alive, as bound methods would (a cycle
 * the garbage collector clears; set_closed breaks it). */
static PyObject *
rxhot_hold(RxHot *self, PyObject *owner)
{
    PyObject *old = self->strong;
    self->strong = Py_NewRef(owner);
    Py_XDECREF(old);
    RETURN_NONE;
}

/* set_timeout(timeout): None waits for ever; 0 never waits (always the Python path). */
static PyObject *
rxhot_set_timeout(RxHot *self, PyObject *timeout)
{
    double t = 0;
    int forever;
    if (get_timeout(timeout, &t, &forever) < 0)
        return NULL;
    self->timeout = t;
    self->forever = forever;
    RETURN_NONE;
}

static PyObject *
rxhot_get_mode(RxHot *self, void *unused)
{
    (void)unused;
    return PyLong_FromLong(self->mode);
}

/* RxHot(owner_ref, slow_from, slow_packet, resume, packet_cls, timeout) */
static PyObject *
rxhot_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *ref, *slow_from, *slow_packet, *resume, *cls, *timeout;
    if (kwargs != NULL && PyDict_Size(kwargs) > 0) {
        PyErr_SetString(PyExc_TypeError, "RxHot() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "RxHot", 6, 6, &ref, &slow_from, &slow_packet, &resume, &cls, &timeout))
        return NULL;
    if (!PyCallable_Check(ref) || !PyCallable_Check(slow_from) || !PyCallable_Check(slow_packet) ||
        !PyCallable_Check(resume)) {
        PyErr_SetString(PyExc_TypeError, "RxHot(): owner_ref, slow_from, slow_packet and resume must be callable");
        return NULL;
    }
    if (check_packet_cls_or_none("RxHot", cls) < 0)
        return NULL;
    allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
    RxHot *self = (RxHot *)alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->mode = HOT_OFF;
    self->fd = self->wake_fd = self->epfd = -1;
    self->forever = 1;
    self->owner = Py_NewRef(ref);
    self->slow_from = Py_NewRef(slow_from);
    self->slow_packet = Py_NewRef(slow_packet);
    self->resume = Py_NewRef(resume);
    self->packet_cls = Py_NewRef(cls);
    PyObject *none = rxhot_set_timeout(self, timeout);
    if (none == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    Py_DECREF(none);
    return (PyObject *)self;
}

static int
rxhot_traverse(RxHot *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE((PyObject *)self));
    Py_VISIT(self->unit);
    Py_VISIT(self->poller);
    Py_VISIT(self->by_fd);
    Py_VISIT(self->ready);
    Py_VISIT(self->owner);
    Py_VISIT(self->strong);
    Py_VISIT(self->slow_from);
    Py_VISIT(self->slow_packet);
    Py_VISIT(self->resume);
    Py_VISIT(self->packet_cls);
    return 0;
}

static int
rxhot_clear(RxHot *self)
{
    rxhot_drop_state(self);
    self->mode = HOT_CLOSED;
    Py_CLEAR(self->owner);
    Py_CLEAR(self->strong);
    Py_CLEAR(self->slow_from);
    Py_CLEAR(self->slow_packet);
    Py_CLEAR(self->resume);
    Py_CLEAR(self->packet_cls);
    return 0;
}

static void
hot_dealloc(PyObject *self, inquiry clear)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    clear(self);
    freefunc free_slot = (freefunc)PyType_GetSlot(type, Py_tp_free);
    free_slot(self);
    Py_DECREF(type);
}

static void
rxhot_dealloc(PyObject *self)
{
    hot_dealloc(self, (inquiry)rxhot_clear);
}

static PyMethodDef rxhot_methods[] = {
    {"recvfrom", (PyCFunction)(void (*)(void))rxhot_recvfrom, METH_FASTCALL | METH_KEYWORDS,
     "recvfrom($self, /, bufsize=4096, flags=0)\n--\n\nSee McastRxSocket.recvfrom."},
    {"recv_packet", (PyCFunction)(void (*)(void))rxhot_recv_packet, METH_FASTCALL | METH_KEYWORDS,
     "recv_packet($self, /, bufsize=65535)\n--\n\nSee McastRxSocket.recv_packet."},
    {"set_single", (PyCFunction)(void (*)(void))rxhot_set_single, METH_FASTCALL,
     "set_single(unit, fd, by_fd, poller, epfd, wake_fd, /): one socket behind the epoll set"},
    {"hold", (PyCFunction)rxhot_hold, METH_O, "hold(owner, /): keep the socket alive until set_closed"},
    {"set_multi", (PyCFunction)(void (*)(void))rxhot_set_multi, METH_FASTCALL,
     "set_multi(by_fd, ready, poller, epfd, wake_fd, /): several sockets behind one epoll"},
    {"set_off", (PyCFunction)rxhot_set_off, METH_NOARGS, "set_off(): no fast path (open)"},
    {"set_closed", (PyCFunction)rxhot_set_closed, METH_NOARGS, "set_closed(): the engine is closed"},
    {"set_timeout", (PyCFunction)rxhot_set_timeout, METH_O, "set_timeout(timeout, /): None or seconds"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef rxhot_getset[] = {
    {"mode", (getter)rxhot_get_mode, NULL, "-1 closed, 0 off, 1 single, 2 multi", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot rxhot_slots[] = {
    {Py_tp_new, (void *)rxhot_new},
    {Py_tp_dealloc, (void *)rxhot_dealloc},
    {Py_tp_traverse, (void *)rxhot_traverse},
    {Py_tp_clear, (void *)rxhot_clear},
    {Py_tp_methods, rxhot_methods},
    {Py_tp_getset, rxhot_getset},
    {Py_tp_doc, (void *)"The hot receive methods of one McastRxSocket (see _speedups.pyi)."},
    {0, NULL},
};

static PyType_Spec rxhot_spec = {
    .name = "multicast_expert._speedups.RxHot",
    .basicsize = sizeof(RxHot),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = rxhot_slots,
};

/* TxHot: McastTxSocket.sendto on one interface, to destinations the Python method checked. */
typedef struct {
    PyObject_HEAD
    int fd, family;
    PyObject *sock;   /* the OS socket while open (its fileno() is checked before each send), or NULL */
    PyObject *dests;  /* address tuple -> its sockaddr (bytes), remembered after the full check */
    PyObject *owner;  /* weakref to the McastTxSocket */
    PyObject *strong; /* the McastTxSocket itself while open (as a bound method holds it), or NULL */
    PyObject *original; /* McastTxSocket.sendto as defined: a class patched since is called instead */
    PyObject *slow;     /* the Python method that checks in full and remembers, unbound */
} TxHot;

/* Most destinations remembered; past that the table starts again (a program sending to ever new
 * ports stays bounded). */
#define TXHOT_MAX_DESTS 4096

/* An address sendto may look up as remembered: exactly a tuple of a str and 1 (AF_INET) or 1 to
 * 3 (AF_INET6) exact ints, so no value that merely compares equal (5000.0, a str subclass) is
 * sent without the Python method's checks. */
static int
plain_address(int family, PyObject *addr)
{
    if (!PyTuple_CheckExact(addr))
        return 0;
    Py_ssize_t n = PyTuple_Size(addr);
    if (n < 2 || n > (family == AF_INET ? 2 : 4) || !PyUnicode_CheckExact(PyTuple_GetItem(addr, 0)))
        return 0;
    for (Py_ssize_t i = 1; i < n; i++)
        if (!PyLong_CheckExact(PyTuple_GetItem(addr, i)))
            return 0;
    return 1;
}

/* sendto(data, address, *, iface=None): one sendto(2) on the remembered sockaddr; anything else,
 * and any failure of the system call, in McastTxSocket.sendto (which sends and explains). */
static PyObject *
txhot_sendto(TxHot *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int same = class_unpatched(self->strong, str_sendto, self->original);
    if (same < 0)
        return NULL;
    if (same && self->sock != NULL && nargs == 2 && (kwnames == NULL || PyTuple_Size(kwnames) == 0) &&
        PyBytes_CheckExact(args[0]) && plain_address(self->family, args[1])) {
        PyObject *name = PyDict_GetItemWithError(self->dests, args[1]); /* borrowed */
        if (name != NULL) {
            char *data, *sa;
            Py_ssize_t len, salen;
            ssize_t n;
            int fd = self->fd;
            /* Still open on that descriptor: a socket closed by hand, its number reused by
             * another socket, is never sent on (the Python method raises for it). */
            int open = sock_on_fd(self->sock, fd);
            if (open < 0)
                return NULL;
            if (open) {
                if (PyBytes_AsStringAndSize(args[0], &data, &len) < 0 ||
                    PyBytes_AsStringAndSize(name, &sa, &salen) < 0)
                    return NULL;
                /* With the GIL held from the check through the call (which never waits), so no
                 * other thread can close the socket and give its number to another meanwhile. */
                n = sendto(fd, data, (size_t)len, MSG_DONTWAIT, (const struct sockaddr *)sa, (socklen_t)salen);
                if (n >= 0)
                    RETURN_NONE;
                /* Refused, interrupted or the buffer full (nothing went out): the Python method
                 * sends it (waiting where the socket blocks) and says why it cannot. */
            }
        } else if (PyErr_Occurred()) {
            return NULL;
        }
    }
    return hot_forward(str_sendto, self->original, self->slow, self->strong, self->owner, args, nargs, kwnames);
}

/* remember(address): the Python method checked it; later sends to it go out from here. */
static PyObject *
txhot_remember(TxHot *self, PyObject *addr)
{
    sockaddr_any sa;
    socklen_t len = 0;
    if (self->sock == NULL || !plain_address(self->family, addr))
        RETURN_NONE;
    if (parse_addr(self->family, addr, &sa, &len) < 0) {
        PyErr_Clear(); /* (not one this path can send to: it stays with the Python method) */
        RETURN_NONE;
    }
    if (PyDict_Size(self->dests) >= TXHOT_MAX_DESTS)
        PyDict_Clear(self->dests);
    PyObject *name = PyBytes_FromStringAndSize((const char *)&sa, (Py_ssize_t)len);
    if (name == NULL)
        return NULL;
    int rc = PyDict_SetItem(self->dests, addr, name);
    Py_DECREF(name);
    if (rc < 0)
        return NULL;
    RETURN_NONE;
}

/* open(sock, owner): the one OS socket to send on (one interface), and the socket object, held
 * while open as a bound method would hold it. close(): every send through the Python method
 * again; nothing stays remembered or held. */
static PyObject *
txhot_open(TxHot *self, PyObject *const *args, Py_ssize_t nargs)
{
    int fd;
    if (check_nargs("open", nargs, 2, 2) < 0)
        return NULL;
    PyObject *num = PyObject_CallMethodObjArgs(args[0], str_fileno, NULL);
    if (num == NULL)
        return NULL;
    int rc = get_fd(num, &fd, 0);
    Py_DECREF(num);
    if (rc < 0)
        return NULL;
    PyObject *old_sock = self->sock, *old_owner = self->strong;
    self->sock = Py_NewRef(args[0]);
    self->strong = Py_NewRef(args[1]);
    self->fd = fd;
    PyDict_Clear(self->dests);
    Py_XDECREF(old_sock);
    Py_XDECREF(old_owner);
    RETURN_NONE;
}

static PyObject *
txhot_close(TxHot *self, PyObject *unused)
{
    (void)unused;
    self->fd = -1;
    PyDict_Clear(self->dests);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->strong);
    RETURN_NONE;
}

static PyObject *
txhot_get_fd(TxHot *self, void *unused)
{
    (void)unused;
    return PyLong_FromLong(self->fd);
}

static PyObject *
txhot_get_remembered(TxHot *self, void *unused)
{
    (void)unused;
    return PyLong_FromSsize_t(PyDict_Size(self->dests));
}

/* TxHot(owner_ref, original, slow, family) */
static PyObject *
txhot_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *ref, *original, *slow, *fam;
    int family;
    if (kwargs != NULL && PyDict_Size(kwargs) > 0) {
        PyErr_SetString(PyExc_TypeError, "TxHot() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "TxHot", 4, 4, &ref, &original, &slow, &fam))
        return NULL;
    if (!PyCallable_Check(ref) || !PyCallable_Check(original) || !PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "TxHot(): owner_ref, original and slow must be callable");
        return NULL;
    }
    if (get_int(fam, &family) < 0)
        return NULL;
    if (family != AF_INET && family != AF_INET6) {
        PyErr_Format(PyExc_ValueError, "TxHot(): family must be AF_INET or AF_INET6, not %d", family);
        return NULL;
    }
    allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
    TxHot *self = (TxHot *)alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fd = -1;
    self->family = family;
    self->dests = PyDict_New();
    self->owner = Py_NewRef(ref);
    self->original = Py_NewRef(original);
    self->slow = Py_NewRef(slow);
    if (self->dests == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
txhot_traverse(TxHot *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE((PyObject *)self));
    Py_VISIT(self->sock);
    Py_VISIT(self->dests);
    Py_VISIT(self->owner);
    Py_VISIT(self->strong);
    Py_VISIT(self->original);
    Py_VISIT(self->slow);
    return 0;
}

static int
txhot_clear(TxHot *self)
{
    self->fd = -1;
    Py_CLEAR(self->sock);
    Py_CLEAR(self->dests);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->strong);
    Py_CLEAR(self->original);
    Py_CLEAR(self->slow);
    return 0;
}

static void
txhot_dealloc(PyObject *self)
{
    hot_dealloc(self, (inquiry)txhot_clear);
}

static PyMethodDef txhot_methods[] = {
    {"sendto", (PyCFunction)(void (*)(void))txhot_sendto, METH_FASTCALL | METH_KEYWORDS,
     "sendto($self, /, bytes, address, *, iface=None)\n--\n\nSee McastTxSocket.sendto."},
    {"remember", (PyCFunction)txhot_remember, METH_O, "remember(address, /): a destination checked in full"},
    {"open", (PyCFunction)(void (*)(void))txhot_open, METH_FASTCALL,
     "open(sock, owner, /): send on sock (one interface), holding it and its McastTxSocket"},
    {"close", (PyCFunction)txhot_close, METH_NOARGS, "close(): every send through the Python method"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef txhot_getset[] = {
    {"fd", (getter)txhot_get_fd, NULL, "the OS socket sent on, or -1", NULL},
    {"remembered", (getter)txhot_get_remembered, NULL, "how many destinations are remembered", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot txhot_slots[] = {
    {Py_tp_new, (void *)txhot_new},
    {Py_tp_dealloc, (void *)txhot_dealloc},
    {Py_tp_traverse, (void *)txhot_traverse},
    {Py_tp_clear, (void *)txhot_clear},
    {Py_tp_methods, txhot_methods},
    {Py_tp_getset, txhot_getset},
    {Py_tp_doc, (void *)"The hot send method of one McastTxSocket (see _speedups.pyi)."},
    {0, NULL},
};

static PyType_Spec txhot_spec = {
    .name = "multicast_expert._speedups.TxHot",
    .basicsize = sizeof(TxHot),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = txhot_slots,
};

/* ---- module ---------------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"recv_from", (PyCFunction)(void (*)(void))sp_recv_from, METH_FASTCALL,
     "recv_from(fd, bufsize, flags=0, /) -> (data, address)"},
    {"recv_packet", (PyCFunction)(void (*)(void))sp_recv_packet, METH_FASTCALL,
     "recv_packet(fd, bufsize, /) -> (data, address, truncated)"},
    {"recv_unit", (PyCFunction)(void (*)(void))sp_recv_unit, METH_FASTCALL,
     "recv_unit(bufsize, flags, packet_cls, unit, /) -> a datagram or a packet of a live unit"},
    {"epoll_recv", (PyCFunction)(void (*)(void))sp_epoll_recv, METH_FASTCALL,
     "epoll_recv(bufsize, packet_cls, by_fd, epfd, waker_fd, timeout, /) -> datagram | list[fd] | None"},
    {"recv_batch", (PyCFunction)(void (*)(void))sp_recv_batch, METH_FASTCALL,
     "recv_batch(fd, count, bufsize, group, ifindex, packet_cls, /) -> list[packet_cls]"},
    {"send_batch", (PyCFunction)(void (*)(void))sp_send_batch, METH_FASTCALL,
     "send_batch(fd, family, datagrams, known=None, /) -> int | None"},
    {"recv_share", (PyCFunction)(void (*)(void))sp_recv_share, METH_FASTCALL,
     "recv_share(bufsize, packet_cls, units, start, room, out, gone, /) -> None"},
    {"recv_poll_share", (PyCFunction)(void (*)(void))sp_recv_poll_share, METH_FASTCALL,
     "recv_poll_share(bufsize, packet_cls, epfd, by_fd, turn, room, out, gone, /) -> int"},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *m)
{
    tuple_new = (newfunc)PyType_GetSlot(&PyTuple_Type, Py_tp_new);
    if (tuple_new == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ImportError, "tuple has no tp_new");
        return -1;
    }
    if (str_group == NULL) {
        str_fd = PyUnicode_InternFromString("fd");
        str_group = PyUnicode_InternFromString("group");
        str_iface = PyUnicode_InternFromString("iface");
        str_index = PyUnicode_InternFromString("index");
        str_live = PyUnicode_InternFromString("live");
        str_sock = PyUnicode_InternFromString("sock");
        str_fileno = PyUnicode_InternFromString("fileno");
        str_recvfrom = PyUnicode_InternFromString("recvfrom");
        str_recv_packet = PyUnicode_InternFromString("recv_packet");
        str_sendto = PyUnicode_InternFromString("sendto");
        if (str_fd == NULL || str_group == NULL || str_iface == NULL || str_index == NULL || str_live == NULL ||
            str_sock == NULL || str_fileno == NULL || str_recvfrom == NULL || str_recv_packet == NULL ||
            str_sendto == NULL)
            return -1;
    }
    PyObject *rxhot = PyType_FromModuleAndSpec(m, &rxhot_spec, NULL);
    int added = rxhot == NULL ? -1 : PyModule_AddObjectRef(m, "RxHot", rxhot);
    Py_XDECREF(rxhot);
    if (added < 0)
        return -1;
    PyObject *txhot = PyType_FromModuleAndSpec(m, &txhot_spec, NULL);
    added = txhot == NULL ? -1 : PyModule_AddObjectRef(m, "TxHot", txhot);
    Py_XDECREF(txhot);
    if (added < 0)
        return -1;
    if (PyModule_AddIntConstant(m, "ARENA_BYTES", ARENA_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "MAX_VLEN", MAX_VLEN) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, (void *)exec_module},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "multicast_expert._speedups",
    .m_doc = "Optional Linux accelerator for multicast_expert (see _speedups.pyi).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&moduledef);
}
