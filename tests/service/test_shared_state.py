"""Shared state: token buckets, budgets and breakers, in process and in a real Redis.

The local store runs on a ManualClock, so its timings are asserted exactly. The Redis store
takes time from the Redis server, so its tests use rates slow enough that nothing refills
during a test and assert on counts; where time must pass (recovery, window roll-over) they
poll with a deadline. Two Redis stores on one server stand for two replicas of the service.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from fleetroute.clock import ManualClock
from fleetroute.service.shared_state import (
    BreakerPolicy,
    BudgetCharge,
    LocalStateStore,
    RedisStateStore,
    ResilientStateStore,
    StateStore,
    open_state_store,
)

from .redis_server import RedisServer, require_redis_server

_T = TypeVar("_T")

EPOCH = 1_700_000_000.0
# A window so long that no test crosses a boundary (the next one is in 2033).
LONG_WINDOW_S = 1e9
# Slow enough that no token comes back during a test.
SLOW_RATE = 0.001
LOGGER = "fleetroute.service.shared_state"


def run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(coroutine)


async def poll(check: Callable[[], Awaitable[bool]], deadline_s: float = 5.0) -> None:
    """Waits until ``check()`` is true (real time passes on the Redis server)."""
    deadline = time.monotonic() + deadline_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {deadline_s} s")
        await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    require_redis_server()
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def prefix() -> str:
    """A prefix per test, so tests sharing the server share no keys."""
    return f"fleetroute:test-{uuid.uuid4().hex}:"


StoreFactory = Callable[[], StateStore]


@pytest.fixture(params=["local", "redis"])
def make_store(request: pytest.FixtureRequest, prefix: str) -> StoreFactory:
    """Builds the store under test inside the test's event loop."""
    if request.param == "local":
        return lambda: LocalStateStore(clock=ManualClock(EPOCH))
    url: str = request.getfixturevalue("redis_url")
    return lambda: redis_store(url, prefix)


def redis_store(url: str, prefix: str) -> RedisStateStore:
    """A store whose timeouts leave room for a slow machine: these tests are about what
    Redis answers; the short production timeouts are tested with the failover."""
    return RedisStateStore(url, prefix=prefix, socket_timeout_s=10.0, connect_timeout_s=10.0)


# Behaviour both stores share (nothing here depends on time passing) ----------------------


def test_bucket_admits_the_burst_then_says_how_long_to_wait(make_store: StoreFactory) -> None:
    async def main() -> None:
        store = make_store()
        try:
            acquire = store.acquire_tokens
            results = [await acquire("k", rate_per_s=SLOW_RATE, burst=3) for _ in range(5)]
            assert results[:3] == [None, None, None]
            # One token comes back every 1,000 s; the fourth call waits for one.
            assert results[3] == pytest.approx(1000.0, abs=1.0)
            assert results[4] == pytest.approx(1000.0, abs=1.0)
            wait = await acquire("k", rate_per_s=SLOW_RATE, burst=3, cost=2)
            assert wait == pytest.approx(2000.0, abs=1.0)
            # Keys are independent.
            assert await acquire("other", rate_per_s=SLOW_RATE, burst=3, cost=3) is None
        finally:
            await store.close()

    run(main())


def test_budget_admits_charges_within_the_limit_and_refused_ones_cost_nothing(
    make_store: StoreFactory,
) -> None:
    async def main() -> None:
        store = make_store()
        try:

            async def charge(amount: float, scope: str = "team") -> BudgetCharge:
                return await store.charge_budget(scope, amount, limit=1.0, window_s=LONG_WINDOW_S)

            assert await charge(0.4) == BudgetCharge(True, 0.4, 1.0)
            second = await charge(0.4)
            assert second.admitted
            assert second.spent == pytest.approx(0.8)
            refused = await charge(0.3)
            assert not refused.admitted
            assert refused.spent == pytest.approx(0.8)
            assert (await charge(0.2)).admitted  # exactly the limit fits
            assert not (await charge(0.001)).admitted
            assert await store.budget_spent("team", window_s=LONG_WINDOW_S) == pytest.approx(1.0)
            # Rounding does not refuse the last of ten charges of 0.1.
            tenths = [await charge(0.1, "tenths") for _ in range(11)]
            assert [c.admitted for c in tenths] == [True] * 10 + [False]
            # A zero charge fits as long as the spend is within the limit.
            assert (await charge(0.0, "fresh")).admitted
            # Windows of another length are another budget.
            assert await store.budget_spent("team", window_s=60.0) == 0.0
        finally:
            await store.close()

    run(main())


