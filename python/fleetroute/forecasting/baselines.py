"""Shared forecast types, input checks and the seasonal-naive baseline.

``SeasonalNaive(season_length)`` forecasts each future step with the value observed one
season earlier (two seasons earlier beyond the first season, and so on). Its prediction
intervals are empirical quantiles of the series' own past seasonal differences
``y[t] - y[t - j * season_length]`` for the number ``j`` of seasons looked back, so they
make no distributional assumption (where fewer than one season of differences exists at a
lag, the one-season quantiles are scaled by ``sqrt(j)``, as for a seasonal random walk); they
are only as good as the past differences are
representative of the future ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fleetroute.validation import positive_int

__all__ = ["Forecast", "SeasonalNaive", "check_level", "check_series"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Forecast:
    """A point forecast with a central prediction interval at ``level`` (e.g. 0.95)."""

    mean: FloatArray
    lower: FloatArray
    upper: FloatArray
    level: float


def check_series(series: Sequence[float] | FloatArray, min_length: int) -> FloatArray:
    """``series`` as a 1-D float64 array; refuses non-1-D, too-short or non-finite input."""
    try:
        values = np.asarray(series, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"series must be a sequence of numbers ({exc})") from None
    if values.ndim != 1:
        raise ValueError(f"series must be one-dimensional (got shape {values.shape})")
    if values.size < min_length:
        raise ValueError(
            f"series is too short: need at least {min_length} observations (got {values.size})"
        )
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"series must be finite: {bad.size} NaN/inf value(s), first at index {int(bad[0])}"
        )
    return values


def check_level(level: object) -> float:
    """``level`` as a float strictly between 0 and 1 (the interval's nominal coverage)."""
    if isinstance(level, bool) or not isinstance(level, int | float):
        raise ValueError(f"level must be a number in (0, 1) (got {level!r})")
    if not (math.isfinite(level) and 0.0 < level < 1.0):
        raise ValueError(f"level must be in (0, 1), e.g. 0.8 or 0.95 (got {level!r})")
    return float(level)


class SeasonalNaive:
    """Forecast = the value one season ago; intervals from past seasonal differences."""

    def __init__(self, season_length: int = 24) -> None:
        self.season_length = positive_int("season_length", season_length)
        self._series: FloatArray | None = None

    def fit(self, series: Sequence[float] | FloatArray) -> SeasonalNaive:
        """Remember ``series`` (needs at least two seasons, for the differences)."""
        self._series = check_series(series, 2 * self.season_length)
        return self

    def forecast(self, h: int, level: float = 0.95) -> Forecast:
        """The next ``h`` values with a central interval at ``level``."""
        if self._series is None:
            raise ValueError("call fit(series) before forecast()")
        horizon = positive_int("h", h)
        lvl = check_level(level)
        y, m, n = self._series, self.season_length, self._series.size
        mean = np.empty(horizon)
        lower = np.empty(horizon)
        upper = np.empty(horizon)
        for k in range(1, horizon + 1):
            seasons_back = (k - 1) // m + 1
            lag = seasons_back * m
            mean[k - 1] = y[n + k - 1 - lag]
            probs = [(1.0 - lvl) / 2.0, (1.0 + lvl) / 2.0]
            if n - lag >= m:
                lo, hi = np.quantile(y[lag:] - y[:-lag], probs)
            else:  # too few differences at this lag: scale the one-season ones by sqrt(j)
                lo, hi = np.quantile(y[m:] - y[:-m], probs) * math.sqrt(seasons_back)
            lower[k - 1] = mean[k - 1] + lo
            upper[k - 1] = mean[k - 1] + hi
        return Forecast(mean=mean, lower=lower, upper=upper, level=lvl)
