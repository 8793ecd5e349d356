"""Failure benchmark: what the resilience layer buys when endpoints fail, slow down and
recover, in a deterministic discrete-event simulation.

The fleet: 40 primary endpoints (fallback tier 1) and 10 fallback endpoints (tier 2),
capacity 8 each (a slot is one request in flight). Clients arrive as a Poisson process
at 60% of the primaries' capacity (Little's law over the mean healthy latency) for 600
seconds of virtual time. A healthy endpoint answers after a lognormal latency with
median 120 ms (sigma 0.5); a failing one answers with a fast error (HTTP 503, lognormal
median 10 ms). The schedule of faults, fixed by the seed:

- **hard fail**: 10% of the primaries (4) answer every request with a fast error from
  t = 120 s to t = 300 s;
- **slow**: another 10% (4) multiply their latency by 20 (median 2.4 s) from t = 200 s
  to t = 420 s; the client gives up after 2 s, so most of their calls end as timeouts;
- **brown-out**: every primary fails half of its requests (fast errors) from t = 480 s
  to t = 510 s;
- every endpoint is healthy again after its window.

Each client request runs the library's own dispatch loop, ``router.call(request, fn,
max_retries=2, ...)``: route, call, observe, and on a retryable failure back off
(``RetryPolicy``: full jitter, base 100 ms, seeded) and retry on an endpoint this
request has not tried yet. ``fn`` is the simulated endpoint: it awaits a virtual-time
wait that this file's scheduler serves from a heap of events, advancing the routers'
``ManualClock`` to each event before resuming it. The client timeout is applied in
``fn`` (it raises ``TimeoutError`` 2 s after dispatch), and the slot is released when
the client gives up, as when the client cancels the upstream call. A request the
router cannot place (``NoEndpointAvailable``) fails at once.

Configurations, all on the same seed and the same arrivals:

- ``a`` no protection, first tier only;
- ``b`` fallback tiers only;
- ``c`` circuit breakers, first tier only;
- ``d`` outlier ejection, first tier only;
- ``e`` breakers + ejection + fallback tiers.

"First tier only" registers the 40 primaries and nothing else: ``call`` applies
``enable_fallback`` to its first attempt only (its retries always may fall back), so
leaving the tier out is the way to keep every attempt on the first tier. Breakers use
seed 000's settings (5 consecutive failures, 30 s recovery, 3 half-open trials) with a
2 s slow-call threshold; ejection uses the library's (Envoy's) defaults: 5 consecutive
errors, success-rate ejection every 10 s, 30 s base ejection, at most 10% of the fleet
ejected at once.

Reported per configuration: client success rate (overall and per phase of the
schedule), p50/p99 client latency from arrival to the final answer (retries, backoff
and timeouts included, failed requests included), attempts per request, requests
refused for lack of an endpoint, share of attempts served by the fallback tier, share
of the attempts made in the hard-fail window that went to a hard-failed endpoint,
breaker activations and ejections; per phase, also attempts per request and p99.
Everything but the wall-clock line is deterministic for a given seed.

Run: ``.venv/bin/python benches/failure_benchmark.py [--quick] [--seed N] [--json PATH]
[--jobs N]``. ``--quick`` runs a 150 s schedule (every time scaled by 1/4) as a smoke
test; its numbers are not comparable with the full run. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import logging
import math
import platform
import random
import time
from collections.abc import Callable, Coroutine, Generator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fleetroute import (
    Endpoint,
    EnhancedRouter,
    ManualClock,
    NoEndpointAvailable,
    RetryPolicy,
    UpstreamError,
)

__all__: list[str] = []

CONFIGS: dict[str, str] = {
    "a": "no protection, first tier only",
    "b": "fallback tiers only",
    "c": "circuit breakers, first tier only",
    "d": "outlier ejection, first tier only",
    "e": "breakers + ejection + fallback",
}

# Seed 000's breaker settings, in milliseconds as configure_advanced_features takes them,
# with a slow-call threshold equal to the client timeout.
BREAKER_SETTINGS: dict[str, int] = {
    "failure_threshold": 5,
    "timeout_threshold": 2_000,
    "recovery_timeout": 30_000,
    "half_open_max_calls": 3,
}


@dataclass(frozen=True)
class Scenario:
    """The workload and the fault schedule (times in seconds of virtual time)."""

    primaries: int = 40
    fallbacks: int = 10
    capacity: int = 8
    duration: float = 600.0
    load: float = 0.6
    latency_median: float = 0.120
    latency_sigma: float = 0.5
    error_median: float = 0.010
    error_sigma: float = 0.5
    client_timeout: float = 2.0
    max_retries: int = 2
    hard_fraction: float = 0.1
    hard_window: tuple[float, float] = (120.0, 300.0)
    slow_fraction: float = 0.1
    slow_factor: float = 20.0
    slow_window: tuple[float, float] = (200.0, 420.0)
    brownout_error_rate: float = 0.5
    brownout_window: tuple[float, float] = (480.0, 510.0)
    seed: int = 1

    @property
    def mean_latency(self) -> float:
        return self.latency_median * math.exp(self.latency_sigma**2 / 2)

    @property
    def arrival_rate(self) -> float:
        """Requests per second: ``load`` of the primaries' slots by Little's law."""
        return self.load * self.primaries * self.capacity / self.mean_latency

    def scaled(self, factor: float) -> Scenario:
        """The same schedule with every time multiplied by ``factor``."""

        def window(w: tuple[float, float]) -> tuple[float, float]:
            return (w[0] * factor, w[1] * factor)

        return replace(
            self,
            duration=self.duration * factor,
            hard_window=window(self.hard_window),
            slow_window=window(self.slow_window),
            brownout_window=window(self.brownout_window),
        )

    def phases(self) -> list[tuple[str, float, float]]:
        """Consecutive windows of the schedule, named by what is wrong in them."""
        cuts = sorted(
            {0.0, self.duration}
            | set(self.hard_window)
            | set(self.slow_window)
            | set(self.brownout_window)
        )
        out = []
        for start, end in itertools.pairwise(cuts):
            mid = (start + end) / 2
            faults = []
            if self.hard_window[0] <= mid < self.hard_window[1]:
                faults.append("hard")
            if self.slow_window[0] <= mid < self.slow_window[1]:
                faults.append("slow")
            if self.brownout_window[0] <= mid < self.brownout_window[1]:
                faults.append("brown-out")
            out.append(("+".join(faults) or "healthy", start, end))
        return out


class _Until:
    """An awaitable that suspends the simulated client until virtual time ``at``."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at

    def __await__(self) -> Generator[_Until, None, None]:
        yield self


