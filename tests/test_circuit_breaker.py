"""CircuitBreaker: every state transition, on an injected ManualClock (no waiting)."""

from __future__ import annotations

import math

import pytest

from fleetroute.clock import ManualClock
from fleetroute.resilience.circuit_breaker import BreakerSnapshot, BreakerState, CircuitBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
EP = "failing-provider"


class Recorder:
    """Collects listener calls in order."""

    def __init__(self) -> None:
        self.states: list[tuple[str, BreakerState, BreakerState]] = []
        self.availability: list[tuple[str, bool]] = []
        self.events: list[tuple[object, ...]] = []

    def on_state(self, endpoint: str, old: BreakerState, new: BreakerState) -> None:
        self.states.append((endpoint, old, new))
        self.events.append(("state", endpoint, old, new))

    def on_available(self, endpoint: str, available: bool) -> None:
        self.availability.append((endpoint, available))
        self.events.append(("available", endpoint, available))


def _breaker(clock: ManualClock, **kwargs: object) -> CircuitBreaker:
    return CircuitBreaker(clock=clock, **kwargs)  # type: ignore[arg-type]


# Seed 001 -------------------------------------------------------------------------------


def test_seed_001_verbatim_with_injected_clock() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    for _ in range(3):
        breaker.record_failure("failing-provider")
    assert not breaker.is_available("failing-provider")
    clock.advance(61)
    assert breaker.is_available("failing-provider")
    assert breaker.state("failing-provider") is HALF_OPEN


def test_seed_001_positional_timeout_form() -> None:
    clock = ManualClock(1000.0)
    breaker = CircuitBreaker(5, 60, clock=clock)
    assert breaker.failure_threshold == 5
    assert breaker.recovery_timeout == 60.0
    for _ in range(4):
        breaker.record_failure(EP)
    assert breaker.is_available(EP)
    breaker.record_failure(EP)
    assert not breaker.is_available(EP)
    clock.advance(59.999)
    assert not breaker.is_available(EP)
    clock.advance(0.001)
    assert breaker.is_available(EP)
    clock.advance(1)
    assert breaker.is_available(EP)


def test_defaults() -> None:
    breaker = CircuitBreaker(clock=ManualClock())
    assert breaker.failure_threshold == 5
    assert breaker.recovery_timeout == 60.0
    assert breaker.half_open_max_calls == 1
    assert breaker.timeout_threshold is None
    assert breaker.failure_rate_threshold is None
    assert breaker.automatic_recovery is True
    assert breaker.state("never-seen") is CLOSED
    assert breaker.is_available("never-seen")
    assert breaker.try_acquire("never-seen")


def test_timeout_and_recovery_timeout_equal_is_accepted() -> None:
    breaker = CircuitBreaker(timeout=30, recovery_timeout=30, clock=ManualClock())
    assert breaker.recovery_timeout == 30.0
    assert CircuitBreaker(recovery_timeout=7.5, clock=ManualClock()).recovery_timeout == 7.5


# Closed -> open -------------------------------------------------------------------------


def test_opens_after_exactly_failure_threshold_consecutive_failures() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    breaker.record_failure(EP)
    breaker.record_failure(EP)
    assert breaker.state(EP) is CLOSED
    assert breaker.snapshot(EP).failure_count == 2
    breaker.record_failure(EP)
    assert breaker.state(EP) is OPEN
    assert breaker.open_endpoints() == frozenset({EP})


def test_success_in_between_resets_the_consecutive_count() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    for _ in range(5):
        breaker.record_failure(EP)
        breaker.record_failure(EP)
        breaker.record_success(EP)
        assert breaker.snapshot(EP).failure_count == 0
    assert breaker.state(EP) is CLOSED
    assert breaker.activations == 0
    breaker.record_failure(EP)
    breaker.record_failure(EP)
    breaker.record_failure(EP)
    assert breaker.state(EP) is OPEN


