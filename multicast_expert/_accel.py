"""Loader of the optional C accelerator, ``multicast_expert._speedups`` (Linux, CPython 3.11+).

``ACCELERATED`` is True iff the extension was built and imported, and the environment variable
``MULTICAST_EXPERT_PURE_PYTHON`` is not ``"1"`` (read once, at import). ``speedups`` is then the
extension module, otherwise None. For precise types, after checking ``ACCELERATED`` import the
module itself (``from multicast_expert import _speedups``): its stub, ``_speedups.pyi``, types
every function.

Layering rule: imports nothing else of the package.
"""

from __future__ import annotations

import os
from types import ModuleType

#: Why the accelerator is off (None when it is on): the import error, or the environment variable.
REASON: str | None = None
speedups: ModuleType | None = None

if os.environ.get("MULTICAST_EXPERT_PURE_PYTHON") == "1":
    REASON = "MULTICAST_EXPERT_PURE_PYTHON=1"
else:
    try:
        from . import _speedups as _loaded
    except ImportError as exc:  # not built (no compiler, not Linux) or built for another ABI
        REASON = f"the C extension is not available: {exc}"
    else:
        speedups = _loaded

ACCELERATED: bool = speedups is not None

__all__ = ["ACCELERATED", "REASON", "speedups"]
