"""A trainable neural gate for routing requests to expert services (seed 002's "Neural
Routing", seed 000's ``DynamicMoE``).

The gate is a one-hidden-layer network, request features -> one score per expert,
read as the reward the expert is expected to earn on this request. It learns online:
after each request, one gradient step of the squared error between the predicted and
the observed reward of each expert that served it (plain JAX, ``jax.grad`` and SGD,
jit-compiled). Selection is the caller's (``DynamicMoE``): the top-k scores, less a
load penalty. Parameters are initialised from an explicit ``jax.random`` key, so a
seed reproduces a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt

from fleetroute.validation import positive_int, positive_number

__all__ = ["GateParams", "NeuralGate"]


class GateParams(NamedTuple):
    """The network's weights (a JAX pytree)."""

    w1: jax.Array
    b1: jax.Array
    w2: jax.Array
    b2: jax.Array


def _forward(params: GateParams, x: jax.Array) -> jax.Array:
    hidden = jnp.tanh(x @ params.w1 + params.b1)
    return hidden @ params.w2 + params.b2


def _loss(params: GateParams, x: jax.Array, mask: jax.Array, reward: jax.Array) -> jax.Array:
    # Squared error on the experts that served the request (mask), none elsewhere.
    error = (_forward(params, x) - reward) * mask
    return jnp.sum(error * error) / jnp.maximum(jnp.sum(mask), 1.0)


@jax.jit
def _scores(params: GateParams, x: jax.Array) -> jax.Array:
    return _forward(params, x)


@jax.jit
def _step(
    params: GateParams, x: jax.Array, mask: jax.Array, reward: jax.Array, rate: jax.Array
) -> tuple[GateParams, jax.Array]:
    loss, grads = jax.value_and_grad(_loss)(params, x, mask, reward)
    updated = GateParams(*(p - rate * g for p, g in zip(params, grads, strict=True)))
    return updated, loss


class NeuralGate:
    """Request features -> expected reward per expert, trained from observed rewards."""

    def __init__(
        self,
        input_dim: int,
        num_experts: int,
        *,
        hidden: int = 32,
        learning_rate: float = 0.05,
        initial_reward: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.input_dim = positive_int("input_dim", input_dim)
        self.num_experts = positive_int("num_experts", num_experts)
        self.hidden = positive_int("hidden", hidden)
        self.learning_rate = positive_number("learning_rate", learning_rate)
        key = jax.random.key(seed)
        # Glorot-style scale for the hidden layer. The output layer starts at zero
        # weights and a bias of ``initial_reward`` for every expert: no initial
        # favourite, and optimistic, so an untried expert looks good until tried (the
        # gate's exploration; use the best reward the task can give).
        self.params = GateParams(
            jax.random.normal(key, (self.input_dim, self.hidden)) / np.sqrt(self.input_dim),
            jnp.zeros(self.hidden),
            jnp.zeros((self.hidden, self.num_experts)),
            jnp.full(self.num_experts, float(initial_reward)),
        )
        self.updates = 0
        # The weights as numpy arrays (w1, b1, w2, b2), for single-request scoring.
        self._host: tuple[npt.NDArray[np.float32], ...] | None = None

    def _features(self, features: npt.ArrayLike) -> jax.Array:
        x = np.asarray(features, dtype=np.float32)
        if x.shape != (self.input_dim,):
            raise ValueError(f"features must have shape ({self.input_dim},) (got {x.shape})")
        if not np.all(np.isfinite(x)):
            raise ValueError("features must be finite")
        return jnp.asarray(x)

    def scores(self, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The expected reward of each expert on a request with these features.

        One request's forward pass is two small matrix products: numpy on a host copy
        of the weights does it in microseconds, where a JAX dispatch costs a hundred.
        The copy is refreshed after every update.
        """
        x = np.asarray(features, dtype=np.float32)
        if x.shape != (self.input_dim,):
            raise ValueError(f"features must have shape ({self.input_dim},) (got {x.shape})")
        if not np.all(np.isfinite(x)):
            raise ValueError("features must be finite")
        if self._host is None:
            self._host = tuple(np.asarray(p) for p in self.params)
        w1, b1, w2, b2 = self._host
        out: npt.NDArray[np.float32] = np.tanh(x @ w1 + b1) @ w2 + b2
        return out

    def scores_batch(self, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Scores of a batch (``requests x input_dim``), jit-compiled in JAX."""
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"features must have shape (n, {self.input_dim}) (got {x.shape})")
        return np.asarray(_scores(self.params, jnp.asarray(x)))

    def update(
        self, features: npt.ArrayLike, experts: Sequence[int], rewards: Sequence[float]
    ) -> float:
        """One SGD step on the squared error of the experts that served; returns the
        loss before the step."""
        if len(experts) != len(rewards) or not experts:
            raise ValueError("experts and rewards must be non-empty and of equal length")
        mask = np.zeros(self.num_experts, dtype=np.float32)
        target = np.zeros(self.num_experts, dtype=np.float32)
        for expert, reward in zip(experts, rewards, strict=True):
            if not 0 <= expert < self.num_experts:
                raise ValueError(f"expert {expert} is not in [0, {self.num_experts})")
            if not np.isfinite(reward):
                raise ValueError(f"reward for expert {expert} must be finite (got {reward!r})")
            mask[expert] = 1.0
            target[expert] = reward
        self.params, loss = _step(
            self.params,
            self._features(features),
            jnp.asarray(mask),
            jnp.asarray(target),
            jnp.float32(self.learning_rate),
        )
        self.updates += 1
        self._host = None
        return float(loss)

    def reset_expert(self, expert: int, initial_reward: float = 1.0) -> None:
        """Forgets what was learned about ``expert`` (its slot now serves another)."""
        if not 0 <= expert < self.num_experts:
            raise ValueError(f"expert {expert} is not in [0, {self.num_experts})")
        p = self.params
        self._host = None
        self.params = GateParams(
            p.w1, p.b1, p.w2.at[:, expert].set(0.0), p.b2.at[expert].set(initial_reward)
        )
