"""Two-level routing: model by score, replica by load, regions with a latency penalty."""

from __future__ import annotations

import pytest

from fleetroute.routers.model_fleet_router import ModelFleetRouter
from fleetroute.scoring.provider_metrics import LLMRequest, ProviderMetrics
from fleetroute.scoring.provider_scoring import NoProvidersAvailable


def make(**kwargs: object) -> ModelFleetRouter:
    router = ModelFleetRouter("quality", seed=5, priority_reserve=0.0, **kwargs)  # type: ignore[arg-type]
    router.add_model(
        ProviderMetrics("big", 500.0, 0.95, 0.02),
        [{"id": f"big-{i}", "capacity": 2, "region": "eu" if i < 2 else "us"} for i in range(4)],
    )
    router.add_model(
        ProviderMetrics("small", 200.0, 0.85, 0.002),
        [{"id": f"small-{i}", "capacity": 4, "region": "us"} for i in range(2)],
    )
    return router


def test_best_model_first_then_spread_over_its_replicas() -> None:
    router = make()
    placements = [router.route(LLMRequest("q")) for _ in range(8)]
    assert all(p is not None and p.provider == "big" for p in placements)
    replicas = sorted(p.replica for p in placements if p is not None)
    assert replicas == ["big-0", "big-0", "big-1", "big-1", "big-2", "big-2", "big-3", "big-3"]
    # The big model is full: the next request takes the other model, in the same call.
    spill = router.route(LLMRequest("q"))
    assert spill is not None and spill.provider == "small"
    for p in [*placements, spill]:
        assert p is not None
        router.release(p)
    assert int(router.native.loads().sum()) == 0


def test_region_affinity_prefers_local_replicas() -> None:
    router = make(region_penalty=0.2)
    local = router.route(LLMRequest("q", region="eu"))
    assert local is not None and local.region == "eu" and not local.remote
    # In "us" both models are local; "big" wins on quality. Asked from "ap", every
    # replica is remote and the penalty is the same for all: still "big".
    far = router.route(LLMRequest("q", region="ap"))
    assert far is not None and far.remote and far.provider == "big"


def test_the_penalty_decides_local_against_better_remote() -> None:
    router = ModelFleetRouter("balanced", seed=2, region_penalty=1.5)
    router.add_model(
        ProviderMetrics("remote-best", 100.0, 0.99, 0.001),
        [{"id": "r", "capacity": 5, "region": "us"}],
    )
    router.add_model(
        ProviderMetrics("local-ok", 300.0, 0.80, 0.01), [{"id": "l", "capacity": 5, "region": "eu"}]
    )
    placement = router.route(LLMRequest("q", region="eu"))
    assert placement is not None and placement.provider == "local-ok"
    nearby = ModelFleetRouter("balanced", seed=2, region_penalty=0.0)
    nearby.add_model(
        ProviderMetrics("remote-best", 100.0, 0.99, 0.001),
        [{"id": "r", "capacity": 5, "region": "us"}],
    )
    nearby.add_model(
        ProviderMetrics("local-ok", 300.0, 0.80, 0.01), [{"id": "l", "capacity": 5, "region": "eu"}]
    )
    placement = nearby.route(LLMRequest("q", region="eu"))
    assert placement is not None and placement.provider == "remote-best" and placement.remote


def test_registration_errors() -> None:
    router = make()
    with pytest.raises(ValueError, match="already registered"):
        router.add_model(ProviderMetrics("big", 1.0, 0.5, 0.0), [{"id": "x", "capacity": 1}])
    with pytest.raises(ValueError, match="big-0"):
        router.add_model(ProviderMetrics("other", 1.0, 0.5, 0.0), [{"id": "big-0", "capacity": 1}])
    with pytest.raises(ValueError, match="capacity"):
        router.add_model(ProviderMetrics("other", 1.0, 0.5, 0.0), [{"id": "o", "capacity": 0}])
    with pytest.raises(ValueError, match="at least one replica"):
        router.add_model(ProviderMetrics("other", 1.0, 0.5, 0.0), [])
    assert set(router.metrics) == {"big", "small"}
    strict = ModelFleetRouter("cost")
    strict.add_model(ProviderMetrics("weak", 1.0, 0.5, 0.0), [{"id": "w", "capacity": 1}])
    with pytest.raises(NoProvidersAvailable):
        strict.route(LLMRequest("q"))
