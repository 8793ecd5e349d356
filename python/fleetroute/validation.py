"""Argument checks shared by the policies: each names the bad parameter and value."""

from __future__ import annotations

import math

__all__ = ["non_negative_number", "positive_int", "positive_number"]


def positive_number(name: str, value: object, unit: str = "a number") -> float:
    """``value`` as a float if it is a finite number > 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be {unit} (got {value!r})")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0 (got {value!r})")
    return float(value)


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an int >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1 (got {value!r})")
    return value


def non_negative_number(name: str, value: object, unit: str = "a number") -> float:
    """``value`` as a float if it is a finite number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be {unit} (got {value!r})")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0 (got {value!r})")
    return float(value)
