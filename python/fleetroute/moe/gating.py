"""Mixture-of-experts gating in JAX: Switch top-1, top-k and expert-choice routing.

Every router is batch-first: it takes router logits of shape ``(T, E)`` (tokens x experts) and
returns a pytree (a ``NamedTuple``) whose ``dispatch`` (``bool``, ``(T, E, C)``) and ``combine``
(float32, ``(T, E, C)``) tensors drive the usual einsum MoE layer::

    expert_inputs = einsum("tec,td->ecd", dispatch, x)
    y = einsum("tec,ecd->td", combine, expert_outputs)

``C`` is the per-expert capacity (number of slots).  Router maths runs in float32 (Switch
Transformers, "selective precision"; float64 logits stay float64 when x64 is enabled).  The
public functions validate their arguments eagerly in Python, derive the capacity, then call a
``jax.jit``-compiled kernel with the capacity, ``k`` and the mode strings as static arguments, so
each shape/capacity/mode combination compiles once; the loss coefficients and ``jitter_eps`` are
traced and can change without recompiling.

Switch top-1 (Fedus, Zoph & Shazeer 2021, "Switch Transformers", JMLR 23(120))
    ``p = softmax(logits)``; each token goes to ``argmax_i p_i`` with combine weight ``p_i``.
    Capacity ``C = ceil(capacity_factor * T / E)``.  Tokens beyond an expert's capacity are
    dropped in token order: earlier tokens (lower row index) keep their slots, later ones lose
    them.  With ``overflow="next_best"`` a dropped token is instead offered its next-best
    expert: in round ``r`` every still-unplaced token asks for its ``(r+1)``-th ranked expert, in
    token order, against the slots left after earlier rounds; its combine weight is then the
    router probability of the expert that takes it.  A token is dropped only once every expert
    is full.  Training jitter multiplies the logits by noise drawn uniformly from
    ``[1 - eps, 1 + eps)`` with an explicit ``jax.random`` key; with no key (inference) there is
    no noise.  The paper multiplies the router *input*; this module only sees logits, so it
    jitters those, and the probabilities, routing and both losses all use the jittered logits.

Top-k (Lepikhin et al. 2021, "GShard"; Jiang et al. 2024, "Mixtral of Experts")
    Each token picks its ``k`` highest-logit experts.  Gate weights are
    ``weights="softmax_topk"`` (Mixtral: ``softmax`` over the ``k`` chosen logits),
    ``"renormalized"`` (GShard: the full-softmax probabilities of the chosen ``k`` divided by
    their sum) or ``"probs"`` (the full-softmax probabilities unnormalised).  The first two are
    the same function, ``exp(l_j) / sum_{chosen} exp(l)``, and agree to float rounding; both
    spellings are offered because the papers state them differently.  Capacity
    ``C = ceil(capacity_factor * k * T / E)``.  Slots are filled in priority order as in
    GShard: all first choices (in token order), then all second choices (in token order), and
    so on, so a late token's first choice beats an early token's second choice.  Gate weights
    are computed before capacity is applied: a dropped choice gets weight 0 and the surviving
    weights are not renormalised (some implementations renormalise after dropping instead).

Expert choice (Zhou et al. 2022, "Mixture-of-Experts with Expert Choice Routing")
    ``S = softmax(logits)`` over experts; each expert takes the ``C`` tokens with the highest
    ``S[:, e]``, ``C = round(capacity_factor * T / E)`` (half rounds up, clamped to
    ``[1, T]``), so every expert processes exactly ``C`` tokens.  The combine weight of a picked
    ``(token, expert)`` pair is ``S[token, expert]``; a token may get zero or several experts.
    Slot ``c`` of expert ``e`` holds its ``c``-th best token.  No load-balancing loss is needed
    (the paper uses none), so ``aux_loss`` is 0; the z-loss is still reported.

Ties in the ranking go to the lower expert index (token choice) or the lower token index (expert
choice).  The losses (``aux_loss`` = Switch load-balancing loss, ``z_loss`` = ST-MoE router
z-loss) are described in :mod:`fleetroute.moe.losses`; they are already multiplied by their
coefficients and are differentiable with respect to the logits.

Validation raises ``ValueError`` before anything is compiled: logits must be a real 2-D array
with at least one token and one expert; ``k`` must be an integer in ``[1, E]``;
``capacity_factor`` must be finite and > 0.  With ``check=True`` (the default) the logits are
also checked for NaN/inf, which copies them to the host and scans them once (``O(T * E)``) and
waits for any pending device computation; pass ``check=False`` on hot paths.  When the logits are
traced (under an outer ``jax.jit`` or ``jax.grad``) their values are unknown and the finiteness
check is skipped.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from fleetroute.moe.losses import (
    DEFAULT_AUX_LOSS_COEF,
    DEFAULT_Z_LOSS_COEF,
    load_balancing_loss,
    router_z_loss,
)
from fleetroute.validation import non_negative_number, positive_int, positive_number

__all__ = [
    "DEFAULT_JITTER_EPS",
    "ExpertChoiceRouting",
    "Overflow",
    "TokenChoiceRouting",
    "TopKWeights",
    "expert_capacity",
    "expert_choice_capacity",
    "expert_choice_gating",
    "jitter_noise",
    "switch_gating",
    "top_k_gating",
]

Overflow = Literal["drop", "next_best"]
"""What Switch does with a token whose expert is full: drop it, or try its next-best expert."""

TopKWeights = Literal["softmax_topk", "renormalized", "probs"]
"""How top-k gate weights are formed from the chosen experts (see the module docstring)."""

DEFAULT_JITTER_EPS = 0.01
"""Switch Transformers' multiplicative jitter half-width ``eps``."""


