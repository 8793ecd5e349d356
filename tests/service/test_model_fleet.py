"""Seed 004's decision without HTTP: specialisation first, budget and availability as
hard limits, preference scores and budget pacing after, the instance by load."""

from __future__ import annotations

import pytest

from fleetroute.scoring.specialisation import SpecialisationRule
from fleetroute.service.model_fleet import ModelFleet, NoModelAvailable

RULES = [
    SpecialisationRule("mixtral-8x7b", ("general", "coding", "analysis")),
    SpecialisationRule("hermes-2", ("conversation", "chat", "dialogue")),
    SpecialisationRule("phi-3-mini", ("efficient", "fast", "lightweight")),
]


def fleet(**options: object) -> ModelFleet:
    f = ModelFleet(rules=RULES, seed=3, **options)  # type: ignore[arg-type]
    for name, cost, quality, latency in (
        ("mixtral-8x7b", 0.02, 0.92, 400.0),
        ("hermes-2", 0.015, 0.85, 200.0),
        ("phi-3-mini", 0.005, 0.75, 80.0),
    ):
        f.add_model(
            name,
            cost_per_request=cost,
            quality=quality,
            latency_ms=latency,
            instances=[(f"{name}-{i}", None, 2, 1.0, None) for i in (1, 2)],
        )
    return f


def test_the_task_picks_the_specialised_model() -> None:
    f = fleet()
    coding = f.choose("coding", "Write a function that sorts a list")
    chat = f.choose("chat", "Hello there")
    assert coding is not None and coding.model.name == "mixtral-8x7b" and coding.specialised
    assert chat is not None and chat.model.name == "hermes-2"
    assert "specialises in" in chat.reasoning


def test_the_budget_is_a_hard_limit_and_its_error_names_the_cheapest() -> None:
    f = fleet()
    choice = f.choose("coding", "Write a function", budget=0.01)
    assert choice is not None and choice.model.name == "phi-3-mini"
    assert not choice.specialised and "specialised models full or unavailable" in choice.reasoning
    with pytest.raises(NoModelAvailable, match=r"'phi-3-mini', costs 0\.005") as caught:
        f.choose("coding", "Write a function", budget=0.001)
    assert caught.value.reason == "budget"


def test_blocked_and_full_instances_are_passed_over_then_none() -> None:
    f = fleet()
    picks = [f.choose("chat", "Hello", blocked={"hermes-2-1"}) for _ in range(2)]
    assert [p.instance.id for p in picks if p] == ["hermes-2-2", "hermes-2-2"]
    # hermes-2-2 is full now; the specialised set falls back to the other models.
    fallback = f.choose("chat", "Hello", blocked={"hermes-2-1"})
    assert fallback is not None and fallback.model.name != "hermes-2"


def test_pinned_unknown_model_and_every_instance_down() -> None:
    f = fleet()
    with pytest.raises(NoModelAvailable, match="unknown model 'gpt-9'"):
        f.choose("chat", "Hello", pinned_model="gpt-9")
    for instance in list(f.instances):
        f.set_healthy(instance, False)
    with pytest.raises(NoModelAvailable) as caught:
        f.choose("chat", "Hello")
    assert caught.value.reason == "unavailable"


def test_budget_pressure_moves_the_choice_to_the_cheapest_model() -> None:
    f = fleet(specialisation_enabled=False, preference="quality")
    calm = f.choose("chat", "Hello", pressure=0.0)
    paced = f.choose("chat", "Hello", pressure=1.0)
    assert calm is not None and calm.model.name == "mixtral-8x7b"
    assert paced is not None and paced.model.name == "phi-3-mini"
    assert "pacing pressure 1.00" in paced.reasoning


def test_release_and_observe() -> None:
    f = fleet()
    choice = f.choose("chat", "Hello")
    assert choice is not None and f.load(choice.instance) == 1
    f.release(choice.instance)
    assert f.load(choice.instance) == 0
    before = f.models["hermes-2"].latency_ms
    f.observe("hermes-2", True, before + 100.0)
    assert f.models["hermes-2"].latency_ms == pytest.approx(before + 20.0)


def test_instances_are_added_all_or_nothing() -> None:
    f = fleet()
    with pytest.raises(ValueError, match="taken"):
        f.add_model(
            "new",
            cost_per_request=0.0,
            quality=0.5,
            latency_ms=1.0,
            instances=[("fresh", None, 1, 1.0, None), ("hermes-2-1", None, 1, 1.0, None)],
        )
    assert "new" not in f.models and "fresh" not in f.instances
