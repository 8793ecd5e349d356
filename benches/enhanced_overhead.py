"""Routing overhead of the resilience layer: the full ``EnhancedRouter`` path against the
bare Rust pick, per request, at 1,000 endpoints.

One tier of 1,000 endpoints, p2c, capacity 1,000,000 each (nothing is ever refused).
Variants, all in one process:

- ``bare``: ``Router.route()`` then ``Router.release(id)`` on the Rust core alone;
- ``base``: ``BaseRouter.route_request(request)`` then ``complete(result, success=True,
  latency_ms=...)``;
- ``enhanced``: ``EnhancedRouter`` with its default features (circuit breaker, rate
  limiting with a limit that never refuses, prioritisation, caching available but not
  requested, anomaly detection, outlier detection) through
  ``route_with_intelligence(request)`` then ``complete(...)``;
- ``enhanced+cache``: the same router with ``enable_caching=True`` on requests whose
  cache key differs every time, so every lookup misses; ``complete`` gets a response,
  which is stored (the whole cost of a cache-enabled request that misses).

Every variant is timed two ways per round: the pair in one loop (``route+complete``),
and split: a loop of N routes collecting the results, then a loop completing them
(``route only``, ``complete only``). Each round times N = 20,000 requests per variant
and way with ``time.perf_counter_ns``, the cyclic GC off during the loop (as
``timeit``); the variants' order rotates every round and reverses every other round,
so drift on a noisy machine hits them alike. One untimed warm-up round comes first;
routers persist across rounds (their metrics history, windows and cache are in steady
state). Medians over rounds are reported per request, with the difference and ratio
against ``bare`` and the median of the per-round (paired) differences.

Time: the routers read a ``ManualClock`` that never moves. No real clock is read on
the request path, and the periodic work (anomaly evaluation and ejection intervals
every 10 s, breaker recovery) never falls due: it runs once per interval of traffic,
not per request, in production.

A breakdown times the stages of the path one at a time, in the same manner, to show
where the overhead goes (isolated loops: the stages do not sum exactly to the path).

Target (reported, not asserted): the full ``EnhancedRouter`` path adds under 5 µs per
request to the bare pick at 1,000 endpoints.

Run: ``.venv/bin/python benches/enhanced_overhead.py [--rounds 15] [-n 20000]
[--json PATH] [--no-breakdown]``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import platform
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from fleetroute import BaseRouter, EnhancedRouter, ManualClock, Router
from fleetroute.admission.priority import Priority, parse_priority
from fleetroute.routers.base_router import request_cost
from fleetroute.routers.routing_result import RoutingResult

__all__: list[str] = []

T = TypeVar("T")

ENDPOINTS = 1_000
CAPACITY = 1_000_000
LATENCY_MS = 100.0
RESPONSE = {"text": "ok"}
TARGET_US = 5.0
VARIANTS = ("bare", "base", "enhanced", "enhanced+cache")
WAYS = ("pair", "split")


def _endpoints() -> list[dict[str, Any]]:
    return [
        {"id": f"e{i}", "capacity": CAPACITY, "priority": 1, "device": "gpu"}
        for i in range(ENDPOINTS)
    ]


class _Bench:
    """The routers under test and one timed loop per (variant, way)."""

    def __init__(self, n: int, gc_on: bool = False) -> None:
        self.n = n
        self.gc_on = gc_on
        self.clock = ManualClock()
        self.bare = Router("p2c", seed=1)
        self.bare.add_fleet(np.arange(ENDPOINTS), np.full(ENDPOINTS, CAPACITY))
        self.base = BaseRouter(strategy="p2c", seed=1, clock=self.clock)
        self.base.register_endpoints(_endpoints())
        self.enhanced = EnhancedRouter(strategy="p2c", seed=1, clock=self.clock)
        # The clock never moves, so the limiter's bucket never refills: a burst larger
        # than every request of the run keeps it from ever refusing.
        self.enhanced.configure_advanced_features(
            rate_limiting={"requests_per_minute": 6e10, "burst_capacity": 1e9}
        )
        self.enhanced.register_endpoints(_endpoints())
        self.request: dict[str, Any] = {"model": "m", "prompt": "hello"}
        self.fresh = 0

    def requests(self, variant: str, n: int) -> list[dict[str, Any]]:
        """The request list of one loop: fresh cache keys for ``enhanced+cache``."""
        if variant != "enhanced+cache":
            return [self.request] * n
        self.fresh += 1
        tag = self.fresh
        return [{"model": "m", "prompt": f"hello {tag}-{i}"} for i in range(n)]

    def run(self, variant: str, way: str) -> dict[str, int]:
        """Times one loop (or the two split loops); returns nanoseconds per part."""
        requests = self.requests(variant, self.n)
        gc.collect()
        if not self.gc_on:
            gc.disable()
        try:
            if way == "pair":
                return {"pair": self.pair(variant, requests)}
            return self._split(variant, requests)
        finally:
            gc.enable()

    def pair(self, variant: str, requests: list[dict[str, Any]]) -> int:
        """Times ``requests`` through route then complete, one at a time; ns."""
        clock = time.perf_counter_ns
        if variant == "bare":
            route, release = self.bare.route, self.bare.release
            start = clock()
            for _ in requests:
                release(route())  # type: ignore[arg-type]
            return clock() - start
        if variant == "base":
            route_request, complete = self.base.route_request, self.base.complete
            start = clock()
            for request in requests:
                complete(route_request(request), success=True, latency_ms=LATENCY_MS)
            return clock() - start
        rwi, complete = self.enhanced.route_with_intelligence, self.enhanced.complete
        if variant == "enhanced":
            start = clock()
            for request in requests:
                complete(rwi(request), success=True, latency_ms=LATENCY_MS)
            return clock() - start
        start = clock()
        for request in requests:
            complete(
                rwi(request, enable_caching=True),
                success=True,
                latency_ms=LATENCY_MS,
                response=RESPONSE,
            )
        return clock() - start

    def _split(self, variant: str, requests: list[dict[str, Any]]) -> dict[str, int]:
        clock = time.perf_counter_ns
        if variant == "bare":
            route, release = self.bare.route, self.bare.release
            start = clock()
            ids = [route() for _ in requests]
            middle = clock()
            for acc in ids:
                release(acc)  # type: ignore[arg-type]
            return {"route": middle - start, "complete": clock() - middle}
        results: list[RoutingResult]
        if variant == "base":
            route_request, complete = self.base.route_request, self.base.complete
            start = clock()
            results = [route_request(request) for request in requests]
        else:
            rwi, complete = self.enhanced.route_with_intelligence, self.enhanced.complete
            if variant == "enhanced":
                start = clock()
                results = [rwi(request) for request in requests]
            else:
                start = clock()
                results = [rwi(request, enable_caching=True) for request in requests]
        middle = clock()
        if variant == "enhanced+cache":
            for result in results:
                complete(result, success=True, latency_ms=LATENCY_MS, response=RESPONSE)
        else:
            for result in results:
                complete(result, success=True, latency_ms=LATENCY_MS)
        return {"route": middle - start, "complete": clock() - middle}

    def sanity(self) -> dict[str, int]:
        """Requests that did not take the placed path (all should be zero)."""
        base, enhanced = self.base.metrics, self.enhanced.metrics
        return {
            "base_no_capacity": base.no_capacity,
            "enhanced_rate_limited": enhanced.rate_limited,
            "enhanced_shed": enhanced.shed,
            "enhanced_no_capacity": enhanced.no_capacity,
            "enhanced_cache_hits": enhanced.cache_hits,
            "bare_in_flight": int(self.bare.loads().sum()),
            "enhanced_in_flight": self.enhanced.pool.in_flight,
        }


def _enabled(stage: T | None) -> T:
    if stage is None:
        raise RuntimeError("EnhancedRouter's default features no longer include all six")
    return stage


def _stages(bench: _Bench) -> dict[str, Callable[[int], int]]:
    """Isolated loops over the stages of the enhanced path; each returns ns for n calls."""
    router = bench.enhanced
    pool = router.pool
    request = bench.request
    clock = time.perf_counter_ns
    endpoint = pool.endpoints()[0]
    endpoint_id = endpoint.id
    native_id = pool.native_id(endpoint_id)
    breaker, limiter = _enabled(router.breaker), _enabled(router.rate_limiter)
    shedder, cache = _enabled(router.shedder), _enabled(router.cache)
    anomaly, outlier = _enabled(router.anomaly_detector), _enabled(router.outlier_detector)
    metrics = router.metrics
    bare = bench.bare

    def empty_call(n: int) -> int:
        def nothing() -> None:
            return None

        start = clock()
        for _ in range(n):
            nothing()
        return clock() - start

    def clock_read(n: int) -> int:
        now = bench.clock
        start = clock()
        for _ in range(n):
            now()
        return clock() - start

    def bare_pick(n: int) -> int:
        route, release = bare.route, bare.release
        start = clock()
        for _ in range(n):
            release(route())  # type: ignore[arg-type]
        return clock() - start

    def parse(n: int) -> int:
        start = clock()
        for _ in range(n):
            request_cost(request)
            parse_priority(request.get("priority"))
        return clock() - start

    def poll(n: int) -> int:
        breaker_poll, outlier_poll = breaker.poll, outlier.poll
        start = clock()
        for _ in range(n):
            breaker_poll()
            outlier_poll()
        return clock() - start

    def rate_limit(n: int) -> int:
        check = limiter.check
        start = clock()
        for _ in range(n):
            check(None, None)
        return clock() - start

    def shed(n: int) -> int:
        admit = shedder.admit
        start = clock()
        for _ in range(n):
            admit(Priority.NORMAL, pool.utilisation)
        return clock() - start

    def place(n: int) -> int:
        place, release = pool.place, pool.release
        start = clock()
        for _ in range(n):
            release(place(1, 0).native_id, 1)  # type: ignore[union-attr]
        return clock() - start

    def load_view(n: int) -> int:
        load = pool.native.load
        start = clock()
        for _ in range(n):
            load(native_id)
        return clock() - start

    def result(n: int) -> int:
        now = bench.clock
        start = clock()
        for _ in range(n):
            RoutingResult(
                endpoint_id,
                endpoint=endpoint,
                estimated_latency_ms=100.0,
                load_score=1.0,
                tier=1,
                fallback_used=False,
                priority=Priority.NORMAL,
                cost=1,
                started_at=now(),
                native_id=native_id,
            )
        return clock() - start

    def routed(n: int) -> int:
        record = metrics.record_routed
        start = clock()
        for _ in range(n):
            record(False)
        return clock() - start

    def completion(n: int) -> int:
        record = metrics.record_completion
        start = clock()
        for _ in range(n):
            record(endpoint_id, LATENCY_MS, True, 1, 0.0)
        return clock() - start

    def breaker_record(n: int) -> int:
        record = breaker.record_result
        start = clock()
        for _ in range(n):
            record(endpoint_id, True, 0.1)
        return clock() - start

    def outlier_record(n: int) -> int:
        record = outlier.record
        start = clock()
        for _ in range(n):
            record(endpoint_id, True)
        return clock() - start

    def anomaly_observe(n: int) -> int:
        observe = anomaly.observe
        start = clock()
        for _ in range(n):
            observe(endpoint_id, 0.1, True)
        return clock() - start

    def latency_ewma(n: int) -> int:
        observe = pool.observe_latency
        start = clock()
        for _ in range(n):
            observe(native_id, LATENCY_MS)
        return clock() - start

    def cache_key(n: int) -> int:
        key_for = cache.key_for
        start = clock()
        for _ in range(n):
            key_for(request)
        return clock() - start

    def cache_miss(n: int) -> int:
        get = cache.get_by_key
        keys = [i.to_bytes(16, "little") for i in range(n)]
        start = clock()
        for key in keys:
            get(key)
        return clock() - start

    def cache_put(n: int) -> int:
        put = cache.put_by_key
        base = bench.fresh * n + 10**9
        keys = [(base + i).to_bytes(16, "little") for i in range(n)]
        bench.fresh += 1
        start = clock()
        for key in keys:
            put(key, RESPONSE)
        return clock() - start

    return {
        "reference: an empty Python function call": empty_call,
        "reference: one ManualClock() read": clock_read,
        "bare pick: Router.route() + release()": bare_pick,
        "request_cost + parse_priority": parse,
        "breaker.poll + outlier_detector.poll": poll,
        "rate limiter check (global bucket)": rate_limit,
        "load shedder admit (+ utilisation)": shed,
        "pool.place + pool.release (Python pool + Rust pick)": place,
        "Router.load (the chosen endpoint's load)": load_view,
        "RoutingResult(...) construction": result,
        "metrics.record_routed": routed,
        "metrics.record_completion": completion,
        "latency EWMA (pool.observe_latency)": latency_ewma,
        "breaker.record_result": breaker_record,
        "outlier_detector.record": outlier_record,
        "anomaly_detector.observe": anomaly_observe,
        "cache.key_for (JSON + BLAKE2b)": cache_key,
        "cache.get_by_key, miss": cache_miss,
        "cache.put_by_key (with LRU eviction when full)": cache_put,
    }


def _calls_per_request(bench: _Bench, variant: str, n: int = 1_000) -> float:
    """Function calls (Python functions and C builtins, as cProfile counts them) per
    request of the route+complete loop: deterministic, unlike the timings."""
    requests = bench.requests(variant, n)
    profile = cProfile.Profile()
    profile.enable()
    bench.pair(variant, requests)
    profile.disable()
    stats: dict[Any, tuple[Any, ...]] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    # Two perf_counter_ns reads and the disable call belong to the harness.
    calls = sum(int(entry[1]) for entry in stats.values())
    return (calls - 3) / n


def _timed(fn: Callable[[int], int], n: int) -> int:
    gc.collect()
    gc.disable()
    try:
        return fn(n)
    finally:
        gc.enable()


def _us(ns: float, n: int) -> float:
    return ns / n / 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("-n", type=int, default=20_000, help="requests per loop")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--gc", action="store_true", help="keep the cyclic GC on in the loops")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the stage breakdown")
    args = parser.parse_args()
    n, rounds = args.n, args.rounds

    bench = _Bench(n, gc_on=args.gc)
    cells = [(variant, way) for variant in VARIANTS for way in WAYS]
    for variant, way in cells:  # warm-up, untimed
        bench.run(variant, way)
    samples: dict[str, list[float]] = {}
    for r in range(rounds):
        order = cells[r % len(cells) :] + cells[: r % len(cells)]
        if r % 2:
            order.reverse()
        for variant, way in order:
            for part, ns in bench.run(variant, way).items():
                samples.setdefault(f"{variant}/{part}", []).append(_us(ns, n))

    stage_samples: dict[str, list[float]] = {}
    if not args.no_breakdown:
        stages = _stages(bench)
        for fn in stages.values():
            _timed(fn, n)
        names = list(stages)
        for r in range(rounds):
            stage_order = names[r % len(names) :] + names[: r % len(names)]
            if r % 2:
                stage_order.reverse()
            for name in stage_order:
                stage_samples.setdefault(name, []).append(_us(_timed(stages[name], n), n))

    med = {key: statistics.median(values) for key, values in samples.items()}

    def paired(key: str, part: str) -> float:
        return statistics.median(
            a - b for a, b in zip(samples[key], samples[f"bare/{part}"], strict=True)
        )

    print(
        f"{ENDPOINTS:,} endpoints, one tier, p2c, capacity {CAPACITY:,}; {rounds} interleaved "
        f"rounds of {n:,} requests per variant; ManualClock (never advanced); "
        f"GC {'on' if args.gc else 'off'} in the timed loops"
    )
    print()
    print(
        "| variant | part | median µs/req | min | max | added (µs) | paired added (µs) | x bare |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for variant in VARIANTS:
        for part in ("pair", "route", "complete"):
            key = f"{variant}/{part}"
            values = samples[key]
            base = med[f"bare/{part}"]
            diff = med[key] - base
            pdiff = paired(key, part)
            ratio = med[key] / base
            label = {"pair": "route+complete", "route": "route only", "complete": "complete only"}
            diff_cell = "-" if variant == "bare" else f"{diff:+.2f}"
            pdiff_cell = "-" if variant == "bare" else f"{pdiff:+.2f}"
            ratio_cell = "-" if variant == "bare" else f"{ratio:.1f}x"
            print(
                f"| {variant} | {label[part]} | {med[key]:.2f} | {min(values):.2f} "
                f"| {max(values):.2f} | {diff_cell} | {pdiff_cell} | {ratio_cell} |"
            )
            rows.append(
                {
                    "variant": variant,
                    "part": part,
                    "median_us": med[key],
                    "min_us": min(values),
                    "max_us": max(values),
                    "minus_bare_us": diff,
                    "paired_minus_bare_us": pdiff,
                    "ratio_to_bare": ratio,
                    "samples_us": values,
                }
            )
    print()
    verdicts = []
    for variant in ("enhanced", "enhanced+cache"):
        added = med[f"{variant}/pair"] - med["bare/pair"]
        verdict = "PASS" if added < TARGET_US else "MISS"
        verdicts.append({"variant": variant, "added_us": added, "verdict": verdict})
        note = "" if variant == "enhanced" else " (caching requested; informational)"
        print(
            f"target: {variant} adds < {TARGET_US:.0f} µs/request over the bare pick: "
            f"{added:.2f} µs -> {verdict}{note}"
        )
    calls = {variant: _calls_per_request(bench, variant) for variant in VARIANTS}
    print(
        "function calls per request, route+complete (Python functions and C builtins, "
        "counted by cProfile): " + ", ".join(f"{v} {c:.1f}" for v, c in calls.items())
    )
    sanity = bench.sanity()
    print(
        "not placed / left in flight (all should be 0): "
        + ", ".join(f"{k} {v}" for k, v in sanity.items())
    )

    stage_rows = []
    if stage_samples:
        print()
        print("| stage (isolated loop) | median µs/call | min | max |")
        print("|---|---:|---:|---:|")
        for stage, values in stage_samples.items():
            m = statistics.median(values)
            print(f"| {stage} | {m:.3f} | {min(values):.3f} | {max(values):.3f} |")
            stage_rows.append({"stage": stage, "median_us": m, "samples_us": values})

    if args.json is not None:
        payload = {
            "endpoints": ENDPOINTS,
            "capacity": CAPACITY,
            "rounds": rounds,
            "n": n,
            "clock": "ManualClock (never advanced)",
            "python": platform.python_version(),
            "machine": platform.machine(),
            "results": rows,
            "verdicts": verdicts,
            "calls_per_request": calls,
            "gc_in_loops": bench.gc_on,
            "sanity": sanity,
            "stages": stage_rows,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
