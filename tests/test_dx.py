"""Developer experience: pinned dev tools, the fast test script, pre-commit hooks that work in a
fresh clone, the Quick start's promises, the typed asyncio constructors as a type checker sees
them, and what the test-network helpers isolate (refusing or warning about other threads)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
from helpers import Net

from multicast_expert import testing
from multicast_expert.testing._netns import other_threads

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("ruff", "mypy", "pytest", "hypothesis", "sphinx", "furo", "myst-parser", "pyright")


def pins() -> dict[str, str]:
    found = {}
    for raw in (ROOT / "constraints-dev.txt").read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints-dev.txt: {line!r} is not pinned with =="
            found[name.lower()] = version
    return found


def test_every_dev_tool_is_pinned_and_the_venv_has_the_pinned_versions() -> None:
    pinned = pins()
    assert set(TOOLS) <= set(pinned), f"unpinned: {set(TOOLS) - set(pinned)}"
    for name, version in pinned.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # (pyright lives in scripts/check's throw-away venv; docs tools may be absent)
        assert installed == version, f"{name} {installed} is installed, constraints-dev.txt pins {version}"


def test_every_pip_install_in_the_scripts_uses_the_constraints() -> None:
    for script in ("check", "docs"):
        installs = [
            line for line in (ROOT / "scripts" / script).read_text().splitlines() if "pip install" in line
        ]
        assert installs, script
        for line in installs:
            if "--only-binary" in line:  # the wheel-only install of the package itself
                continue
            assert "-c constraints-dev.txt" in line, f"scripts/{script}: {line.strip()}"


def test_scripts_test_runs_pytest_once_with_the_arguments_given_and_installs_nothing() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    assert "pip install" not in script and "-m pytest" in script
    run = subprocess.run(
        [str(ROOT / "scripts" / "test"), "tests/test_dx.py", "--collect-only", "-q", "-k", "pinned"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    collected = [line for line in run.stdout.splitlines() if "::" in line]
    assert collected == [
        "tests/test_dx.py::test_every_dev_tool_is_pinned_and_the_venv_has_the_pinned_versions"
    ]


def fresh_clone(tmp: Path) -> Path:
    """The files a fresh clone has that the hooks need (no .venv)."""
    clone = tmp / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "precommit", clone / "scripts" / "precommit")
    shutil.copy2(ROOT / "pyproject.toml", clone / "pyproject.toml")
    shutil.copytree(ROOT / "multicast_expert", clone / "multicast_expert")
    return clone


def test_pre_commit_hooks_are_local_and_run_in_a_fresh_clone(tmp_path: Path) -> None:
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    entries = re.findall(r"entry: (.+)", config)
    assert len(entries) == 3 and all(e.startswith("scripts/precommit ") for e in entries)
    assert "repo: local" in config and ".venv/bin" not in "".join(entries)
    clone = fresh_clone(tmp_path)
    assert not (clone / ".venv").exists()
    venv_bin = str(Path(sys.executable).parent)
    with_tools = {**os.environ, "PATH": f"{venv_bin}:/usr/bin:/bin"}  # an activated venv
    for entry in entries[:2]:
        argv = [str(clone / "scripts" / "precommit"), *entry.split()[1:], "multicast_expert/aio.py"]
        run = subprocess.run(argv, cwd=clone, env=with_tools, capture_output=True, text=True, check=False)
        assert run.returncode == 0, f"{entry}: {run.stdout}{run.stderr}"
    if (
        subprocess.run(["/usr/bin/python3", "-c", "import ruff"], capture_output=True, check=False).returncode
        == 0
    ):
        pytest.skip("this machine's own python3 has ruff: the no-tool fallback can't be shown")
    bare = {**os.environ, "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [str(clone / "scripts" / "precommit"), "ruff", "check", "multicast_expert"],
        cwd=clone,
        env=bare,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1 and "./scripts/check" in run.stderr and "constraints-dev.txt" in run.stderr


def test_quick_start_keeps_two_commands_and_says_what_check_installs() -> None:
    readme = (ROOT / "README.rst").read_text()
    quick = readme.split("Quick start\n===========", 1)[1].split("\n=====", 1)[0]
    quick = quick.rsplit("\n", 1)[0]
    commands = re.findall(r"^    (\./scripts/\S+)", quick, flags=re.MULTILINE)
    assert commands == ["./scripts/demo", "./scripts/check"]
    for promise in ("constraints-dev.txt", "pyright", "wine64", "nftables", ".cache/windows", "root"):
        assert promise in quick, f"the Quick start does not mention {promise}"
    assert len(re.findall(r"\d+ MB", quick)) >= 4, "the Quick start gives no measured sizes"
    assert "./scripts/test" in quick


def test_a_type_checker_rejects_misspelt_or_mistyped_async_arguments(tmp_path: Path) -> None:
    pytest.importorskip("mypy")  # (run apart: mypy in-process leaves ~300,000 objects behind)
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "import socket\n"
        "import multicast_expert as me\n"
        "me.AsyncMcastRxSocket(socket.AF_INET, ['239.1.1.1'], 5000, timout=5)\n"
        "me.AsyncMcastTxSocket(socket.AF_INET, ['239.1.1.1'], ttl='high')\n"
        "me.AsyncMcastRxSocket(socket.AF_INET, ['239.1.1.1'], 5000, iface='lo', timeout=5)\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(snippet)],
        cwd=ROOT,  # (the project's .mypy_cache makes it quick)
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    lines = out.splitlines()
    assert any(":3:" in line and 'Unexpected keyword argument "timout"' in line for line in lines), out
    assert any(":4:" in line and '"ttl"' in line for line in lines), out
    assert not any(":5:" in line for line in lines), out


def test_enter_private_netns_refuses_while_other_threads_exist(net: Net) -> None:
    code = (
        "import threading, time\n"
        "from multicast_expert import testing\n"
        "t = threading.Thread(target=time.sleep, args=(5,), name='stays-outside', daemon=True); t.start()\n"
        "try:\n"
        "    testing.enter_private_netns()\n"
        "except testing.NetnsError as exc:\n"
        "    print('refused:', exc)\n"
        "else:\n"
        "    print('moved')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != testing.MARKER_ENV}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.stdout.startswith("refused:"), run.stdout + run.stderr
    assert "stays-outside" in run.stdout and "before starting any thread" in run.stdout
    alone = code.replace("t.start()", "pass")
    run = subprocess.run(
        [sys.executable, "-c", alone], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.stdout.strip() == "moved", run.stdout + run.stderr


def test_private_network_warns_about_threads_it_cannot_move(net: Net) -> None:
    if other_threads():
        pytest.skip(f"threads left by earlier tests: {other_threads()}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with testing.private_network():
            pass
    assert not [w for w in caught if "isolates only" in str(w.message)]
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="earlier-worker")
    t.start()
    try:
        with (
            pytest.warns(RuntimeWarning, match=r"isolates only the calling thread.*earlier-worker") as got,
            testing.private_network(),
        ):
            pass
        assert got[0].filename == __file__  # points at the caller's with statement
    finally:
        stop.set()
        t.join()
