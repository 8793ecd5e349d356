"""The endpoint picker: filters, weighted scorers (queue, KV cache, prefix), picker."""

from __future__ import annotations

import math

import pytest

from fleetroute import Accelerator, Router

PROMPT = "You are the assistant of tenant 7. Follow the house style guide. " * 6


def pool(n: int = 3, **options: object) -> Router:
    router = Router("endpoint_picker", priority_reserve=0.0, **options)  # type: ignore[arg-type]
    router.add_accelerators([Accelerator(i, 10) for i in range(n)])
    return router


def test_reported_kv_utilisation_steers_and_filters() -> None:
    router = pool()
    router.report_kv_utilisation(0, 0.99)  # above the default limit 0.95: filtered
    router.report_kv_utilisation(1, 0.7)
    router.report_kv_utilisation(2, 0.2)
    assert router.route() == 2


def test_prefix_affinity_and_queue_pressure() -> None:
    router = pool(n=2, queue_weight=2.0)
    home = router.route(prompt=PROMPT)
    assert home is not None
    assert router.route(prompt=PROMPT + "again") == home
    for _ in range(7):
        router.route(cost=1, candidates=[home])
    assert router.route(prompt=PROMPT + "third") != home


def test_top_k_spreads_among_near_equals() -> None:
    router = pool(n=4, top_k=4, seed=1)
    picks = {router.route() for _ in range(12)}
    assert len(picks) >= 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue_weight": -1.0}, "queue_weight"),
        (
            {
                "queue_weight": 0.0,
                "kv_cache_weight": 0.0,
                "prefix_weight": 0.0,
                "adapter_weight": 0.0,
            },
            "weight",
        ),
        ({"adapter_weight": -2.0}, "adapter_weight"),
        ({"kv_cache_limit": 1.5}, "kv_cache_limit"),
        ({"top_k": 0}, "top_k"),
    ],
)
def test_bad_configuration(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Router("endpoint_picker", **options)  # type: ignore[arg-type]


def test_bad_reports_and_misplaced_options() -> None:
    router = pool()
    for bad in (-0.1, 1.1, math.nan):
        with pytest.raises(ValueError, match="kv_utilisation"):
            router.report_kv_utilisation(0, bad)
    with pytest.raises(KeyError):
        router.report_kv_utilisation(9, 0.5)
    with pytest.raises(ValueError, match="endpoint_picker only"):
        Router("cache_aware", top_k=2)
    with pytest.raises(ValueError, match="endpoint_picker only"):
        Router("p2c", kv_cache_limit=0.9)
    plain = Router("p2c")
    plain.add_accelerator(Accelerator(1, 1))
    plain.report_kv_utilisation(1, 0.5)


def test_lora_adapter_affinity() -> None:
    router = pool(n=3)
    router.report_adapters(1, ["sql-lora", "chat-lora"])
    assert {router.route(adapter="sql-lora") for _ in range(3)} == {1}
    router.report_adapters(1, [])
    router.report_adapters(2, ["sql-lora"])
    assert router.route(adapter="sql-lora") == 2
    with pytest.raises(KeyError):
        router.report_adapters(9, ["x"])
    choice = router.route_joint([(1.0, [0, 2])], adapter="sql-lora")
    assert choice == (0, 2)
