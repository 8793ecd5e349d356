"""Load forecasting: seasonal-naive, double-seasonal Holt-Winters and the JAX LSTM.

The data is a synthetic hourly load with a known generating process: a level of 100, a
daily sine (amplitude 30), a weekly sine (amplitude 10), a weekend dip of 25 and Gaussian
noise (sd 3). Training uses six weeks; accuracy is judged on the next 48 hours, interval
coverage on a further held-out week from seven daily origins (168 points).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from fleetroute.forecasting import Forecast, HoltWinters, LSTMForecaster, SeasonalNaive

TRAIN = 6 * 168
HORIZON = 48
ORIGINS = [TRAIN + 24 * d for d in range(7)]


def _series() -> NDArray[np.float64]:
    rng = np.random.default_rng(7)
    t = np.arange(TRAIN + 8 * 24 + HORIZON)
    weekend = ((t // 24) % 7) >= 5
    daily = 30 * np.sin(2 * np.pi * t / 24)
    weekly = 10 * np.sin(2 * np.pi * t / 168)
    noise = rng.normal(0.0, 3.0, t.size)
    return np.asarray(100 + daily + weekly - 25 * weekend + noise, dtype=np.float64)


SERIES = _series()


def _mape(forecast: NDArray[np.float64], actual: NDArray[np.float64]) -> float:
    return float(np.mean(np.abs(forecast - actual) / np.abs(actual)) * 100)


def _inside(f: Forecast, actual: NDArray[np.float64]) -> NDArray[np.bool_]:
    return np.asarray((actual >= f.lower) & (actual <= f.upper))


@pytest.fixture(scope="module")
def hw() -> HoltWinters:
    return HoltWinters(seasonal_periods=(24, 168)).fit(SERIES[:TRAIN])


@pytest.fixture(scope="module")
def lstm() -> LSTMForecaster:
    return LSTMForecaster(window=48, hidden=16, seed=0).fit(SERIES[:TRAIN])


def _naive_mape() -> float:
    naive = SeasonalNaive(24).fit(SERIES[:TRAIN]).forecast(HORIZON)
    return _mape(naive.mean, SERIES[TRAIN : TRAIN + HORIZON])


def test_seasonal_naive_is_value_one_season_ago() -> None:
    y = np.arange(48.0) % 24 + np.repeat([0.0, 1.0], 24)
    f = SeasonalNaive(24).fit(y).forecast(30, level=0.8)
    np.testing.assert_allclose(f.mean[:24], y[24:])
    np.testing.assert_allclose(f.mean[24:], y[24:30])
    np.testing.assert_allclose(f.upper[:24] - f.mean[:24], 1.0)  # every difference is 1
    np.testing.assert_allclose(f.upper[24:] - f.mean[24:], math.sqrt(2.0))
    assert f.level == 0.8


def test_holt_winters_beats_seasonal_naive(hw: HoltWinters) -> None:
    f = hw.forecast(HORIZON)
    hw_mape = _mape(f.mean, SERIES[TRAIN : TRAIN + HORIZON])
    assert hw_mape < 0.5 * _naive_mape()
    assert hw_mape < 5.0
    assert set(hw.params_) == {"alpha", "beta", "gamma", "omega"}


def test_lstm_beats_seasonal_naive(lstm: LSTMForecaster) -> None:
    f = lstm.forecast(HORIZON)
    lstm_mape = _mape(f.mean, SERIES[TRAIN : TRAIN + HORIZON])
    assert lstm_mape < 0.5 * _naive_mape()
    assert lstm_mape < 6.0


def test_lstm_is_reproducible(lstm: LSTMForecaster) -> None:
    again = LSTMForecaster(window=48, hidden=16, seed=0).fit(SERIES[:TRAIN])
    np.testing.assert_allclose(again.forecast(24).mean, lstm.forecast(24).mean, rtol=1e-5)


@pytest.mark.parametrize(("level", "low", "high"), [(0.8, 0.65, 0.93), (0.95, 0.85, 1.0)])
def test_holt_winters_interval_coverage(
    hw: HoltWinters, level: float, low: float, high: float
) -> None:
    hits = []
    for origin in ORIGINS:
        p = hw.params_
        model = HoltWinters((24, 168), p["alpha"], p["beta"], p["gamma"], p["omega"])
        model = model.fit(SERIES[:origin])
        f = model.forecast(24, level=level)
        hits.append(_inside(f, SERIES[origin : origin + 24]))
        assert np.all(f.upper - f.lower > 0)
    coverage = float(np.mean(np.concatenate(hits)))
    assert low <= coverage <= high, coverage


@pytest.mark.parametrize(("level", "low", "high"), [(0.8, 0.65, 0.93), (0.95, 0.85, 1.0)])
def test_lstm_interval_coverage(
    lstm: LSTMForecaster, level: float, low: float, high: float
) -> None:
    hits = []
    for origin in ORIGINS:
        f = lstm.forecast(24, level=level, recent=SERIES[TRAIN:origin])
        hits.append(_inside(f, SERIES[origin : origin + 24]))
    coverage = float(np.mean(np.concatenate(hits)))
    assert low <= coverage <= high, coverage


def test_wider_level_gives_wider_intervals(hw: HoltWinters, lstm: LSTMForecaster) -> None:
    for model in (hw, lstm):
        narrow, wide = model.forecast(24, level=0.8), model.forecast(24, level=0.95)
        assert np.all(wide.upper - wide.lower >= narrow.upper - narrow.lower)


def test_single_seasonal_holt_winters() -> None:
    model = HoltWinters(seasonal_periods=(24,), trend=False).fit(SERIES[:TRAIN])
    assert model.params_["omega"] == 0.0 and model.params_["beta"] == 0.0
    assert model.forecast(24).mean.shape == (24,)


@pytest.mark.parametrize("h", [0, -1, 1.5, True])
def test_bad_horizon(hw: HoltWinters, h: object) -> None:
    for model in (SeasonalNaive(24).fit(SERIES[:TRAIN]), hw):
        with pytest.raises(ValueError, match="h must be an integer >= 1"):
            model.forecast(h)  # type: ignore[arg-type]


def test_lstm_horizon_beyond_calibration(lstm: LSTMForecaster) -> None:
    with pytest.raises(ValueError, match="h must be <= max_horizon=48"):
        lstm.forecast(49)


@pytest.mark.parametrize("level", [0.0, 1.0, 95, math.nan, "0.9"])
def test_bad_level(hw: HoltWinters, level: object) -> None:
    with pytest.raises(ValueError, match="level must be"):
        hw.forecast(24, level=level)  # type: ignore[arg-type]


def test_too_short_series() -> None:
    with pytest.raises(ValueError, match=r"too short: need at least 336 observations \(got 300\)"):
        HoltWinters().fit(SERIES[:300])
    with pytest.raises(ValueError, match="too short"):
        SeasonalNaive(24).fit(SERIES[:47])
    with pytest.raises(ValueError, match="too short"):
        LSTMForecaster().fit(SERIES[:200])


def test_nan_in_series() -> None:
    bad = SERIES[:TRAIN].copy()
    bad[10] = math.nan
    for model in (SeasonalNaive(24), HoltWinters(), LSTMForecaster()):
        with pytest.raises(ValueError, match="1 NaN/inf value"):
            model.fit(bad)
    with pytest.raises(ValueError, match="one-dimensional"):
        SeasonalNaive(24).fit(np.ones((48, 2)))


def test_forecast_before_fit() -> None:
    for model in (SeasonalNaive(24), HoltWinters(), LSTMForecaster()):
        with pytest.raises(ValueError, match="call fit"):
            model.forecast(1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seasonal_periods": (24, 100)}, "larger multiple"),
        ({"seasonal_periods": (24, 168, 336)}, "one or two periods"),
        ({"seasonal_periods": (1,)}, ">= 2"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"alpha": 0.0}, "alpha must be > 0"),
        ({"gamma": math.nan}, r"gamma must be in \[0, 1\]"),
        ({"beta": "0.1"}, "beta must be a number"),
        ({"trend": 1}, "trend must be True or False"),
    ],
)
def test_bad_holt_winters_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HoltWinters(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window must be an integer >= 1"),
        ({"hidden": 2.5}, "hidden must be an integer >= 1"),
        ({"learning_rate": -1.0}, "learning_rate must be finite and > 0"),
        ({"calibration": 50}, "calibration must be >= max_horizon"),
        ({"sample_interval": "soon"}, "sample_interval 'soon' is not a duration"),
        ({"start_offset": -1.0}, "start_offset must be finite and >= 0"),
        ({"seed": None}, "seed must be an integer"),
    ],
)
def test_bad_lstm_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LSTMForecaster(**kwargs)  # type: ignore[arg-type]


def test_bad_season_length() -> None:
    with pytest.raises(ValueError, match="season_length must be an integer >= 1"):
        SeasonalNaive(0)
