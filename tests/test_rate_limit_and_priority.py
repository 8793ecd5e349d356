"""TieredRateLimiter (seed 000's rate_limiting), priorities and the LoadShedder."""

from __future__ import annotations

import math

import pytest

import fleetroute
from fleetroute.admission.priority import (
    DEFAULT_SHED_THRESHOLDS,
    LoadShedder,
    Priority,
    parse_priority,
)
from fleetroute.admission.rate_limit import (
    DEFAULT_TIER_MULTIPLIERS,
    RateLimitDecision,
    TieredRateLimiter,
)
from fleetroute.clock import ManualClock

SEED_000 = {
    "requests_per_minute": 1000,
    "burst_capacity": 100,
    "per_user_limit": 50,
    "priority_multipliers": {"premium": 2.0, "standard": 1.0, "free": 0.5},
}


def _seed_limiter(clock: ManualClock) -> TieredRateLimiter:
    return TieredRateLimiter.from_config(SEED_000, clock=clock)


def _admitted(limiter: TieredRateLimiter, user: str | None, tier: str | None, tries: int) -> int:
    return sum(limiter.check(user, tier).allowed for _ in range(tries))


# Per-user tiers ------------------------------------------------------------------------


def test_free_user_gets_25_at_once_then_waits_60_over_25_seconds() -> None:
    clock = ManualClock(1000.0)
    limiter = _seed_limiter(clock)
    assert [limiter.check("alice", "free").allowed for _ in range(25)] == [True] * 25
    refused = limiter.check("alice", "free")
    assert not refused.allowed
    assert refused.limit == "user"
    assert refused.retry_after == pytest.approx(60 / 25)
    clock.advance(1.0)
    later = limiter.check("alice", "free")
    assert (later.allowed, later.limit) == (False, "user")
    assert later.retry_after == pytest.approx(1.4)
    clock.advance(1.4)
    assert limiter.check("alice", "free") == RateLimitDecision(True)
    assert not limiter.check("alice", "free").allowed


@pytest.mark.parametrize(("tier", "burst"), [("premium", 100), ("standard", 50), ("free", 25)])
def test_each_tier_bursts_one_minutes_allowance(tier: str, burst: int) -> None:
    clock = ManualClock()
    limiter = _seed_limiter(clock)
    assert _admitted(limiter, "u", tier, burst + 10) == burst
    decision = limiter.check("u", tier)
    assert (decision.allowed, decision.limit) == (False, "user")
    assert decision.retry_after == pytest.approx(60 / burst)
    assert limiter.tier_limit(tier) == burst


def test_users_have_separate_buckets_per_tier_and_user() -> None:
    clock = ManualClock()
    limiter = _seed_limiter(clock)
    assert _admitted(limiter, "a", "free", 30) == 25
    assert _admitted(limiter, "b", "free", 30) == 25
    assert _admitted(limiter, "c", "standard", 30) == 30
    assert limiter.admitted == 80
    assert limiter.refused == 10


def test_default_tier_is_standard() -> None:
    clock = ManualClock()
    limiter = _seed_limiter(clock)
    assert limiter.default_tier == "standard"
    assert _admitted(limiter, "u", None, 60) == 50
    assert limiter.tier_limit(None) == 50  # type: ignore[arg-type]
    other = TieredRateLimiter(
        priority_multipliers={"free": 0.5, "paid": 3.0}, default_tier="free", clock=clock
    )
    assert _admitted(other, "u", None, 60) == 25


def test_cost_takes_several_tokens() -> None:
    clock = ManualClock()
    limiter = _seed_limiter(clock)
    assert [limiter.check("u", "free", cost=10).allowed for _ in range(3)] == [True, True, False]
    assert limiter.check("u", "free", cost=5).allowed  # 5 tokens were left
    assert not limiter.check("u", "free", cost=1).allowed


def test_cost_above_the_users_burst_is_refused_as_an_error() -> None:
    limiter = _seed_limiter(ManualClock())
    with pytest.raises(ValueError, match="exceeds burst"):
        limiter.check("u", "free", cost=26)
    assert _admitted(limiter, "u", "free", 30) == 25


# Global limit ------------------------------------------------------------------------------


def test_global_burst_caps_many_users() -> None:
    clock = ManualClock()
    limiter = _seed_limiter(clock)
    decisions = [limiter.check(f"user{i}", "standard") for i in range(250)]
    assert sum(d.allowed for d in decisions) == 100
    assert all(d.allowed for d in decisions[:100])
    refused = decisions[100]
    assert (refused.allowed, refused.limit) == (False, "global")
    assert refused.retry_after == pytest.approx(60 / 1000)
    assert {d.limit for d in decisions[100:]} == {"global"}
    # 1000 per minute: six seconds refill the whole burst.
    clock.advance(6)
    assert _admitted(limiter, None, None, 150) == 100