class TokenChoiceRouting(NamedTuple):
    """Result of :func:`switch_gating` or :func:`top_k_gating` (``k = 1`` for Switch).

    Shapes use ``T`` tokens, ``E`` experts, ``C`` capacity and ``k`` choices per token.
    """

    dispatch: jax.Array
    """``bool (T, E, C)``: token ``t`` occupies slot ``c`` of expert ``e``."""
    combine: jax.Array
    """``float32 (T, E, C)``: ``dispatch`` times the gate weight of that token for that expert."""
    router_probs: jax.Array
    """``float32 (T, E)``: ``softmax`` of the (jittered) logits."""
    expert_index: jax.Array
    """``int32 (T, k)``: the router's ranked choices, best first, before any capacity limit."""
    gates: jax.Array
    """``float32 (T, k)``: gate weight of each ranked choice, before any capacity limit."""
    expert_mask: jax.Array
    """``bool (T, E)``: token ``t`` was given a slot at expert ``e`` (after capacity/overflow)."""
    tokens_per_expert: jax.Array
    """``int32 (E,)``: occupied slots per expert; never more than ``C``."""
    dropped: jax.Array
    """``bool (T, k)``: choice ``j`` of token ``t`` got no slot (for ``next_best``: nowhere)."""
    aux_loss: jax.Array
    """``float32 ()``: Switch load-balancing loss, already scaled by its coefficient."""
    z_loss: jax.Array
    """``float32 ()``: ST-MoE router z-loss, already scaled by its coefficient."""

    @property
    def capacity(self) -> int:
        """Slots per expert, ``C``."""
        return int(self.dispatch.shape[2])

    @property
    def num_dropped(self) -> jax.Array:
        """``int32 ()``: number of dropped (token, choice) pairs."""
        return jnp.sum(self.dropped, dtype=jnp.int32)


class ExpertChoiceRouting(NamedTuple):
    """Result of :func:`expert_choice_gating`; ``T`` tokens, ``E`` experts, ``C`` capacity."""

    dispatch: jax.Array
    """``bool (T, E, C)``: expert ``e`` picked token ``t`` as its ``c``-th best token."""
    combine: jax.Array
    """``float32 (T, E, C)``: ``dispatch`` times ``router_probs[t, e]``."""
    router_probs: jax.Array
    """``float32 (T, E)``: ``softmax`` of the logits over experts (the scores ``S``)."""
    token_index: jax.Array
    """``int32 (E, C)``: the tokens each expert picked, best first."""
    expert_mask: jax.Array
    """``bool (T, E)``: expert ``e`` picked token ``t``."""
    tokens_per_expert: jax.Array
    """``int32 (E,)``: always ``C`` for every expert."""
    experts_per_token: jax.Array
    """``int32 (T,)``: how many experts picked each token (0, 1 or several)."""
    dropped: jax.Array
    """``bool (T,)``: no expert picked the token."""
    aux_loss: jax.Array
    """``float32 ()``: always 0; expert choice is balanced by construction."""
    z_loss: jax.Array
    """``float32 ()``: ST-MoE router z-loss, already scaled by its coefficient."""

    @property
    def capacity(self) -> int:
        """Tokens per expert, ``C``."""
        return int(self.dispatch.shape[2])

    @property
    def num_dropped(self) -> jax.Array:
        """``int32 ()``: number of tokens no expert picked."""
        return jnp.sum(self.dropped, dtype=jnp.int32)


