"""Build configuration for the optional C accelerator only; everything else is in pyproject.toml.

``multicast_expert._speedups`` is built on Linux when a C compiler and the Python headers are
present. It is optional: a failed build is reported as a warning and the install goes on with the
pure-Python code (``optional=True``). Set ``MULTICAST_EXPERT_NO_EXTENSION=1`` to skip it. It uses
CPython's limited API, so the one build (``_speedups.abi3.so``) serves every CPython 3.11+.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform.startswith("linux") and os.environ.get("MULTICAST_EXPERT_NO_EXTENSION") != "1":
    ext_modules.append(
        Extension(
            "multicast_expert._speedups",
            sources=["multicast_expert/_speedups.c"],
            define_macros=[("Py_LIMITED_API", "0x030B0000")],
            py_limited_api=True,
            optional=True,
        )
    )

setup(
    ext_modules=ext_modules,
    options={"bdist_wheel": {"py_limited_api": "cp311"}} if ext_modules else {},
)