def test_anonymous_requests_are_only_globally_limited() -> None:
    clock = ManualClock()
    limiter = _seed_limiter(clock)
    assert _admitted(limiter, None, "free", 150) == 100
    clock.advance(0.06)
    assert limiter.check(None).allowed
    assert not limiter.check(None).allowed


def test_a_global_refusal_refunds_the_users_token() -> None:
    clock = ManualClock()
    limiter = _seed_limiter(clock)
    assert _admitted(limiter, None, None, 100) == 100  # global bucket empty
    for _ in range(10):
        decision = limiter.check("bob", "free")
        assert (decision.allowed, decision.limit) == (False, "global")
    # Six seconds refill the global bucket, and only 2.5 of bob's 25 tokens: had the
    # refused requests cost him, only 17 would pass now.
    clock.advance(6)
    assert _admitted(limiter, "bob", "free", 40) == 25
    decision = limiter.check("bob", "free")
    assert decision.limit == "user"


def test_a_cost_above_the_global_burst_costs_the_user_nothing() -> None:
    clock = ManualClock()
    # Users may burst 50, the fleet 10 at once at 100/s.
    limiter = TieredRateLimiter(
        requests_per_minute=6000, burst_capacity=10, per_user_limit=50, clock=clock
    )
    with pytest.raises(ValueError, match="exceeds burst"):
        limiter.check("u", "standard", cost=20)
    admitted = 0
    for _ in range(6):
        admitted += limiter.check("u", "standard", cost=10).allowed
        clock.advance(0.1)  # the global bucket refills; the user's barely does
    assert admitted == 5


def test_refusals_and_admissions_are_counted() -> None:
    limiter = _seed_limiter(ManualClock())
    _admitted(limiter, "u", "free", 30)
    _admitted(limiter, None, None, 80)
    assert (limiter.admitted, limiter.refused) == (100, 10)


# Configuration -------------------------------------------------------------------------------


def test_seed_config_round_trip() -> None:
    limiter = _seed_limiter(ManualClock())
    assert limiter.requests_per_minute == 1000.0
    assert limiter.burst_capacity == 100.0
    assert limiter.per_user_limit == 50.0
    assert limiter.priority_multipliers == {"premium": 2.0, "standard": 1.0, "free": 0.5}
    assert dict(DEFAULT_TIER_MULTIPLIERS) == limiter.priority_multipliers
    assert [limiter.tier_limit(t) for t in ("premium", "standard", "free")] == [100, 50, 25]


def test_unknown_tier_is_named() -> None:
    limiter = _seed_limiter(ManualClock())
    with pytest.raises(ValueError, match="unknown tier 'gold'"):
        limiter.check("u", "gold")
    with pytest.raises(ValueError, match="'gold'"):
        limiter.tier_limit("gold")
    assert limiter.refused == limiter.admitted == 0


def test_from_config_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="burst_capcity"):
        TieredRateLimiter.from_config({**SEED_000, "burst_capcity": 5})
    with pytest.raises(ValueError, match="clock"):
        TieredRateLimiter.from_config({"clock": ManualClock()})


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"requests_per_minute": -1}, "requests_per_minute"),
        ({"requests_per_minute": math.nan}, "requests_per_minute"),
        ({"requests_per_minute": math.inf}, "requests_per_minute"),
        ({"requests_per_minute": "1000"}, "requests_per_minute"),
        ({"requests_per_minute": True}, "requests_per_minute"),
        ({"burst_capacity": 0.5}, "burst_capacity"),
        ({"burst_capacity": 0}, "burst_capacity"),
        ({"per_user_limit": 0}, "per_user_limit"),
        ({"per_user_limit": -50}, "per_user_limit"),
        ({"priority_multipliers": {}}, "priority_multipliers"),
        ({"priority_multipliers": {"standard": 0}}, r"priority_multipliers\['standard'\]"),
        ({"priority_multipliers": {"standard": 1, "free": -1}}, r"\['free'\]"),
        ({"priority_multipliers": {"standard": 1, "": 1}}, "priority_multipliers"),
        ({"default_tier": "gold"}, "default_tier 'gold'"),
        ({"priority_multipliers": {"free": 0.5}}, "default_tier 'standard'"),
    ],
)
def test_bad_settings_raise_value_error(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        TieredRateLimiter(clock=ManualClock(), **kwargs)  # type: ignore[arg-type]


def test_tiny_per_user_allowance_still_bursts_one() -> None:
    clock = ManualClock()
    limiter = TieredRateLimiter(
        per_user_limit=0.5, priority_multipliers={"standard": 1.0}, clock=clock
    )
    assert _admitted(limiter, "u", None, 3) == 1
    assert limiter.check("u").retry_after == pytest.approx(120.0)


# Priority ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, Priority.NORMAL),
        ("low", Priority.LOW),
        ("normal", Priority.NORMAL),
        ("medium", Priority.NORMAL),
        ("standard", Priority.NORMAL),
        ("high", Priority.HIGH),
        ("critical", Priority.CRITICAL),
        ("  HIGH ", Priority.HIGH),
        ("Critical", Priority.CRITICAL),
        (0, Priority.LOW),
        (1, Priority.NORMAL),
        (2, Priority.HIGH),
        (3, Priority.CRITICAL),
        (Priority.HIGH, Priority.HIGH),
    ],
)
def test_parse_priority(value: object, expected: Priority) -> None:
    assert parse_priority(value) is expected