def test_budget_adjustment_settles_estimates_and_never_goes_below_zero(
    make_store: StoreFactory,
) -> None:
    async def main() -> None:
        store = make_store()
        try:
            window = LONG_WINDOW_S
            await store.charge_budget("t", 0.5, limit=1.0, window_s=window)
            assert await store.adjust_budget("t", 0.25, window_s=window) == pytest.approx(0.75)
            assert await store.adjust_budget("t", -0.5, window_s=window) == pytest.approx(0.25)
            assert await store.adjust_budget("t", -10.0, window_s=window) == 0.0
            assert await store.budget_spent("t", window_s=window) == 0.0
            # An adjustment can take the spend over the limit; then nothing more fits.
            assert await store.adjust_budget("t", 1.5, window_s=window) == pytest.approx(1.5)
            assert not (await store.charge_budget("t", 0.0, limit=1.0, window_s=window)).admitted
        finally:
            await store.close()

    run(main())


def test_breaker_opens_after_consecutive_failures(make_store: StoreFactory) -> None:
    policy = BreakerPolicy(failure_threshold=3, recovery_timeout_s=600.0, half_open_limit=1)

    async def main() -> None:
        store = make_store()
        try:
            fresh = await store.breaker_status("svc", policy)
            assert (fresh.state, fresh.failure_count, fresh.last_failure_time) == (
                "closed",
                0,
                None,
            )
            assert (await store.breaker_record("svc", True, policy)).state == "closed"
            await store.breaker_record("svc", False, policy)
            status = await store.breaker_record("svc", False, policy)
            assert (status.state, status.failure_count) == ("closed", 2)
            # A success in between: the failures are no longer consecutive.
            assert (await store.breaker_record("svc", True, policy)).failure_count == 0
            assert await store.breaker_allow("svc", policy)
            for expected in (1, 2):
                status = await store.breaker_record("svc", False, policy)
                assert (status.state, status.failure_count) == ("closed", expected)
            status = await store.breaker_record("svc", False, policy)
            assert (status.state, status.failure_count) == ("open", 3)
            assert status.last_failure_time is not None
            # Epoch seconds: the injected clock locally, the Redis server's clock remotely.
            assert abs(status.last_failure_time - (EPOCH if _is_local(store) else time.time())) < 5
            assert not await store.breaker_allow("svc", policy)
            # A success from a call sent before the breaker opened changes nothing.
            assert (await store.breaker_record("svc", True, policy)).state == "open"
            assert not await store.breaker_allow("svc", policy)
            assert (await store.breaker_status("svc", policy)).state == "open"
            # Other names are other breakers.
            assert await store.breaker_allow("other", policy)
        finally:
            await store.close()

    run(main())


def _is_local(store: StateStore) -> bool:
    return store.backend == "local"


# The local store on a manual clock ----------------------------------------------------------


def test_local_bucket_refills_at_the_rate_and_retry_after_is_exact() -> None:
    clock = ManualClock(EPOCH)
    store = LocalStateStore(clock=clock)

    async def main() -> None:
        async def acquire(cost: float = 1.0) -> float | None:
            return await store.acquire_tokens("k", rate_per_s=2.0, burst=4, cost=cost)

        assert [await acquire() for _ in range(4)] == [None] * 4
        wait = await acquire()
        assert wait == pytest.approx(0.5)
        assert wait is not None
        clock.advance(wait - 0.01)
        assert await acquire() == pytest.approx(0.01)
        clock.advance(0.01)
        assert await acquire() is None
        # A long idle period fills the bucket to ``burst``, not beyond.
        clock.advance(3600)
        assert [await acquire() for _ in range(5)] == [None] * 4 + [pytest.approx(0.5)]
        # A refused cost-3 request waits for three tokens, then gets them.
        wait = await acquire(3)
        assert wait == pytest.approx(1.5)
        assert wait is not None
        clock.advance(wait)
        assert await acquire(3) is None

    run(main())


