"""Jain's fairness index, the load-balance measure the routers and the monitor share."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["jain_from_sums", "jain_index"]


def jain_from_sums(count: int, total: float, squares: float) -> float:
    """Jain's index ``(sum x)^2 / (n sum x^2)`` of ``count`` values whose sum is
    ``total`` and sum of squares ``squares``: 1 when all are equal (or all zero), 1/n
    when one takes everything."""
    return 1.0 if squares <= 0 else total * total / (count * squares)


def jain_index(values: Iterable[float]) -> float:
    """Jain's index of ``values`` (see :func:`jain_from_sums`)."""
    items = list(values)
    return jain_from_sums(len(items), sum(items), sum(v * v for v in items))
