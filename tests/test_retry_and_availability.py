"""Retry classification and backoff, the Availability combiner, durations and the
ManualClock."""

from __future__ import annotations

import asyncio
import math
import random

import httpx
import pytest

import fleetroute
from fleetroute.clock import ManualClock, monotonic_clock
from fleetroute.durations import parse_duration
from fleetroute.resilience.availability import Availability, Unavailable
from fleetroute.resilience.circuit_breaker import CircuitBreaker
from fleetroute.resilience.outlier_detection import Ejection, OutlierDetector
from fleetroute.resilience.retry import RetryPolicy, UpstreamError, is_retryable, status_of

# Retryable or not -----------------------------------------------------------------------


def _status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://replica-1:8000/v1/completions")
    response = httpx.Response(status, request=request, json={"error": "x"})
    return httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)


class _WithStatus(Exception):
    def __init__(self, status_code: object) -> None:
        super().__init__("custom client error")
        self.status_code = status_code


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError(),
        asyncio.TimeoutError(),
        ConnectionError(),
        ConnectionResetError(),
        ConnectionRefusedError(),
        BrokenPipeError(),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
        UpstreamError(429),
        UpstreamError(500),
        UpstreamError(502),
        UpstreamError(503),
        UpstreamError(599),
        _status_error(429),
        _status_error(500),
        _status_error(503),
        _WithStatus(504),
    ],
    ids=repr,
)
def test_retryable(error: BaseException) -> None:
    assert is_retryable(error) is True


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad prompt"),
        asyncio.CancelledError(),
        RuntimeError(),
        KeyError("model"),
        UpstreamError(400),
        UpstreamError(401),
        UpstreamError(404),
        UpstreamError(422),
        UpstreamError(200),
        UpstreamError(600),
        _status_error(400),
        _status_error(404),
        _WithStatus(403),
        _WithStatus("503"),  # not an int status: judged by type, a plain Exception
    ],
    ids=repr,
)
def test_not_retryable(error: BaseException) -> None:
    assert is_retryable(error) is False


def test_status_of() -> None:
    assert status_of(UpstreamError(503)) == 503
    assert status_of(_status_error(418)) == 418
    assert status_of(_WithStatus(502)) == 502
    assert status_of(_WithStatus("502")) is None
    assert status_of(TimeoutError()) is None
    assert status_of(httpx.ConnectError("x")) is None


def test_upstream_error_message() -> None:
    assert str(UpstreamError(503)) == "upstream answered HTTP 503"
    error = UpstreamError(429, "slow down")
    assert (str(error), error.status_code) == ("slow down", 429)


# Backoff ----------------------------------------------------------------------------------


def test_backoff_is_full_jitter_under_the_capped_exponential() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=10.0, multiplier=2.0, rng=random.Random(42))
    for retry in range(12):
        bound = min(10.0, 0.1 * 2.0**retry)
        draws = [policy.backoff(retry) for _ in range(2000)]
        assert min(draws) >= 0.0
        assert max(draws) <= bound
        # Full jitter: spread over the whole range, not bunched at the top.
        assert max(draws) > 0.98 * bound
        assert min(draws) < 0.02 * bound
        assert sum(draws) / len(draws) == pytest.approx(bound / 2, rel=0.05)


def test_backoff_is_exactly_uniform_from_the_injected_rng() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=6.0, multiplier=3.0, rng=random.Random(7))
    twin = random.Random(7)
    for retry in [0, 1, 2, 3, 4, 10]:
        bound = min(6.0, 0.5 * 3.0**retry)
        assert policy.backoff(retry) == bound * twin.random()


def test_same_seed_same_delays() -> None:
    first = RetryPolicy(rng=random.Random(3))
    second = RetryPolicy(rng=random.Random(3))
    assert [first.backoff(k % 6) for k in range(50)] == [second.backoff(k % 6) for k in range(50)]


def test_backoff_with_huge_retries_and_multipliers() -> None:
    policy = RetryPolicy(multiplier=1e6, max_delay=3.0, rng=random.Random(1))
    draws = [policy.backoff(k) for k in (60, 64, 65, 1000, 10**6)]
    assert all(0.0 <= d <= 3.0 for d in draws)
    # A small multiplier with a large max_delay: the bound is still
    # min(max_delay, base * multiplier**k), even past retry 64.
    slow = RetryPolicy(base_delay=0.1, max_delay=1e12, multiplier=1.5, rng=random.Random(5))
    twin = random.Random(5)
    assert slow.backoff(100) == 1e12 * twin.random()
    assert slow.backoff(70) == 0.1 * 1.5**70 * twin.random()


