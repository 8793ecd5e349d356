"""Mixture of experts: token gating in JAX (Switch, top-k, expert choice) with a numpy
reference, and expert services chosen by a trainable, load-aware gate."""

from fleetroute.moe.dynamic_moe import DynamicMoE, ExpertRoutingResult
from fleetroute.moe.gating import (
    ExpertChoiceRouting,
    TokenChoiceRouting,
    expert_capacity,
    expert_choice_gating,
    switch_gating,
    top_k_gating,
)
from fleetroute.moe.losses import load_balancing_loss, router_z_loss
from fleetroute.moe.neural_gate import NeuralGate

__all__ = [
    "DynamicMoE",
    "ExpertChoiceRouting",
    "ExpertRoutingResult",
    "NeuralGate",
    "TokenChoiceRouting",
    "expert_capacity",
    "expert_choice_gating",
    "load_balancing_loss",
    "router_z_loss",
    "switch_gating",
    "top_k_gating",
]