def test_local_budget_windows_roll_over() -> None:
    clock = ManualClock(28_333_333 * 60.0)  # the start of a 60 s window
    store = LocalStateStore(clock=clock)

    async def main() -> None:
        charge = store.charge_budget
        assert (await charge("t", 10.0, limit=10.0, window_s=60.0)).admitted
        clock.advance(59.9)
        assert not (await charge("t", 1.0, limit=10.0, window_s=60.0)).admitted
        clock.advance(0.1)
        assert await store.budget_spent("t", window_s=60.0) == 0.0
        assert await charge("t", 4.0, limit=10.0, window_s=60.0) == BudgetCharge(True, 4.0, 10.0)
        # An adjustment applies to the current window only.
        clock.advance(60.0)
        assert await store.adjust_budget("t", 1.0, window_s=60.0) == 1.0

    run(main())


def test_local_breaker_full_cycle() -> None:
    clock = ManualClock(EPOCH)
    store = LocalStateStore(clock=clock)
    policy = BreakerPolicy(failure_threshold=2, recovery_timeout_s=10.0, half_open_limit=2)

    async def main() -> None:
        for _ in range(2):
            status = await store.breaker_record("svc", False, policy)
        assert (status.state, status.last_failure_time) == ("open", EPOCH)
        clock.advance(9.9)
        assert not await store.breaker_allow("svc", policy)
        clock.advance(0.1)
        assert (await store.breaker_status("svc", policy)).state == "half_open"
        # Half-open: two trials, no more.
        assert [await store.breaker_allow("svc", policy) for _ in range(3)] == [True, True, False]
        # A trial failure re-opens it for another timeout.
        clock.advance(1.0)
        status = await store.breaker_record("svc", False, policy)
        assert (status.state, status.failure_count, status.last_failure_time) == (
            "open",
            3,
            EPOCH + 11.0,
        )
        clock.advance(9.9)
        assert not await store.breaker_allow("svc", policy)
        clock.advance(0.1)
        assert await store.breaker_allow("svc", policy)
        # A trial success closes it.
        status = await store.breaker_record("svc", True, policy)
        assert (status.state, status.failure_count) == ("closed", 0)
        assert status.last_failure_time == EPOCH + 11.0
        assert all([await store.breaker_allow("svc", policy) for _ in range(5)])

    run(main())


def test_local_breaker_gives_up_on_trials_that_never_report() -> None:
    clock = ManualClock(EPOCH)
    store = LocalStateStore(clock=clock)
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout_s=10.0, half_open_limit=1)

    async def main() -> None:
        await store.breaker_record("svc", False, policy)
        clock.advance(10.0)
        assert await store.breaker_allow("svc", policy)  # the trial's caller dies
        clock.advance(9.0)
        assert not await store.breaker_allow("svc", policy)
        clock.advance(1.0)
        assert await store.breaker_allow("svc", policy)
        assert (await store.breaker_status("svc", policy)).state == "half_open"
        # With a trial timeout of its own, the trials are kept that long.
        patient = BreakerPolicy(
            failure_threshold=1, recovery_timeout_s=10.0, half_open_limit=1, trial_timeout_s=30.0
        )
        clock.advance(29.0)
        assert not await store.breaker_allow("svc", patient)
        clock.advance(1.0)
        assert await store.breaker_allow("svc", patient)

    run(main())


