"""Auxiliary router losses for mixture-of-experts gating, in JAX.

Load-balancing loss (Fedus, Zoph & Shazeer 2021, "Switch Transformers: Scaling to Trillion
Parameter Models with Simple and Efficient Sparsity", JMLR 23(120), eq. 4-6)::

    loss = alpha * N * sum_i f_i * P_i
    f_i  = (1/T) * sum_x 1{argmax p(x) = i}     fraction of tokens whose top choice is i
    P_i  = (1/T) * sum_x p_i(x)                 mean router probability for expert i

with ``p(x) = softmax(logits(x))``, ``N`` experts, ``T`` tokens and ``alpha`` = 0.01 by default.
``f`` counts the router's argmax before any capacity drop, as in the paper, and is piecewise
constant, so the gradient flows through ``P`` only.  Under uniform routing the loss is ``alpha``.
GShard (Lepikhin et al. 2021) uses the same first-choice density for top-2 routing, so the
top-k router reuses this function unchanged.

Router z-loss (Zoph et al. 2022, "ST-MoE: Designing Stable and Transferable Sparse Expert
Models", eq. 5)::

    z_loss = beta * (1/T) * sum_x (logsumexp_j logits_j(x))^2

with ``beta`` = 0.001 by default.  It keeps the router logits small, which keeps the float32
softmax well conditioned.

Both functions are plain ``jax.numpy`` code: they trace under ``jax.jit``, ``jax.grad`` and
``jax.vmap``.  Logits are promoted to float32 first, as Switch keeps router maths in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "DEFAULT_AUX_LOSS_COEF",
    "DEFAULT_Z_LOSS_COEF",
    "load_balancing_loss",
    "router_z_loss",
]

DEFAULT_AUX_LOSS_COEF = 0.01
"""Switch Transformers' ``alpha`` for the load-balancing loss."""

DEFAULT_Z_LOSS_COEF = 0.001
"""ST-MoE's coefficient for the router z-loss."""


def _router_logits(logits: ArrayLike) -> jax.Array:
    # Half-precision logits would make the exponentials in softmax/logsumexp unstable.
    x = jnp.asarray(logits)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def load_balancing_loss(
    logits: ArrayLike, *, coef: float | ArrayLike = DEFAULT_AUX_LOSS_COEF
) -> jax.Array:
    """Switch load-balancing loss ``coef * N * sum_i f_i * P_i`` for ``(tokens, experts)`` logits.

    ``f_i`` is the fraction of tokens whose highest logit is expert ``i`` (ties go to the lower
    expert index, matching the routers), ``P_i`` the mean softmax probability of expert ``i``.
    Returns a float32 scalar.
    """
    x = _router_logits(logits)
    num_experts = x.shape[-1]
    probs = jax.nn.softmax(x, axis=-1)
    top1 = jnp.argmax(x, axis=-1)
    fraction = jnp.mean(jax.nn.one_hot(top1, num_experts, dtype=probs.dtype), axis=0)
    mean_prob = jnp.mean(probs, axis=0)
    return jnp.asarray(coef, dtype=probs.dtype) * num_experts * jnp.sum(fraction * mean_prob)


def router_z_loss(logits: ArrayLike, *, coef: float | ArrayLike = DEFAULT_Z_LOSS_COEF) -> jax.Array:
    """ST-MoE router z-loss ``coef * mean_tokens(logsumexp(logits) ** 2)``; a float32 scalar."""
    x = _router_logits(logits)
    log_z = jax.nn.logsumexp(x, axis=-1)
    return jnp.asarray(coef, dtype=x.dtype) * jnp.mean(jnp.square(log_z))
