"""Durations as people write them in configs: ``"1h"``, ``"30min"``, ``"5m"``, ``300``."""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration"]

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "d": 86400.0,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")


def parse_duration(value: str | float, what: str = "duration") -> float:
    """Seconds in ``value``: a number of seconds, or a string such as "1h", "30min",
    "90s", "250ms", "2d". Must be finite and > 0."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be seconds or a string like '1h' (got {value!r})")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond any float: refused below as not finite
            seconds = math.inf
    elif isinstance(value, str):
        match = _PATTERN.match(value.lower())
        if match is None or match.group(2) not in _UNITS:
            raise ValueError(
                f"{what} {value!r} is not a duration; write e.g. '90s', '30min', '1h' "
                f"(units: {', '.join(_UNITS)})"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"{what} must be seconds or a string like '1h' (got {value!r})")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{what} must be > 0 seconds (got {value!r})")
    return seconds
