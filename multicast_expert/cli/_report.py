"""doctor's report: each finding a line of ``ok``, ``info``, ``warn`` or ``FAIL`` (with its fix)."""

from __future__ import annotations

from typing import TextIO

from .. import _platform


class Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.problems = 0

    def ok(self, text: str) -> None:
        self.out.write(f"  ok    {text}\n")

    def info(self, text: str) -> None:
        self.out.write(f"  info  {text}\n")

    def warn(self, text: str) -> None:
        self.out.write(f"  warn  {text}\n")

    def problem(self, text: str, fix: str) -> None:
        self.problems += 1
        self.out.write(f"  FAIL  {text}\n        fix: {fix}\n")


def sysctl(name: str) -> str | None:
    return _platform.OPS.read_setting(name)