def test_breakers_are_per_endpoint() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=2, clock=clock)
    breaker.record_failure("a")
    breaker.record_failure("b")
    breaker.record_failure("a")
    assert breaker.state("a") is OPEN
    assert breaker.state("b") is CLOSED
    assert breaker.is_available("b")
    assert not breaker.try_acquire("a")
    assert breaker.try_acquire("b")
    assert breaker.open_endpoints() == frozenset({"a"})


# Open -> half-open ----------------------------------------------------------------------


def test_open_to_half_open_after_recovery_timeout_not_before() -> None:
    clock = ManualClock(50.0)
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=10, clock=clock)
    breaker.record_failure(EP)
    snap = breaker.snapshot(EP)
    assert snap.state is OPEN
    assert snap.opened_at == 50.0
    assert snap.last_failure_time == 50.0
    clock.advance(9.5)
    assert breaker.state(EP) is OPEN
    assert not breaker.try_acquire(EP)
    assert not breaker.is_available(EP)
    clock.advance(0.5)
    assert breaker.state(EP) is HALF_OPEN
    assert breaker.half_open == {EP}


def test_success_reported_while_open_does_not_close() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30, clock=clock)
    breaker.record_failure(EP)
    breaker.record_failure(EP)
    clock.advance(5)
    breaker.record_success(EP)
    breaker.record_result(EP, success=True, latency=0.01)
    assert breaker.state(EP) is OPEN
    assert not breaker.is_available(EP)
    # Nor does it move the recovery deadline: still 30 s after opening.
    clock.advance(25)
    assert breaker.state(EP) is HALF_OPEN


def test_failure_reported_while_open_does_not_extend_the_timeout() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=30, clock=clock)
    breaker.record_failure(EP)
    clock.advance(20)
    breaker.record_failure(EP)
    assert breaker.snapshot(EP).last_failure_time == 20.0
    assert breaker.snapshot(EP).activations == 1
    clock.advance(10)
    assert breaker.state(EP) is HALF_OPEN


# Half-open --------------------------------------------------------------------------------


def _half_open(clock: ManualClock, **kwargs: object) -> CircuitBreaker:
    breaker = _breaker(clock, failure_threshold=1, recovery_timeout=10, **kwargs)
    breaker.record_failure(EP)
    clock.advance(10)
    assert breaker.state(EP) is HALF_OPEN
    return breaker


def test_half_open_admits_at_most_half_open_max_calls() -> None:
    clock = ManualClock()
    breaker = _half_open(clock, half_open_max_calls=3)
    assert [breaker.try_acquire(EP) for _ in range(5)] == [True, True, True, False, False]
    assert breaker.snapshot(EP).trials_in_flight == 3
    assert not breaker.is_available(EP)


def test_is_available_takes_no_trial() -> None:
    clock = ManualClock()
    breaker = _half_open(clock)
    for _ in range(5):
        assert breaker.is_available(EP)
    assert breaker.snapshot(EP).trials_in_flight == 0
    assert breaker.try_acquire(EP)
    assert not breaker.is_available(EP)
    assert not breaker.try_acquire(EP)


def test_trial_success_closes() -> None:
    clock = ManualClock()
    breaker = _half_open(clock, half_open_max_calls=2)
    assert breaker.try_acquire(EP)
    assert breaker.try_acquire(EP)
    breaker.record_success(EP)
    snap = breaker.snapshot(EP)
    assert snap.state is CLOSED
    assert snap.failure_count == 0
    assert snap.opened_at is None
    assert snap.trials_in_flight == 0
    assert breaker.half_open == set()
    # Closed again: the full threshold (1 here) applies afresh.
    breaker.record_failure(EP)
    assert breaker.state(EP) is OPEN


