"""Additive double-seasonal Holt-Winters (Taylor, 2003) for regularly sampled load.

The model is Taylor's additive double-seasonal exponential smoothing ("Short-term
electricity demand forecasting using double seasonal exponential smoothing", JORS 54,
2003) with an optional additive trend. With seasonal periods ``s1 < s2`` (e.g. 24 and 168
for hourly data: daily and weekly) and one-step error ``e_t = y_t - yhat_t``::

    yhat_t = l_{t-1} + b_{t-1} + d_{t-s1} + w_{t-s2}
    l_t = alpha (y_t - d_{t-s1} - w_{t-s2}) + (1 - alpha)(l_{t-1} + b_{t-1})
    b_t = beta (l_t - l_{t-1}) + (1 - beta) b_{t-1}
    d_t = gamma (y_t - l_t - w_{t-s2}) + (1 - gamma) d_{t-s1}
    w_t = omega (y_t - l_t - d_{t-s1}) + (1 - omega) w_{t-s2}

The weekly state ``w`` holds what the daily profile ``d`` does not explain. With one
period only the ``w`` terms are dropped (ordinary additive Holt-Winters).

``fit`` picks the smoothing parameters not given by the caller by minimising the in-sample
one-step sum of squared errors with a coordinate search over a small grid (no scipy).

Prediction intervals: in error-correction form the recursions are a linear innovations
state-space model whose h-step forecast variance is (Hyndman & Athanasopoulos, "Forecasting:
Principles and Practice", 3rd ed., sec. 8.7, the ETS(A,A,A) prediction-interval variance)::

    var_h = sigma^2 (1 + sum_{j=1}^{h-1} c_j^2),
    c_j = alpha + j alpha beta + gamma (1 - alpha) [s1 | j] + omega (1 - alpha) [s2 | j]

which is the ETS(A,A,A) formula extended by one more seasonal term. ``sigma^2`` is the mean
squared one-step residual after the cycles used to initialise the states; the errors are
taken as Gaussian, and the uncertainty in the estimated parameters and initial states is
ignored, so the intervals are an approximation that tends to be slightly narrow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from fleetroute.forecasting.baselines import FloatArray, Forecast, check_level, check_series
from fleetroute.validation import positive_int

__all__ = ["HoltWinters"]

_GRIDS: dict[str, tuple[float, ...]] = {
    "alpha": (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.8),
    "beta": (0.0, 0.001, 0.01, 0.05, 0.1),
    "gamma": (0.0, 0.02, 0.05, 0.1, 0.2, 0.4),
    "omega": (0.0, 0.02, 0.05, 0.1, 0.2, 0.4),
}
_START = {"alpha": 0.1, "beta": 0.0, "gamma": 0.1, "omega": 0.1}


def _unit_interval(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number in [0, 1] or None to fit it (got {value!r})")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1] (got {value!r})")
    if name == "alpha" and value == 0.0:
        raise ValueError("alpha must be > 0 (a level that never updates cannot track load)")
    return float(value)


class HoltWinters:
    """Additive Holt-Winters with one (daily) or two (daily + weekly) seasonal states."""

    def __init__(
        self,
        seasonal_periods: Sequence[int] = (24, 168),
        alpha: float | None = None,
        beta: float | None = None,
        gamma: float | None = None,
        omega: float | None = None,
        trend: bool = True,
        search_rounds: int = 2,
    ) -> None:
        periods = tuple(seasonal_periods)
        if len(periods) not in (1, 2):
            raise ValueError(
                f"seasonal_periods must hold one or two periods, e.g. (24, 168) (got {periods!r})"
            )
        for p in periods:
            if positive_int("seasonal period", p) < 2:
                raise ValueError(f"each seasonal period must be >= 2 (got {p!r})")
        if len(periods) == 2 and (periods[1] <= periods[0] or periods[1] % periods[0]):
            raise ValueError(
                "the second seasonal period must be a larger multiple of the first, "
                f"e.g. (24, 168) (got {periods!r})"
            )
        if not isinstance(trend, bool):
            raise ValueError(f"trend must be True or False (got {trend!r})")
        self.seasonal_periods = periods
        self.trend = trend
        self.search_rounds = positive_int("search_rounds", search_rounds)
        self._fixed = {
            "alpha": _unit_interval("alpha", alpha),
            "beta": _unit_interval("beta", beta),
            "gamma": _unit_interval("gamma", gamma),
            "omega": _unit_interval("omega", omega),
        }
        if not trend:
            self._fixed["beta"] = 0.0
        if len(periods) == 1:
            self._fixed["omega"] = 0.0
        self.params_: dict[str, float] = {}
        self.sigma2_: float = math.nan
        self.fitted_: FloatArray = np.empty(0)
        self._state: tuple[float, float, list[float], list[float]] | None = None
        self._n = 0

    @property
    def min_length(self) -> int:
        """Fewest observations ``fit`` accepts: two cycles of the longest period."""
        return 2 * self.seasonal_periods[-1]

    def _initial(self, y: list[float]) -> tuple[float, float, list[float], list[float]]:
        s1, s_max = self.seasonal_periods[0], self.seasonal_periods[-1]
        cycles = max(2, min(4, len(y) // s_max))
        arr = np.asarray(y[: cycles * s_max]).reshape(cycles, s_max)
        means = arr.mean(axis=1)
        slope = float(means[1] - means[0]) / s_max if self.trend else 0.0
        level = float(means[0]) - slope * (s_max + 1) / 2.0
        x = (arr - means[:, None]).ravel()
        daily = np.array([x[j::s1].mean() for j in range(s1)])
        daily -= daily.mean()
        weekly: list[float] = []
        if len(self.seasonal_periods) == 2:
            rest = (x - np.tile(daily, x.size // s1)).reshape(cycles, s_max).mean(axis=0)
            weekly = list(rest - rest.mean())
        return level, slope, list(daily), weekly

    def _run(
        self, y: list[float], p: dict[str, float], keep: bool
    ) -> tuple[float, list[float], tuple[float, float, list[float], list[float]]]:
        alpha, beta, gamma, omega = p["alpha"], p["beta"], p["gamma"], p["omega"]
        level, slope, daily0, weekly0 = self._initial(y)
        daily, weekly = list(daily0), list(weekly0)
        s1 = self.seasonal_periods[0]
        s2 = self.seasonal_periods[-1] if weekly else 1
        if not weekly:
            weekly = [0.0]
        sse = 0.0
        fitted: list[float] = []
        for t, obs in enumerate(y):
            i, k = t % s1, t % s2
            d, w = daily[i], weekly[k]
            pred = level + slope + d + w
            err = obs - pred
            sse += err * err
            if keep:
                fitted.append(pred)
            new_level = alpha * (obs - d - w) + (1.0 - alpha) * (level + slope)
            slope = beta * (new_level - level) + (1.0 - beta) * slope
            level = new_level
            daily[i] = gamma * (obs - level - w) + (1.0 - gamma) * d
            if len(self.seasonal_periods) == 2:
                weekly[k] = omega * (obs - level - d) + (1.0 - omega) * w
            if not math.isfinite(sse):
                return math.inf, fitted, (level, slope, daily, weekly)
        return sse, fitted, (level, slope, daily, weekly)

    def fit(self, series: Sequence[float] | FloatArray) -> HoltWinters:
        """Fit the parameters not fixed in the constructor, then the states, to ``series``."""
        y = check_series(series, self.min_length).tolist()
        params = {name: (v if v is not None else _START[name]) for name, v in self._fixed.items()}
        free = [name for name, v in self._fixed.items() if v is None]
        best = self._run(y, params, keep=False)[0]
        for _ in range(self.search_rounds if free else 0):
            improved = False
            for name in free:
                for value in _GRIDS[name]:
                    if value == params[name]:
                        continue
                    trial = {**params, name: value}
                    sse = self._run(y, trial, keep=False)[0]
                    if sse < best:
                        best, params, improved = sse, trial, True
            if not improved:
                break
        sse, fitted, state = self._run(y, params, keep=True)
        self.params_ = params
        # The initial states are estimated from the first cycles, so residuals there are
        # optimistic; sigma^2 uses the later ones where there are enough of them.
        resid = np.asarray(y) - np.asarray(fitted)
        skip = self.min_length if len(y) - self.min_length >= self.seasonal_periods[0] else 0
        self.sigma2_ = float(np.mean(resid[skip:] ** 2))
        self.fitted_ = np.asarray(fitted, dtype=np.float64)
        self._state = state
        self._n = len(y)
        return self

    def forecast(self, h: int, level: float = 0.95) -> Forecast:
        """The next ``h`` values with a Gaussian central interval at ``level``."""
        if self._state is None:
            raise ValueError("call fit(series) before forecast()")
        horizon = positive_int("h", h)
        lvl = check_level(level)
        lev, slope, daily, weekly = self._state
        s1, s2 = self.seasonal_periods[0], self.seasonal_periods[-1]
        two = len(self.seasonal_periods) == 2
        p = self.params_
        mean = np.empty(horizon)
        var = np.empty(horizon)
        acc = 0.0
        for k in range(1, horizon + 1):
            t = self._n - 1 + k
            w = weekly[t % s2] if two else 0.0
            mean[k - 1] = lev + k * slope + daily[t % s1] + w
            var[k - 1] = self.sigma2_ * (1.0 + acc)
            c = p["alpha"] + k * p["alpha"] * p["beta"]
            if k % s1 == 0:
                c += p["gamma"] * (1.0 - p["alpha"])
            if two and k % s2 == 0:
                c += p["omega"] * (1.0 - p["alpha"])
            acc += c * c
        z = NormalDist().inv_cdf((1.0 + lvl) / 2.0)
        half = z * np.sqrt(var)
        return Forecast(mean=mean, lower=mean - half, upper=mean + half, level=lvl)
