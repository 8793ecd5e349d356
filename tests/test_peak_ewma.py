"""Peak-EWMA: latency-aware routing fed by reported latencies, on an injected clock."""

from __future__ import annotations

import collections
import math

import pytest

from fleetroute import Accelerator, Router


def fleet(**options: float) -> Router:
    router = Router("peak_ewma", seed=5, priority_reserve=0.0, **options)
    router.add_accelerators([Accelerator(i, 1000) for i in range(2)])
    return router


def test_prefers_the_faster_replica() -> None:
    router = fleet()
    router.report_latency(0, 0.05, now=0.0)
    router.report_latency(1, 0.5, now=0.0)
    picks = collections.Counter(router.route(now=0.0) for _ in range(100))
    assert picks[0] >= 80, picks


def test_spike_moves_traffic_away_and_recovery_brings_it_back() -> None:
    router = fleet(decay=10.0)
    for acc in (0, 1):
        router.report_latency(acc, 0.1, now=0.0)
    router.report_latency(0, 3.0, now=1.0)
    assert router.latency_estimate(0, now=1.0) == pytest.approx(3.0)
    assert router.route(now=1.0) == 1
    router.release(1)
    now = 1.0
    for _ in range(60):
        now += 1.0
        router.report_latency(0, 0.05, now=now)
        router.report_latency(1, 0.1, now=now)
    estimate_0 = router.latency_estimate(0, now=now)
    estimate_1 = router.latency_estimate(1, now=now)
    assert estimate_0 is not None and estimate_1 is not None
    assert estimate_0 < estimate_1
    assert router.route(now=now) == 0


def test_idle_estimate_decays_and_default_applies_before_observations() -> None:
    router = fleet(default_rtt=0.25, decay=10.0)
    assert router.latency_estimate(0, now=0.0) == pytest.approx(0.25)
    router.report_latency(0, 1.0, now=0.0)
    assert router.latency_estimate(0, now=10.0) == pytest.approx(1 / math.e)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="default_rtt"):
        Router("peak_ewma", default_rtt=0.0)
    with pytest.raises(ValueError, match="decay"):
        Router("peak_ewma", decay=-1.0)
    with pytest.raises(ValueError, match="peak_ewma only"):
        Router("p2c", decay=1.0)
    router = fleet()
    with pytest.raises(ValueError, match="latency"):
        router.report_latency(0, -0.1)
    with pytest.raises(ValueError, match="latency"):
        router.report_latency(0, math.nan)
    with pytest.raises(KeyError, match="7"):
        router.report_latency(7, 0.1)
    with pytest.raises(ValueError, match="now"):
        router.route(now=-1.0)
    # Other strategies accept reports (checked) and hold no estimate.
    plain = Router("p2c")
    plain.add_accelerator(Accelerator(1, 1))
    plain.report_latency(1, 0.2)
    assert plain.latency_estimate(1) is None
    with pytest.raises(ValueError, match="latency"):
        plain.report_latency(1, math.inf)
