"""``DynamicMoE``: expert services chosen per request by a trainable gate, aware of
their live load (seed 000's ``DynamicMoE`` and ``route_to_expert``).

Each expert is an accelerator of a Rust registry (its load is the requests it is
serving). A request's features are its text (hashed, ``HashingEncoder``) and the
expertise it requires (one-hot over the known tags). The decision:

1. **Candidates**: experts that cover at least one required expertise tag (all
   experts when none does, or none is required).
2. **Scores**: the gate's expected reward per expert, less ``load_penalty x u^2`` where
   ``u`` is the expert's live utilisation (load / capacity) read from the registry, so
   an expert near capacity loses to a slightly worse idle one
   (``load_aware_expert_selection``).
3. **Pick**: the top ``k`` candidates by score, each taking one unit of load in the
   registry atomically (a full expert is skipped for the next best). Gate weights are a
   softmax over the chosen scores.
4. **Learn**: ``observe(result, rewards)`` returns the load and trains the gate on the
   observed rewards of the experts that served.

``efficiency_score`` is the share of the best achievable expected reward that the
chosen experts reach (1 when the top experts by gate were all free); the expert load
balance is Jain's fairness index of the experts' utilisations (1 = perfectly even).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetroute._native import Accelerator, Router
from fleetroute.fairness import jain_from_sums
from fleetroute.moe.neural_gate import NeuralGate
from fleetroute.scoring.encoders import HashingEncoder
from fleetroute.validation import non_negative_number, positive_int

__all__ = ["DEFAULT_EXPERTISE", "DynamicMoE", "ExpertRoutingResult"]

#: Tags given round-robin to experts when none are specified.
DEFAULT_EXPERTISE = (
    "mathematics",
    "reasoning",
    "coding",
    "language",
    "science",
    "knowledge",
    "creative",
    "vision",
)


@dataclass(slots=True)
class ExpertRoutingResult:
    """The experts chosen for one request."""

    selected_experts: list[int]
    gate_weights: list[float]
    efficiency_score: float
    expert_load_balance: float
    required_expertise: tuple[str, ...]
    features: npt.NDArray[np.float32] = field(repr=False)
    endpoint: Any = None
    completed: bool = field(default=False, repr=False)

    @property
    def efficiency(self) -> float:
        return self.efficiency_score


class DynamicMoE:
    """A pool of expert services with a trainable, load-aware gate."""

    def __init__(
        self,
        num_experts: int = 8,
        *,
        expertise: Mapping[int, Iterable[str]] | None = None,
        capacity: int = 100,
        top_k: int = 2,
        load_penalty: float = 1.0,
        learning_rate: float = 0.05,
        hidden: int = 32,
        text_features: int = 64,
        seed: int = 0,
    ) -> None:
        self.num_experts = positive_int("num_experts", num_experts)
        self.top_k = positive_int("top_k", top_k)
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k ({top_k}) must not exceed num_experts ({num_experts})")
        self.capacity = positive_int("capacity", capacity)
        self.load_penalty = non_negative_number("load_penalty", load_penalty)
        if expertise is None:
            tags = {i: {DEFAULT_EXPERTISE[i % len(DEFAULT_EXPERTISE)]} for i in range(num_experts)}
        else:
            unknown = [i for i in expertise if not 0 <= i < num_experts]
            if unknown:
                raise ValueError(f"expertise names experts outside [0, {num_experts}): {unknown}")
            tags = {
                i: {str(t).casefold() for t in expertise.get(i, ())} for i in range(num_experts)
            }
        self.expertise: dict[int, frozenset[str]] = {i: frozenset(t) for i, t in tags.items()}
        self.tags: tuple[str, ...] = tuple(sorted(set().union(*self.expertise.values())))
        self._tag_index = {tag: i for i, tag in enumerate(self.tags)}
        self._encoder = HashingEncoder(dimension=positive_int("text_features", text_features))
        self.registry = Router("least_connections", seed=seed, priority_reserve=0.0)
        self.registry.add_accelerators(
            [Accelerator(i, self.capacity) for i in range(self.num_experts)]
        )
        self.gate = NeuralGate(
            text_features + len(self.tags) + 1,
            self.num_experts,
            hidden=hidden,
            learning_rate=learning_rate,
            seed=seed,
        )

    def features(self, text: str, required_expertise: Sequence[str]) -> npt.NDArray[np.float32]:
        """Hashed text, one-hot required expertise, and a bias term."""
        tags = np.zeros(len(self.tags) + 1, dtype=np.float32)
        for tag in required_expertise:
            index = self._tag_index.get(tag.casefold())
            if index is not None:
                tags[index] = 1.0
        tags[-1] = 1.0
        return np.concatenate([self._encoder.encode([text])[0], tags])

    def route(
        self,
        request: Mapping[str, Any] | str,
        required_expertise: Sequence[str] = (),
        quality_requirements: Mapping[str, float] | None = None,
        top_k: int | None = None,
        load_aware: bool = True,
    ) -> ExpertRoutingResult:
        """Chooses up to ``top_k`` experts for ``request`` and takes their load.
        ``quality_requirements`` may carry ``accuracy``: a floor on the gate's expected
        reward below which an expert is not chosen while a better one is free."""
        text = request if isinstance(request, str) else str(request.get("input", request))
        if isinstance(required_expertise, str):
            raise ValueError("required_expertise must be a list of tags, not one string")
        k = self.top_k if top_k is None else positive_int("top_k", top_k)
        if k > self.num_experts:
            raise ValueError(f"top_k ({k}) must not exceed num_experts ({self.num_experts})")
        floor = (quality_requirements or {}).get("accuracy")
        needed = {t.casefold() for t in required_expertise}
        x = self.features(text, required_expertise)
        expected = self.gate.scores(x)
        utilisation = self.registry.loads() / self.capacity
        penalty = self.load_penalty if load_aware else 0.0
        scores = expected - penalty * utilisation**2
        candidates = [i for i in range(self.num_experts) if self.expertise[i] & needed]
        if not candidates:
            candidates = list(range(self.num_experts))
        ranked = sorted(candidates, key=lambda i: float(scores[i]), reverse=True)
        chosen: list[int] = []
        for expert in ranked:
            if len(chosen) == k:
                break
            if floor is not None and chosen and expected[expert] < floor:
                break
            if self.registry.route(1, 1, candidates=[expert]) is not None:
                chosen.append(expert)
        if not chosen:
            raise RuntimeError("every candidate expert is at capacity")
        picked = np.array([scores[i] for i in chosen], dtype=np.float64)
        weights = np.exp(picked - picked.max())
        weights /= weights.sum()
        best = np.sort(np.asarray(expected)[candidates])[::-1][: len(chosen)]
        achieved = float(np.sum(np.asarray(expected)[chosen]))
        ideal = float(np.sum(best))
        efficiency = 1.0 if ideal <= 0 else max(0.0, min(1.0, achieved / ideal))
        return ExpertRoutingResult(
            chosen,
            [float(w) for w in weights],
            efficiency,
            self.load_balance(),
            tuple(required_expertise),
            x,
        )

    def load_balance(self) -> float:
        """Jain's fairness index of the experts' utilisations (1 when even or idle)."""
        u = self.registry.loads() / self.capacity
        return jain_from_sums(len(u), float(np.sum(u)), float(np.sum(u * u)))

    def observe(self, result: ExpertRoutingResult, rewards: Sequence[float] | float) -> float:
        """Returns the experts' load and trains the gate on their observed rewards (one
        per selected expert, or one for all). Returns the loss before the step."""
        if result.completed:
            raise ValueError("this expert routing result was already observed")
        values = (
            [float(rewards)] * len(result.selected_experts)
            if isinstance(rewards, int | float)
            else [float(r) for r in rewards]
        )
        if len(values) != len(result.selected_experts) or not all(map(math.isfinite, values)):
            raise ValueError("give one finite reward per selected expert (or one for all)")
        result.completed = True
        for expert in result.selected_experts:
            self.registry.release(expert, 1)
        return self.gate.update(result.features, result.selected_experts, values)
