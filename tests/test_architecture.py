"""The package's shape: acyclic layers, compatibility modules kept thin, per-OS tables, one error
path, and the receive engine's wake-up descriptor (close() wakes every receiver at once)."""

from __future__ import annotations

import ast
import errno
import socket
import threading
import time
from pathlib import Path

import pytest
from helpers import V4, Net, send_from_peer

import multicast_expert as me
from multicast_expert import _platform
from multicast_expert._platform import Action, Concern, generic, linux
from multicast_expert._platform._structs import Target

PACKAGE = Path(me.__file__).resolve().parent
COMPAT_MODULES = {
    f"multicast_expert.{m}" for m in ("utils", "os_multicast", "async_rx_socket", "name_to_index")
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Package modules imported by ``path`` (anywhere in it)."""
    name = _module_name(path)
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = base[: len(base) - node.level + 1]
                target = ".".join(pkg + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("multicast_expert"):
                continue
            for alias in node.names:  # "from . import x" imports a submodule
                sub = f"{target}.{alias.name}"
                found.add(
                    sub
                    if (PACKAGE.parent / sub.replace(".", "/")).exists()
                    or (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists()
                    or (PACKAGE.parent / (sub.replace(".", "/") + ".pyi")).exists()  # the C extension
                    else target
                )
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("multicast_expert"))
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_import_graph_is_acyclic() -> None:
    graph = _graph()
    # A package's __init__ re-exports its children; the edges that matter are module -> module.
    edges = {
        m: {d for d in deps if not m.startswith(d + ".") and not d.startswith(m + ".")}
        for m, deps in graph.items()
    }
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(d) :], d]))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert "multicast_expert._errors" in graph and not graph["multicast_expert._errors"]  # a leaf
    assert graph["multicast_expert._validate"] <= {"multicast_expert._errors"}


def test_layers_point_downwards_and_compat_modules_are_unused_inside() -> None:
    graph = _graph()
    # Every module has a layer; a module imports only modules of its own layer or below.
    layers = [
        ["_errors", "_accel", "_speedups", "_describe", "_warn", "_fork_locks"],
        ["_validate", "_packet"],
        ["_platform"],
        ["_compat.values", "_lifecycle"],
        ["interfaces", "testing._netns"],
        [
            "_compat.rx",
            "_compat.names",
            "_compat.tx",
            "_rx_args",
            "_tx_args",
            "_unit",
            "_iface_plan",
            "_membership",
            "_engine",
            "_wait_policy",
            "_rx_read",
            "_rx_hot",
            "_follow",
        ],
        ["_tx_replies"],
        ["rx_socket", "tx_socket"],
        ["_async_rx", "aio", "testing", "pytest_plugin"],
        ["utils", "os_multicast", "async_rx_socket", "name_to_index"],  # 1.x compatibility modules
        ["_compat", ""],  # the package's own __init__ re-exports everything
        ["cli", "__main__"],
    ]
    rank = {("multicast_expert." + m).rstrip("."): i for i, names in enumerate(layers) for m in names}

    def rank_of(mod: str) -> int:
        best = max((p for p in rank if mod == p or mod.startswith(p + ".")), key=len, default=None)
        assert best is not None, f"{mod} has no layer in this test: give it one"
        return rank[best]

    for mod, deps in graph.items():
        r = rank_of(mod)
        for d in deps:
            rd = rank_of(d)
            assert rd <= r, f"{mod} (layer {r}) imports the higher layer {d} ({rd})"
            if mod != "multicast_expert":
                assert d not in COMPAT_MODULES, f"{mod} imports a compatibility module"


def test_each_module_states_its_one_job_and_stays_under_600_lines() -> None:
    for p in PACKAGE.rglob("*.py"):
        text = p.read_text()
        assert len(text.splitlines()) <= 600, f"{p.name} is over 600 lines"
        tree = ast.parse(text)
        doc = ast.get_docstring(tree)
        assert doc and len(doc.splitlines()[0]) > 10, f"{p.relative_to(PACKAGE)} lacks a first docstring line"


def test_no_os_branch_in_the_core_outside_the_platform_layer() -> None:
    core = [
        p
        for p in PACKAGE.rglob("*.py")
        if "_platform" not in p.parts
        and "cli" not in p.parts
        and "testing" not in p.parts
        and p.name not in {"pytest_plugin.py", "utils.py", "os_multicast.py"}
    ]
    for p in core:
        text = p.read_text()
        # (1.2.0's is_windows / is_mac booleans are re-exported, never branched on)
        for needle in ("sys.platform", "platform.system", "if is_windows", "if is_mac", "10022", "10051"):
            assert needle not in text, f"{p.relative_to(PACKAGE)} mentions {needle}"


def test_socket_classes_inherit_at_most_one_package_class() -> None:
    for cls in (me.McastRxSocket, me.McastTxSocket):
        ours = [b for b in cls.__mro__[1:] if b.__module__.startswith("multicast_expert")]
        assert len(ours) <= 1, f"{cls.__name__} inherits {ours}"


def test_every_exception_class_lives_in_errors() -> None:
    allowed = {"_errors.py", "_netns.py"}  # the test helpers' own NetnsError
    for p in PACKAGE.rglob("*.py"):
        if p.name in allowed or "cli" in p.parts:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                assert not any("Error" in b or "Exception" in b for b in bases), (
                    f"{p.name} defines the exception {node.name}"
                )


def test_unknown_os_gets_the_conservative_table_not_linuxs() -> None:
    ops = _platform.select_os("sunos5")
    assert isinstance(ops, generic.GenericMulticast)
    assert "sunos5" in ops.name
    assert not ops.supports(Concern.JOIN_SOURCE, V4) and not ops.supports(Concern.BIND_DEVICE, V4)
    assert ops.OPTIONS[(Concern.JOIN, V4)].name == socket.IP_ADD_MEMBERSHIP  # this Python's own number
    with pytest.raises(
        me.MulticastExpertError, match="source-specific multicast is not supported on this OS"
    ):
        ops.require(Concern.JOIN_SOURCE, V4)
    assert type(_platform.select_os("linux")) is linux.LinuxMulticast


def test_missing_table_entry_names_the_os() -> None:
    ops = _platform.select_os("darwin")
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s,
        pytest.raises(me.MulticastExpertError, match="IPv6 IP_MULTICAST_ALL is not supported on macOS"),
    ):
        ops.set(s, Concern.MULTICAST_ALL, socket.AF_INET6, Target())


def test_translated_errors_keep_the_errno() -> None:
    exc = OSError(errno.EMFILE, "Too many open files")
    better = _platform.OPS.explain_oserror(exc, Action.OPEN_RX, V4, "Joining 239.1.1.1 on lo")
    assert isinstance(better, me.MulticastOSError) and isinstance(better, OSError)
    assert isinstance(better, me.MulticastExpertError)
    assert better.errno == errno.EMFILE and "too many open files" in str(better)
    assert (
        _platform.OPS.explain_oserror(OSError(errno.EPERM, "x"), Action.OPEN_RX, V4, "y") is None
    )  # unknown: re-raised as is


@pytest.mark.parametrize("timeout", [None, 5.0, 0.0])
@pytest.mark.parametrize("groups", [["239.98.0.1"], ["239.98.0.1", "239.98.0.2"]])
def test_close_wakes_every_blocked_receiver_whatever_its_timeout(
    net: Net, port: int, timeout: float | None, groups: list[str]
) -> None:
    rx = me.McastRxSocket(V4, groups, port, iface_ip="127.0.0.1", timeout=timeout)
    rx.open()
    outcomes: list[BaseException | object] = []
    started = threading.Barrier(4)

    def receive() -> None:
        started.wait()
        try:
            while True:  # with timeout 0 a receiver polls; otherwise one call blocks
                got = rx.recvfrom()
                if got is not None or (timeout is not None and timeout > 0):
                    outcomes.append(got)
                    return
                time.sleep(0.001)
        except BaseException as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=receive) for _ in range(3)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.2)
    begin = time.monotonic()
    rx.close()
    for t in threads:
        t.join(4)
    assert not any(t.is_alive() for t in threads), "a receiver is still blocked after close()"
    assert time.monotonic() - begin < 2.5  # woken, not timed out (the timeout is 5 s)
    assert len(outcomes) == 3
    assert all(isinstance(o, me.MulticastExpertError) and "closed" in str(o) for o in outcomes), outcomes


def test_waiting_receive_follows_live_membership(net: Net, port: int) -> None:
    """join_group() and leave_group() take effect for a receive that is already waiting."""
    rx = me.McastRxSocket(V4, ["239.99.0.1"], port, iface=net.a.host_if, timeout=3)
    with rx:
        got: list[object] = []
        t = threading.Thread(target=lambda: got.append(rx.recv()))
        t.start()
        time.sleep(0.2)
        rx.join_group("239.99.0.2")
        send_from_peer(net.a, V4, "239.99.0.2", port, [b"new group"])
        t.join(2.5)
        assert got == [b"new group"]  # not stuck on the first group's socket

        rx.settimeout(0.5)
        got.clear()
        t = threading.Thread(target=lambda: got.append(rx.recv()))
        t.start()
        time.sleep(0.1)
        rx.leave_group("239.99.0.1")
        send_from_peer(net.a, V4, "239.99.0.1", port, [b"left group"])
        t.join(2)
        assert got == [None]  # the group it left is never returned

        rx.settimeout(None)
        rx.leave_group("239.99.0.2")  # no group at all: the receive waits for a join or a close
        outcome: list[object] = []

        def wait_forever() -> None:
            try:
                outcome.append(rx.recv())
            except me.MulticastExpertError as exc:
                outcome.append(exc)

        t = threading.Thread(target=wait_forever)
        t.start()
        time.sleep(0.1)
    t.join(2)
    assert not t.is_alive() and isinstance(outcome[0], me.MulticastExpertError)


def test_every_public_name_is_in_the_api_reference_and_documented() -> None:
    api = (PACKAGE.parent / "docs" / "api.rst").read_text()
    for name in me.__all__:
        obj = getattr(me, name)
        if isinstance(obj, type(me)):  # a submodule (1.2.0 paths), described in the reference's intro
            continue
        assert f"multicast_expert.{name}" in api, f"{name} is missing from docs/api.rst"
        if callable(obj) and not isinstance(obj, type(int | str)):
            assert obj.__doc__, f"{name} has no docstring"
    for cls in (me.McastRxSocket, me.McastTxSocket, me.AsyncMcastRxSocket, me.AsyncMcastTxSocket):
        for attr, value in vars(cls).items():
            if not attr.startswith("_") and (callable(value) or isinstance(value, property)):
                assert value.__doc__, f"{cls.__name__}.{attr} has no docstring"