@pytest.mark.parametrize("value", ["urgent", "", "2", 4, -1, True, False, 1.0, b"low", [1]])
def test_parse_priority_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="priority"):
        parse_priority(value)


def test_boosted_caps_at_high_and_critical_stays() -> None:
    assert [p.boosted() for p in Priority] == [
        Priority.NORMAL,
        Priority.HIGH,
        Priority.HIGH,
        Priority.CRITICAL,
    ]


def test_native_mapping() -> None:
    assert [p.native for p in Priority] == [0, 0, 1, 1]


def test_native_priority_uses_the_cores_reserve() -> None:
    router = fleetroute.Router("least_connections", priority_reserve=0.1)
    router.add_accelerator(fleetroute.Accelerator(0, 10))
    placed = [router.route(priority=Priority.LOW.native) for _ in range(10)]
    assert placed == [0] * 9 + [None]  # the last unit is reserved
    assert router.route(priority=Priority.NORMAL.native) is None
    assert router.route(priority=Priority.HIGH.native) == 0
    assert router.route(priority=Priority.CRITICAL.native) is None  # full


def test_load_shedder_defaults() -> None:
    shedder = LoadShedder()
    assert shedder.thresholds == dict(DEFAULT_SHED_THRESHOLDS)
    assert shedder.admit(Priority.LOW, 0.79)
    assert not shedder.admit(Priority.LOW, 0.8)
    assert shedder.admit(Priority.NORMAL, 0.8)
    assert shedder.admit(Priority.NORMAL, 0.9499)
    assert not shedder.admit(Priority.NORMAL, 0.95)
    for utilisation in (0.0, 0.8, 0.95, 0.999):
        assert shedder.admit(Priority.HIGH, utilisation)
        assert shedder.admit(Priority.CRITICAL, utilisation)
    assert shedder.shed == {
        Priority.LOW: 1,
        Priority.NORMAL: 1,
        Priority.HIGH: 0,
        Priority.CRITICAL: 0,
    }


def test_load_shedder_refuses_low_first_as_utilisation_rises() -> None:
    shedder = LoadShedder()
    first_refused: dict[Priority, float] = {}
    for step in range(0, 100):
        utilisation = step / 100
        for priority in Priority:
            if not shedder.admit(priority, utilisation):
                first_refused.setdefault(priority, utilisation)
    assert first_refused == {Priority.LOW: 0.8, Priority.NORMAL: 0.95}
    assert shedder.shed[Priority.LOW] == 20
    assert shedder.shed[Priority.NORMAL] == 5
    assert shedder.shed[Priority.HIGH] == shedder.shed[Priority.CRITICAL] == 0


def test_load_shedder_custom_thresholds() -> None:
    shedder = LoadShedder({"low": 0.5, Priority.NORMAL: 0.7, 2: 0.9})  # type: ignore[dict-item]
    assert shedder.thresholds == {
        Priority.LOW: 0.5,
        Priority.NORMAL: 0.7,
        Priority.HIGH: 0.9,
        Priority.CRITICAL: 1.0,
    }
    assert shedder.admit(Priority.LOW, 0.49)
    assert not shedder.admit(Priority.LOW, 0.5)
    assert not shedder.admit(Priority.NORMAL, 0.7)
    assert shedder.admit(Priority.HIGH, 0.89)
    assert not shedder.admit(Priority.HIGH, 0.9)
    assert shedder.admit(Priority.CRITICAL, 0.99)
    assert shedder.shed[Priority.HIGH] == 1


def test_load_shedder_equal_thresholds_are_allowed() -> None:
    shedder = LoadShedder({"low": 0.9, "normal": 0.9})
    assert not shedder.admit(Priority.LOW, 0.9)
    assert not shedder.admit(Priority.NORMAL, 0.9)


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"low": 0.96}, "must not decrease"),
        ({"normal": 0.5, "low": 0.6}, "must not decrease"),
        ({"high": 0.7}, "must not decrease"),
        ({"low": 0}, "low must be in"),
        ({"normal": 1.5}, "normal must be in"),
        ({"high": math.nan}, "high must be in"),
        ({"low": "0.5"}, "low must be in"),
        ({"urgent": 0.5}, "unknown priority 'urgent'"),
    ],
)
def test_load_shedder_refuses_bad_thresholds(
    thresholds: dict[Priority | str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LoadShedder(thresholds)