@dataclass
class _Outcomes:
    """What the clients saw."""

    arrivals: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    refused: int = 0
    current: int = 0  # the request whose coroutine is running


class _World:
    """The endpoints' behaviour over time (which are broken, how, and when)."""

    def __init__(self, scenario: Scenario, rng: random.Random) -> None:
        self.s = scenario
        self.rng = rng
        primaries = list(range(scenario.primaries))
        picked = random.Random(scenario.seed).sample(
            primaries,
            round(scenario.primaries * scenario.hard_fraction)
            + round(scenario.primaries * scenario.slow_fraction),
        )
        hard_count = round(scenario.primaries * scenario.hard_fraction)
        self.hard = {f"p{i}" for i in picked[:hard_count]}
        self.slow = {f"p{i}" for i in picked[hard_count:]}
        self.mu = math.log(scenario.latency_median)
        self.error_mu = math.log(scenario.error_median)
        # Attempts dispatched during the hard-fail window, and those sent to a hard-failed
        # endpoint (p2c's pull towards idle endpoints shows here).
        self.hard_window_attempts = 0
        self.hard_window_on_hard = 0

    def latency_and_outcome(self, endpoint_id: str, now: float) -> tuple[float, str]:
        """Seconds until the client hears back, and "ok", "error" or "timeout"."""
        s = self.s
        rng = self.rng
        primary = endpoint_id[0] == "p"
        if s.hard_window[0] <= now < s.hard_window[1]:
            self.hard_window_attempts += 1
            self.hard_window_on_hard += endpoint_id in self.hard
        failing = (endpoint_id in self.hard and s.hard_window[0] <= now < s.hard_window[1]) or (
            primary
            and s.brownout_window[0] <= now < s.brownout_window[1]
            and rng.random() < s.brownout_error_rate
        )
        if failing:
            return rng.lognormvariate(self.error_mu, s.error_sigma), "error"
        latency = rng.lognormvariate(self.mu, s.latency_sigma)
        if endpoint_id in self.slow and s.slow_window[0] <= now < s.slow_window[1]:
            latency *= s.slow_factor
        if latency > s.client_timeout:
            return s.client_timeout, "timeout"
        return latency, "ok"