def test_trial_failure_reopens_with_a_new_timeout_from_then() -> None:
    clock = ManualClock()
    breaker = _half_open(clock)  # opened at 0, half-open at 10
    assert breaker.try_acquire(EP)
    clock.advance(4)  # t = 14
    breaker.record_failure(EP)
    snap = breaker.snapshot(EP)
    assert snap.state is OPEN
    assert snap.opened_at == 14.0
    assert snap.activations == 2
    assert not breaker.try_acquire(EP)
    clock.advance(9.99)  # t = 23.99: still within 10 s of the re-opening
    assert breaker.state(EP) is OPEN
    clock.advance(0.01)
    assert breaker.state(EP) is HALF_OPEN
    assert breaker.try_acquire(EP)


def test_a_late_trial_success_after_reopening_is_ignored() -> None:
    clock = ManualClock()
    breaker = _half_open(clock, half_open_max_calls=2)
    assert breaker.try_acquire(EP)
    assert breaker.try_acquire(EP)
    breaker.record_failure(EP)
    assert breaker.state(EP) is OPEN
    breaker.record_success(EP)  # the other trial, finishing after the re-opening
    assert breaker.state(EP) is OPEN


def test_cancel_returns_a_trial_slot() -> None:
    clock = ManualClock()
    breaker = _half_open(clock, half_open_max_calls=2)
    assert breaker.try_acquire(EP)
    assert breaker.try_acquire(EP)
    assert not breaker.try_acquire(EP)
    breaker.cancel(EP)
    assert breaker.snapshot(EP).trials_in_flight == 1
    assert breaker.state(EP) is HALF_OPEN  # a cancel is neither success nor failure
    assert breaker.try_acquire(EP)
    assert not breaker.try_acquire(EP)


def test_cancel_is_a_no_op_unless_half_open_with_trials() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=10, clock=clock)
    breaker.cancel("unknown")
    breaker.cancel(EP)
    breaker.record_failure(EP)
    breaker.cancel(EP)
    assert breaker.state(EP) is OPEN
    clock.advance(10)
    breaker.cancel(EP)  # half-open, no trial taken: stays at 0
    assert breaker.snapshot(EP).trials_in_flight == 0
    assert [breaker.try_acquire(EP) for _ in range(2)] == [True, False]


# Slow calls, failure rate -----------------------------------------------------------------


def test_timeout_threshold_turns_a_slow_success_into_a_failure() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=2, timeout_threshold=1.5, clock=clock)
    breaker.record_success(EP, latency=1.5)  # at the threshold: still a success
    assert breaker.snapshot(EP).failure_count == 0
    breaker.record_success(EP, latency=1.51)
    assert breaker.snapshot(EP).failure_count == 1
    assert breaker.snapshot(EP).last_failure_time == 0.0
    breaker.record_result(EP, success=True, latency=3.0)
    assert breaker.state(EP) is OPEN


def test_slow_trial_success_reopens() -> None:
    clock = ManualClock()
    breaker = _half_open(clock, timeout_threshold=0.5)
    assert breaker.try_acquire(EP)
    breaker.record_success(EP, latency=0.6)
    assert breaker.state(EP) is OPEN


def test_latency_without_timeout_threshold_is_just_recorded() -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=ManualClock())
    breaker.record_success(EP, latency=1e6)
    assert breaker.state(EP) is CLOSED


@pytest.mark.parametrize("latency", [-0.1, math.nan, math.inf])
def test_bad_latency_is_refused(latency: float) -> None:
    breaker = CircuitBreaker(clock=ManualClock())
    with pytest.raises(ValueError, match="latency"):
        breaker.record_success(EP, latency=latency)
    assert breaker.snapshot(EP).failure_count == 0


def test_failure_rate_threshold_opens_on_rate() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(
        failure_threshold=100,
        failure_rate_threshold=0.5,
        window_size=10,
        minimum_calls=4,
        clock=clock,
    )
    # Alternating outcomes: never two failures in a row, rate 50%.
    breaker.record_failure(EP)
    breaker.record_success(EP)
    breaker.record_failure(EP)
    assert breaker.state(EP) is CLOSED  # 3 calls < minimum_calls, though 2/3 failed
    breaker.record_success(EP)  # 4 calls, 2 failures = 50%, but tripping is on a failure
    assert breaker.state(EP) is CLOSED
    breaker.record_failure(EP)  # 3/5 = 60% >= 50%
    assert breaker.state(EP) is OPEN
    assert breaker.activations == 1


