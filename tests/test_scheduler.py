"""BTO scheduler: capacity, deadlines and earliest starts hold on seeded random
instances; interactive requests are not deferred; each objective moves the schedule in
its direction; comparison with dispatch-on-arrival; rescheduling; input validation."""

from __future__ import annotations

import random

import pytest

from fleetroute.scheduling import (
    OBJECTIVES,
    DeferrableRequest,
    LoadForecast,
    ScheduledRequest,
    ScheduleResult,
    dispatch_on_arrival,
    optimize_request_scheduling,
    reschedule,
    schedule,
)

SLOT = 60.0
EPS = 1e-6


def random_instance(
    seed: int, n: int = 20, deadlines: bool = True
) -> tuple[list[DeferrableRequest], LoadForecast]:
    rng = random.Random(seed)
    capacity = {f"e{i}": float(rng.choice([3, 4, 6])) for i in range(3)}
    load = {e: [rng.uniform(0, c * 0.6) for _ in range(120)] for e, c in capacity.items()}
    price = [rng.uniform(0.5, 2.0) for _ in range(120)]
    requests = []
    for i in range(n):
        size = float(rng.choice([20, 45, 60, 90, 150, 300]))
        start = float(rng.choice([0, 0, 30, 60, 200, 600]))
        deadline = start + size + rng.uniform(0, 1800) if deadlines and rng.random() < 0.4 else None
        requests.append(
            DeferrableRequest(
                f"r{i}",
                size,
                start,
                deadline=deadline,
                cost_units=rng.choice([1, 1, 2]),
                interactive=rng.random() < 0.15,
            )
        )
    return requests, LoadForecast(capacity, load, SLOT, price=price)