def _build_router(config: str, scenario: Scenario, clock: ManualClock) -> EnhancedRouter:
    features: list[str] = []
    if config in ("c", "e"):
        features.append("circuit_breaker")
    if config in ("d", "e"):
        features.append("outlier_detection")

    async def sleep(seconds: float) -> None:
        await _Until(clock() + seconds)

    router = EnhancedRouter(
        features=features,
        clock=clock,
        sleep=sleep,
        seed=scenario.seed,
        strategy="p2c",
        retry_policy=RetryPolicy(
            max_retries=scenario.max_retries, rng=random.Random(scenario.seed + 2)
        ),
    )
    if "circuit_breaker" in features:
        router.configure_advanced_features(circuit_breaker=BREAKER_SETTINGS)
    endpoints = [
        {"id": f"p{i}", "capacity": scenario.capacity, "priority": 1, "device": "gpu"}
        for i in range(scenario.primaries)
    ]
    if config in ("b", "e"):
        endpoints += [
            {"id": f"f{i}", "capacity": scenario.capacity, "priority": 2, "device": "gpu"}
            for i in range(scenario.fallbacks)
        ]
    router.register_endpoints(endpoints)
    return router


def simulate(config: str, scenario: Scenario) -> dict[str, Any]:
    """Runs one configuration over the whole schedule; returns its figures."""
    # Breakers and ejection log a warning per opening; with no logging configured,
    # Python would print each one to stderr.
    logging.getLogger("fleetroute").setLevel(logging.ERROR)
    started = time.perf_counter()
    clock = ManualClock()
    router = _build_router(config, scenario, clock)
    world = _World(scenario, random.Random(scenario.seed + 1))
    out = _Outcomes()
    arrival_rng = np.random.default_rng(scenario.seed)
    expected = int(scenario.arrival_rate * scenario.duration * 1.1) + 100
    gaps = arrival_rng.exponential(1.0 / scenario.arrival_rate, expected)
    arrivals = np.cumsum(gaps)
    arrivals = arrivals[arrivals < scenario.duration].tolist()

    async def attempt(endpoint: Endpoint) -> str:
        out.attempts[out.current] += 1
        now = clock()
        wait, outcome = world.latency_and_outcome(endpoint.id, now)
        await _Until(now + wait)
        if outcome == "error":
            raise UpstreamError(503)
        if outcome == "timeout":
            raise TimeoutError
        return outcome

    heap: list[tuple[float, int, Coroutine[Any, Any, str], int]] = []
    seq = 0
    request = {"model": "m"}
    max_retries = scenario.max_retries
    call: Callable[..., Coroutine[Any, Any, str]] = router.call
    push = heapq.heappush

    def step(coro: Coroutine[Any, Any, str], index: int) -> None:
        nonlocal seq
        out.current = index
        try:
            until = coro.send(None)
        except StopIteration:
            ok = True
        except NoEndpointAvailable:
            out.refused += 1
            ok = False
        except (UpstreamError, TimeoutError):
            ok = False
        else:
            seq += 1
            push(heap, (until.at, seq, coro, index))
            return
        out.latencies[index] = clock() - out.arrivals[index]
        out.successes[index] = ok

    next_arrival = 0
    total = len(arrivals)
    out.arrivals = arrivals
    out.latencies = [0.0] * total
    out.successes = [False] * total
    out.attempts = [0] * total
    while next_arrival < total or heap:
        if heap and (next_arrival >= total or heap[0][0] <= arrivals[next_arrival]):
            at, _, coro, index = heapq.heappop(heap)
            clock.advance(max(0.0, at - clock()))
            step(coro, index)
        else:
            at = arrivals[next_arrival]
            clock.advance(max(0.0, at - clock()))
            step(call(request, attempt, max_retries=max_retries), next_arrival)
            next_arrival += 1

    latencies = np.asarray(out.latencies)
    successes = np.asarray(out.successes)
    attempts = np.asarray(out.attempts)
    arrival_times = np.asarray(out.arrivals)
    phases = []
    for name, start, end in scenario.phases():
        mask = (arrival_times >= start) & (arrival_times < end)
        phases.append(
            {
                "phase": name,
                "start": start,
                "end": end,
                "requests": int(mask.sum()),
                "success_rate": float(successes[mask].mean()) if mask.any() else math.nan,
                "attempts_per_request": float(attempts[mask].mean()) if mask.any() else math.nan,
                "p99_ms": float(np.percentile(latencies[mask], 99) * 1000)
                if mask.any()
                else math.nan,
            }
        )
    metrics = router.metrics
    detector = router.outlier_detector
    return {
        "config": config,
        "description": CONFIGS[config],
        "features": sorted(router.features),
        "endpoints": len(router.endpoints),
        "requests": total,
        "success_rate": float(successes.mean()),
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "mean_ms": float(latencies.mean() * 1000),
        "attempts_per_request": float(attempts.mean()),
        "retries": metrics.retries,
        "refused": out.refused,
        "fallback_share": metrics.fallbacks / metrics.routed if metrics.routed else 0.0,
        "hard_window_share_on_hard": world.hard_window_on_hard / world.hard_window_attempts
        if world.hard_window_attempts
        else 0.0,
        "breaker_activations": router.circuit_breaker_activations,
        "ejections": 0 if detector is None else detector.total_ejections,
        "phases": phases,
        "wall_s": time.perf_counter() - started,
    }


