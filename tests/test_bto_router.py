"""BTORouter (seed 000): forecasts from its own history, schedules deferrable work into
the predicted load, dispatches through the Rust core, reschedules on removal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fleetroute import ManualClock
from fleetroute.routers.bto_router import BTORouter
from fleetroute.scheduling import DeferrableRequest

HOUR = 3600.0


def diurnal(hours: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    return list(40 + 25 * np.sin(2 * math.pi * t / 24) + rng.normal(0, 2, hours))


def make(model: str, clock: ManualClock, **kwargs: object) -> BTORouter:
    router = BTORouter(
        optimization_objective="minimize_total_time",
        prediction_model=model,
        look_ahead_window=300,
        dynamic_rebalancing=True,
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )
    router.register_endpoints([{"id": "a", "capacity": 60}, {"id": "b", "capacity": 60}])
    return router


def test_seed_000_example_with_lstm() -> None:
    clock = ManualClock(0.0)
    bto_router = make("lstm_based", clock)
    for value in diurnal(24 * 14):
        bto_router.record_load_sample(value)
    # Configure load prediction
    prediction_config = {
        "time_series_features": [
            "historical_load",
            "time_of_day",
            "day_of_week",
            "seasonal_patterns",
        ],
        "model_update_frequency": "hourly",
        "prediction_horizon": "30min",
        "confidence_threshold": 0.8,
    }
    bto_router.configure_time_prediction(prediction_config)
    future_requests = bto_router.predict_future_load(time_horizon="1h", include_seasonal=True)
    assert future_requests.model == "lstm_based" and future_requests.level == 0.8
    assert np.all(future_requests.lower <= future_requests.mean)
    assert np.all(future_requests.mean <= future_requests.upper)
    pending_requests = [
        DeferrableRequest(f"job-{i}", size_s=600, earliest_start=0.0, deadline=2 * HOUR)
        for i in range(10)
    ]
    optimal_schedule = bto_router.optimize_request_scheduling(
        current_requests=pending_requests,
        predicted_load=future_requests,
        optimization_window="2h",
    )
    assert len(optimal_schedule) == 10
    for scheduled_request in optimal_schedule:
        assert scheduled_request.endpoint in {"a", "b"}
        assert scheduled_request.scheduled_time >= 0
        assert scheduled_request.completion_time <= 2 * HOUR


def test_holt_winters_forecast_follows_the_day() -> None:
    clock = ManualClock(0.0)
    router = make("holt_winters", clock)
    series = diurnal(24 * 21, seed=1)
    for value in series:
        router.record_load_sample(value)
    prediction = router.predict_future_load("12h")
    truth = np.array([40 + 25 * math.sin(2 * math.pi * (24 * 21 + h) / 24) for h in range(12)])
    assert prediction.model == "holt_winters"
    assert float(np.mean(np.abs(prediction.mean - truth))) < 5.0


def test_too_little_history_falls_back_to_the_level() -> None:
    router = make("holt_winters", ManualClock(0.0))
    for value in (10.0, 12.0, 11.0):
        router.record_load_sample(value)
    prediction = router.predict_future_load("2h")
    assert prediction.model.startswith("level (too little history")
    assert prediction.mean[0] == pytest.approx(11.0)


def test_history_is_sampled_on_the_request_path_and_accuracy_tracked() -> None:
    clock = ManualClock(0.0)
    router = make("seasonal_naive", clock, sample_interval="1h")
    for _ in range(5):
        router.route_request({})  # 5 units in flight
        clock.advance(HOUR)
    assert list(router.history)[-1] == 4.0  # sampled before the fifth request
    router.predict_future_load("1h")
    clock.advance(HOUR)
    router.route_request({})
    assert router.prediction_accuracy is not None


def test_due_entries_are_routed_on_their_endpoint_and_rescheduled_on_removal() -> None:
    clock = ManualClock(0.0)
    router = make("seasonal_naive", clock)
    router.record_load_sample(10.0)
    requests = [
        {"id": "now", "size_s": 60, "earliest_start": 0.0},
        {"id": "later", "size_s": 60, "earliest_start": 1800.0},
    ]
    entries = {e.id: e for e in router.optimize_request_scheduling(requests)}
    assert entries["later"].scheduled_time >= 1800.0
    due = router.dispatch_due()
    assert [entry.id for entry, _ in due] == ["now"]
    (_, result) = due[0]
    assert result.endpoint_id == entries["now"].endpoint
    assert router.pool.load(result.endpoint_id) == 1
    router.complete(result)
    moved_from = entries["later"].endpoint
    router.remove_endpoint(moved_from)
    clock.advance(1800.0)
    (entry, later) = router.dispatch_due()[0]
    assert entry.id == "later" and later.endpoint_id != moved_from
    router.complete(later)


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="optimization_objective"):
        BTORouter(optimization_objective="fastest")
    with pytest.raises(ValueError, match="prediction_model"):
        BTORouter(prediction_model="prophet")
    router = BTORouter(clock=ManualClock())
    with pytest.raises(ValueError, match="unknown time prediction setting"):
        router.configure_time_prediction({"horizon": "1h"})
    with pytest.raises(ValueError, match="confidence_threshold"):
        router.configure_time_prediction({"confidence_threshold": 1.5})
    with pytest.raises(ValueError, match="time_horizon"):
        router.predict_future_load("soon")
    with pytest.raises(ValueError, match="no endpoint"):
        router.optimize_request_scheduling([{"id": "x", "size_s": 1, "earliest_start": 0.0}])
    with pytest.raises(ValueError, match="deadline"):
        DeferrableRequest("x", size_s=100, earliest_start=50.0, deadline=60.0)
