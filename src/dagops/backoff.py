"""Retry spacing, written once: delays that double from ``first`` up to ``cap``."""

from __future__ import annotations


def doubling(attempt: int, first: float = 1.0, cap: float = 60.0) -> float:
    """The delay before retry number ``attempt`` (1, 2, 3, ...): first, 2*first, 4*first, ... at most cap."""
    return min(cap, first * 2.0 ** min(max(attempt - 1, 0), 64))