def test_failure_rate_below_threshold_stays_closed() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(
        failure_threshold=100,
        failure_rate_threshold=0.5,
        window_size=10,
        minimum_calls=10,
        clock=clock,
    )
    # 4 failures in 10 (40%), repeated: the window slides, the rate stays 40%.
    pattern = [False, True, True, False, True, False, True, True, False, True]
    for _ in range(5):
        for ok in pattern:
            breaker.record_result(EP, success=ok)
    assert breaker.state(EP) is CLOSED


def test_failure_rate_window_slides_out_old_failures() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(
        failure_threshold=100,
        failure_rate_threshold=0.5,
        window_size=4,
        minimum_calls=4,
        clock=clock,
    )
    # An old failure slides out of the window of the last four calls.
    breaker.record_failure(EP)
    breaker.record_success(EP)
    breaker.record_success(EP)
    breaker.record_success(EP)  # window F S S S (25%)
    breaker.record_success(EP)  # window S S S S: the failure slid out
    breaker.record_failure(EP)  # window S S S F: 25% < 50%
    assert breaker.state(EP) is CLOSED
    breaker.record_failure(EP)  # window S S F F: 50%
    assert breaker.state(EP) is OPEN


def test_failure_rate_of_one_needs_every_call_to_fail() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(
        failure_threshold=100,
        failure_rate_threshold=1.0,
        window_size=3,
        minimum_calls=3,
        clock=clock,
    )
    breaker.record_success(EP)
    breaker.record_failure(EP)
    breaker.record_failure(EP)
    assert breaker.state(EP) is CLOSED  # S F F
    breaker.record_failure(EP)  # F F F
    assert breaker.state(EP) is OPEN


# Manual control ---------------------------------------------------------------------------


def test_automatic_recovery_false_stays_open_until_reset() -> None:
    clock = ManualClock()
    rec = Recorder()
    breaker = CircuitBreaker(
        failure_threshold=1,
        recovery_timeout=10,
        automatic_recovery=False,
        clock=clock,
        on_availability_change=rec.on_available,
    )
    breaker.record_failure(EP)
    clock.advance(10_000)
    assert breaker.state(EP) is OPEN
    assert not breaker.is_available(EP)
    assert not breaker.try_acquire(EP)
    breaker.reset(EP)
    assert breaker.state(EP) is CLOSED
    assert breaker.is_available(EP)
    assert rec.availability == [(EP, False), (EP, True)]


def test_force_open_and_reset() -> None:
    clock = ManualClock(5.0)
    rec = Recorder()
    breaker = CircuitBreaker(
        failure_threshold=5,
        recovery_timeout=20,
        clock=clock,
        on_state_change=rec.on_state,
    )
    breaker.force_open(EP)  # never seen before
    snap = breaker.snapshot(EP)
    assert snap.state is OPEN
    assert snap.opened_at == 5.0
    assert snap.activations == 1
    breaker.force_open(EP)  # already open: no second activation, no new deadline
    assert breaker.activations == 1
    clock.advance(20)
    assert breaker.state(EP) is HALF_OPEN
    breaker.force_open(EP)  # from half-open
    assert breaker.state(EP) is OPEN
    assert breaker.activations == 2
    breaker.reset(EP)
    assert breaker.state(EP) is CLOSED
    # The reset breaker must not be moved to half-open by the old deadline.
    clock.advance(100)
    assert breaker.state(EP) is CLOSED
    assert rec.states == [
        (EP, CLOSED, OPEN),
        (EP, OPEN, HALF_OPEN),
        (EP, HALF_OPEN, OPEN),
        (EP, OPEN, CLOSED),
    ]


