"""AnomalyDetector: fleet-relative robust z-scores on latency and error rate."""

from __future__ import annotations

import logging
import math
import random

import pytest

from fleetroute.clock import ManualClock
from fleetroute.resilience.anomaly_detection import (
    ERROR_RATE,
    LATENCY,
    Anomaly,
    AnomalyDetector,
)

NORMAL = [f"ep-{i}" for i in range(10)]


def feed(
    detector: AnomalyDetector,
    rng: random.Random,
    endpoint_id: str,
    count: int,
    latency: float = 0.1,
    error_rate: float = 0.01,
) -> None:
    for _ in range(count):
        detector.observe(
            endpoint_id,
            max(0.0, rng.gauss(latency, latency * 0.1)),
            rng.random() >= error_rate,
        )


def test_slow_endpoint_is_flagged_and_recovers() -> None:
    rng = random.Random(7)
    clock = ManualClock(100.0)
    detector = AnomalyDetector(clock=clock)
    for endpoint_id in NORMAL:
        feed(detector, rng, endpoint_id, 100)
    feed(detector, rng, "slow", 100, latency=0.5)

    anomalies = detector.evaluate()
    assert [(a.endpoint_id, a.metric) for a in anomalies] == [("slow", LATENCY)]
    (slow,) = anomalies
    assert slow.value == pytest.approx(0.5, rel=0.05)
    assert slow.baseline == pytest.approx(0.1, rel=0.05)
    assert slow.score > 20  # four times the baseline, against a spread of a few percent
    assert slow.detected_at == 100.0
    assert detector.is_anomalous("slow")
    assert not detector.is_anomalous("ep-0")
    assert not detector.is_anomalous("never-seen")
    assert detector.anomalous() == frozenset({"slow"})
    assert detector.last_changes == (frozenset({"slow"}), frozenset())

    # Still anomalous later: detected_at keeps the onset time, the changes are empty.
    clock.advance(10.0)
    (again,) = detector.evaluate()
    assert again.detected_at == 100.0
    assert detector.last_changes == (frozenset(), frozenset())

    # Normal observations refill the window; once most of it is normal the median is too.
    feed(detector, rng, "slow", 100)
    clock.advance(10.0)
    assert detector.evaluate() == []
    assert not detector.is_anomalous("slow")
    assert detector.anomalous() == frozenset()
    assert detector.last_changes == (frozenset(), frozenset({"slow"}))


def test_recovery_needs_more_than_half_the_window() -> None:
    rng = random.Random(11)
    detector = AnomalyDetector(window=50, min_samples=50, clock=ManualClock())
    for endpoint_id in NORMAL:
        feed(detector, rng, endpoint_id, 50)
    feed(detector, rng, "slow", 50, latency=1.0)
    assert detector.anomalous() == frozenset()  # nothing before the first evaluate
    detector.evaluate()
    assert detector.is_anomalous("slow")
    feed(detector, rng, "slow", 20)
    detector.evaluate()
    assert detector.is_anomalous("slow")
    feed(detector, rng, "slow", 10)
    detector.evaluate()
    assert not detector.is_anomalous("slow")


def test_error_prone_endpoint_is_flagged() -> None:
    rng = random.Random(3)
    detector = AnomalyDetector(clock=ManualClock())
    for endpoint_id in NORMAL:
        feed(detector, rng, endpoint_id, 100, error_rate=0.01)
    feed(detector, rng, "flaky", 100, error_rate=0.3)
    anomalies = detector.evaluate()
    assert [(a.endpoint_id, a.metric) for a in anomalies] == [("flaky", ERROR_RATE)]
    (flaky,) = anomalies
    assert flaky.value == pytest.approx(0.3, abs=0.1)
    assert flaky.baseline < 0.05
    assert flaky.score > 3.5


def test_endpoint_can_have_both_metrics() -> None:
    rng = random.Random(5)
    detector = AnomalyDetector(clock=ManualClock())
    for endpoint_id in NORMAL:
        feed(detector, rng, endpoint_id, 100)
    feed(detector, rng, "bad", 100, latency=2.0, error_rate=0.5)
    anomalies = detector.evaluate()
    assert [(a.endpoint_id, a.metric) for a in anomalies] == [
        ("bad", ERROR_RATE),
        ("bad", LATENCY),
    ]
    assert detector.last_changes == (frozenset({"bad"}), frozenset())


def test_uniform_fleet_flags_nothing() -> None:
    rng = random.Random(1)
    detector = AnomalyDetector(clock=ManualClock())
    for endpoint_id in NORMAL:
        feed(detector, rng, endpoint_id, 100)
    assert detector.evaluate() == []
    assert detector.last_changes == (frozenset(), frozenset())


