"""Entering a private Linux network namespace: what the demo needs (``testing`` builds on it).

Nothing here touches the machine's own interfaces: the calling process moves into a fresh network
namespace holding only ``lo``, which is brought up with routes for IPv4 and IPv6 multicast.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from ..interfaces import namespace_changed

CLONE_NEWNET = 0x40000000
MARKER_ENV = "MULTICAST_EXPERT_PRIVATE_NETNS"


class NetnsError(RuntimeError):
    """A private namespace could not be made or configured."""


def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _netns_id(pid: int | str = "self") -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def enter_private_netns(argv: list[str] | None = None) -> None:
    """Move this whole process into a new, empty network namespace.

    As root this unshares in place. Linux moves only the calling thread, so this refuses (raises
    NetnsError, naming them) while the process has any other thread: call it first thing, before
    any thread starts; every thread started afterwards is inside. Otherwise, when ``argv`` is
    given, the process re-executes itself under ``unshare -rn`` (a new process: nothing stays
    outside). Raises NetnsError if neither works. Afterwards ``lo`` is up and
    :func:`in_private_netns` is true.
    """
    if os.environ.get(MARKER_ENV) == "reexec":
        finish_reexec()
    if os.environ.get(MARKER_ENV) == _netns_id():
        return
    if sys.platform != "linux":
        raise NetnsError("private network namespaces need Linux")
    before = _netns_id()
    if os.geteuid() == 0:
        others = other_threads()
        if others:
            raise NetnsError(
                f"enter_private_netns() moves only the calling thread, and this process has "
                f"{len(others)} other thread(s) ({', '.join(others)}) that would stay on the machine's "
                "network: call it before starting any thread (or run the code under 'unshare -n')"
            )
        if libc().unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}")
    elif argv is not None and shutil.which("unshare"):
        os.environ[MARKER_ENV] = "reexec"
        os.execvp("unshare", ["unshare", "-rn", sys.executable, *argv])
    else:
        raise NetnsError("not root, and cannot re-execute under 'unshare -rn'")
    if _netns_id() == before:
        raise NetnsError("unshare() returned but the network namespace did not change")
    os.environ[MARKER_ENV] = _netns_id()
    setup_host_namespace()
    namespace_changed()  # (the process's interface cache described the namespace it left)


def other_threads() -> list[str]:
    """The process's threads other than the calling one, by name (OS threads that Python did not
    start are listed by their kernel name), so a caller can refuse to isolate only part of it."""
    me = threading.get_native_id()
    by_id = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: Python's own threads are all that can be seen
        tids = list(by_id)
    names = []
    for tid in tids:
        if tid == me:
            continue
        name = by_id.get(tid)
        if name is None:
            try:
                name = Path(f"/proc/self/task/{tid}/comm").read_text().strip() + f" (native {tid})"
            except OSError:
                continue  # it ended meanwhile
        names.append(name)
    return names


def finish_reexec() -> None:
    """After a re-exec under ``unshare -rn``: record the namespace and configure it."""
    if os.environ.get(MARKER_ENV) == "reexec":
        os.environ[MARKER_ENV] = _netns_id()
        setup_host_namespace()
        namespace_changed()


def in_private_netns() -> bool:
    """True only in a namespace this module made (and which holds no interface but ours)."""
    if os.environ.get(MARKER_ENV) != _netns_id():
        return False
    return all(n == "lo" or n.startswith("mx") for n in _links())


def _links() -> list[str]:
    out = ip("-o", "link", "show")
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


def ip(*args: str, ns_pid: int | None = None) -> str:
    """Run ``ip ARGS`` (inside peer ``ns_pid`` if given); raise NetnsError on failure."""
    cmd = ["ip", *args]
    if ns_pid is not None:
        cmd = ["nsenter", "-t", str(ns_pid), "-n", *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return res.stdout


def sysctl(name: str, value: str | int, ns_pid: int | None = None) -> None:
    """Write a per-namespace sysctl (in this namespace, or peer ``ns_pid``)."""
    path = "/proc/sys/" + name.replace(".", "/")
    if ns_pid is None:
        Path(path).write_text(str(value))
    else:
        subprocess.run(["nsenter", "-t", str(ns_pid), "-n", "sh", "-c", f"echo {value} > {path}"], check=True)


def quiet_ipv6(ns_pid: int | None = None) -> None:
    for key in ("all", "default"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            sysctl(f"net.ipv6.conf.{key}.accept_dad", 0, ns_pid)
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        sysctl("net.ipv4.conf.all.accept_local", 1, ns_pid)


def setup_host_namespace() -> None:
    """Bring up ``lo`` with routes so IPv4 and IPv6 multicast work over it."""
    quiet_ipv6()
    ip("link", "set", "lo", "up")
    with contextlib.suppress(NetnsError):
        ip("-6", "route", "add", "table", "local", "local", "ff00::/8", "dev", "lo", "metric", "1024")