def _markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| config | success | p50 ms | p99 ms | attempts/req | refused | fallback share "
        "| attempts on hard-failed, hard window | breaker openings | ejections |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['config']}: {r['description']} | {r['success_rate'] * 100:.2f}% "
            f"| {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['attempts_per_request']:.3f} "
            f"| {r['refused']:,} | {r['fallback_share'] * 100:.2f}% "
            f"| {r['hard_window_share_on_hard'] * 100:.2f}% "
            f"| {r['breaker_activations']:,} | {r['ejections']:,} |"
        )
    phases = results[0]["phases"]
    header = " | ".join(f"{p['phase']} {p['start']:.0f}-{p['end']:.0f} s" for p in phases)
    lines += [
        "",
        f"| success by arrival time | {header} |",
        "|---|" + "---:|" * len(phases),
    ]
    for r in results:
        cells = " | ".join(f"{p['success_rate'] * 100:.2f}%" for p in r["phases"])
        lines.append(f"| {r['config']} | {cells} |")
    lines += ["", f"| attempts/req by arrival time | {header} |", "|---|" + "---:|" * len(phases)]
    for r in results:
        cells = " | ".join(f"{p['attempts_per_request']:.3f}" for p in r["phases"])
        lines.append(f"| {r['config']} | {cells} |")
    lines += ["", f"| p99 ms by arrival time | {header} |", "|---|" + "---:|" * len(phases)]
    for r in results:
        cells = " | ".join(f"{p['p99_ms']:.0f}" for p in r["phases"])
        lines.append(f"| {r['config']} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="150 s schedule (smoke test)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--configs", default="abcde", help="which configurations to run (default: abcde)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="configurations run in parallel")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    configs = [c for c in args.configs if c in CONFIGS]
    if not configs or len(configs) != len(args.configs):
        parser.error(f"--configs takes letters from {''.join(CONFIGS)}")
    scenario = Scenario(seed=args.seed)
    if args.quick:
        scenario = scenario.scaled(0.25)

    started = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(simulate, configs, [scenario] * len(configs)))
    else:
        results = [simulate(c, scenario) for c in configs]
    wall = time.perf_counter() - started

    s = scenario
    world = _World(s, random.Random(0))
    print(
        f"fleet: {s.primaries} primaries (tier 1) + {s.fallbacks} fallbacks (tier 2), "
        f"capacity {s.capacity}, p2c; arrivals {s.arrival_rate:.1f}/s for {s.duration:.0f} s "
        f"(load {s.load:.0%} of the primaries), seed {s.seed}"
    )
    print(
        f"faults: hard {sorted(world.hard)} {s.hard_window[0]:.0f}-{s.hard_window[1]:.0f} s; "
        f"slow x{s.slow_factor:.0f} {sorted(world.slow)} "
        f"{s.slow_window[0]:.0f}-{s.slow_window[1]:.0f} s; brown-out "
        f"{s.brownout_error_rate:.0%} errors on all primaries "
        f"{s.brownout_window[0]:.0f}-{s.brownout_window[1]:.0f} s; client timeout "
        f"{s.client_timeout:.0f} s, {s.max_retries} retries"
    )
    print()
    print(_markdown(results))
    print()
    per_config = ", ".join(f"{r['config']} {r['wall_s']:.1f} s" for r in results)
    print(f"wall clock: {wall:.1f} s ({per_config}), jobs {args.jobs}")
    if args.json is not None:
        payload = {
            "scenario": asdict(s),
            "arrival_rate": s.arrival_rate,
            "hard_endpoints": sorted(world.hard),
            "slow_endpoints": sorted(world.slow),
            "breaker_settings_ms": BREAKER_SETTINGS,
            "python": platform.python_version(),
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
