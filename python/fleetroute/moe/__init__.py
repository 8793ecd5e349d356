"""Mixture of experts: token gating in JAX (Switch, top-k, expert choice) with a numpy
reference, and expert services chosen by a trainable, load-aware gate.

The names are imported on first use, so that code needing only the gate (the routing
service's ``MoERouter``) does not import JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

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

# Each public name and the module that defines it.
_MODULES = {
    "DynamicMoE": "dynamic_moe",
    "ExpertRoutingResult": "dynamic_moe",
    "ExpertChoiceRouting": "gating",
    "TokenChoiceRouting": "gating",
    "expert_capacity": "gating",
    "expert_choice_gating": "gating",
    "switch_gating": "gating",
    "top_k_gating": "gating",
    "load_balancing_loss": "losses",
    "router_z_loss": "losses",
    "NeuralGate": "neural_gate",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'fleetroute.moe' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fleetroute.moe.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
