"""Load forecasting for predictive routing (BTO-style ``prediction_model="lstm_based"``).

Three forecasters over a regularly sampled load series (e.g. requests per hour), each with
``fit(series)`` and ``forecast(h, level) -> Forecast(mean, lower, upper, level)``:

* ``SeasonalNaive`` -- the value one season ago; a baseline every model should beat.
* ``HoltWinters`` -- additive double-seasonal (daily + weekly) exponential smoothing
  (Taylor, 2003) with ETS-variance Gaussian intervals.
* ``LSTMForecaster`` -- a one-layer LSTM in plain JAX on load plus time-of-day and
  day-of-week features, with split-conformal intervals from a held-out block.
"""

from __future__ import annotations

from fleetroute.forecasting.baselines import Forecast, SeasonalNaive
from fleetroute.forecasting.holt_winters import HoltWinters
from fleetroute.forecasting.lstm import LSTMForecaster

__all__ = ["Forecast", "HoltWinters", "LSTMForecaster", "SeasonalNaive"]
