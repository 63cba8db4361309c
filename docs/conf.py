"""Sphinx configuration: the README's guides plus an API reference generated from the docstrings."""

from __future__ import annotations

import multicast_expert

project = "multicast_expert"
author = "multicast_expert developers"
release = version = multicast_expert.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
html_theme = "furo"
html_title = f"multicast_expert {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
exclude_patterns = ["_build"]
