"""Sphinx directive ``.. cli-reference::``: the command-line reference, generated at build time
from the argparse parsers that ``multicast_expert.cli.build_parser()`` makes, so the page always
says what ``--help`` says."""

from __future__ import annotations

import argparse

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.nodes import nested_parse_with_titles

from multicast_expert.cli import build_parser


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of every subcommand, in the order they were added."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return out


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")


def _argument_lines(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            value = "" if action.nargs == 0 else " " + (action.metavar or action.dest.upper())  # type: ignore[operator]
            name = ", ".join(f"{o}{value}" for o in action.option_strings)
        else:
            name = str(action.metavar or action.dest)
        text = _escape(action.help or "") if action.help != argparse.SUPPRESS else ""
        if action.required and action.option_strings:
            text += " (required)"
        default = action.default
        shown = default is not None and default is not False and default != argparse.SUPPRESS
        if action.option_strings and shown and action.nargs != 0:
            text = f"{text.rstrip('.')}. Default: ``{default}``."
        lines += [f"``{name}``", f"   {text or '(no description)'}", ""]
    return lines


def reference_rst(parser: argparse.ArgumentParser) -> list[str]:
    """The whole reference as reStructuredText lines."""
    lines = [_escape(parser.description or ""), "", "::", ""]
    lines += ["   " + u for u in parser.format_usage().strip().splitlines()] + [""]
    lines += _argument_lines(parser)
    for name, summary, sub in _subcommands(parser):
        title = f"{parser.prog} {name}"
        lines += [title, "-" * len(title), "", _escape(summary[:1].upper() + summary[1:]) + ".", "", "::", ""]
        lines += ["   " + u for u in sub.format_usage().strip().splitlines()] + [""]
        lines += _argument_lines(sub)
    return lines


class CliReference(Directive):
    """Insert the generated reference (sections for each subcommand) where it stands."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        content = StringList(reference_rst(build_parser()), source="<multicast_expert.cli.build_parser()>")
        holder = nodes.section()
        holder.document = self.state.document
        nested_parse_with_titles(self.state, content, holder)
        return holder.children


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True, "version": "1"}