# --------------------------------------------------------------------------- capacity


def _exact(capacity_factor: float) -> Fraction:
    # The decimal the caller wrote, so 1.1 * 100 / 11 is exactly 10 rather than 10.000000000000002
    # (whose ceiling would silently add a slot).
    return Fraction(repr(float(capacity_factor)))


def expert_capacity(
    num_tokens: int, num_experts: int, capacity_factor: float, *, k: int = 1
) -> int:
    """Token-choice capacity ``ceil(capacity_factor * k * num_tokens / num_experts)``.

    ``capacity_factor`` is taken at its shortest decimal value, so float round-off never adds a
    slot.  Always at least 1.
    """
    positive_int("num_tokens", num_tokens)
    positive_int("num_experts", num_experts)
    positive_int("k", k)
    positive_number("capacity_factor", capacity_factor)
    return math.ceil(_exact(capacity_factor) * k * num_tokens / num_experts)


def expert_choice_capacity(num_tokens: int, num_experts: int, capacity_factor: float) -> int:
    """Expert-choice capacity ``round(capacity_factor * num_tokens / num_experts)``.

    Halves round up; the result is clamped to ``[1, num_tokens]`` because an expert needs at
    least one token and cannot pick the same token twice.
    """
    positive_int("num_tokens", num_tokens)
    positive_int("num_experts", num_experts)
    positive_number("capacity_factor", capacity_factor)
    rounded = math.floor(_exact(capacity_factor) * num_tokens / num_experts + Fraction(1, 2))
    return min(max(rounded, 1), num_tokens)


# --------------------------------------------------------------------------- validation


def _as_logits(logits: ArrayLike, check: bool) -> jax.Array:
    x = jnp.asarray(logits)
    if x.ndim != 2:
        raise ValueError(
            f"logits must be 2-D (tokens, experts); got shape {tuple(x.shape)} (rank {x.ndim})"
        )
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"logits need at least one token and one expert; got {tuple(x.shape)}")
    if x.dtype == jnp.bool_ or not (
        jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)
    ):
        raise ValueError(f"logits must be real numbers; got dtype {x.dtype}")
    if check:
        _check_finite(x)
    return x


def _check_finite(x: jax.Array) -> None:
    try:
        host = np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return  # traced by an outer jit/grad: no values to inspect
    bad = int(np.size(host) - np.count_nonzero(np.isfinite(host)))
    if bad:
        raise ValueError(
            f"logits contain {bad} non-finite value(s) (NaN or inf); pass check=False to skip"
        )


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))} (got {value!r})")


def _capacity_override(capacity: int | None) -> int | None:
    return None if capacity is None else positive_int("capacity", capacity)


def _jitter_eps(eps: float) -> float:
    value = non_negative_number("jitter_eps", eps)
    if value >= 1.0:
        # Noise could reach 0 or flip the sign of a logit.
        raise ValueError(f"jitter_eps must be < 1 (got {eps!r})")
    return value


# --------------------------------------------------------------------------- kernels


def jitter_noise(key: jax.Array, shape: tuple[int, ...], eps: float | jax.Array) -> jax.Array:
    """Switch multiplicative jitter: float32 noise uniform in ``[1 - eps, 1 + eps)``.

    The routers multiply the logits by exactly this array when given ``key``.
    """
    return jax.random.uniform(key, shape, dtype=jnp.float32, minval=1.0 - eps, maxval=1.0 + eps)


