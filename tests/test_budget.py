"""Budgets with pacing (seed 004's ``budget``): estimate then settle, all-or-nothing
reservations, the hard cut-off, windows, the pressure signal and a simulated month."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from fleetroute.clock import ManualClock
from fleetroute.scoring.budget import (
    NAMED_WINDOWS,
    Budget,
    BudgetExceeded,
    BudgetManager,
    Pricing,
    Reservation,
)

DAY = 86_400.0
MONTH = 30 * DAY

# Seed 004: COST_OPTIMIZATION_BUDGET_LIMIT=1000.
SEED_004_LIMIT = 1000.0

EXPENSIVE = Pricing(input_per_1k=0.03, output_per_1k=0.06)
CHEAP = Pricing(input_per_1k=0.0005, output_per_1k=0.0015)


def _budget(limit: float = 100.0, window: str | float = "day", name: str = "budget") -> Budget:
    return Budget(limit, window, clock=ManualClock(0.0), name=name)


# Pricing -------------------------------------------------------------------------------


def test_estimate_is_the_worst_case_and_cost_the_real_usage() -> None:
    assert EXPENSIVE.estimate(1000, 500) == pytest.approx(0.03 + 0.03)
    assert EXPENSIVE.cost(1000, 120) == pytest.approx(0.03 + 0.0072)
    assert EXPENSIVE.cost(1000, 0) == pytest.approx(0.03)
    assert EXPENSIVE.cost(0, 0) == 0.0
    # Whatever was generated, up to max_tokens, costs no more than the estimate.
    assert all(EXPENSIVE.cost(700, out) <= EXPENSIVE.estimate(700, 400) for out in range(401))


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ((-0.01, 0.02), "input_per_1k"),
        ((0.01, math.nan), "output_per_1k"),
        ((math.inf, 0.02), "input_per_1k"),
        (("0.01", 0.02), "input_per_1k"),
    ],
)
def test_pricing_refuses_bad_prices(prices: tuple[object, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pricing(*prices)  # type: ignore[arg-type]


@pytest.mark.parametrize("tokens", [-1, 1.5, True, None])
def test_pricing_refuses_bad_token_counts(tokens: object) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        EXPENSIVE.estimate(10, tokens)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_tokens"):
        EXPENSIVE.cost(tokens, 10)  # type: ignore[arg-type]


# Reserve, settle, release --------------------------------------------------------------


def test_reserve_holds_the_estimate_and_settle_replaces_it_by_the_real_cost() -> None:
    budget = _budget(10.0)
    estimate = EXPENSIVE.estimate(1000, 500)
    reservation = budget.reserve(estimate)
    assert reservation.open
    assert reservation.amount == estimate
    assert reservation.budget is budget
    assert budget.spent == 0.0
    assert budget.reserved == pytest.approx(estimate)
    assert budget.remaining == pytest.approx(10.0 - estimate)

    actual = EXPENSIVE.cost(1000, 120)
    budget.settle(reservation, actual)
    assert reservation.state == "settled"
    assert not reservation.open
    assert budget.spent == pytest.approx(actual)
    assert budget.reserved == 0.0
    assert budget.remaining == pytest.approx(10.0 - actual)


def test_a_call_costing_more_than_its_estimate_is_recorded_past_the_limit() -> None:
    budget = _budget(1.0)
    reservation = budget.reserve(0.9)
    budget.settle(reservation, 1.5)
    assert budget.spent == 1.5
    assert budget.remaining == 0.0
    assert not budget.can_afford(0.0001)
    assert budget.pressure() == 1.0


def test_release_gives_the_money_back() -> None:
    budget = _budget(1.0)
    reservation = budget.reserve(0.75)
    assert not budget.can_afford(0.5)
    budget.release(reservation)
    assert reservation.state == "released"
    assert (budget.spent, budget.reserved, budget.remaining) == (0.0, 0.0, 1.0)
    assert budget.can_afford(1.0)


def test_many_open_reservations_leave_no_float_residue() -> None:
    budget = _budget(100.0)
    held = [budget.reserve(0.1) for _ in range(30)]
    for reservation in held:
        budget.release(reservation)
    assert budget.reserved == 0.0


# Hard cut-off --------------------------------------------------------------------------


def test_reserving_past_the_limit_is_refused_and_changes_nothing() -> None:
    budget = _budget(1.0, name="team budget")
    budget.reserve(0.6)
    assert budget.can_afford(0.4)
    assert not budget.can_afford(0.41)
    with pytest.raises(BudgetExceeded) as refused:
        budget.reserve(0.5)
    assert isinstance(refused.value, RuntimeError)
    assert (refused.value.budget, refused.value.needed) == ("team budget", 0.5)
    assert refused.value.remaining == pytest.approx(0.4)
    assert "team budget" in str(refused.value)
    assert budget.reserved == pytest.approx(0.6)


def test_reservations_may_exactly_meet_the_limit() -> None:
    budget = _budget(1.0)
    held = [budget.reserve(0.1) for _ in range(10)]  # the float sum is 0.9999999999999999
    with pytest.raises(BudgetExceeded):
        budget.reserve(0.001)
    for reservation in held:
        budget.settle(reservation, 0.1)
    assert budget.remaining == pytest.approx(0.0, abs=1e-12)


def test_budget_exceeded_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(BudgetExceeded("global budget", 2.0, 0.5)))
    assert (error.budget, error.needed, error.remaining) == ("global budget", 2.0, 0.5)


# Windows -------------------------------------------------------------------------------


def test_spend_resets_when_a_day_ends() -> None:
    clock = ManualClock(1_000.0)
    budget = Budget(10.0, "day", clock=clock)
    budget.settle(budget.reserve(8.0), 8.0)
    clock.advance(DAY - 1)
    assert budget.spent == 8.0
    assert not budget.can_afford(3.0)
    clock.advance(1)
    assert budget.spent == 0.0
    assert budget.window_start == 1_000.0 + DAY
    assert budget.can_afford(10.0)


def test_a_month_is_thirty_days_and_skipped_windows_reset_once() -> None:
    clock = ManualClock(0.0)
    budget = Budget(SEED_004_LIMIT, "month", clock=clock)
    assert budget.window_seconds == MONTH == NAMED_WINDOWS["month"]
    budget.settle(budget.reserve(900.0), 900.0)
    clock.advance(29 * DAY)
    assert budget.spent == 900.0
    clock.advance(DAY)
    assert budget.spent == 0.0
    budget.settle(budget.reserve(10.0), 10.0)
    clock.advance(3 * MONTH + 5)
    assert budget.spent == 0.0
    assert budget.window_start == 4 * MONTH


def test_windows_follow_an_explicit_start() -> None:
    clock = ManualClock(500.0)
    budget = Budget(5.0, "1h", clock=clock, start=0.0)
    budget.settle(budget.reserve(5.0), 5.0)
    clock.advance(3_100.0)  # 3600: the window that began at 0 ends
    assert budget.spent == 0.0
    assert budget.window_start == 3_600.0


@pytest.mark.parametrize(
    ("window", "seconds"),
    [("day", DAY), ("week", 7 * DAY), ("Month", MONTH), ("12h", 43_200.0), (90, 90.0)],
)
def test_window_names_and_durations(window: str | float, seconds: float) -> None:
    assert _budget(window=window).window_seconds == seconds


def test_open_reservations_carry_over_and_settle_into_the_new_window() -> None:
    clock = ManualClock(0.0)
    budget = Budget(10.0, "day", clock=clock)
    budget.settle(budget.reserve(4.0), 4.0)
    in_flight = budget.reserve(3.0)
    clock.advance(DAY + 60)
    assert (budget.spent, budget.reserved) == (0.0, 3.0)
    assert budget.remaining == 7.0
    budget.settle(in_flight, 2.5)
    assert (budget.spent, budget.reserved) == (2.5, 0.0)


def test_a_clock_stepping_back_stays_in_the_newest_window() -> None:
    now = [0.0]
    budget = Budget(10.0, "day", clock=lambda: now[0])
    now[0] = DAY + 10
    budget.settle(budget.reserve(4.0), 4.0)
    now[0] = DAY - 10
    assert budget.spent == 4.0
    assert budget.pressure() == 1.0  # 40% used with the window just begun


# Pressure ------------------------------------------------------------------------------


def _at(elapsed_fraction: float, used_fraction: float, band: float = 0.2) -> float:
    """The pressure of a 100-dollar daily budget with these shares used and elapsed."""
    clock = ManualClock(0.0)
    budget = Budget(100.0, "day", clock=clock, pacing_band=band)
    clock.advance(elapsed_fraction * DAY)
    if used_fraction:
        budget.settle(budget.reserve(min(used_fraction, 1.0) * 100.0), used_fraction * 100.0)
    return budget.pressure()


@pytest.mark.parametrize("elapsed", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_pressure_is_zero_on_or_under_the_even_pace(elapsed: float) -> None:
    assert _at(elapsed, 0.0) == 0.0
    assert _at(elapsed, elapsed / 2) == 0.0
    assert _at(elapsed, elapsed) == 0.0


@pytest.mark.parametrize("elapsed", [0.0, 0.3, 0.7, 0.99])
def test_pressure_is_one_at_and_over_the_limit(elapsed: float) -> None:
    assert _at(elapsed, 1.0) == 1.0
    assert _at(elapsed, 1.3) == 1.0
    assert _at(elapsed, 1.0, band=1.0) == 1.0


def test_pressure_rises_as_spend_runs_ahead_of_the_pace() -> None:
    # Half the day gone: the rest of the budget must stretch over the other half.
    # 55% used: 45% left for 50% of the day, a shortfall of 10%, half the 0.2 band.
    assert _at(0.5, 0.55) == pytest.approx(0.5)
    assert _at(0.5, 0.52) == pytest.approx(0.2)
    assert _at(0.5, 0.6) == pytest.approx(1.0)
    # With the widest band, pressure is the plain ratio (u - t) / (1 - t).
    assert _at(0.5, 0.75, band=1.0) == pytest.approx(0.5)
    # The same overspend weighs more as the window runs out.
    assert _at(0.2, 0.25) < _at(0.6, 0.65) < _at(0.9, 0.95)


@pytest.mark.parametrize("band", [0.05, 0.2, 1.0])
@pytest.mark.parametrize("elapsed", [0.0, 0.25, 0.5, 0.8, 0.95])
def test_pressure_is_monotone_in_spend_and_in_unit_range(band: float, elapsed: float) -> None:
    pressures = [_at(elapsed, used / 50, band) for used in range(0, 61)]
    assert all(0.0 <= p <= 1.0 for p in pressures)
    assert pressures == sorted(pressures)
    assert pressures[0] == 0.0
    assert pressures[-1] == 1.0


def test_open_reservations_count_toward_pressure_and_a_new_window_relieves_it() -> None:
    clock = ManualClock(0.0)
    budget = Budget(100.0, "day", clock=clock)
    clock.advance(DAY / 2)
    held = budget.reserve(55.0)
    assert budget.pressure() == pytest.approx(0.5)
    budget.release(held)
    assert budget.pressure() == 0.0
    budget.settle(budget.reserve(90.0), 90.0)
    assert budget.pressure() == 1.0
    clock.advance(DAY / 2)
    assert budget.pressure() == 0.0


def test_snapshot_reads_the_whole_state() -> None:
    clock = ManualClock(0.0)
    budget = Budget(100.0, "day", clock=clock)
    clock.advance(DAY / 4)
    budget.settle(budget.reserve(30.0), 20.0)
    budget.reserve(10.0)
    assert budget.snapshot() == {
        "limit": 100.0,
        "window_seconds": DAY,
        "window_start": 0.0,
        "elapsed_fraction": 0.25,
        "spent": 20.0,
        "reserved": 10.0,
        "remaining": 70.0,
        "used_fraction": 0.3,
        # 70% left for 75% of the day: spending must slow by 1/15, a third of the band.
        "pressure": pytest.approx(1 / 3),
    }


# BudgetManager -------------------------------------------------------------------------


def _manager() -> tuple[ManualClock, BudgetManager]:
    clock = ManualClock(0.0)
    manager = BudgetManager(clock=clock)
    manager.set_global(SEED_004_LIMIT)
    manager.set_tenant("acme", 10.0)
    manager.set_provider("gpt-4", 5.0)
    return clock, manager


def _reserved(manager: BudgetManager) -> dict[str, float]:
    return {name: snap["reserved"] for name, snap in manager.snapshot().items()}


def test_check_names_the_budget_that_refuses() -> None:
    _, manager = _manager()
    assert manager.check("gpt-4", "acme", 4.0) is None
    assert manager.check("gpt-4", "acme", 6.0) == "provider 'gpt-4' budget"
    assert manager.check("claude", "acme", 11.0) == "tenant 'acme' budget"
    assert manager.check("claude", None, 11.0) is None
    assert manager.check("claude", "other", 1001.0) == "global budget"
    assert manager.check("gpt-4", "acme", 0.02, request_budget=0.01) == (
        "request budget 0.01 < estimate 0.02"
    )
    assert manager.check("gpt-4", "acme", 0.01, request_budget=0.01) is None
    assert _reserved(manager) == dict.fromkeys(_reserved(manager), 0.0)


def test_reserve_is_all_or_nothing_across_global_tenant_and_provider() -> None:
    _, manager = _manager()
    first = manager.reserve("gpt-4", "acme", 4.0)
    assert first.budgets == ("global budget", "tenant 'acme' budget", "provider 'gpt-4' budget")
    before = _reserved(manager)
    # The provider has 1.0 left: the global and tenant budgets, asked first, give theirs back.
    with pytest.raises(BudgetExceeded) as refused:
        manager.reserve("gpt-4", "acme", 2.0)
    assert refused.value.budget == "provider 'gpt-4' budget"
    assert refused.value.remaining == pytest.approx(1.0)
    assert _reserved(manager) == before
    # The tenant refuses after the global budget reserved: released as well.
    with pytest.raises(BudgetExceeded, match="tenant 'acme' budget"):
        manager.reserve("claude", "acme", 7.0)
    assert _reserved(manager) == before
    with pytest.raises(BudgetExceeded) as capped:
        manager.reserve("claude", "acme", 0.5, request_budget=0.25)
    assert (capped.value.budget, capped.value.needed, capped.value.remaining) == (
        "request budget",
        0.5,
        0.25,
    )
    assert _reserved(manager) == before


def test_manager_settle_charges_every_budget_and_release_none() -> None:
    _, manager = _manager()
    call = manager.reserve("gpt-4", "acme", 3.0)
    manager.settle(call, 1.25)
    assert call.state == "settled"
    assert all(r.state == "settled" for r in call.items)
    spent = {name: snap["spent"] for name, snap in manager.snapshot().items()}
    assert spent == {
        "global budget": 1.25,
        "tenant 'acme' budget": 1.25,
        "provider 'gpt-4' budget": 1.25,
    }
    dropped = manager.reserve("gpt-4", "acme", 3.0)
    manager.release(dropped)
    assert _reserved(manager) == dict.fromkeys(spent, 0.0)
    provider = manager.provider_budget("gpt-4")
    assert provider is not None
    assert provider.spent == 1.25


def test_a_call_with_no_applicable_budget_reserves_nothing() -> None:
    manager = BudgetManager(clock=ManualClock(0.0))
    call = manager.reserve("gpt-4", "acme", 123.0)
    assert call.items == ()
    manager.settle(call, 99.0)
    with pytest.raises(ValueError, match="already settled"):
        manager.settle(call, 99.0)
    assert manager.pressure("gpt-4", "acme") == 0.0
    assert manager.check("gpt-4", "acme", 1e9) is None


def test_manager_pressure_is_the_highest_applicable_one() -> None:
    clock, manager = _manager()
    clock.advance(MONTH / 2)
    manager.settle(manager.reserve("gpt-4", "acme", 2.75), 2.75)  # provider: 55% at 50%
    assert manager.pressure() == 0.0  # the global budget alone is far under pace
    assert manager.pressure(tenant="acme") == 0.0
    assert manager.pressure("gpt-4") == pytest.approx(0.5)
    assert manager.pressure("gpt-4", "acme") == pytest.approx(0.5)
    manager.settle(manager.reserve("claude", "acme", 6.0), 6.0)  # tenant: 87.5%
    assert manager.pressure("claude", "acme") == 1.0
    assert manager.pressure("claude", "other") == 0.0


def test_setting_a_budget_again_replaces_it() -> None:
    _, manager = _manager()
    call = manager.reserve("gpt-4", "acme", 4.0)
    old = manager.tenant_budget("acme")
    new = manager.set_tenant("acme", 20.0, "week")
    assert manager.tenant_budget("acme") is new is not old
    assert (new.limit, new.window_seconds, new.reserved) == (20.0, 7 * DAY, 0.0)
    manager.settle(call, 4.0)  # the old budget's reservation settles against it
    assert old is not None
    assert (old.spent, new.spent) == (4.0, 0.0)


# Validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [-1.0, 0.0, math.nan, math.inf, True, "10"])
def test_budget_refuses_bad_limits(limit: object) -> None:
    with pytest.raises(ValueError, match="limit"):
        Budget(limit, clock=ManualClock(0.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        BudgetManager(clock=ManualClock(0.0)).set_tenant("acme", limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("window", ["fortnight", "month ly", "", "-1d", 0, -5.0, math.nan])
def test_budget_refuses_unknown_windows(window: str | float) -> None:
    with pytest.raises(ValueError, match="window"):
        Budget(1.0, window, clock=ManualClock(0.0))


@pytest.mark.parametrize("band", [0.0, -0.1, 1.5, math.nan])
def test_budget_refuses_bad_pacing_bands(band: float) -> None:
    with pytest.raises(ValueError, match="pacing_band"):
        Budget(1.0, clock=ManualClock(0.0), pacing_band=band)
    with pytest.raises(ValueError, match="pacing_band"):
        BudgetManager(clock=ManualClock(0.0), pacing_band=band)


def test_budget_refuses_bad_starts_and_names() -> None:
    with pytest.raises(ValueError, match="start"):
        Budget(1.0, clock=ManualClock(0.0), start=math.nan)
    with pytest.raises(ValueError, match="name"):
        Budget(1.0, clock=ManualClock(0.0), name="")
    with pytest.raises(ValueError, match="tenant"):
        BudgetManager(clock=ManualClock(0.0)).set_tenant("", 1.0)
    with pytest.raises(ValueError, match="provider"):
        BudgetManager(clock=ManualClock(0.0)).check(None, None, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", [-0.01, math.nan, math.inf, None])
def test_bad_amounts_are_refused_and_change_nothing(amount: object) -> None:
    budget = _budget(10.0)
    reservation = budget.reserve(2.0)
    with pytest.raises(ValueError, match="amount"):
        budget.reserve(amount)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amount"):
        budget.can_afford(amount)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="actual"):
        budget.settle(reservation, amount)  # type: ignore[arg-type]
    assert reservation.open
    assert (budget.spent, budget.reserved) == (0.0, 2.0)
    budget.settle(reservation, 1.0)
    assert budget.spent == 1.0

    _, manager = _manager()
    call = manager.reserve("gpt-4", "acme", 1.0)
    with pytest.raises(ValueError, match="estimate"):
        manager.reserve("gpt-4", "acme", amount)  # type: ignore[arg-type]
    if amount is not None:  # None is no cap, not a bad one
        with pytest.raises(ValueError, match="request_budget"):
            manager.check("gpt-4", "acme", 1.0, request_budget=amount)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="request_budget"):
            manager.reserve("gpt-4", "acme", 1.0, request_budget=amount)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="actual"):
        manager.settle(call, amount)  # type: ignore[arg-type]
    assert call.open
    assert all(r.open for r in call.items)


def test_a_reservation_is_closed_once_and_only_by_its_own_budget() -> None:
    budget, other = _budget(10.0), _budget(10.0)
    reservation = budget.reserve(1.0)
    with pytest.raises(ValueError, match="belongs to"):
        other.settle(reservation, 1.0)
    with pytest.raises(ValueError, match="belongs to"):
        other.release(reservation)
    assert other.spent == 0.0
    assert reservation.open
    budget.settle(reservation, 1.0)
    with pytest.raises(ValueError, match="already settled"):
        budget.settle(reservation, 1.0)
    with pytest.raises(ValueError, match="already settled"):
        budget.release(reservation)
    assert (budget.spent, budget.reserved) == (1.0, 0.0)
    with pytest.raises(ValueError, match="Reservation"):
        budget.settle("not a reservation", 1.0)  # type: ignore[arg-type]


def test_manager_reservations_are_closed_once_and_only_by_their_manager() -> None:
    _, manager = _manager()
    _, other = _manager()
    call = manager.reserve("gpt-4", "acme", 1.0)
    with pytest.raises(ValueError, match="another BudgetManager"):
        other.settle(call, 1.0)
    # One of its reservations closed behind the manager's back: nothing else changes.
    item: Reservation = call.items[1]
    item.budget.release(item)
    with pytest.raises(ValueError, match="already released"):
        manager.settle(call, 1.0)
    assert call.open
    assert call.items[0].open
    assert manager.global_budget is not None
    assert manager.global_budget.spent == 0.0
    with pytest.raises(ValueError, match="already released"):
        manager.release(call)


# A simulated month ---------------------------------------------------------------------


def _simulate_month(paced: bool) -> tuple[float | None, int, float, float]:
    """A month of requests, one every two minutes, each routed to an expensive or a
    cheap model under seed 004's 1000-dollar global budget. Paced, the expensive model
    is chosen with probability 1 - pressure; unpaced, always. A request the expensive
    model cannot afford falls back to the cheap one; one neither can afford is refused.

    Returns the day the expensive model was first refused (None if never), the number
    of requests refused outright, the share that went to the expensive model and the
    spend just before the month ended."""
    clock = ManualClock(0.0)
    manager = BudgetManager(clock=clock)
    manager.set_global(SEED_004_LIMIT, "month")
    rng = random.Random(4)
    prompt_tokens, max_tokens, step = 2000, 1000, 120.0
    first_cut: float | None = None
    refused = expensive_calls = requests = 0
    spent = 0.0
    while clock() + step < MONTH:
        requests += 1
        choices = [("gpt-4", EXPENSIVE), ("cheap", CHEAP)]
        if paced and rng.random() < manager.pressure("gpt-4"):
            choices = choices[1:]
        for provider, pricing in choices:
            estimate = pricing.estimate(prompt_tokens, max_tokens)
            if manager.check(provider, None, estimate) is not None:
                if provider == "gpt-4" and first_cut is None:
                    first_cut = clock() / DAY
                continue
            call = manager.reserve(provider, None, estimate)
            manager.settle(call, pricing.cost(prompt_tokens, rng.randint(0, max_tokens)))
            expensive_calls += provider == "gpt-4"
            break
        else:
            refused += 1
        clock.advance(step)
        spent = manager.snapshot()["global budget"]["spent"]
    return first_cut, refused, expensive_calls / requests, spent


def test_with_pacing_the_budget_lasts_the_month_without_it_runs_out_early() -> None:
    # Always expensive would cost about twice the budget: it is gone half-way through.
    first_cut, refused, expensive_share, spent = _simulate_month(paced=False)
    assert first_cut is not None
    assert first_cut < 16
    assert refused > 10_000  # then the cheap model too: nothing served for half the month
    assert expensive_share < 0.55
    assert spent == pytest.approx(SEED_004_LIMIT, rel=0.01)

    # Paced, the expensive model stays affordable to the last hour, no request is refused,
    # about half the traffic still gets the expensive model and the money is used.
    first_cut, refused, expensive_share, spent = _simulate_month(paced=True)
    assert first_cut is None or first_cut > 30 - 1 / 24
    assert refused == 0
    assert 0.4 < expensive_share < 0.6
    assert 0.95 * SEED_004_LIMIT < spent <= SEED_004_LIMIT
