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
    """A setting by its sysctl(8) name (see :func:`conf_level`), or None where it is not readable."""
    return _platform.HOST.read_setting(name)


def conf_level(iface_name: str) -> str:
    """An interface's level in a sysctl(8) name: a dot in the name (a VLAN's eth0.7) is written
    '/', because dots separate the levels (net.ipv4.conf.eth0/7.rp_filter)."""
    return iface_name.replace(".", "/")