def test_fast_or_error_free_endpoints_are_fine() -> None:
    rng = random.Random(2)
    detector = AnomalyDetector(clock=ManualClock())
    for endpoint_id in NORMAL:
        feed(detector, rng, endpoint_id, 100, error_rate=0.2)
    feed(detector, rng, "fast", 100, latency=0.001, error_rate=0.0)
    assert detector.evaluate() == []


def test_identical_fleet_with_one_slow_endpoint_uses_mean_ad() -> None:
    detector = AnomalyDetector(clock=ManualClock())
    for endpoint_id in NORMAL[:9]:
        for _ in range(20):
            detector.observe(endpoint_id, 0.1, True)
    for _ in range(20):
        detector.observe("slow", 0.4, True)
    (slow,) = detector.evaluate()
    assert slow.endpoint_id == "slow"
    # MAD is 0, so z = (x - median) / (1.253314 * MeanAD) with MeanAD = 0.3 / 10.
    assert slow.score == pytest.approx(10 / 1.253314)
    assert slow.baseline == pytest.approx(0.1)


def test_identical_fleet_flags_nothing() -> None:
    detector = AnomalyDetector(clock=ManualClock())
    for endpoint_id in NORMAL:
        for i in range(20):
            detector.observe(endpoint_id, 0.1, i % 2 == 0)  # MAD and MeanAD both 0
    assert detector.evaluate() == []


def test_guards_stop_tiny_absolute_differences() -> None:
    detector = AnomalyDetector(clock=ManualClock())
    # Latency: 9 identical endpoints and one 20% slower: a large z but under 1.5x.
    # Errors: 9 error-free endpoints and one at 4%: a large z but under the 5-point delta.
    for endpoint_id in NORMAL[:9]:
        for _ in range(100):
            detector.observe(endpoint_id, 0.1, True)
    for i in range(100):
        detector.observe("slightly-off", 0.12, i >= 4)
    assert detector.evaluate() == []

    strict = AnomalyDetector(min_latency_ratio=1.0, min_error_rate_delta=0.0, clock=ManualClock())
    for endpoint_id in NORMAL[:9]:
        for _ in range(100):
            strict.observe(endpoint_id, 0.1, True)
    for i in range(100):
        strict.observe("slightly-off", 0.12, i >= 4)
    metrics = [(a.endpoint_id, a.metric) for a in strict.evaluate()]
    assert metrics == [("slightly-off", ERROR_RATE), ("slightly-off", LATENCY)]


def test_error_delta_guard_is_inclusive() -> None:
    # 0.15 - 0.10 is just under 0.05 in binary floating point; it must still count.
    detector = AnomalyDetector(window=20, min_samples=20, clock=ManualClock())
    for endpoint_id in NORMAL:
        failures = 3 if endpoint_id == "ep-0" else 2
        for i in range(20):
            detector.observe(endpoint_id, 0.1, i >= failures)
    flagged = [(a.endpoint_id, a.metric) for a in detector.evaluate()]
    assert flagged == [("ep-0", ERROR_RATE)]


def test_too_few_endpoints_flags_nothing() -> None:
    rng = random.Random(9)
    detector = AnomalyDetector(min_endpoints=4, clock=ManualClock())
    for endpoint_id in NORMAL[:2]:
        feed(detector, rng, endpoint_id, 100)
    feed(detector, rng, "slow", 100, latency=5.0)
    assert detector.evaluate() == []
    feed(detector, rng, NORMAL[2], 100)
    assert [a.endpoint_id for a in detector.evaluate()] == ["slow"]


def test_too_few_samples_flags_nothing() -> None:
    rng = random.Random(9)
    detector = AnomalyDetector(min_samples=20, clock=ManualClock())
    for endpoint_id in NORMAL:
        feed(detector, rng, endpoint_id, 100)
    feed(detector, rng, "slow", 19, latency=5.0)
    assert detector.sample_count("slow") == 19
    assert detector.evaluate() == []
    feed(detector, rng, "slow", 1, latency=5.0)
    assert [a.endpoint_id for a in detector.evaluate()] == ["slow"]

    # Endpoints below min_samples also do not count toward min_endpoints.
    sparse = AnomalyDetector(min_samples=20, clock=ManualClock())
    for endpoint_id in NORMAL:
        feed(sparse, rng, endpoint_id, 10)
    feed(sparse, rng, "slow", 20, latency=5.0)
    feed(sparse, rng, "ep-0", 10)
    assert sparse.evaluate() == []


