"""doctor's report: sections of findings, each a line of ``ok``, ``info``, ``warn`` or ``FAIL``
(with its fix). A section never ends empty: one with no finding says why it had nothing to say."""

from __future__ import annotations

from typing import TextIO

from .. import _platform


class Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.problems = 0
        self._lines = 0
        self._empty = ""

    def section(self, title: str, empty: str = "nothing to check here") -> None:
        """Start a section; ``empty`` is said if it ends without a finding."""
        self.close()
        self.out.write(f"{title}\n")
        self._lines, self._empty = 0, empty

    def close(self) -> None:
        """End the open section (said with ``empty`` when it had no finding)."""
        if self._empty and not self._lines:
            self.info(self._empty)
        self._empty = ""

    def _line(self, text: str) -> None:
        self._lines += 1
        self.out.write(text)

    def ok(self, text: str) -> None:
        self._line(f"  ok    {text}\n")

    def info(self, text: str) -> None:
        self._line(f"  info  {text}\n")

    def warn(self, text: str) -> None:
        self._line(f"  warn  {text}\n")

    def problem(self, text: str, fix: str) -> None:
        self.problems += 1
        self._line(f"  FAIL  {text}\n        fix: {fix}\n")


def sysctl(name: str) -> str | None:
    return _platform.HOST.read_setting(name)
