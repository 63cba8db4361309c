"""Compatibility module: multicast_expert 1.6.0's ``name_to_index`` (``iface_name_to_index``).

Nothing inside the package imports it; the function lives in ``interfaces``.
"""

from __future__ import annotations

from .interfaces import iface_name_to_index

__all__ = ["iface_name_to_index"]
