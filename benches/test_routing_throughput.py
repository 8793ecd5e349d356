"""pytest-benchmark throughput benchmarks of the Python API (``make bench``).

Run with ``.venv/bin/python -m pytest benches -p no:cacheprovider --benchmark-only``;
``make test`` does not collect this directory. No test here asserts on timing: the
assertions only check that the work measured was the work intended (nothing refused,
everything released).

Per-call benchmarks time a loop of ``CALLS`` calls (one Python call each, bound method
in a local), so the reported time is per ``CALLS`` calls; ``extra_info`` carries the
median per call in nanoseconds and in calls per second. The fleet never fills: per-call
benchmarks give every accelerator a capacity of 2**20 (far more than a benchmark's
calls), and the batch benchmarks release between rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from fleetroute import Accelerator, Request, Router

__all__ = [
    "test_add_accelerator_one_at_a_time",
    "test_add_accelerators_list",
    "test_add_fleet_bulk",
    "test_release_batch_1m",
    "test_route_batch_p2c_1m",
    "test_route_per_call",
    "test_route_per_call_consistent_hash",
    "test_route_request_per_call",
]

ACCELERATORS = 10_000
LARGE_CAPACITY = 1 << 20
CALLS = 1_000
BATCH = 1_000_000
BATCH_CAPACITY = 1_000
REGISTRY = 100_000

UNKEYED = ["round_robin", "least_connections", "p2c", "random", "weighted_round_robin"]
SEED_STRATEGIES = ["round_robin", "p2c", "least_connections"]

IntArray = npt.NDArray[np.int64]


def _router(strategy: str, capacity: int = LARGE_CAPACITY, **options: object) -> Router:
    router = Router(strategy, seed=1, **options)  # type: ignore[arg-type]
    ids = np.arange(ACCELERATORS, dtype=np.int64)
    weights = (1 + ids % 4).astype(np.float64)  # only weighted_round_robin reads them
    router.add_fleet(ids, np.full(ACCELERATORS, capacity, dtype=np.int64), weights)
    return router


def _per_call(benchmark: BenchmarkFixture, calls: int) -> None:
    """Turns the per-loop median into per-call figures in ``extra_info``."""
    stats = benchmark.stats
    if stats is None:  # --benchmark-disable: nothing was timed
        return
    median = float(stats.stats.median)
    benchmark.extra_info["calls_per_round"] = calls
    benchmark.extra_info["per_call_ns_median"] = round(median / calls * 1e9, 1)
    benchmark.extra_info["calls_per_s_median"] = round(calls / median)


@pytest.mark.benchmark(group="route-per-call")
@pytest.mark.parametrize("strategy", UNKEYED)
def test_route_per_call(benchmark: BenchmarkFixture, strategy: str) -> None:
    router = _router(strategy)
    route = router.route
    calls = range(CALLS)

    def loop() -> int:
        refused = 0
        for _ in calls:
            if route(cost=1, priority=1) is None:
                refused += 1
        return refused

    assert loop() == 0  # warm-up: builds derived tables (hash ring, schedules)
    assert benchmark(loop) == 0
    _per_call(benchmark, CALLS)


@pytest.mark.benchmark(group="route-per-call")
@pytest.mark.parametrize("hash_kind", ["ring", "jump", "maglev"])
def test_route_per_call_consistent_hash(benchmark: BenchmarkFixture, hash_kind: str) -> None:
    router = _router("consistent_hash", hash=hash_kind)
    route = router.route
    keys = list(range(CALLS))  # CALLS distinct keys, so no accelerator takes it all

    def loop() -> int:
        refused = 0
        for key in keys:
            if route(cost=1, priority=1, key=key) is None:
                refused += 1
        return refused

    assert loop() == 0  # warm-up: builds derived tables (hash ring, schedules)
    assert benchmark(loop) == 0
    _per_call(benchmark, CALLS)


@pytest.mark.benchmark(group="route-request-per-call")
@pytest.mark.parametrize("strategy", SEED_STRATEGIES)
def test_route_request_per_call(benchmark: BenchmarkFixture, strategy: str) -> None:
    router = _router(strategy)
    route = router.route_request
    requests = [Request(i, 1, 1) for i in range(CALLS)]

    def loop() -> int:
        refused = 0
        for req in requests:
            if route(req) is None:
                refused += 1
        return refused

    assert loop() == 0  # warm-up: builds derived tables (hash ring, schedules)
    assert benchmark(loop) == 0
    _per_call(benchmark, CALLS)


@pytest.mark.benchmark(group="batch")
def test_route_batch_p2c_1m(benchmark: BenchmarkFixture) -> None:
    router = _router("p2c", capacity=BATCH_CAPACITY)
    costs = np.ones(BATCH, dtype=np.int64)
    routed: list[IntArray] = []

    def release_previous() -> None:
        while routed:
            router.release_batch(routed.pop(), costs)

    def route_all() -> None:
        routed.append(router.route_batch(costs, priority=1))

    benchmark.pedantic(route_all, setup=release_previous, rounds=10, warmup_rounds=1)  # type: ignore[no-untyped-call]
    assert int((routed[-1] == -1).sum()) == 0
    release_previous()
    assert int(router.loads().sum()) == 0
    _per_call(benchmark, BATCH)


@pytest.mark.benchmark(group="batch")
def test_release_batch_1m(benchmark: BenchmarkFixture) -> None:
    router = _router("p2c", capacity=BATCH_CAPACITY)
    costs = np.ones(BATCH, dtype=np.int64)
    routed: list[IntArray] = []

    def route_all() -> None:
        routed.append(router.route_batch(costs, priority=1))

    def release_all() -> None:
        router.release_batch(routed.pop(), costs)

    benchmark.pedantic(release_all, setup=route_all, rounds=10, warmup_rounds=1)  # type: ignore[no-untyped-call]
    assert not routed
    assert int(router.loads().sum()) == 0
    _per_call(benchmark, BATCH)


def _fresh_routers(strategy: str) -> Iterator[Router]:
    while True:
        yield Router(strategy)


def _registration(
    benchmark: BenchmarkFixture, register: Callable[[Router], None], strategy: str = "p2c"
) -> None:
    routers = _fresh_routers(strategy)
    last: list[Router] = []

    def setup() -> tuple[tuple[Router], dict[str, object]]:
        last.clear()  # drop the previous registry outside the timed region
        router = next(routers)
        last.append(router)
        return (router,), {}

    benchmark.pedantic(register, setup=setup, rounds=5, warmup_rounds=1)  # type: ignore[no-untyped-call]
    assert len(last[0]) == REGISTRY
    _per_call(benchmark, REGISTRY)


@pytest.mark.benchmark(group="registration-100k")
def test_add_accelerator_one_at_a_time(benchmark: BenchmarkFixture) -> None:
    accelerators = [Accelerator(i, 100) for i in range(REGISTRY)]

    def register(router: Router) -> None:
        add = router.add_accelerator
        for acc in accelerators:
            add(acc)

    _registration(benchmark, register)


@pytest.mark.benchmark(group="registration-100k")
def test_add_accelerators_list(benchmark: BenchmarkFixture) -> None:
    accelerators = [Accelerator(i, 100) for i in range(REGISTRY)]

    def register(router: Router) -> None:
        router.add_accelerators(accelerators)

    _registration(benchmark, register)


@pytest.mark.benchmark(group="registration-100k")
def test_add_fleet_bulk(benchmark: BenchmarkFixture) -> None:
    ids = np.arange(REGISTRY, dtype=np.int64)
    capacities = np.full(REGISTRY, 100, dtype=np.int64)

    def register(router: Router) -> None:
        router.add_fleet(ids, capacities)

    _registration(benchmark, register)