def test_reset_while_closed_forgets_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=ManualClock())
    breaker.record_failure(EP)
    breaker.record_failure(EP)
    breaker.reset(EP)
    assert breaker.snapshot(EP).failure_count == 0
    breaker.record_failure(EP)
    breaker.record_failure(EP)
    assert breaker.state(EP) is CLOSED
    breaker.reset("unknown")  # no error, nothing created
    assert [s.endpoint_id for s in breaker.snapshots()] == [EP]


def test_forgotten_breaker_recreated_keeps_its_full_timeout() -> None:
    """A breaker dropped by forget() and opened again must not recover on the stale
    deadline its predecessor left behind."""
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=60, clock=clock)
    breaker.record_failure(EP)  # deadline 60
    clock.advance(10)
    breaker.forget(EP)
    assert breaker.state(EP) is CLOSED
    clock.advance(20)  # t = 30
    breaker.record_failure(EP)  # a new breaker, deadline 90
    clock.advance(30)  # t = 60: the old deadline
    assert breaker.state(EP) is OPEN
    clock.advance(30)  # t = 90
    assert breaker.state(EP) is HALF_OPEN


def test_forget_drops_half_open_membership() -> None:
    clock = ManualClock()
    breaker = _half_open(clock)
    assert breaker.half_open == {EP}
    breaker.forget(EP)
    assert breaker.half_open == set()
    assert breaker.snapshots() == []
    breaker.forget("never-seen")


# Counting and listeners -------------------------------------------------------------------


def test_activations_are_counted_per_endpoint_and_in_total() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1, clock=clock)
    for _ in range(3):
        breaker.record_failure("a")
        clock.advance(1)
        assert breaker.try_acquire("a")
        breaker.record_success("a")
    breaker.record_failure("b")
    assert breaker.snapshot("a").activations == 3
    assert breaker.snapshot("b").activations == 1
    assert breaker.snapshot("c").activations == 0
    assert breaker.activations == 4


def test_listener_sequence_over_a_full_cycle() -> None:
    clock = ManualClock()
    rec = Recorder()
    breaker = CircuitBreaker(
        failure_threshold=2,
        recovery_timeout=10,
        clock=clock,
        on_state_change=rec.on_state,
        on_availability_change=rec.on_available,
    )
    breaker.record_failure(EP)
    assert rec.events == []
    breaker.record_failure(EP)
    clock.advance(10)
    breaker.poll()
    assert breaker.try_acquire(EP)  # the only trial slot: stops admitting
    breaker.record_failure(EP)  # trial failed: open again (still unavailable)
    clock.advance(10)
    breaker.poll()
    assert breaker.try_acquire(EP)
    breaker.cancel(EP)  # slot back: available again
    assert breaker.try_acquire(EP)
    breaker.record_success(EP)
    assert rec.events == [
        ("state", EP, CLOSED, OPEN),
        ("available", EP, False),
        ("state", EP, OPEN, HALF_OPEN),
        ("available", EP, True),
        ("available", EP, False),
        ("state", EP, HALF_OPEN, OPEN),
        ("state", EP, OPEN, HALF_OPEN),
        ("available", EP, True),
        ("available", EP, False),
        ("available", EP, True),
        ("available", EP, False),
        ("state", EP, HALF_OPEN, CLOSED),
        ("available", EP, True),
    ]


def test_availability_with_several_trial_slots_changes_only_when_full() -> None:
    clock = ManualClock()
    rec = Recorder()
    breaker = CircuitBreaker(
        failure_threshold=1,
        recovery_timeout=5,
        half_open_max_calls=2,
        clock=clock,
    )
    breaker.add_availability_listener(rec.on_available)
    breaker.add_state_listener(rec.on_state)
    breaker.record_failure(EP)
    clock.advance(5)
    assert breaker.try_acquire(EP)  # one of two: still admitting
    assert breaker.try_acquire(EP)  # full
    breaker.record_success(EP)
    assert rec.availability == [(EP, False), (EP, True), (EP, False), (EP, True)]
    assert rec.states == [(EP, CLOSED, OPEN), (EP, OPEN, HALF_OPEN), (EP, HALF_OPEN, CLOSED)]