def _place_in_rounds(
    candidates: jax.Array, capacity: int, num_experts: int, *, retry: bool
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Fill expert slots round by round; within a round, in token order.

    ``candidates`` is ``(rounds, T)``: the expert each token asks for in each round.  With
    ``retry`` only tokens not yet placed ask (Switch next-best overflow); otherwise every token
    asks every round (top-k choices).  Returns ``placed (rounds, T)``, ``mask (T, E)`` and
    ``slot (T, E)`` (meaningful where ``mask``).
    """
    num_tokens = candidates.shape[1]

    def step(
        carry: tuple[jax.Array, jax.Array, jax.Array, jax.Array], wanted: jax.Array
    ) -> tuple[tuple[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]:
        used, done, mask, slot = carry
        asking = ~done if retry else jnp.ones_like(done)
        wants = jax.nn.one_hot(wanted, num_experts, dtype=jnp.int32) * asking[:, None]
        # Slot = slots taken in earlier rounds + earlier tokens asking for the same expert now.
        position = used[None, :] + jnp.cumsum(wants, axis=0) - wants
        token_slot = jnp.sum(position * wants, axis=1)
        placed = asking & (token_slot < capacity)
        got = (wants > 0) & placed[:, None]
        used = used + jnp.sum(got, axis=0, dtype=jnp.int32)
        slot = jnp.where(got, token_slot[:, None], slot)
        return (used, done | placed, mask | got, slot), placed

    init = (
        jnp.zeros((num_experts,), jnp.int32),
        jnp.zeros((num_tokens,), jnp.bool_),
        jnp.zeros((num_tokens, num_experts), jnp.bool_),
        jnp.zeros((num_tokens, num_experts), jnp.int32),
    )
    (_, _, mask, slot), placed = lax.scan(step, init, candidates)
    return placed, mask, slot


def _dispatch(mask: jax.Array, slot: jax.Array, capacity: int) -> jax.Array:
    return mask[:, :, None] & jax.nn.one_hot(slot, capacity, dtype=jnp.bool_)


def _router_logits(logits: jax.Array) -> jax.Array:
    # Router maths in float32 at least: Switch's "selective precision" for a stable softmax.
    return logits.astype(jnp.promote_types(logits.dtype, jnp.float32))


def _jittered(logits: jax.Array, key: jax.Array | None, eps: jax.Array) -> jax.Array:
    x = _router_logits(logits)
    if key is None:
        return x  # inference: no noise
    return x * jitter_noise(key, x.shape, eps).astype(x.dtype)


def _switch_kernel(
    logits: jax.Array,
    key: jax.Array | None,
    jitter_eps: jax.Array,
    aux_loss_coef: jax.Array,
    z_loss_coef: jax.Array,
    *,
    capacity: int,
    overflow: Overflow,
) -> TokenChoiceRouting:
    num_experts = logits.shape[1]
    x = _jittered(logits, key, jitter_eps)
    probs = jax.nn.softmax(x, axis=-1)
    rounds = num_experts if overflow == "next_best" else 1
    _, ranked = lax.top_k(x, rounds)  # ties: lower expert index first, like argmax
    placed, mask, slot = _place_in_rounds(ranked.T, capacity, num_experts, retry=True)
    dispatch = _dispatch(mask, slot, capacity)
    expert_index = ranked[:, :1].astype(jnp.int32)
    return TokenChoiceRouting(
        dispatch=dispatch,
        combine=jnp.where(dispatch, probs[:, :, None], 0.0),
        router_probs=probs,
        expert_index=expert_index,
        gates=jnp.take_along_axis(probs, expert_index, axis=1),
        expert_mask=mask,
        tokens_per_expert=jnp.sum(mask, axis=0, dtype=jnp.int32),
        dropped=~jnp.any(placed, axis=0)[:, None],
        aux_loss=load_balancing_loss(x, coef=aux_loss_coef),
        z_loss=router_z_loss(x, coef=z_loss_coef),
    )


def _top_k_kernel(
    logits: jax.Array,
    key: jax.Array | None,
    jitter_eps: jax.Array,
    aux_loss_coef: jax.Array,
    z_loss_coef: jax.Array,
    *,
    k: int,
    capacity: int,
    weights: TopKWeights,
) -> TokenChoiceRouting:
    num_experts = logits.shape[1]
    x = _jittered(logits, key, jitter_eps)
    probs = jax.nn.softmax(x, axis=-1)
    top_logits, top_index = lax.top_k(x, k)
    expert_index = top_index.astype(jnp.int32)
    chosen = jnp.take_along_axis(probs, expert_index, axis=1)
    if weights == "softmax_topk":
        gates = jax.nn.softmax(top_logits, axis=-1)
    elif weights == "renormalized":
        gates = chosen / jnp.sum(chosen, axis=-1, keepdims=True)
    else:
        gates = chosen
    placed, mask, slot = _place_in_rounds(expert_index.T, capacity, num_experts, retry=False)
    dispatch = _dispatch(mask, slot, capacity)
    # A token's k choices are distinct experts, so scattering its gates onto experts is a sum.
    gate_per_expert = jnp.sum(
        jax.nn.one_hot(expert_index, num_experts, dtype=gates.dtype) * gates[:, :, None], axis=1
    )
    return TokenChoiceRouting(
        dispatch=dispatch,
        combine=jnp.where(dispatch, gate_per_expert[:, :, None], 0.0),
        router_probs=probs,
        expert_index=expert_index,
        gates=gates,
        expert_mask=mask,
        tokens_per_expert=jnp.sum(mask, axis=0, dtype=jnp.int32),
        dropped=~placed.T,
        aux_loss=load_balancing_loss(x, coef=aux_loss_coef),
        z_loss=router_z_loss(x, coef=z_loss_coef),
    )


def _expert_choice_kernel(
    logits: jax.Array, z_loss_coef: jax.Array, *, capacity: int
) -> ExpertChoiceRouting:
    num_tokens = logits.shape[0]
    x = _router_logits(logits)
    probs = jax.nn.softmax(x, axis=-1)
    # Each expert ranks the tokens by its column of S; ties: lower token index first.
    _, token_index = lax.top_k(probs.T, capacity)
    token_index = token_index.astype(jnp.int32)
    dispatch = jnp.transpose(jax.nn.one_hot(token_index, num_tokens, dtype=jnp.bool_), (2, 0, 1))
    mask = jnp.any(dispatch, axis=2)
    experts_per_token = jnp.sum(mask, axis=1, dtype=jnp.int32)
    return ExpertChoiceRouting(
        dispatch=dispatch,
        combine=jnp.where(dispatch, probs[:, :, None], 0.0),
        router_probs=probs,
        token_index=token_index,
        expert_mask=mask,
        tokens_per_expert=jnp.sum(mask, axis=0, dtype=jnp.int32),
        experts_per_token=experts_per_token,
        dropped=experts_per_token == 0,
        aux_loss=jnp.zeros((), probs.dtype),
        z_loss=router_z_loss(x, coef=z_loss_coef),
    )


# Shapes, capacity and modes are static; coefficients and eps are traced, so changing them does
# not recompile.
_switch_jit = jax.jit(_switch_kernel, static_argnames=("capacity", "overflow"))
_top_k_jit = jax.jit(_top_k_kernel, static_argnames=("k", "capacity", "weights"))
_expert_choice_jit = jax.jit(_expert_choice_kernel, static_argnames=("capacity",))


# --------------------------------------------------------------------------- public API


def switch_gating(
    logits: ArrayLike,
    *,
    capacity_factor: float = 1.0,
    capacity: int | None = None,
    overflow: Overflow = "drop",
    key: jax.Array | None = None,
    jitter_eps: float = DEFAULT_JITTER_EPS,
    aux_loss_coef: float = DEFAULT_AUX_LOSS_COEF,
    z_loss_coef: float = DEFAULT_Z_LOSS_COEF,
    check: bool = True,
) -> TokenChoiceRouting:
    """Switch Transformer top-1 routing of ``(T, E)`` logits.

    Args:
        logits: router logits, tokens x experts.
        capacity_factor: slots per expert are ``ceil(capacity_factor * T / E)``.
        capacity: explicit slots per expert; overrides ``capacity_factor`` when given.
        overflow: ``"drop"`` drops tokens past capacity (later tokens first);
            ``"next_best"`` sends them to their best-ranked expert that still has room.
        key: ``jax.random`` key for training jitter; ``None`` (inference) means no noise.
        jitter_eps: half-width of the multiplicative noise, in ``[0, 1)``.
        aux_loss_coef: ``alpha`` of the load-balancing loss.
        z_loss_coef: coefficient of the router z-loss.
        check: reject NaN/inf logits (costs a host copy and a pass over the logits).

    Raises:
        ValueError: on a bad argument (see the module docstring).
    """
    x = _as_logits(logits, check)
    positive_number("capacity_factor", capacity_factor)
    _choice("overflow", overflow, get_args(Overflow))
    eps = _jitter_eps(jitter_eps)
    aux = non_negative_number("aux_loss_coef", aux_loss_coef)
    zc = non_negative_number("z_loss_coef", z_loss_coef)
    slots = _capacity_override(capacity)
    if slots is None:
        slots = expert_capacity(x.shape[0], x.shape[1], capacity_factor)
    result: TokenChoiceRouting = _switch_jit(
        x,
        key,
        jnp.float32(eps),
        jnp.float32(aux),
        jnp.float32(zc),
        capacity=slots,
        overflow=overflow,
    )
    return result


def top_k_gating(
    logits: ArrayLike,
    k: int,
    *,
    capacity_factor: float = 1.0,
    capacity: int | None = None,
    weights: TopKWeights = "softmax_topk",
    key: jax.Array | None = None,
    jitter_eps: float = DEFAULT_JITTER_EPS,
    aux_loss_coef: float = DEFAULT_AUX_LOSS_COEF,
    z_loss_coef: float = DEFAULT_Z_LOSS_COEF,
    check: bool = True,
) -> TokenChoiceRouting:
    """GShard / Mixtral top-``k`` routing of ``(T, E)`` logits.

    Args:
        logits: router logits, tokens x experts.
        k: experts per token, ``1 <= k <= E``.
        capacity_factor: slots per expert are ``ceil(capacity_factor * k * T / E)``.
        capacity: explicit slots per expert; overrides ``capacity_factor`` when given.
        weights: ``"softmax_topk"``, ``"renormalized"`` or ``"probs"`` (module docstring).
        key: ``jax.random`` key for multiplicative jitter; ``None`` means no noise.
        jitter_eps: half-width of the multiplicative noise, in ``[0, 1)``.
        aux_loss_coef: ``alpha`` of the load-balancing loss (first-choice density, as GShard).
        z_loss_coef: coefficient of the router z-loss.
        check: reject NaN/inf logits (costs a host copy and a pass over the logits).

    Raises:
        ValueError: on a bad argument (see the module docstring).
    """
    x = _as_logits(logits, check)
    positive_int("k", k)
    if k > x.shape[1]:
        raise ValueError(f"k must be <= the number of experts {x.shape[1]} (got {k})")
    positive_number("capacity_factor", capacity_factor)
    _choice("weights", weights, get_args(TopKWeights))
    eps = _jitter_eps(jitter_eps)
    aux = non_negative_number("aux_loss_coef", aux_loss_coef)
    zc = non_negative_number("z_loss_coef", z_loss_coef)
    slots = _capacity_override(capacity)
    if slots is None:
        slots = expert_capacity(x.shape[0], x.shape[1], capacity_factor, k=k)
    result: TokenChoiceRouting = _top_k_jit(
        x,
        key,
        jnp.float32(eps),
        jnp.float32(aux),
        jnp.float32(zc),
        k=k,
        capacity=slots,
        weights=weights,
    )
    return result


def expert_choice_gating(
    logits: ArrayLike,
    *,
    capacity_factor: float = 1.0,
    capacity: int | None = None,
    z_loss_coef: float = DEFAULT_Z_LOSS_COEF,
    check: bool = True,
) -> ExpertChoiceRouting:
    """Expert-choice routing of ``(T, E)`` logits: each expert picks its top-``C`` tokens.

    Args:
        logits: router logits, tokens x experts.
        capacity_factor: tokens per expert are ``round(capacity_factor * T / E)`` in ``[1, T]``.
        capacity: explicit tokens per expert, ``<= T``; overrides ``capacity_factor``.
        z_loss_coef: coefficient of the router z-loss.
        check: reject NaN/inf logits (costs a host copy and a pass over the logits).

    Raises:
        ValueError: on a bad argument (see the module docstring).
    """
    x = _as_logits(logits, check)
    positive_number("capacity_factor", capacity_factor)
    zc = non_negative_number("z_loss_coef", z_loss_coef)
    slots = _capacity_override(capacity)
    if slots is None:
        slots = expert_choice_capacity(x.shape[0], x.shape[1], capacity_factor)
    elif slots > x.shape[0]:
        raise ValueError(
            f"capacity must be <= the number of tokens {x.shape[0]} for expert choice (got {slots})"
        )
    result: ExpertChoiceRouting = _expert_choice_jit(x, jnp.float32(zc), capacity=slots)
    return result
