"""The dispatch loop ``call``: pick, call, observe, retry along the fallback chain,
and release the load on every path."""

from __future__ import annotations

import asyncio
import random

import pytest

from fleetroute import (
    BaseRouter,
    Endpoint,
    EnhancedRouter,
    ManualClock,
    NoEndpointAvailable,
    RetryPolicy,
    UpstreamError,
)


class Recorder:
    """An injected sleep that records the waits instead of waiting."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


def make(
    router_type: type[BaseRouter] = BaseRouter, retries: int = 3, **kwargs: object
) -> tuple[BaseRouter, Recorder]:
    clock = ManualClock()
    sleep = Recorder(clock)
    router = router_type(
        clock=clock,
        sleep=sleep,
        seed=9,
        retry_policy=RetryPolicy(max_retries=retries, base_delay=0.1, rng=random.Random(1)),
        **kwargs,  # type: ignore[arg-type]
    )
    router.register_endpoints([{"id": f"e{i}", "capacity": 4} for i in range(5)])
    return router, sleep


def test_retries_skip_failed_endpoints_and_stop_at_the_limit() -> None:
    router, sleep = make(retries=3)
    tried: list[str] = []

    async def always_503(endpoint: Endpoint) -> str:
        tried.append(endpoint.id)
        raise UpstreamError(503)

    with pytest.raises(UpstreamError):
        asyncio.run(router.call({}, always_503))
    assert len(tried) == 4 and len(set(tried)) == 4
    assert len(sleep.waits) == 3
    for retry, wait in enumerate(sleep.waits):
        assert 0.0 <= wait <= 0.1 * 2**retry
    assert router.pool.in_flight == 0
    assert router.metrics.retries == 3 and router.metrics.failures == 4


def test_a_retry_that_succeeds_returns_its_response() -> None:
    router, _ = make()
    calls: list[str] = []

    async def flaky(endpoint: Endpoint) -> str:
        calls.append(endpoint.id)
        if len(calls) < 3:
            raise TimeoutError("slow")
        return f"answer from {endpoint.id}"

    assert asyncio.run(router.call({}, flaky)) == f"answer from {calls[-1]}"
    assert len(set(calls)) == 3
    assert router.pool.in_flight == 0


def test_non_retryable_errors_are_raised_at_once() -> None:
    router, sleep = make()
    calls = 0

    async def bad_request(endpoint: Endpoint) -> str:
        nonlocal calls
        calls += 1
        raise UpstreamError(400, "bad prompt")

    with pytest.raises(UpstreamError, match="bad prompt"):
        asyncio.run(router.call({}, bad_request))
    assert calls == 1 and sleep.waits == []
    assert router.pool.in_flight == 0


def test_retries_run_out_of_endpoints() -> None:
    router, _ = make(retries=10)
    tried: list[str] = []

    async def down(endpoint: Endpoint) -> str:
        tried.append(endpoint.id)
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        asyncio.run(router.call({}, down))
    assert sorted(tried) == [f"e{i}" for i in range(5)]
    assert router.pool.in_flight == 0


def test_cancellation_returns_the_load() -> None:
    router, _ = make()
    started = asyncio.Event()

    async def hang(endpoint: Endpoint) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    async def scenario() -> None:
        task = asyncio.create_task(router.call({"cost": 2}, hang))
        await started.wait()
        assert router.pool.in_flight == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert router.pool.in_flight == 0
    assert router.metrics.failures == 0  # a cancelled call is not the endpoint's fault


def test_attempt_timeout_is_a_retryable_failure() -> None:
    router, _ = make(retries=1)
    calls = 0

    async def first_hangs(endpoint: Endpoint) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()
        return "ok"

    assert asyncio.run(router.call({}, first_hangs, attempt_timeout=0.01)) == "ok"
    assert router.pool.in_flight == 0 and router.metrics.failures == 1


def test_enhanced_call_admits_once_and_caches() -> None:
    router, _ = make(EnhancedRouter, features=["rate_limiting", "intelligent_caching"])
    assert isinstance(router, EnhancedRouter)
    router.configure_advanced_features(
        rate_limiting={"requests_per_minute": 60, "burst_capacity": 2, "per_user_limit": 60}
    )
    calls = 0

    async def answer(endpoint: Endpoint) -> dict[str, str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise UpstreamError(502)
        return {"text": "hi"}

    request = {"input": "hello", "user": "u"}
    reply = asyncio.run(router.call(request, answer, enable_caching=True))
    assert reply == {"text": "hi"} and calls == 2  # the retry took no second token
    assert asyncio.run(router.call(request, answer, enable_caching=True)) == {"text": "hi"}
    assert calls == 2  # served from the cache
    with pytest.raises(NoEndpointAvailable, match="rate limited") as refused:
        for _ in range(3):
            asyncio.run(router.call({"input": "other"}, answer))
    assert refused.value.result.retry_after is not None
    assert router.pool.in_flight == 0


def test_call_validates_its_options() -> None:
    router, _ = make()

    async def fine(endpoint: Endpoint) -> str:
        return "ok"

    with pytest.raises(ValueError, match="max_retries"):
        asyncio.run(router.call({}, fine, max_retries=-1))
    with pytest.raises(ValueError, match="attempt_timeout"):
        asyncio.run(router.call({}, fine, attempt_timeout=0))


def test_retries_keep_the_first_attempts_fallback_rule() -> None:
    clock = ManualClock()
    router = BaseRouter(
        tpu_config={"enable_fallback": False},
        clock=clock,
        sleep=Recorder(clock),
        retry_policy=RetryPolicy(max_retries=3, rng=random.Random(2)),
    )
    router.register_endpoints(
        [
            {"id": "a", "capacity": 4},
            {"id": "a2", "capacity": 4},
            {"id": "b", "capacity": 4, "priority": 2},
        ]
    )
    tried: list[str] = []

    async def always_503(endpoint: Endpoint) -> str:
        tried.append(endpoint.id)
        raise UpstreamError(503)

    with pytest.raises(UpstreamError):
        asyncio.run(router.call({}, always_503))
    assert sorted(tried) == ["a", "a2"]  # tier 2 is never tried without fallback
    tried.clear()
    with pytest.raises(UpstreamError):
        asyncio.run(router.call({}, always_503, enable_fallback=True))
    assert sorted(tried) == ["a", "a2", "b"]
    assert router.pool.in_flight == 0
