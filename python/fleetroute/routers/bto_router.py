"""``BTORouter``: seed 000's Best Time Optimization, a ``BaseRouter`` that forecasts
its own load and schedules deferrable requests into it.

- **History.** The fleet's load in flight is sampled every ``sample_interval`` seconds
  (on the request path, by one comparison with the next due time; gaps without
  requests repeat the last value). ``record_load_sample`` feeds history from elsewhere.
- **Forecast.** ``predict_future_load`` fits the chosen model to the history
  (``lstm_based``: ``LSTMForecaster``; ``holt_winters``: additive Holt-Winters with
  daily and weekly seasons; ``seasonal_naive``) when ``model_update_frequency`` has
  passed, and forecasts the horizon with a central interval at
  ``confidence_threshold``. With less history than the model needs it falls back to
  the recent level and its spread, and says so (``model`` of the prediction).
- **Schedule.** ``optimize_request_scheduling`` turns the forecast's upper bound into
  per-endpoint background load (shared by capacity) and places the requests with the
  scheduler (``fleetroute.scheduling``: interactive first, deferrable by list
  scheduling within capacity, earliest starts and deadlines).
- **Dispatch.** ``dispatch_due`` routes the entries whose time has come through the Rust
  core onto their scheduled endpoint; ``dynamic_rebalancing`` reschedules the pending
  entries of an endpoint that is removed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetroute.durations import parse_duration
from fleetroute.routers.base_router import BaseRouter
from fleetroute.routers.routing_result import RoutingResult
from fleetroute.scheduling import (
    DeferrableRequest,
    LoadForecast,
    ScheduledRequest,
    ScheduleResult,
    reschedule,
    schedule,
)

__all__ = ["PREDICTION_MODELS", "BTORouter", "LoadPrediction"]

PREDICTION_MODELS = ("lstm_based", "holt_winters", "seasonal_naive")
_OBJECTIVES = ("minimize_total_time", "minimize_cost", "minimize_peak")
_FEATURES = frozenset({"historical_load", "time_of_day", "day_of_week", "seasonal_patterns"})
_PREDICTION_KEYS = frozenset(
    {"time_series_features", "model_update_frequency", "prediction_horizon", "confidence_threshold"}
)
_FREQUENCIES = {"hourly": 3600.0, "daily": 86_400.0, "weekly": 604_800.0}


@dataclass(frozen=True, slots=True)
class LoadPrediction:
    """Predicted fleet load (units in flight) at ``start + i * step_s``."""

    start: float
    step_s: float
    mean: npt.NDArray[np.float64]
    lower: npt.NDArray[np.float64]
    upper: npt.NDArray[np.float64]
    level: float
    model: str

    def at(self, t: float) -> float:
        """The upper bound for time ``t`` (the schedule plans for the bad case)."""
        i = int((t - self.start) // self.step_s)
        return float(self.upper[min(max(i, 0), len(self.upper) - 1)])


class BTORouter(BaseRouter):
    """Forecasts load and schedules deferrable requests into it."""

    def __init__(
        self,
        optimization_objective: str = "minimize_total_time",
        prediction_model: str = "lstm_based",
        look_ahead_window: float = 300,
        dynamic_rebalancing: bool = True,
        *,
        sample_interval: str | float = "1h",
        slot_seconds: float = 60.0,
        seed: int = 0,
        **base: Any,
    ) -> None:
        if optimization_objective not in _OBJECTIVES:
            raise ValueError(
                f"unknown optimization_objective {optimization_objective!r}; "
                f"known: {', '.join(_OBJECTIVES)}"
            )
        if prediction_model not in PREDICTION_MODELS:
            raise ValueError(
                f"unknown prediction_model {prediction_model!r}; "
                f"known: {', '.join(PREDICTION_MODELS)}"
            )
        if not isinstance(dynamic_rebalancing, bool):
            raise ValueError(f"dynamic_rebalancing must be a bool (got {dynamic_rebalancing!r})")
        super().__init__(seed=seed, **base)
        self.optimization_objective = optimization_objective
        self.prediction_model = prediction_model
        self.look_ahead_window = parse_duration(look_ahead_window, "look_ahead_window")
        self.dynamic_rebalancing = dynamic_rebalancing
        self.sample_interval = parse_duration(sample_interval, "sample_interval")
        self.slot_seconds = parse_duration(slot_seconds, "slot_seconds")
        self._seed = seed
        self.features = frozenset(_FEATURES)
        self.model_update_frequency = 3600.0
        self.prediction_horizon = 1800.0
        self.confidence_threshold = 0.8
        self.history: deque[float] = deque(maxlen=24 * 7 * 8)
        self._next_sample = self._clock() + self.sample_interval
        self._model: Any = None
        self._fitted_at = -math.inf
        self._fitted_length = 0
        self._pending: ScheduleResult | None = None
        self._dispatched: set[str] = set()
        self._forecast_errors: deque[float] = deque(maxlen=48)
        self._expected_next: float | None = None

    # Configuration ----------------------------------------------------------------------

    def configure_time_prediction(self, config: Mapping[str, Any]) -> None:
        """Seed 000's ``prediction_config``: features, refit frequency ("hourly",
        "daily" or a duration), horizon ("30min") and the interval level."""
        unknown = set(config) - _PREDICTION_KEYS
        if unknown:
            raise ValueError(
                f"unknown time prediction setting(s) {sorted(unknown)}; "
                f"known: {sorted(_PREDICTION_KEYS)}"
            )
        features = frozenset(config.get("time_series_features", self.features))
        if not features or features - _FEATURES:
            raise ValueError(
                f"time_series_features must be among {sorted(_FEATURES)} (got {sorted(features)})"
            )
        frequency = config.get("model_update_frequency", self.model_update_frequency)
        frequency_s = (
            _FREQUENCIES[frequency]
            if frequency in _FREQUENCIES
            else parse_duration(frequency, "model_update_frequency")
        )
        horizon = parse_duration(
            config.get("prediction_horizon", self.prediction_horizon), "prediction_horizon"
        )
        level = config.get("confidence_threshold", self.confidence_threshold)
        if not (isinstance(level, int | float) and 0 < level < 1):
            raise ValueError(f"confidence_threshold must be in (0, 1) (got {level!r})")
        self.features = features
        self.model_update_frequency = frequency_s
        self.prediction_horizon = horizon
        self.confidence_threshold = float(level)
        self._fitted_at = -math.inf

    # History ----------------------------------------------------------------------------

    def record_load_sample(self, load: float, at: float | None = None) -> None:
        """Adds one load sample (units in flight) to the history."""
        if not (isinstance(load, int | float) and math.isfinite(load) and load >= 0):
            raise ValueError(f"load must be finite and >= 0 (got {load!r})")
        if self._expected_next is not None:
            self._forecast_errors.append(abs(load - self._expected_next) / max(load, 1.0))
            self._expected_next = None
        self.history.append(float(load))

    def _sample(self, now: float) -> None:
        while self._next_sample <= now:
            self.record_load_sample(self.pool.in_flight)
            self._next_sample += self.sample_interval

    def route_request(
        self,
        request: Mapping[str, Any],
        consider_load: bool = True,
        enable_fallback: bool | None = None,
        return_metrics: bool = False,
    ) -> RoutingResult:
        now = self._clock()
        if now >= self._next_sample:
            self._sample(now)
        return super().route_request(request, consider_load, enable_fallback, return_metrics)

    # Forecast ---------------------------------------------------------------------------

    def _new_model(self) -> Any:
        from fleetroute.forecasting import HoltWinters, LSTMForecaster, SeasonalNaive

        per_day = max(2, round(86_400 / self.sample_interval))
        if self.prediction_model == "seasonal_naive":
            return SeasonalNaive(per_day)
        if self.prediction_model == "holt_winters":
            weekly = "day_of_week" in self.features and per_day * 7 * 2 <= len(self.history)
            return HoltWinters((per_day, per_day * 7) if weekly else (per_day,))
        return LSTMForecaster(sample_interval=self.sample_interval, seed=self._seed)

    def predict_future_load(
        self, time_horizon: str | float = "1h", include_seasonal: bool = True
    ) -> LoadPrediction:
        """The fleet's load over ``time_horizon`` with a central interval at
        ``confidence_threshold``; ``include_seasonal=False`` forecasts the recent level."""
        horizon = parse_duration(time_horizon, "time_horizon")
        now = self._clock()
        if now >= self._next_sample:
            self._sample(now)
        steps = max(1, math.ceil(horizon / self.sample_interval))
        series = np.asarray(self.history, dtype=np.float64)
        level = self.confidence_threshold
        model_name = self.prediction_model if include_seasonal else "level"
        forecast = None
        if include_seasonal and series.size:
            if self._model is None or now - self._fitted_at >= self.model_update_frequency:
                candidate = self._new_model()
                try:
                    candidate.fit(series)
                except ValueError:
                    candidate = None  # not enough history for this model yet
                self._model, self._fitted_at = candidate, now
            if self._model is not None:
                try:
                    forecast = self._model.forecast(steps, level)
                except ValueError:
                    forecast = None
        if forecast is not None:
            mean = np.maximum(np.asarray(forecast.mean, dtype=np.float64), 0.0)
            lower = np.maximum(np.asarray(forecast.lower, dtype=np.float64), 0.0)
            upper = np.maximum(np.asarray(forecast.upper, dtype=np.float64), 0.0)
        else:
            model_name = "level"
            if include_seasonal:
                model_name += f" (too little history for {self.prediction_model})"
            recent = series[-24:] if series.size else np.zeros(1)
            spread = float(np.std(recent)) if recent.size > 1 else 0.0
            z = NormalDist().inv_cdf(0.5 + level / 2)
            mean = np.full(steps, float(np.mean(recent)))
            lower = np.maximum(mean - z * spread, 0.0)
            upper = mean + z * spread
        self._expected_next = float(mean[0])
        return LoadPrediction(now, self.sample_interval, mean, lower, upper, level, model_name)

    @property
    def prediction_accuracy(self) -> float | None:
        """1 - the mean absolute percentage error of the one-step forecasts checked so
        far (``RouterMonitor`` reports it); None before the first check."""
        if not self._forecast_errors:
            return None
        return max(0.0, 1.0 - float(np.mean(self._forecast_errors)))

    # Schedule ---------------------------------------------------------------------------

    def optimize_request_scheduling(
        self,
        current_requests: Sequence[DeferrableRequest | Mapping[str, Any]],
        predicted_load: LoadPrediction | None = None,
        optimization_window: str | float = "2h",
    ) -> list[ScheduledRequest]:
        """Places the requests into time slots and endpoints (entries with ``id``,
        ``scheduled_time``, ``endpoint``, ``completion_time``); those that cannot be
        placed are in ``unplaced``. The entries wait for ``dispatch_due``."""
        window = parse_duration(optimization_window, "optimization_window")
        requests = [_as_request(r) for r in current_requests]
        prediction = predicted_load or self.predict_future_load(window)
        now = self._clock()
        endpoints = [e for e in self.pool.endpoints() if self.pool.availability.is_routable(e.id)]
        if not endpoints:
            raise ValueError("no endpoint is in service to schedule on")
        total = sum(e.capacity for e in endpoints)
        slots = max(1, math.ceil(window / self.slot_seconds))
        fleet = [prediction.at(now + k * self.slot_seconds) for k in range(slots)]
        forecast = LoadForecast(
            capacity={e.id: float(e.capacity) for e in endpoints},
            load={e.id: [v * e.capacity / total for v in fleet] for e in endpoints},
            slot_s=self.slot_seconds,
        )
        result = schedule(requests, forecast, self.optimization_objective, window, now)
        self._pending = result
        self._dispatched = set()
        return list(result.scheduled)

    @property
    def unplaced(self) -> list[Any]:
        return [] if self._pending is None else list(self._pending.unplaced)

    def dispatch_due(self) -> list[tuple[ScheduledRequest, RoutingResult]]:
        """Routes every scheduled entry whose time has come onto its endpoint through
        the Rust core; each result holds load until ``complete``."""
        if self._pending is None:
            return []
        now = self._clock()
        out = []
        for entry in sorted(self._pending.scheduled, key=lambda e: e.scheduled_time):
            if entry.scheduled_time > now or entry.id in self._dispatched:
                continue
            request = self._pending.requests[entry.id]
            cost = max(1, math.ceil(request.cost_units))
            native_id = self.pool.native_id(entry.endpoint)
            priority = 1 if request.interactive else 0
            picked = self.pool.native.route(cost, priority, candidates=[native_id])
            if picked is None:
                continue  # no room after all: try again at the next call
            self.pool.in_flight += cost
            endpoint = self.pool.get(entry.endpoint)
            result = self._placed(endpoint, picked, 0, cost, self._priority(request), now)
            self._dispatched.add(entry.id)
            out.append((entry, result))
        return out

    @staticmethod
    def _priority(request: DeferrableRequest) -> Any:
        from fleetroute.admission.priority import Priority

        return Priority.HIGH if request.interactive else Priority.NORMAL

    def _on_remove(self, endpoint_id: str) -> None:
        super()._on_remove(endpoint_id)
        pending = self._pending
        if (
            self.dynamic_rebalancing
            and pending is not None
            and endpoint_id in pending.forecast.capacity
        ):
            self._pending = reschedule(pending, removed_endpoints=[endpoint_id], now=self._clock())


def _as_request(value: DeferrableRequest | Mapping[str, Any]) -> DeferrableRequest:
    if isinstance(value, DeferrableRequest):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"a request must be a DeferrableRequest or a mapping (got {value!r})")
    return DeferrableRequest(**value)
