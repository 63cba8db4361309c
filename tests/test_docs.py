"""The documentation as built: every public method and attribute is an entry of the HTML API
reference, no page shows a docutils or theme error box, the CLI reference matches the parsers,
the changelog is rendered (not shown as Markdown source), examples and the problem-report line
are there. The site is built once per session, with warnings as errors, into a temporary folder.

Skipped where Sphinx, Furo or myst-parser are missing, except in CI's main ``.venv`` (which
``scripts/check`` installs them into), where that fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import multicast_expert as me
from multicast_expert import testing
from multicast_expert.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TOOLS = ("sphinx", "furo", "myst_parser")


@pytest.fixture(scope="session")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [t for t in TOOLS if importlib.util.find_spec(t) is None]
    if missing:
        if IN_CI and Path(sys.prefix).name == ".venv":
            pytest.fail(f"scripts/check installs the docs tools into .venv, yet {missing} are missing")
        pytest.skip(f"docs tools not installed: {missing} (./scripts/docs installs them)")
    out = tmp_path_factory.mktemp("html")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(ROOT / "docs"),
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, f"the docs build failed (warnings are errors):\n{run.stderr[-4000:]}"
    return out


def page(html: Path, name: str) -> str:
    return (html / name).read_text()


def entry_ids(text: str) -> set[str]:
    """The ids of every documented object (``<dt ... id="multicast_expert.X.y">``)."""
    return set(re.findall(r'<dt class="sig sig-object py"[^>]*id="([^"]+)"', text))


def public_members(cls: type, *instances: object) -> set[str]:
    names = {n for n in dir(cls) if not n.startswith("_")}
    for obj in instances:
        names |= {n for n in vars(obj) if not n.startswith("_")}
    return names


def test_no_page_shows_an_error_box(html: Path) -> None:
    pages = sorted(html.rglob("*.html"))
    assert len(pages) >= 7
    for p in pages:
        text = p.read_text()
        for bad in ("system-message", "Adding a table of contents", "Unknown directive"):
            assert bad not in text, f"{p.relative_to(html)} shows {bad!r}"
        if "_modules" not in p.parts:  # (highlighted source may say logging.ERROR)
            assert "ERROR" not in text, f"{p.relative_to(html)} shows an ERROR"
    assert 'class="contents' not in page(html, "index.html")  # the README's .. contents:: is gone


def test_api_reference_has_an_entry_for_every_public_method_and_attribute(html: Path) -> None:
    ids = entry_ids(page(html, "api.html"))
    for name in me.__all__:
        if not isinstance(getattr(me, name), type(me)):  # (submodules: described in prose)
            assert f"multicast_expert.{name}" in ids, f"{name} has no entry"
    rx = me.McastRxSocket(socket.AF_INET, ["239.1.1.1"], 5000, iface="lo")
    tx = me.McastTxSocket(socket.AF_INET, ["239.1.1.1"], iface="lo")
    classes: dict[type, set[str]] = {
        me.McastRxSocket: public_members(me.McastRxSocket, rx),
        me.McastTxSocket: public_members(me.McastTxSocket, tx),
        me.AsyncMcastRxSocket: public_members(me.AsyncMcastRxSocket),
        me.AsyncMcastTxSocket: public_members(me.AsyncMcastTxSocket),
        me.McastPacket: set(me.McastPacket._fields),
        me.IfaceInfo: {f.name for f in dataclasses.fields(me.IfaceInfo)} | public_members(me.IfaceInfo),
        me.MulticastSendError: {"failures", "sent_by_iface", "sent", "sent_on"},
    }
    for cls, names in classes.items():
        missing = sorted(n for n in names if f"multicast_expert.{cls.__name__}.{n}" not in ids)
        assert not missing, f"{cls.__name__}: no API entry for {missing}"
    for must in ("join_group", "block_source", "refresh_interfaces", "recv_batch"):
        assert f"multicast_expert.AsyncMcastRxSocket.{must}" in ids
        assert f"multicast_expert.McastRxSocket.{must}" in ids
    assert "multicast_expert.AsyncMcastTxSocket.send_batch" in ids
    assert "multicast_expert.McastTxSocket.send_batch" in ids


def test_testing_page_documents_the_public_api_without_internals(html: Path) -> None:
    text = page(html, "testing.html")
    ids = entry_ids(text)
    for name in testing.__all__:
        assert f"multicast_expert.testing.{name}" in ids, f"testing.{name} has no entry"
    for internal in ("ip", "sysctl", "finish_reexec", "setup_host_namespace", "MARKER_ENV", "libc"):
        assert internal not in testing.__all__
        assert f"multicast_expert.testing.{internal}" not in ids, f"internal testing.{internal} is documented"
    assert "multicast_expert.pytest_plugin.mcast_network" in ids
    for peer_attr in ("run", "close", "command", "host_if", "peer_if", "peer_ip4", "peer_ip6", "pid"):
        assert f"multicast_expert.testing.Peer.{peer_attr}" in ids
    plain = re.sub(r"<[^>]+>", "", text)
    assert "What is isolated" in plain and "refuses to run while any other" in plain


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")]


def test_cli_reference_lists_every_command_and_option_of_the_parsers(html: Path) -> None:
    text = page(html, "cli.html")
    plain = re.sub(r"<[^>]+>", "", text)
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(subs.choices) >= 5
    for name, sub in subs.choices.items():
        assert f'id="multicast-expert-{name}"' in text, f"no section for {name}"
        section = plain.split(f"multicast-expert {name}¶", 1)[1]
        for opt in _options(sub):
            assert opt in section, f"{name} {opt} is not in the CLI reference"
        for action in sub._actions:
            if not action.option_strings and action.help:
                assert action.help.split(";")[0] in section
    assert "--version" in plain


def test_changelog_is_rendered_for_users(html: Path) -> None:
    text = page(html, "changelog.html")
    assert re.search(r"<h2>Unreleased", text), "the Unreleased heading is not a rendered heading"
    assert "<h3>Added" in text and "<code" in text
    assert "## " not in re.sub(r"<[^>]+>", "", text), "Markdown source shows through"
    source = (ROOT / "CHANGELOG.md").read_text()
    unreleased = source.split("## Unreleased", 1)[1].split("\n## ", 1)[0]
    assert "SocketClosedError" in unreleased and "issue" not in unreleased.lower()


def test_examples_are_linked_from_the_readme_and_shown_in_the_docs(html: Path) -> None:
    readme = (ROOT / "README.rst").read_text()
    examples = sorted(p.stem for p in (ROOT / "examples").glob("*.py"))
    assert examples
    index, shown = page(html, "index.html"), page(html, "examples.html")
    for stem in examples:
        assert f"<examples/{stem}.py>`_" in readme, f"README does not link examples/{stem}.py"
        assert f'href="examples.html#example-{stem.replace("_", "-")}"' in index
        first_line = (ROOT / "examples" / f"{stem}.py").read_text().splitlines()[0].strip('"')
        assert first_line[:30] in re.sub(r"<[^>]+>", "", shown), f"{stem}.py is not shown"


def test_where_to_report_problems_is_said(html: Path) -> None:
    plain = re.sub(r"<[^>]+>", "", page(html, "index.html"))
    section = plain.split("Reporting problems", 1)[1][:1500]
    assert "no public home" in section
    for what in ("--version", "python -VV", "doctor", "DEBUG"):
        assert what in section, f"the report line does not ask for {what}"
