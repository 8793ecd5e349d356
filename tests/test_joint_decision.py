"""The joint decision: model by score, replica by load and cache, in one call."""

from __future__ import annotations

import math

import pytest

from fleetroute import Accelerator, Router

CHEAP, OTHER = [0], [1, 2]  # model A has one replica, model B two


def fleet(strategy: str = "p2c") -> Router:
    router = Router(strategy, seed=3, priority_reserve=0.0)
    router.add_accelerators([Accelerator(i, 4) for i in range(3)])
    return router


def test_equal_models_never_pile_onto_a_saturated_replica() -> None:
    router = fleet()
    for _ in range(3):
        router.route(candidates=CHEAP)
    # The policy lists the cheap model first; both are equally good.
    choice = router.route_joint([(1.0, CHEAP), (1.0, OTHER)])
    assert choice is not None
    model, acc_id = choice
    assert model == 1 and acc_id in OTHER


def test_score_order_and_tolerance() -> None:
    router = fleet()
    models = [(0.5, OTHER), (0.9, CHEAP)]
    picks = [router.route_joint(models, tolerance=0.1) for _ in range(6)]
    assert [p[0] for p in picks if p] == [1, 1, 1, 1, 0, 0]
    # With a wide tolerance the two are equal, so the roomier pool is used first.
    other = fleet()
    other.route(candidates=CHEAP)
    first = other.route_joint(models, tolerance=0.5)
    assert first is not None and first[0] == 0


def test_cache_aware_inside_the_chosen_pool() -> None:
    router = Router("cache_aware", priority_reserve=0.0)
    router.add_accelerators([Accelerator(i, 100) for i in range(4)])
    prompt = "system prompt of tenant 3 " * 20
    first = router.route_joint([(1.0, [2, 3])], prompt=prompt)
    assert first is not None
    assert router.route_joint([(1.0, [2, 3])], prompt=prompt + " more") == first


def test_nothing_fits_and_bad_input() -> None:
    router = fleet()
    for _ in range(4):
        router.route(candidates=CHEAP)
    assert router.route_joint([(1.0, CHEAP)]) is None
    with pytest.raises(ValueError, match="non-finite score"):
        router.route_joint([(math.nan, OTHER)])
    with pytest.raises(ValueError, match="tolerance"):
        router.route_joint([(1.0, OTHER)], tolerance=-1.0)
    with pytest.raises(KeyError, match="9"):
        router.route_joint([(1.0, [9])])
    with pytest.raises(ValueError, match="cost"):
        router.route_joint([(1.0, OTHER)], cost=0)
    assert router.loads().tolist() == [4, 0, 0]