def test_constructor_and_added_listeners_both_called() -> None:
    clock = ManualClock()
    first, second = Recorder(), Recorder()
    breaker = CircuitBreaker(
        failure_threshold=1,
        clock=clock,
        on_state_change=first.on_state,
        on_availability_change=first.on_available,
    )
    breaker.add_state_listener(second.on_state)
    breaker.add_availability_listener(second.on_available)
    breaker.record_failure(EP)
    expected = [("state", EP, CLOSED, OPEN), ("available", EP, False)]
    assert first.events == expected
    assert second.events == expected


def test_snapshot_record() -> None:
    clock = ManualClock(3.0)
    breaker = CircuitBreaker(failure_threshold=4, clock=clock)
    breaker.record_failure(EP)
    clock.advance(2)
    breaker.record_failure(EP)
    assert breaker.snapshot(EP) == BreakerSnapshot(
        endpoint_id=EP,
        state=CLOSED,
        failure_count=2,
        opened_at=None,
        last_failure_time=5.0,
        trials_in_flight=0,
        activations=0,
    )
    assert breaker.snapshots(["x"]) == [BreakerSnapshot("x", CLOSED, 0, None, None, 0, 0)]
    assert BreakerState.HALF_OPEN.value == "half_open"


def test_many_endpoints_recover_in_deadline_order() -> None:
    clock = ManualClock()
    rec = Recorder()
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=10, clock=clock, on_state_change=rec.on_state
    )
    for i in range(5):
        breaker.record_failure(f"e{i}")
        clock.advance(1)
    # t = 5; deadlines 10..14. One poll at t = 12.5 recovers e0, e1, e2 in order.
    clock.advance(7.5)
    breaker.poll()
    recovered = [e for e, _, new in rec.states if new is HALF_OPEN]
    assert recovered == ["e0", "e1", "e2"]
    assert breaker.open_endpoints() == frozenset({"e3", "e4"})


# Validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": -1}, "failure_threshold"),
        ({"failure_threshold": 2.5}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"recovery_timeout": -1}, "recovery_timeout"),
        ({"recovery_timeout": 0}, "recovery_timeout"),
        ({"recovery_timeout": math.nan}, "recovery_timeout"),
        ({"recovery_timeout": math.inf}, "recovery_timeout"),
        ({"timeout": -5}, "timeout"),
        ({"timeout": 10, "recovery_timeout": 20}, "recovery_timeout"),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 1.01}, "failure_rate_threshold"),
        ({"failure_rate_threshold": -0.5}, "failure_rate_threshold"),
        ({"failure_rate_threshold": math.nan}, "failure_rate_threshold"),
        ({"minimum_calls": 11, "window_size": 10, "failure_rate_threshold": 0.5}, "minimum_calls"),
        ({"window_size": 0}, "window_size"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"timeout_threshold": 0}, "timeout_threshold"),
        ({"timeout_threshold": math.nan}, "timeout_threshold"),
        ({"automatic_recovery": 1}, "automatic_recovery"),
    ],
)
def test_validation_names_the_parameter(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CircuitBreaker(clock=ManualClock(), **kwargs)  # type: ignore[arg-type]


def test_timeout_and_recovery_timeout_conflict_names_both() -> None:
    with pytest.raises(ValueError, match=r"timeout=10.*recovery_timeout=20"):
        CircuitBreaker(timeout=10, recovery_timeout=20, clock=ManualClock())


def test_negative_seed_timeout_is_reported_as_timeout() -> None:
    with pytest.raises(ValueError, match=r"^timeout must be finite and > 0 \(got -5\)$"):
        CircuitBreaker(5, -5, clock=ManualClock())


def test_minimum_calls_equal_to_window_size_is_fine() -> None:
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5, window_size=5, minimum_calls=5, clock=ManualClock()
    )
    assert (breaker.window_size, breaker.minimum_calls) == (5, 5)
