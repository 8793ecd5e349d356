"""The neural gate and DynamicMoE: load-aware expert choice that learns from rewards,
and seed 000's route_to_expert."""

from __future__ import annotations

import numpy as np
import pytest

from fleetroute import EnhancedRouter, ManualClock
from fleetroute.moe.dynamic_moe import DynamicMoE
from fleetroute.moe.neural_gate import NeuralGate, jax_step, numpy_step


def test_gate_learns_expected_rewards() -> None:
    gate = NeuralGate(3, 4, hidden=16, learning_rate=0.1, seed=3)
    a, b = np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0])
    assert np.all(gate.scores(a) == 1.0)  # no favourite, and optimistic
    for _ in range(300):
        gate.update(a, [0, 1], [0.9, 0.1])
        gate.update(b, [0, 1], [0.2, 0.8])
    assert np.argmax(gate.scores(a)[:2]) == 0
    assert np.argmax(gate.scores(b)[:2]) == 1
    assert gate.scores(a)[0] == pytest.approx(0.9, abs=0.05)
    with pytest.raises(ValueError, match="shape"):
        gate.scores([1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        gate.update(a, [0], [float("nan")])
    with pytest.raises(ValueError, match="expert 7"):
        gate.update(a, [7], [1.0])


def test_moe_learns_the_best_expert_for_a_task() -> None:
    moe = DynamicMoE(num_experts=16, seed=1)
    maths = [i for i in range(16) if "mathematics" in moe.expertise[i]]
    assert maths == [0, 8]
    for i in range(200):
        result = moe.route({"input": f"integrate x^{i}"}, ["mathematics"], top_k=1)
        assert result.selected_experts[0] in maths  # only experts with the expertise
        moe.observe(result, 1.0 if result.selected_experts == [8] else 0.1)
    picks = []
    for i in range(20):
        result = moe.route({"input": f"integrate x^{i}"}, ["mathematics"], top_k=1)
        picks.append(result.selected_experts[0])
        moe.observe(result, 1.0 if result.selected_experts == [8] else 0.1)
    assert picks.count(8) == 20
    assert int(moe.registry.loads().sum()) == 0


def test_load_awareness_moves_work_off_a_busy_expert() -> None:
    moe = DynamicMoE(num_experts=2, expertise={0: ["x"], 1: ["x"]}, capacity=4, seed=2)
    for _ in range(100):
        r = moe.route("task", ["x"], top_k=2)
        moe.observe(r, [1.0 if e == 0 else 0.9 for e in r.selected_experts])
    held = [moe.route("task", ["x"], top_k=1) for _ in range(6)]
    chosen = [r.selected_experts[0] for r in held]
    assert chosen[0] == 0 and 1 in chosen  # expert 0 is better, but fills up
    assert max(moe.registry.loads()) <= 4
    blind = [moe.route("task", ["x"], top_k=1, load_aware=False) for _ in range(2)]
    assert [r.selected_experts[0] for r in blind] == [0, 1]  # 0 until it is full
    for r in [*held, *blind]:
        moe.observe(r, 0.5)
    with pytest.raises(ValueError, match="already observed"):
        moe.observe(held[0], 0.5)


def test_seed_000_route_to_expert() -> None:
    complex_request = {"input": "Prove that the sum of two even numbers is even"}
    # Router integrated with MoE system
    moe_aware_router = EnhancedRouter(
        expert_system=DynamicMoE(num_experts=32),
        expert_routing=True,
        load_aware_expert_selection=True,
        clock=ManualClock(),
    )
    # Routing with expert selection
    expert_routing_result = moe_aware_router.route_to_expert(
        request=complex_request,
        required_expertise=["mathematics", "reasoning"],
        quality_requirements={"accuracy": 0.95, "latency": 200},
    )
    integration_metrics = {
        "routing_efficiency": expert_routing_result.efficiency_score,
        "expert_utilization": expert_routing_result.expert_load_balance,
    }
    experts = expert_routing_result.selected_experts
    assert experts and all(0 <= e < 32 for e in experts)
    assert 0.0 <= integration_metrics["routing_efficiency"] <= 1.0
    assert 0.0 < integration_metrics["expert_utilization"] <= 1.0
    assert expert_routing_result.endpoint is None  # no endpoints registered
    moe_aware_router.register_endpoints([{"id": "tpu", "capacity": 4}])
    placed = moe_aware_router.route_to_expert(complex_request, ["coding"])
    assert placed.endpoint is not None and placed.endpoint.endpoint_id == "tpu"


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="top_k"):
        DynamicMoE(num_experts=2, top_k=3)
    with pytest.raises(ValueError, match="outside"):
        DynamicMoE(num_experts=2, expertise={5: ["x"]})
    with pytest.raises(ValueError, match="expert_routing needs an expert_system"):
        EnhancedRouter(expert_routing=True)
    with pytest.raises(ValueError, match="expert routing is off"):
        EnhancedRouter().route_to_expert({"input": "x"})
    with pytest.raises(ValueError, match="list of tags"):
        DynamicMoE(num_experts=2).route("x", "mathematics")


def test_the_gates_hand_written_gradient_step_matches_jax_grad() -> None:
    rng = np.random.default_rng(7)
    gate = NeuralGate(5, 6, hidden=8, seed=11)
    gate.update(rng.standard_normal(5), [1, 4], [0.3, 0.9])  # leave the zero output weights
    x = rng.standard_normal(5).astype(np.float32)
    mask = np.array([0, 1, 0, 1, 1, 0], np.float32)
    reward = rng.uniform(0, 1, 6).astype(np.float32)
    by_hand, loss_by_hand = numpy_step(gate.params, x, mask, reward, 0.05)
    by_jax, loss_by_jax = jax_step(gate.params, x, mask, reward, 0.05)
    assert loss_by_hand == pytest.approx(loss_by_jax, rel=1e-5)
    for mine, reference in zip(by_hand, by_jax, strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-6)


def test_batch_scores_in_jax_match_single_scores() -> None:
    gate = NeuralGate(4, 3, hidden=6, seed=2)
    gate.update([0.1, 0.2, 0.3, 0.4], [2], [0.5])
    batch = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    expected = np.stack([gate.scores(row) for row in batch])
    np.testing.assert_allclose(gate.scores_batch(batch), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        gate.scores_batch(batch[:, :3])