def test_zero_base_delay_never_waits() -> None:
    policy = RetryPolicy(base_delay=0.0, multiplier=1e300, rng=random.Random(0))
    assert [policy.backoff(k) for k in (0, 1, 5, 10_000)] == [0.0, 0.0, 0.0, 0.0]


def test_multiplier_one_is_a_constant_ceiling() -> None:
    policy = RetryPolicy(base_delay=2.0, max_delay=10.0, multiplier=1.0, rng=random.Random(9))
    assert max(policy.backoff(50) for _ in range(500)) <= 2.0


def test_negative_retry_is_refused() -> None:
    with pytest.raises(ValueError, match="retry"):
        RetryPolicy().backoff(-1)


def test_retry_policy_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.base_delay, policy.max_delay, policy.multiplier) == (
        3,
        0.1,
        10.0,
        2.0,
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"base_delay": -0.1}, "base_delay"),
        ({"base_delay": math.nan}, "base_delay"),
        ({"base_delay": math.inf}, "base_delay"),
        ({"base_delay": "0.1"}, "base_delay"),
        ({"max_delay": -1}, "max_delay"),
        ({"max_delay": math.inf}, "max_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"multiplier": math.nan}, "multiplier"),
        ({"multiplier": math.inf}, "multiplier"),
        ({"multiplier": "2"}, "multiplier"),
    ],
)
def test_retry_policy_validation(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_zero_retries_is_valid() -> None:
    assert RetryPolicy(max_retries=0).max_retries == 0


# Availability -------------------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, endpoint: str, routable: bool) -> None:
        self.calls.append((endpoint, routable))


def test_reasons_combine_and_the_sink_sees_only_transitions() -> None:
    sink = Sink()
    availability = Availability(sink)
    availability.exclude("a", Unavailable.CIRCUIT_OPEN)
    assert sink.calls == [("a", False)]
    availability.exclude("a", Unavailable.EJECTED)
    availability.exclude("a", Unavailable.CIRCUIT_OPEN)  # already held
    assert sink.calls == [("a", False)]
    assert availability.reasons("a") == Unavailable.CIRCUIT_OPEN | Unavailable.EJECTED
    availability.include("a", Unavailable.CIRCUIT_OPEN)
    assert not availability.is_routable("a")
    assert availability.reasons("a") == Unavailable.EJECTED
    assert sink.calls == [("a", False)]
    availability.include("a", Unavailable.DRAINED)  # not held: nothing
    availability.include("a", Unavailable.EJECTED)
    assert availability.is_routable("a")
    assert availability.reasons("a") == Unavailable(0)
    assert sink.calls == [("a", False), ("a", True)]
    availability.include("a", Unavailable.EJECTED)  # nothing left to clear
    assert sink.calls == [("a", False), ("a", True)]


def test_all_four_reasons_and_several_endpoints() -> None:
    sink = Sink()
    availability = Availability(sink)
    for reason in Unavailable:
        availability.exclude("a", reason)
    availability.exclude("b", Unavailable.DRAINED | Unavailable.HEALTH_CHECK_FAILED)
    assert availability.unavailable() == {
        "a": Unavailable(15),
        "b": Unavailable.DRAINED | Unavailable.HEALTH_CHECK_FAILED,
    }
    availability.include("a", Unavailable(15) & ~Unavailable.DRAINED)
    availability.include("b", Unavailable.DRAINED | Unavailable.HEALTH_CHECK_FAILED)
    assert availability.unavailable() == {"a": Unavailable.DRAINED}
    assert sink.calls == [("a", False), ("b", False), ("b", True)]


def test_set_and_empty_reasons() -> None:
    sink = Sink()
    availability = Availability(sink)
    availability.exclude("a", Unavailable(0))
    availability.include("never", Unavailable.EJECTED)
    assert sink.calls == []
    assert availability.is_routable("a")
    availability.set("a", Unavailable.HEALTH_CHECK_FAILED, True)
    availability.set("a", Unavailable.HEALTH_CHECK_FAILED, True)
    availability.set("a", Unavailable.HEALTH_CHECK_FAILED, False)
    availability.set("a", Unavailable.HEALTH_CHECK_FAILED, False)
    assert sink.calls == [("a", False), ("a", True)]


def test_forget_drops_reasons_without_the_sink() -> None:
    sink = Sink()
    availability = Availability(sink)
    availability.exclude("a", Unavailable.DRAINED)
    availability.forget("a")
    availability.forget("never-seen")
    assert sink.calls == [("a", False)]
    assert availability.is_routable("a")
    assert availability.unavailable() == {}
    availability.exclude("a", Unavailable.EJECTED)  # a fresh transition
    assert sink.calls == [("a", False), ("a", False)]


def test_unavailable_is_a_copy() -> None:
    availability = Availability(Sink())
    availability.exclude("a", Unavailable.DRAINED)
    snapshot = availability.unavailable()
    snapshot.clear()
    assert availability.unavailable() == {"a": Unavailable.DRAINED}


def test_breaker_and_detector_drive_the_routers_health() -> None:
    """The wiring the routers use: breaker and detector feed Availability, which sets
    the Rust registry's health flag on transitions only."""
    clock = ManualClock()
    router = fleetroute.Router("round_robin")
    router.add_accelerators([fleetroute.Accelerator(i, 100) for i in range(3)])
    names = {f"r{i}": i for i in range(3)}
    applied: list[tuple[str, bool]] = []

    def apply(endpoint: str, routable: bool) -> None:
        applied.append((endpoint, routable))
        router.set_healthy(names[endpoint], routable)

    availability = Availability(apply)

    def on_breaker(endpoint: str, available: bool) -> None:
        availability.set(endpoint, Unavailable.CIRCUIT_OPEN, not available)

    def on_eject(endpoint: str, _ejection: Ejection) -> None:
        availability.exclude(endpoint, Unavailable.EJECTED)

    def on_restore(endpoint: str) -> None:
        availability.include(endpoint, Unavailable.EJECTED)

    breaker = CircuitBreaker(
        failure_threshold=2, recovery_timeout=10, clock=clock, on_availability_change=on_breaker
    )
    detector = OutlierDetector(
        consecutive_errors=2,
        base_ejection_time=30,
        max_ejection_percent=100,
        clock=clock,
        on_eject=on_eject,
        on_restore=on_restore,
    )
    for name in names:
        detector.add_endpoint(name)
    for _ in range(2):
        breaker.record_failure("r1")
        detector.record("r1", False)
    assert {router.route() for _ in range(20)} == {0, 2}
    assert availability.reasons("r1") == Unavailable.CIRCUIT_OPEN | Unavailable.EJECTED
    clock.advance(10)
    breaker.poll()  # half-open: the breaker admits again, the ejection still holds
    assert {router.route() for _ in range(20)} == {0, 2}
    clock.advance(20)
    detector.poll()
    assert {router.route() for _ in range(20)} == {0, 1, 2}
    assert applied == [("r1", False), ("r1", True)]


# Durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1h", 3600.0),
        ("30min", 1800.0),
        ("5m", 300.0),
        ("90s", 90.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        ("10sec", 10.0),
        ("2hr", 7200.0),
        (" 45 s ", 45.0),
        ("1H", 3600.0),
        ("100MS", 0.1),
        (300, 300.0),
        (0.5, 0.5),
        (2.25, 2.25),
    ],
)
def test_parse_duration(value: str | float, seconds: float) -> None:
    parsed = parse_duration(value)
    assert type(parsed) is float
    assert parsed == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "5x",
        "5",
        "-5s",
        "+5s",
        "1h30m",
        "1e3s",
        "s",
        ".5s",
        "5 m s",
        "0s",
        "0ms",
        "0",
        0,
        0.0,
        -1,
        -0.5,
        math.nan,
        math.inf,
        -math.inf,
        10**400,
        True,
        False,
        None,
        [1],
        b"5s",
    ],
    ids=lambda value: repr(value)[:20],
)
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)  # type: ignore[arg-type]


def test_parse_duration_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"^ttl 'soon' is not a duration"):
        parse_duration("soon", "ttl")
    with pytest.raises(ValueError, match=r"^ttl must be > 0 seconds \(got 0\)$"):
        parse_duration(0, "ttl")


# ManualClock -------------------------------------------------------------------------------


def test_manual_clock() -> None:
    clock = ManualClock(5.0)
    assert clock() == 5.0
    assert clock.advance(2.5) == 7.5
    assert clock.advance(0) == 7.5
    assert clock() == 7.5
    assert repr(clock) == "ManualClock(now=7.5)"
    asyncio.run(clock.sleep(10))
    assert clock() == 17.5
    assert ManualClock()() == 0.0
    assert isinstance(monotonic_clock(), float)


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_manual_clock_only_moves_forward_by_finite_steps(seconds: float) -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(seconds)
    assert clock() == 0.0


@pytest.mark.parametrize("start", [math.nan, math.inf, -math.inf])
def test_manual_clock_start_must_be_finite(start: float) -> None:
    with pytest.raises(ValueError, match="start"):
        ManualClock(start)
