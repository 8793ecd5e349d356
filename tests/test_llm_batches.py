"""Batch forms of the LLM-aware API: prompts and adapters in route_batch, reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fleetroute import Accelerator, Router

SYSTEM = "System prompt of tenant {t}: be concise and cite the manual. " * 5


def pool(strategy: str, n: int = 4) -> Router:
    router = Router(strategy, priority_reserve=0.0, seed=2)
    router.add_accelerators([Accelerator(i, 100) for i in range(n)])
    return router


def test_route_batch_with_prompts_keeps_tenant_affinity() -> None:
    router = pool("cache_aware")
    prompts = [SYSTEM.format(t=i % 4) + f"question {i}" for i in range(40)]
    ids = router.route_batch(np.ones(40, dtype=np.int64), prompts=prompts)
    for t in range(4):
        assert len(set(ids[t::4].tolist())) == 1
    assert len(set(ids.tolist())) == 4


def test_route_batch_with_adapters() -> None:
    router = pool("endpoint_picker")
    router.report_adapters(3, ["sql"])
    ids = router.route_batch([1, 1, 1], adapters=["sql", "sql", None])
    assert ids[:2].tolist() == [3, 3]


def test_batch_length_mismatches_change_nothing() -> None:
    router = pool("cache_aware")
    with pytest.raises(ValueError, match="prompts"):
        router.route_batch([1, 1], prompts=["a"])
    with pytest.raises(ValueError, match="adapters"):
        router.route_batch([1, 1], adapters=["a"])
    assert router.loads().sum() == 0


def test_report_batches_are_all_or_nothing() -> None:
    router = pool("peak_ewma", n=2)
    router.report_latencies([0, 1], [0.1, 0.2], now=0.0)
    assert router.latency_estimate(1, now=0.0) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="latency"):
        router.report_latencies([0, 1], [0.5, math.nan], now=0.0)
    with pytest.raises(KeyError):
        router.report_latencies([0, 5], [0.5, 0.5], now=0.0)
    with pytest.raises(ValueError, match="latencies"):
        router.report_latencies([0, 1], [0.5], now=0.0)
    assert router.latency_estimate(0, now=0.0) == pytest.approx(0.1)
    picker = pool("endpoint_picker", n=2)
    picker.report_kv_utilisations([0, 1], [0.99, 0.1])
    assert picker.route() == 1
    with pytest.raises(ValueError, match="kv_utilisation"):
        picker.report_kv_utilisations([0, 1], [0.1, 2.0])