def test_window_keeps_the_last_observations() -> None:
    detector = AnomalyDetector(window=10, min_samples=10, clock=ManualClock())
    for _ in range(25):
        detector.observe("a", 0.1, False)
    assert detector.sample_count("a") == 10
    for _ in range(10):
        detector.observe("a", 0.1, True)
    for endpoint_id in ("b", "c"):
        for _ in range(10):
            detector.observe(endpoint_id, 0.1, True)
    # The failures have all left the window, so the fleet is uniform again.
    assert detector.evaluate() == []


def test_last_changes_reports_transitions() -> None:
    rng = random.Random(21)
    clock = ManualClock()
    detector = AnomalyDetector(window=20, min_samples=20, clock=clock)
    for endpoint_id in NORMAL:
        feed(detector, rng, endpoint_id, 20)
    feed(detector, rng, "a", 20, latency=1.0)
    feed(detector, rng, "b", 20, latency=1.0)
    detector.evaluate()
    assert detector.last_changes == (frozenset({"a", "b"}), frozenset())

    clock.advance(5.0)
    feed(detector, rng, "a", 20)
    feed(detector, rng, "c", 20, latency=1.0)
    anomalies = detector.evaluate()
    assert detector.last_changes == (frozenset({"c"}), frozenset({"a"}))
    onsets = {a.endpoint_id: a.detected_at for a in anomalies}
    assert onsets == {"b": 0.0, "c": 5.0}
    assert detector.anomalous() == frozenset({"b", "c"})


def test_transitions_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(8)
    detector = AnomalyDetector(clock=ManualClock())
    for endpoint_id in NORMAL:
        feed(detector, rng, endpoint_id, 100)
    feed(detector, rng, "slow", 100, latency=1.0)
    with caplog.at_level(logging.INFO, logger="fleetroute.resilience.anomaly_detection"):
        detector.evaluate()
        feed(detector, rng, "slow", 100)
        detector.evaluate()
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "endpoint slow is anomalous (latency)",
        "endpoint slow is no longer anomalous",
    ]


def test_forget() -> None:
    rng = random.Random(13)
    detector = AnomalyDetector(clock=ManualClock())
    for endpoint_id in NORMAL:
        feed(detector, rng, endpoint_id, 100)
    feed(detector, rng, "slow", 100, latency=1.0)
    detector.evaluate()
    assert detector.is_anomalous("slow")
    detector.forget("slow")
    assert not detector.is_anomalous("slow")
    assert detector.sample_count("slow") == 0
    assert detector.evaluate() == []
    # A forgotten endpoint is gone, not recovered.
    assert detector.last_changes == (frozenset(), frozenset())
    with pytest.raises(KeyError, match="slow"):
        detector.forget("slow")
    # It starts from scratch when observed again.
    feed(detector, rng, "slow", 19, latency=1.0)
    assert detector.evaluate() == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 0}, "window"),
        ({"window": 2.5}, "window"),
        ({"window": True}, "window"),
        ({"min_samples": 0}, "min_samples"),
        ({"min_samples": 101}, "min_samples"),
        ({"window": 10, "min_samples": 11}, "min_samples"),
        ({"min_endpoints": 0}, "min_endpoints"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": -1.0}, "threshold"),
        ({"threshold": math.inf}, "threshold"),
        ({"threshold": math.nan}, "threshold"),
        ({"min_error_rate_delta": -0.01}, "min_error_rate_delta"),
        ({"min_error_rate_delta": 1.01}, "min_error_rate_delta"),
        ({"min_latency_ratio": 0.99}, "min_latency_ratio"),
        ({"min_latency_ratio": math.inf}, "min_latency_ratio"),
    ],
)
def test_constructor_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AnomalyDetector(**kwargs)  # type: ignore[arg-type]


def test_observe_validation_leaves_no_state() -> None:
    detector = AnomalyDetector(clock=ManualClock())
    for latency in (-0.1, math.nan, math.inf, True):
        with pytest.raises(ValueError, match="latency"):
            detector.observe("a", latency, True)
    with pytest.raises(ValueError, match="success"):
        detector.observe("a", 0.1, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="endpoint_id"):
        detector.observe("", 0.1, True)
    assert detector.sample_count("a") == 0
    with pytest.raises(KeyError):
        detector.forget("a")


def test_anomaly_is_a_frozen_record() -> None:
    anomaly = Anomaly("a", LATENCY, 1.0, 0.1, 9.0, 0.0)
    with pytest.raises(AttributeError):
        anomaly.score = 1.0  # type: ignore[misc]