def test_local_store_prunes_full_buckets_and_past_windows() -> None:
    clock = ManualClock(EPOCH)
    store = LocalStateStore(clock=clock)

    async def main() -> None:
        for i in range(100):
            await store.acquire_tokens(f"user-{i}", rate_per_s=1.0, burst=1)
            await store.charge_budget(f"team-{i}", 1.0, limit=5.0, window_s=60.0)
        clock.advance(120.0)
        for _ in range(4096):
            await store.acquire_tokens("busy", rate_per_s=1e6, burst=1e6)
        assert set(store._buckets) == {"busy"}
        assert store._budgets == {}

    run(main())


def test_local_store_modes() -> None:
    store = LocalStateStore()
    assert (store.backend, store.mode, store.degraded) == ("local", "local", False)
    assert isinstance(store, StateStore)
    assert open_state_store(None, clock=ManualClock(EPOCH)).backend == "local"


# Bad input ---------------------------------------------------------------------------------

POLICY = BreakerPolicy(failure_threshold=1, recovery_timeout_s=1.0, half_open_limit=1)

BAD_CALLS: list[tuple[str, Callable[[StateStore], Awaitable[object]], str]] = [
    ("empty key", lambda s: s.acquire_tokens("", rate_per_s=1, burst=1), "key"),
    ("zero rate", lambda s: s.acquire_tokens("k", rate_per_s=0, burst=1), "rate_per_s"),
    ("nan rate", lambda s: s.acquire_tokens("k", rate_per_s=math.nan, burst=1), "rate_per_s"),
    ("negative burst", lambda s: s.acquire_tokens("k", rate_per_s=1, burst=-1), "burst"),
    ("zero cost", lambda s: s.acquire_tokens("k", rate_per_s=1, burst=1, cost=0), "cost"),
    (
        "cost over burst",
        lambda s: s.acquire_tokens("k", rate_per_s=1, burst=2, cost=3),
        r"cost \(3\) exceeds burst \(2\)",
    ),
    ("empty scope", lambda s: s.charge_budget("", 1, limit=1, window_s=1), "scope"),
    ("negative amount", lambda s: s.charge_budget("b", -1, limit=1, window_s=1), "amount"),
    ("negative limit", lambda s: s.charge_budget("b", 1, limit=-1, window_s=1), "limit"),
    ("zero window", lambda s: s.charge_budget("b", 1, limit=1, window_s=0), "window_s"),
    ("string amount", lambda s: s.charge_budget("b", "1", limit=1, window_s=1), "amount"),  # type: ignore[arg-type]
    ("infinite delta", lambda s: s.adjust_budget("b", math.inf, window_s=1), "delta"),
    ("negative window", lambda s: s.budget_spent("b", window_s=-1), "window_s"),
    ("empty name", lambda s: s.breaker_allow("", POLICY), "name"),
    ("not a policy", lambda s: s.breaker_allow("x", "fast"), "policy"),  # type: ignore[arg-type]
    ("int success", lambda s: s.breaker_record("x", 1, POLICY), "success"),  # type: ignore[arg-type]
    ("status policy", lambda s: s.breaker_status("x", None), "policy"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("call", "match"), [(c, m) for _, c, m in BAD_CALLS], ids=[i for i, _, _ in BAD_CALLS]
)
def test_bad_arguments_name_the_argument_and_change_nothing(
    make_store: StoreFactory, call: Callable[[StateStore], Awaitable[object]], match: str
) -> None:
    async def main() -> None:
        store = make_store()
        try:
            with pytest.raises(ValueError, match=match):
                await call(store)
            # Nothing was taken, charged or recorded.
            assert await store.acquire_tokens("k", rate_per_s=SLOW_RATE, burst=2, cost=2) is None
            assert await store.budget_spent("b", window_s=1) == 0.0
            assert (await store.breaker_status("x", POLICY)).failure_count == 0
        finally:
            await store.close()

    run(main())


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"recovery_timeout_s": 0.0}, "recovery_timeout_s"),
        ({"recovery_timeout_s": math.inf}, "recovery_timeout_s"),
        ({"half_open_limit": 0}, "half_open_limit"),
        ({"half_open_limit": 1.5}, "half_open_limit"),
        ({"trial_timeout_s": -1.0}, "trial_timeout_s"),
    ],
)
def test_bad_breaker_policies_name_the_field(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BreakerPolicy(**fields)


def test_bad_store_settings_name_the_setting() -> None:
    with pytest.raises(ValueError, match="url 'http://localhost' is not a Redis URL"):
        RedisStateStore("http://localhost")
    with pytest.raises(ValueError, match="url"):
        RedisStateStore("")
    with pytest.raises(ValueError, match="socket_timeout_s"):
        RedisStateStore("redis://127.0.0.1:1", socket_timeout_s=0)
    with pytest.raises(ValueError, match="retry_interval_s"):
        ResilientStateStore("redis://127.0.0.1:1", LocalStateStore(), retry_interval_s=-1)
    with pytest.raises(ValueError, match="local"):
        ResilientStateStore("redis://127.0.0.1:1", None)  # type: ignore[arg-type]


# Redis: time passes on the server -----------------------------------------------------------


def test_redis_bucket_refills(redis_url: str, prefix: str) -> None:
    async def main() -> None:
        async with redis_store(redis_url, prefix) as store:
            assert await store.acquire_tokens("k", rate_per_s=20.0, burst=1) is None
            wait = await store.acquire_tokens("k", rate_per_s=20.0, burst=1)
            assert wait is not None
            assert 0 < wait <= 0.05 + 1e-6
            await poll(lambda: _is_none(store.acquire_tokens("k", rate_per_s=20.0, burst=1)))

    run(main())


async def _is_none(result: Awaitable[object]) -> bool:
    return await result is None


def test_redis_budget_windows_roll_over(redis_url: str, prefix: str) -> None:
    async def main() -> None:
        async with redis_store(redis_url, prefix) as store:

            async def charge() -> bool:
                result = await store.charge_budget("t", 1.0, limit=1.0, window_s=0.2)
                return result.admitted

            assert await charge()
            # Refused until the next window starts, then admitted again.
            await poll(charge)

    run(main())


def test_redis_keys_carry_the_prefix_and_expire(redis_url: str, prefix: str) -> None:
    policy = BreakerPolicy(failure_threshold=5, recovery_timeout_s=1.0, half_open_limit=1)

    async def main() -> None:
        async with RedisStateStore(
            redis_url, prefix=prefix, breaker_ttl_s=100.0, socket_timeout_s=10.0
        ) as store:
            await store.acquire_tokens("k", rate_per_s=SLOW_RATE, burst=5, cost=2)
            await store.charge_budget("t", 1.0, limit=5.0, window_s=LONG_WINDOW_S)
            await store.breaker_record("svc", False, policy)
            # A success on an unknown breaker stores nothing.
            await store.breaker_record("fine", True, policy)
        raw = Redis.from_url(redis_url, decode_responses=True)
        try:
            keys = sorted(await raw.keys(f"{prefix}*"))
            window_index = math.floor(time.time() / LONG_WINDOW_S)
            assert keys == [
                f"{prefix}breaker:svc",
                f"{prefix}bucket:k",
                f"{prefix}budget:{{t}}:{LONG_WINDOW_S!r}:{window_index}",
            ]
            # The bucket expires when it is full again (2 tokens at 0.001/s: 2,000 s).
            assert 1_990_000 < await raw.pttl(f"{prefix}bucket:k") <= 2_000_001
            assert 0 < await raw.pttl(f"{prefix}breaker:svc") <= 100_000
            # The budget key lives until its window ends.
            window_end_ms = (window_index + 1) * LONG_WINDOW_S * 1000 - time.time() * 1000
            assert abs(await raw.pttl(keys[2]) - window_end_ms) < 5_000
        finally:
            await raw.aclose()

    run(main())


def test_redis_breaker_recovers_through_half_open(redis_url: str, prefix: str) -> None:
    # Unanswered trials are kept for a minute, however slow the burst of allow() below.
    policy = BreakerPolicy(
        failure_threshold=2, recovery_timeout_s=0.2, half_open_limit=2, trial_timeout_s=60.0
    )

    async def main() -> None:
        async with redis_store(redis_url, prefix) as store:
            for _ in range(2):
                status = await store.breaker_record("svc", False, policy)
            assert status.state == "open"
            assert not await store.breaker_allow("svc", policy)

            async def half_open() -> bool:
                return (await store.breaker_status("svc", policy)).state == "half_open"

            await poll(half_open)
            allowed = await asyncio.gather(*(store.breaker_allow("svc", policy) for _ in range(10)))
            assert sum(allowed) == 2
            # A trial failure re-opens it; after the timeout a trial success closes it.
            assert (await store.breaker_record("svc", False, policy)).state == "open"
            assert not await store.breaker_allow("svc", policy)
            await poll(lambda: store.breaker_allow("svc", policy))
            status = await store.breaker_record("svc", True, policy)
            assert (status.state, status.failure_count) == ("closed", 0)
            assert status.last_failure_time is not None
            assert all(
                await asyncio.gather(*(store.breaker_allow("svc", policy) for _ in range(5)))
            )

    run(main())


def test_redis_breaker_gives_up_on_trials_that_never_report(redis_url: str, prefix: str) -> None:
    policy = BreakerPolicy(
        failure_threshold=1, recovery_timeout_s=0.1, half_open_limit=1, trial_timeout_s=0.1
    )

    async def main() -> None:
        async with redis_store(redis_url, prefix) as store:
            await store.breaker_record("svc", False, policy)
            await poll(lambda: store.breaker_allow("svc", policy))  # the trial's caller dies
            # Another trial is admitted once the first has gone unanswered for 0.1 s.
            await poll(lambda: store.breaker_allow("svc", policy))
            assert (await store.breaker_status("svc", policy)).state == "half_open"

    run(main())


# Two replicas on one Redis ------------------------------------------------------------------


def test_two_replicas_share_one_rate_limit(redis_url: str, prefix: str) -> None:
    async def main() -> None:
        async with (
            redis_store(redis_url, prefix) as a,
            redis_store(redis_url, prefix) as b,
        ):
            calls = [
                store.acquire_tokens("tenant", rate_per_s=SLOW_RATE, burst=10)
                for _ in range(30)
                for store in (a, b)
            ]
            results = await asyncio.gather(*calls)
            assert sum(result is None for result in results) == 10
            assert all(result is None or result > 0 for result in results)

    run(main())


def test_two_replicas_share_one_budget(redis_url: str, prefix: str) -> None:
    async def main() -> None:
        async with (
            redis_store(redis_url, prefix) as a,
            redis_store(redis_url, prefix) as b,
        ):
            calls = [
                store.charge_budget("team", 0.5, limit=10.0, window_s=LONG_WINDOW_S)
                for _ in range(25)
                for store in (a, b)
            ]
            charges = await asyncio.gather(*calls)
            assert sum(charge.admitted for charge in charges) == 20
            assert all(charge.spent <= 10.0 for charge in charges)
            assert await a.budget_spent("team", window_s=LONG_WINDOW_S) == 10.0
            assert await b.adjust_budget("team", -2.5, window_s=LONG_WINDOW_S) == 7.5
            assert await a.budget_spent("team", window_s=LONG_WINDOW_S) == 7.5

    run(main())


def test_two_replicas_share_one_breaker(redis_url: str, prefix: str) -> None:
    policy = BreakerPolicy(
        failure_threshold=3, recovery_timeout_s=0.2, half_open_limit=2, trial_timeout_s=60.0
    )

    async def main() -> None:
        async with (
            redis_store(redis_url, prefix) as a,
            redis_store(redis_url, prefix) as b,
        ):
            for _ in range(3):
                await a.breaker_record("svc", False, policy)
            status = await b.breaker_status("svc", policy)
            assert (status.state, status.failure_count) == ("open", 3)
            assert not await b.breaker_allow("svc", policy)

            async def half_open() -> bool:
                return (await b.breaker_status("svc", policy)).state == "half_open"

            await poll(half_open)
            trials = await asyncio.gather(
                *(store.breaker_allow("svc", policy) for _ in range(10) for store in (a, b))
            )
            assert sum(trials) == 2
            assert (await b.breaker_record("svc", True, policy)).state == "closed"
            assert (await a.breaker_status("svc", policy)).state == "closed"
            assert await a.breaker_allow("svc", policy)

    run(main())


# Redis going away and coming back -----------------------------------------------------------


def test_resilient_store_degrades_to_local_and_recovers(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = ManualClock(EPOCH)

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    async def main(server: RedisServer) -> None:
        local = LocalStateStore(clock=clock)
        async with ResilientStateStore(
            server.url, local, retry_interval_s=5.0, clock=clock, prefix=prefix
        ) as store:
            assert isinstance(store, StateStore)

            async def acquire() -> float | None:
                return await store.acquire_tokens("k", rate_per_s=SLOW_RATE, burst=3)

            assert await acquire() is None
            assert (store.mode, store.degraded, store.failovers) == ("redis", False, 0)

            server.stop()  # SIGKILL: the pool's connections are now dead
            # Served from the (fresh) local bucket, one warning however many calls fail.
            assert [await acquire() for _ in range(4)] == [None, None, None, pytest.approx(1000)]
            assert (store.mode, store.degraded, store.failovers) == ("degraded", True, 1)
            assert (await store.charge_budget("t", 1.0, limit=2.0, window_s=60.0)).admitted
            assert await local.budget_spent("t", window_s=60.0) == 1.0
            assert len(warnings()) == 1
            assert "unreachable" in warnings()[0]

            # A probe after the interval finds Redis still down: still degraded, quietly.
            clock.advance(5.0)
            assert await acquire() is not None
            assert (store.degraded, store.failovers, len(warnings())) == (True, 1, 1)

            server.restart()  # same port, empty
            # Within the interval nothing asks Redis.
            clock.advance(4.0)
            assert await acquire() is not None
            assert store.degraded
            clock.advance(1.0)
            # The probe reaches the new server: its bucket is full.
            assert await acquire() is None
            assert (store.mode, store.degraded, store.recoveries) == ("redis", False, 1)
            assert "reachable again" in warnings()[-1]
            assert await store.budget_spent("t", window_s=60.0) == 0.0

    run(main(redis_server))


def test_resilient_store_times_out_on_a_hung_redis(redis_server: RedisServer, prefix: str) -> None:
    clock = ManualClock(EPOCH)

    async def main(server: RedisServer) -> None:
        local = LocalStateStore(clock=clock)
        async with ResilientStateStore(
            server.url, local, retry_interval_s=5.0, clock=clock, prefix=prefix
        ) as store:
            charge = store.charge_budget
            assert (await charge("t", 1.0, limit=1.0, window_s=LONG_WINDOW_S)).admitted
            server.pause()  # connections open, no answers: the socket timeout ends the wait
            assert (await charge("t", 1.0, limit=1.0, window_s=LONG_WINDOW_S)).admitted
            assert (store.mode, store.failovers) == ("degraded", 1)
            server.resume()
            clock.advance(5.0)
            # Back on Redis, where the first charge was kept.
            assert not (await charge("t", 1.0, limit=1.0, window_s=LONG_WINDOW_S)).admitted
            assert (store.mode, store.recoveries) == ("redis", 1)

    run(main(redis_server))


def test_resilient_store_without_a_server_answers_from_local(prefix: str) -> None:
    clock = ManualClock(EPOCH)

    async def main() -> None:
        store = open_state_store(f"redis://127.0.0.1:{_closed_port()}/0", clock=clock)
        try:
            assert isinstance(store, ResilientStateStore)
            policy = BreakerPolicy(failure_threshold=1, recovery_timeout_s=1.0, half_open_limit=1)
            assert await store.breaker_allow("svc", policy)
            assert store.mode == "degraded"
            assert (await store.breaker_record("svc", False, policy)).state == "open"
            assert not await store.breaker_allow("svc", policy)
        finally:
            await store.close()

    run(main())


def _closed_port() -> int:
    """A loopback port where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
