"""A small LSTM load forecaster in plain JAX, with split-conformal prediction intervals.

Each time step is described by five features: the load (standardised with the training
mean and standard deviation), and sin/cos of the time of day and of the day of week. The
network reads the last ``window`` steps with one LSTM layer (``hidden`` units, cell written
out by hand), and a linear head maps the final hidden state together with the calendar
features of the step to predict onto the next load. It is trained with minibatch Adam
(also written by hand, gradients from ``jax.grad``) on mean squared one-step error, with a
seeded initialisation and seeded minibatches, so a fit is reproducible. Multi-step forecasts
iterate the one-step model, feeding each prediction back in as the newest load.

Intervals: the last ``calibration`` observations are held out of training. From every
origin in that block the model forecasts up to ``max_horizon`` steps ahead, and for each
horizon ``k`` the interval half-width is the ``ceil((m + 1) * level) / m`` empirical
quantile of the ``m`` absolute k-step errors (split conformal prediction). If calibration
and future errors were exchangeable this would give marginal coverage of at least ``level``;
load series are serially dependent and may drift, and errors from overlapping origins are
correlated, so here the coverage is approximate, not guaranteed, and holds on average over
forecast steps rather than for any single one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fleetroute.durations import parse_duration
from fleetroute.forecasting.baselines import FloatArray, Forecast, check_level, check_series
from fleetroute.validation import non_negative_number, positive_int, positive_number

__all__ = ["LSTMForecaster"]

Params = dict[str, jax.Array]
_N_CAL = 4  # sin/cos time of day, sin/cos day of week
_DAY = 86_400.0
_WEEK = 7 * _DAY


def _init_params(key: jax.Array, hidden: int) -> Params:
    k1, k2, k3 = jax.random.split(key, 3)
    n_in = 1 + _N_CAL
    bias = jnp.zeros(4 * hidden).at[hidden : 2 * hidden].set(1.0)  # forget gate starts open
    return {
        "wx": jax.random.normal(k1, (n_in, 4 * hidden)) / math.sqrt(n_in),
        "wh": jax.random.normal(k2, (hidden, 4 * hidden)) / math.sqrt(hidden),
        "b": bias,
        "wo": jax.random.normal(k3, (hidden + _N_CAL,)) * 0.1,
        "bo": jnp.zeros(()),
    }


def _predict(params: Params, inputs: jax.Array, next_cal: jax.Array) -> jax.Array:
    """One-step predictions for a batch: inputs (B, T, 5), next_cal (B, 4) -> (B,)."""
    batch = inputs.shape[0]
    hidden = params["wh"].shape[0]

    def cell(carry: tuple[jax.Array, jax.Array], x: jax.Array) -> tuple[Any, None]:
        h, c = carry
        z = x @ params["wx"] + h @ params["wh"] + params["b"]
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), None

    zeros = jnp.zeros((batch, hidden))
    (h, _), _ = jax.lax.scan(cell, (zeros, zeros), jnp.swapaxes(inputs, 0, 1))
    return jnp.concatenate([h, next_cal], axis=-1) @ params["wo"] + params["bo"]


def _loss(params: Params, inputs: jax.Array, next_cal: jax.Array, target: jax.Array) -> jax.Array:
    return jnp.mean((_predict(params, inputs, next_cal) - target) ** 2)


@jax.jit
def _adam_step(
    params: Params,
    m: Params,
    v: Params,
    step: jax.Array,
    lr: jax.Array,
    batch: tuple[jax.Array, jax.Array, jax.Array],
) -> tuple[Params, Params, Params, jax.Array]:
    loss, grads = jax.value_and_grad(_loss)(params, *batch)
    b1, b2, eps = 0.9, 0.999, 1e-8
    m = jax.tree_util.tree_map(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
    v = jax.tree_util.tree_map(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
    scale = lr * jnp.sqrt(1 - b2**step) / (1 - b1**step)
    params = jax.tree_util.tree_map(
        lambda p, a, b: p - scale * a / (jnp.sqrt(b) + eps), params, m, v
    )
    return params, m, v, loss


_predict_jit = jax.jit(_predict)


class LSTMForecaster:
    """One-layer LSTM on load + calendar features; iterated multi-step forecasts."""

    def __init__(
        self,
        window: int = 48,
        hidden: int = 16,
        train_steps: int = 300,
        batch_size: int = 128,
        learning_rate: float = 0.01,
        calibration: int = 168,
        max_horizon: int = 48,
        sample_interval: str | float = "1h",
        start_offset: float = 0.0,
        seed: int = 0,
    ) -> None:
        """``sample_interval``: time between observations ("1h", "15min" or seconds).
        ``start_offset``: seconds from Monday 00:00 to the first observation."""
        self.window = positive_int("window", window)
        self.hidden = positive_int("hidden", hidden)
        self.train_steps = positive_int("train_steps", train_steps)
        self.batch_size = positive_int("batch_size", batch_size)
        self.learning_rate = positive_number("learning_rate", learning_rate)
        self.max_horizon = positive_int("max_horizon", max_horizon)
        self.calibration = positive_int("calibration", calibration)
        if self.calibration < self.max_horizon + 19:
            raise ValueError(
                "calibration must be >= max_horizon + 19 so that every horizon has at least "
                f"20 held-out errors (got calibration={calibration}, max_horizon={max_horizon})"
            )
        self.sample_interval = parse_duration(sample_interval, "sample_interval")
        self.start_offset = non_negative_number("start_offset", start_offset, "seconds")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer (got {seed!r})")
        self.seed = seed
        self.loss_: float = math.nan
        self._params: Params | None = None
        self._series: FloatArray = np.empty(0)
        self._scale = (0.0, 1.0)
        self._abs_err: list[FloatArray] = []

    @property
    def min_length(self) -> int:
        """Fewest observations ``fit`` accepts: training windows plus the calibration block."""
        return 2 * self.window + 24 + self.calibration

    def _calendar(self, index: FloatArray) -> FloatArray:
        seconds = self.start_offset + index * self.sample_interval
        day = 2 * np.pi * (seconds % _DAY) / _DAY
        week = 2 * np.pi * (seconds % _WEEK) / _WEEK
        return np.stack([np.sin(day), np.cos(day), np.sin(week), np.cos(week)], axis=-1)

    def _rollout(self, z: FloatArray, cal: FloatArray, origins: FloatArray, h: int) -> FloatArray:
        """Iterated standardised forecasts (len(origins), h) from each origin."""
        assert self._params is not None
        w = self.window
        idx = origins[:, None] + np.arange(-w, h)[None, :]
        cal_rows = cal[idx.astype(np.int64)]
        loads = np.zeros(idx.shape)
        loads[:, :w] = z[(origins[:, None] + np.arange(-w, 0)[None, :]).astype(np.int64)]
        for k in range(h):
            inputs = np.concatenate([loads[:, k : k + w, None], cal_rows[:, k : k + w]], axis=-1)
            pred = _predict_jit(
                self._params, jnp.asarray(inputs, jnp.float32), jnp.asarray(cal_rows[:, k + w])
            )
            loads[:, w + k] = np.asarray(pred, dtype=np.float64)
        return loads[:, w:]

    def fit(self, series: Sequence[float] | FloatArray) -> LSTMForecaster:
        """Train on all but the last ``calibration`` points, then calibrate the intervals."""
        y = check_series(series, self.min_length)
        n, w = y.size, self.window
        n_train = n - self.calibration
        mu, sd = float(y[:n_train].mean()), float(y[:n_train].std())
        if sd == 0.0:
            sd = 1.0
        z = (y - mu) / sd
        cal = self._calendar(np.arange(n + self.max_horizon, dtype=np.float64))
        starts = np.arange(w, n_train)
        idx = starts[:, None] + np.arange(-w, 0)[None, :]
        inputs = np.concatenate([z[idx][..., None], cal[idx]], axis=-1)
        data = (inputs.astype(np.float32), cal[starts].astype(np.float32), z[starts])
        rng = np.random.default_rng(self.seed)
        size = min(self.batch_size, starts.size)
        params = _init_params(jax.random.PRNGKey(self.seed), self.hidden)
        m = jax.tree_util.tree_map(jnp.zeros_like, params)
        v = jax.tree_util.tree_map(jnp.zeros_like, params)
        lr = jnp.asarray(self.learning_rate, jnp.float32)
        loss = jnp.asarray(jnp.nan)
        for step in range(1, self.train_steps + 1):
            pick = rng.choice(starts.size, size=size, replace=False)
            batch = tuple(jnp.asarray(part[pick], jnp.float32) for part in data)
            params, m, v, loss = _adam_step(params, m, v, jnp.asarray(step, jnp.float32), lr, batch)
        self._params = params
        self.loss_ = float(loss)
        self._scale = (mu, sd)
        self._series = y
        origins = np.arange(n_train, n, dtype=np.float64)
        paths = self._rollout(z, cal, origins, self.max_horizon) * sd + mu
        self._abs_err = []
        for k in range(self.max_horizon):
            valid = origins + k < n
            actual = y[(origins[valid] + k).astype(np.int64)]
            self._abs_err.append(np.sort(np.abs(paths[valid, k] - actual)))
        return self

    def forecast(
        self,
        h: int,
        level: float = 0.95,
        recent: Sequence[float] | FloatArray | None = None,
    ) -> Forecast:
        """The next ``h`` (<= ``max_horizon``) values with a conformal interval at ``level``.

        ``recent``: observations that arrived after the fitted series; they are appended to
        it as inputs (without retraining) and the forecast starts after the last of them."""
        if self._params is None:
            raise ValueError("call fit(series) before forecast()")
        horizon = positive_int("h", h)
        if horizon > self.max_horizon:
            raise ValueError(
                f"h must be <= max_horizon={self.max_horizon}, the horizons the intervals "
                f"were calibrated for (got {h})"
            )
        lvl = check_level(level)
        mu, sd = self._scale
        y = self._series
        if recent is not None:
            y = np.concatenate([y, check_series(recent, 0)])
        z = (y - mu) / sd
        cal = self._calendar(np.arange(y.size + horizon, dtype=np.float64))
        mean = self._rollout(z, cal, np.array([float(y.size)]), horizon)[0] * sd + mu
        half = np.empty(horizon)
        for k in range(horizon):
            errs = self._abs_err[k]
            rank = math.ceil((errs.size + 1) * lvl)
            half[k] = errs[rank - 1] if rank <= errs.size else np.inf
        return Forecast(mean=mean, lower=mean - half, upper=mean + half, level=lvl)
