"""Plain-numpy reference for the mixture-of-experts gating in :mod:`fleetroute.moe.gating`.

Written as directly from the papers as possible, with Python loops, and independent of the JAX
code, so the tests can compare the two:

* Switch top-1 (Fedus, Zoph & Shazeer 2021, "Switch Transformers"): ``p = softmax(logits)``,
  each token to ``argmax p``; capacity ``ceil(capacity_factor * T / E)``; slots handed out in
  token order; ``overflow="next_best"`` re-offers unplaced tokens their 2nd, 3rd, ... ranked
  expert in rounds, in token order.
* Top-k (GShard, Lepikhin et al. 2021; Mixtral, Jiang et al. 2024): the ``k`` highest logits;
  capacity ``ceil(capacity_factor * k * T / E)``; all first choices are placed (token order),
  then all second choices, and so on.
* Expert choice (Zhou et al. 2022): each expert takes the ``C`` tokens with the highest
  softmax score, ``C = round(capacity_factor * T / E)`` (halves up), clamped to ``[1, T]``.
* Load-balancing loss ``alpha * N * sum_i f_i * P_i`` (Switch eq. 4-6) and router z-loss
  ``beta * mean_x logsumexp(logits(x))^2`` (ST-MoE, Zoph et al. 2022, eq. 5).

Inputs are rounded to float32 first (the router's precision, so the rankings see the same
numbers as the JAX code); everything after that is float64.  Ties go to the lower expert index
(token choice) or the lower token index (expert choice).  Jitter is not drawn here: pass the
multiplicative ``noise`` array the JAX router used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ExpertChoiceReference",
    "TokenChoiceReference",
    "expert_capacity",
    "expert_choice_capacity",
    "expert_choice_gating",
    "load_balancing_loss",
    "router_z_loss",
    "softmax",
    "switch_gating",
    "top_k_gating",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class TokenChoiceReference:
    """Same fields and meaning as ``gating.TokenChoiceRouting``, as numpy arrays."""

    dispatch: BoolArray
    combine: FloatArray
    router_probs: FloatArray
    expert_index: IntArray
    gates: FloatArray
    expert_mask: BoolArray
    tokens_per_expert: IntArray
    dropped: BoolArray
    aux_loss: float
    z_loss: float


@dataclass(frozen=True)
class ExpertChoiceReference:
    """Same fields and meaning as ``gating.ExpertChoiceRouting``, as numpy arrays."""

    dispatch: BoolArray
    combine: FloatArray
    router_probs: FloatArray
    token_index: IntArray
    expert_mask: BoolArray
    tokens_per_expert: IntArray
    experts_per_token: IntArray
    dropped: BoolArray
    aux_loss: float
    z_loss: float


def expert_capacity(
    num_tokens: int, num_experts: int, capacity_factor: float, *, k: int = 1
) -> int:
    """``ceil(capacity_factor * k * T / E)`` on the decimal value of ``capacity_factor``."""
    exact = Decimal(repr(float(capacity_factor))) * k * num_tokens / num_experts
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def expert_choice_capacity(num_tokens: int, num_experts: int, capacity_factor: float) -> int:
    """``round(capacity_factor * T / E)``, halves up, clamped to ``[1, T]``."""
    exact = Decimal(repr(float(capacity_factor))) * num_tokens / num_experts
    rounded = int(exact.to_integral_value(rounding=ROUND_HALF_UP))
    return min(max(rounded, 1), num_tokens)


def _logits(logits: ArrayLike, noise: ArrayLike | None = None) -> NDArray[np.float32]:
    x = np.asarray(logits, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"logits must be 2-D (tokens, experts); got shape {x.shape}")
    if noise is not None:
        # The product is rounded to float32, exactly as the JAX router computes it.
        x = x * np.asarray(noise, dtype=np.float32)
    return x


def softmax(logits: ArrayLike) -> FloatArray:
    """Row-wise softmax in float64."""
    x = np.asarray(logits, dtype=np.float64)
    out = np.zeros_like(x)
    for t in range(x.shape[0]):
        shifted = np.exp(x[t] - np.max(x[t]))
        out[t] = shifted / np.sum(shifted)
    return out


def _ranked(row: NDArray[np.floating]) -> list[int]:
    """Indices of ``row`` best first; ties to the lower index."""
    return sorted(range(len(row)), key=lambda i: (-float(row[i]), i))


def load_balancing_loss(logits: ArrayLike, *, coef: float = 0.01) -> float:
    """Switch loss ``coef * N * sum_i f_i * P_i``; ``f`` counts each token's argmax.

    Computed in float64 without the float32 rounding, so finite differences can use it.
    """
    x = np.asarray(logits, dtype=np.float64)
    num_tokens, num_experts = x.shape
    probs = softmax(x)
    total = 0.0
    for i in range(num_experts):
        f_i = sum(1 for t in range(num_tokens) if _ranked(x[t])[0] == i) / num_tokens
        p_i = sum(float(probs[t, i]) for t in range(num_tokens)) / num_tokens
        total += f_i * p_i
    return float(coef * num_experts * total)


def router_z_loss(logits: ArrayLike, *, coef: float = 0.001) -> float:
    """ST-MoE z-loss ``coef * mean_x logsumexp(logits(x)) ** 2``, in float64."""
    x = np.asarray(logits, dtype=np.float64)
    squares = []
    for row in x:
        top = float(np.max(row))
        log_z = top + math.log(float(np.sum(np.exp(row - top))))
        squares.append(log_z**2)
    return coef * sum(squares) / len(squares)


def _token_choice_result(
    x: NDArray[np.float32],
    probs: FloatArray,
    expert_index: IntArray,
    gates: FloatArray,
    assignments: list[tuple[int, int, int, float]],
    dropped: BoolArray,
    capacity: int,
    aux_loss_coef: float,
    z_loss_coef: float,
) -> TokenChoiceReference:
    num_tokens, num_experts = x.shape
    dispatch = np.zeros((num_tokens, num_experts, capacity), dtype=np.bool_)
    combine = np.zeros((num_tokens, num_experts, capacity), dtype=np.float64)
    for token, expert, slot, weight in assignments:
        dispatch[token, expert, slot] = True
        combine[token, expert, slot] = weight
    return TokenChoiceReference(
        dispatch=dispatch,
        combine=combine,
        router_probs=probs,
        expert_index=expert_index,
        gates=gates,
        expert_mask=np.any(dispatch, axis=2),
        tokens_per_expert=dispatch.sum(axis=(0, 2)).astype(np.int64),
        dropped=dropped,
        aux_loss=load_balancing_loss(x, coef=aux_loss_coef),
        z_loss=router_z_loss(x, coef=z_loss_coef),
    )


def switch_gating(
    logits: ArrayLike,
    *,
    capacity_factor: float = 1.0,
    capacity: int | None = None,
    overflow: str = "drop",
    noise: ArrayLike | None = None,
    aux_loss_coef: float = 0.01,
    z_loss_coef: float = 0.001,
) -> TokenChoiceReference:
    """Switch top-1 routing; ``noise`` is the multiplicative jitter (``None``: inference)."""
    x = _logits(logits, noise)
    num_tokens, num_experts = x.shape
    if capacity is None:
        capacity = expert_capacity(num_tokens, num_experts, capacity_factor)
    probs = softmax(x)
    ranking = [_ranked(x[t]) for t in range(num_tokens)]
    used = [0] * num_experts
    placed = [False] * num_tokens
    assignments: list[tuple[int, int, int, float]] = []
    rounds = num_experts if overflow == "next_best" else 1
    for r in range(rounds):
        for t in range(num_tokens):
            if placed[t]:
                continue
            expert = ranking[t][r]
            if used[expert] < capacity:
                assignments.append((t, expert, used[expert], float(probs[t, expert])))
                used[expert] += 1
                placed[t] = True
    expert_index = np.array([[ranking[t][0]] for t in range(num_tokens)], dtype=np.int64)
    gates = np.array([[probs[t, ranking[t][0]]] for t in range(num_tokens)], dtype=np.float64)
    dropped = np.array([[not placed[t]] for t in range(num_tokens)], dtype=np.bool_)
    return _token_choice_result(
        x, probs, expert_index, gates, assignments, dropped, capacity, aux_loss_coef, z_loss_coef
    )


def top_k_gating(
    logits: ArrayLike,
    k: int,
    *,
    capacity_factor: float = 1.0,
    capacity: int | None = None,
    weights: str = "softmax_topk",
    noise: ArrayLike | None = None,
    aux_loss_coef: float = 0.01,
    z_loss_coef: float = 0.001,
) -> TokenChoiceReference:
    """Top-k routing with GShard priority (all first choices, then second, ...)."""
    x = _logits(logits, noise)
    num_tokens, num_experts = x.shape
    if capacity is None:
        capacity = expert_capacity(num_tokens, num_experts, capacity_factor, k=k)
    probs = softmax(x)
    expert_index = np.zeros((num_tokens, k), dtype=np.int64)
    gates = np.zeros((num_tokens, k), dtype=np.float64)
    for t in range(num_tokens):
        chosen = _ranked(x[t])[:k]
        expert_index[t] = chosen
        if weights == "softmax_topk":
            top = np.array([float(x[t, e]) for e in chosen], dtype=np.float64)
            exps = np.exp(top - top.max())
            gates[t] = exps / exps.sum()
        elif weights == "renormalized":
            chosen_probs = probs[t, chosen]
            gates[t] = chosen_probs / chosen_probs.sum()
        elif weights == "probs":
            gates[t] = probs[t, chosen]
        else:
            raise ValueError(f"unknown weights {weights!r}")
    used = [0] * num_experts
    dropped = np.ones((num_tokens, k), dtype=np.bool_)
    assignments: list[tuple[int, int, int, float]] = []
    for j in range(k):
        for t in range(num_tokens):
            expert = int(expert_index[t, j])
            if used[expert] < capacity:
                assignments.append((t, expert, used[expert], float(gates[t, j])))
                used[expert] += 1
                dropped[t, j] = False
    return _token_choice_result(
        x, probs, expert_index, gates, assignments, dropped, capacity, aux_loss_coef, z_loss_coef
    )


def expert_choice_gating(
    logits: ArrayLike,
    *,
    capacity_factor: float = 1.0,
    capacity: int | None = None,
    z_loss_coef: float = 0.001,
) -> ExpertChoiceReference:
    """Expert-choice routing: each expert takes its ``C`` best tokens by softmax score."""
    x = _logits(logits)
    num_tokens, num_experts = x.shape
    if capacity is None:
        capacity = expert_choice_capacity(num_tokens, num_experts, capacity_factor)
    probs = softmax(x)
    dispatch = np.zeros((num_tokens, num_experts, capacity), dtype=np.bool_)
    combine = np.zeros((num_tokens, num_experts, capacity), dtype=np.float64)
    token_index = np.zeros((num_experts, capacity), dtype=np.int64)
    for e in range(num_experts):
        best = sorted(range(num_tokens), key=lambda t: (-float(probs[t, e]), t))[:capacity]
        for slot, t in enumerate(best):
            token_index[e, slot] = t
            dispatch[t, e, slot] = True
            combine[t, e, slot] = probs[t, e]
    expert_mask: BoolArray = np.any(dispatch, axis=2)
    experts_per_token = expert_mask.sum(axis=1).astype(np.int64)
    return ExpertChoiceReference(
        dispatch=dispatch,
        combine=combine,
        router_probs=probs,
        token_index=token_index,
        expert_mask=expert_mask,
        tokens_per_expert=expert_mask.sum(axis=0).astype(np.int64),
        experts_per_token=experts_per_token,
        dropped=experts_per_token == 0,
        aux_loss=0.0,
        z_loss=router_z_loss(x, coef=z_loss_coef),
    )
