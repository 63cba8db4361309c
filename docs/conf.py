"""Sphinx configuration: the README's guides, an API reference generated from the docstrings, a
command-line reference generated from the argparse parsers, the examples and the changelog."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sphinx.application import Sphinx

import multicast_expert

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "multicast_expert"
author = "multicast_expert developers"
release = version = multicast_expert.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "myst_parser",  # the changelog is Markdown
    "cli_reference",  # docs/_ext: the CLI reference, from multicast_expert.cli.build_parser()
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
html_theme = "furo"
html_title = f"multicast_expert {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_use_ivar = False  # an "Attributes:" section becomes entries of their own
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}  # offline: no inventories fetched
exclude_patterns = ["_build", "_ext"]
smartquotes = False  # options and code stay as typed: "--stats" is not an en dash
suppress_warnings = ["myst.header"]  # the changelog starts at "#"; its title is the page's

#: README links of the form `text <examples/NAME.py>`_ (right on a source-tree browser) become
#: links to the examples page here.
_EXAMPLE_LINK = re.compile(r"`([^`<]+?)\s+<examples/(\w+)\.py>`_")


def _readme_links(app: Sphinx, relative_path: Path, parent_docname: str, content: list[str]) -> None:
    del app, parent_docname
    if relative_path.name == "README.rst":
        content[0] = _EXAMPLE_LINK.sub(r":ref:`\1 <example-\2>`", content[0])


def setup(app: Sphinx) -> None:
    app.connect("include-read", _readme_links)
