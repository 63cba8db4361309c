"""The Windows lane's session: run only as Windows CPython (under Wine, started by
scripts/check-windows inside a private network namespace with one veth link, 198.18.200.1/24)."""

from __future__ import annotations

import sys

import pytest

if sys.platform != "win32":
    pytest.exit("tests_windows runs only under Windows CPython (see scripts/check-windows)", returncode=3)