def check_capacity(result: ScheduleResult) -> None:
    """Background load + scheduled units <= capacity at every slot and every instant."""
    fc = result.forecast
    by_endpoint: dict[str, list[ScheduledRequest]] = {}
    for s in result.scheduled:
        by_endpoint.setdefault(s.endpoint, []).append(s)
    for endpoint, placed in by_endpoint.items():
        points = sorted({s.scheduled_time for s in placed})
        for t in points:
            slot = int((t - result.now) // fc.slot_s)
            running = sum(
                float(result.requests[s.id].cost_units)
                for s in placed
                if s.scheduled_time <= t + EPS and s.completion_time > t + EPS
            )
            assert fc.load_at(endpoint, slot) + running <= fc.capacity[endpoint] + EPS
        # slot boundaries: work carried into a slot meets that slot's load
        end = max(s.completion_time for s in placed)
        k = 0
        while result.now + k * fc.slot_s < end:
            t = result.now + k * fc.slot_s
            running = sum(
                float(result.requests[s.id].cost_units)
                for s in placed
                if s.scheduled_time <= t + EPS and s.completion_time > t + EPS
            )
            assert fc.load_at(endpoint, k) + running <= fc.capacity[endpoint] + EPS
            k += 1


def check_times(result: ScheduleResult) -> None:
    for s in result.scheduled:
        r = result.requests[s.id]
        assert s.scheduled_time >= max(r.earliest_start, result.now) - EPS
        assert s.completion_time == pytest.approx(s.scheduled_time + r.size_s)
        assert s.completion_time <= result.window_end + EPS
        if r.deadline is not None:
            assert s.completion_time <= r.deadline + EPS
        if r.interactive:
            assert s.scheduled_time == pytest.approx(max(r.earliest_start, result.now))


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("seed", range(12))
def test_random_instances_respect_capacity_deadlines_and_starts(seed: int, objective: str) -> None:
    requests, forecast = random_instance(seed)
    result = schedule(requests, forecast, objective, window="2h")
    check_capacity(result)
    check_times(result)
    ids = [s.id for s in result.scheduled] + [u.id for u in result.unplaced]
    assert sorted(ids) == sorted(r.id for r in requests)
    assert all(u.reason for u in result.unplaced)


def test_seed_000_entry_point() -> None:
    requests, forecast = random_instance(0, n=8, deadlines=False)
    entries = optimize_request_scheduling(requests, forecast, optimization_window="2h")
    assert len(entries) == 8
    for entry in entries:
        assert set(entry) == {"id", "scheduled_time", "endpoint", "completion_time"}
        assert entry["endpoint"] in forecast.capacity


def test_interactive_is_never_deferred_and_reported_when_no_room() -> None:
    forecast = LoadForecast({"a": 2.0}, {"a": [0.0]}, SLOT)
    batch = [DeferrableRequest(f"b{i}", 120.0, 0.0) for i in range(2)]
    chat = DeferrableRequest("chat", 10.0, 30.0, interactive=True)
    result = schedule([*batch, chat], forecast)
    placed = {s.id: s for s in result.scheduled}
    assert placed["chat"].scheduled_time == 30.0  # interactive first, batch waits
    assert any(s.scheduled_time >= 40.0 for s in result.scheduled if s.id != "chat")
    full = LoadForecast({"a": 2.0}, {"a": [2.0]}, SLOT)
    blocked = schedule([chat], full)
    assert [u.id for u in blocked.unplaced] == ["chat"]
    assert "earliest start" in blocked.unplaced[0].reason


def test_deferrable_waits_for_a_slot_with_room() -> None:
    forecast = LoadForecast({"a": 4.0}, {"a": [4.0, 4.0, 1.0]}, SLOT)
    result = schedule([DeferrableRequest("r", 30.0, 0.0, cost_units=2)], forecast)
    assert result.scheduled[0].scheduled_time == pytest.approx(120.0)


def test_unmeetable_deadline_is_reported() -> None:
    forecast = LoadForecast({"a": 1.0}, {"a": [1.0, 1.0, 0.0]}, SLOT)
    r = DeferrableRequest("late", 30.0, 0.0, deadline=90.0)
    result = schedule([r], forecast)
    assert result.scheduled == ()
    assert result.unplaced[0].id == "late"
    assert "deadline" in result.unplaced[0].reason


def test_minimize_peak_lowers_the_peak() -> None:
    for seed in range(6):
        requests, forecast = random_instance(seed, n=20, deadlines=False)
        fast = schedule(requests, forecast, "minimize_total_time")
        flat = schedule(requests, forecast, "minimize_peak")
        assert {u.id for u in flat.unplaced} == {u.id for u in fast.unplaced}
        assert flat.peak_utilization() < fast.peak_utilization()


def test_minimize_cost_uses_cheaper_slots() -> None:
    price = [5.0] * 10 + [1.0] * 10 + [5.0] * 100
    forecast = LoadForecast({"a": 4.0}, {"a": [0.0]}, SLOT, price=price)
    requests = [DeferrableRequest(f"r{i}", 60.0, 0.0) for i in range(4)]
    fast = schedule(requests, forecast, "minimize_total_time")
    cheap = schedule(requests, forecast, "minimize_cost")
    assert all(s.scheduled_time == 0.0 for s in fast.scheduled)
    assert all(600.0 <= s.scheduled_time < 1200.0 for s in cheap.scheduled)
    assert cheap.total_cost == pytest.approx(4.0)
    assert fast.total_cost == pytest.approx(20.0)
    for seed in range(6):
        reqs, fc = random_instance(seed, deadlines=False)
        assert schedule(reqs, fc, "minimize_cost").total_cost < schedule(reqs, fc).total_cost


def test_spt_order_on_one_endpoint() -> None:
    forecast = LoadForecast({"a": 1.0}, {"a": [0.0]}, SLOT)
    requests = [DeferrableRequest(f"r{s}", float(s), 0.0) for s in (300, 60, 120)]
    result = schedule(requests, forecast)
    assert [s.id for s in result.scheduled] == ["r60", "r120", "r300"]
    assert result.total_completion_time == pytest.approx(60 + 180 + 480)


def burst_instance(seed: int) -> tuple[list[DeferrableRequest], LoadForecast]:
    rng = random.Random(1000 + seed)
    capacity = {"a": 4.0, "b": 4.0}
    load = {e: [rng.uniform(0.0, 1.0) for _ in range(120)] for e in capacity}
    requests = [
        DeferrableRequest(f"r{i}", float(rng.choice([60, 120, 180, 600])), 0.0) for i in range(24)
    ]
    return requests, LoadForecast(capacity, load, SLOT)


@pytest.mark.parametrize("seed", range(8))
def test_total_completion_time_beats_overloaded_dispatch_on_arrival(seed: int) -> None:
    requests, forecast = burst_instance(seed)
    arrival = dispatch_on_arrival(requests, forecast)
    sizes = {r.id: r.size_s for r in requests}
    # arrival dispatch overloads: some request takes longer than its service time
    assert any(s.completion_time - s.scheduled_time > sizes[s.id] + 1.0 for s in arrival)
    planned = schedule(requests, forecast, "minimize_total_time")
    assert planned.unplaced == ()
    check_capacity(planned)
    assert planned.total_completion_time <= sum(s.completion_time for s in arrival)


def test_dispatch_on_arrival_without_overload_is_immediate() -> None:
    forecast = LoadForecast({"a": 10.0}, {"a": [0.0]}, SLOT)
    requests = [DeferrableRequest(f"r{i}", 30.0, 10.0 * i) for i in range(3)]
    for s in dispatch_on_arrival(requests, forecast):
        assert s.completion_time == pytest.approx(s.scheduled_time + 30.0)


def test_reschedule_moves_requests_off_a_removed_endpoint() -> None:
    for seed in range(5):
        requests, forecast = random_instance(seed, deadlines=False)
        before = schedule(requests, forecast)
        victim = max(forecast.capacity, key=lambda e: sum(s.endpoint == e for s in before))
        after = reschedule(before, removed_endpoints=[victim])
        assert all(s.endpoint != victim for s in after.scheduled)
        old = {s.id: s for s in before.scheduled}
        for s in after.scheduled:
            if s.id in old and old[s.id].endpoint != victim:
                assert s == old[s.id]  # survivors stay put
        check_capacity(after)
        check_times(after)
        ids = [s.id for s in after.scheduled] + [u.id for u in after.unplaced]
        assert sorted(ids) == sorted(r.id for r in requests)


def test_reschedule_reports_started_requests_on_removed_endpoint() -> None:
    forecast = LoadForecast({"a": 1.0, "b": 1.0}, {"a": [0.0], "b": [0.0]}, SLOT)
    before = schedule([DeferrableRequest("x", 100.0, 0.0)], forecast)
    gone = before.scheduled[0].endpoint
    after = reschedule(before, removed_endpoints=[gone], now=50.0)
    assert after.scheduled == ()
    assert "removed endpoint" in after.unplaced[0].reason
    with pytest.raises(ValueError, match="unknown endpoints"):
        reschedule(before, removed_endpoints=["zzz"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"deadline": 5.0}, "'bad'.*deadline"),
        ({"size_s": -1.0}, "size_s"),
        ({"cost_units": 0}, "cost_units"),
        ({"earliest_start": float("nan")}, "earliest_start"),
    ],
)
def test_bad_requests(kwargs: dict[str, float], match: str) -> None:
    args: dict[str, object] = {"id": "bad", "size_s": 10.0, "earliest_start": 0.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        DeferrableRequest(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"objective": "fastest"}, "objective"),
        ({"window": 0}, "window"),
        ({"window": -5}, "window"),
        ({"window": "1 hour later"}, "window"),
    ],
)
def test_bad_schedule_arguments(kwargs: dict[str, object], match: str) -> None:
    forecast = LoadForecast({"a": 1.0}, {"a": [0.0]}, SLOT)
    with pytest.raises(ValueError, match=match):
        schedule([DeferrableRequest("r", 1.0, 0.0)], forecast, **kwargs)  # type: ignore[arg-type]


def test_bad_forecasts_and_duplicates() -> None:
    with pytest.raises(ValueError, match="capacity"):
        LoadForecast({"a": 0.0}, {"a": [0.0]})
    with pytest.raises(ValueError, match="without a capacity"):
        LoadForecast({"a": 1.0}, {"b": [0.0]})
    with pytest.raises(ValueError, match="load"):
        LoadForecast({"a": 1.0}, {"a": [-1.0]})
    forecast = LoadForecast({"a": 1.0}, {"a": [0.0]})
    with pytest.raises(ValueError, match="duplicate"):
        schedule([DeferrableRequest("r", 1.0, 0.0)] * 2, forecast)
