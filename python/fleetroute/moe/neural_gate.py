"""A trainable neural gate for routing requests to expert services (seed 002's "Neural
Routing", seed 000's ``DynamicMoE``).

The gate is a one-hidden-layer network, request features -> one score per expert,
read as the reward the expert is expected to earn on this request. It learns online:
after each request, one gradient step of the squared error between the predicted and
the observed reward of each expert that served it. Selection is the caller's
(``DynamicMoE``, ``MoERouter``): the top-k scores, less a load penalty.

One request's forward pass and gradient step are two small matrix products each, and
the routing service makes them on every decision and completion: they run in numpy on
the host, in microseconds, where a JAX dispatch costs a hundred and importing JAX
costs the service 160 MB. JAX is the gate's batch path and its reference: ``jax_step``
is the same step written with ``jax.value_and_grad`` and jit-compiled, the tests hold
the hand-written gradient to it, and ``scores_batch`` scores a batch in one jitted
call. JAX is imported on the first use of either. Parameters are initialised from an
explicit seed, so a seed reproduces a run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from fleetroute.validation import positive_int, positive_number

__all__ = ["GateParams", "NeuralGate", "jax_step", "numpy_step"]

_Array = npt.NDArray[np.float32]


class GateParams(NamedTuple):
    """The network's weights: hidden layer ``w1``, ``b1``; output layer ``w2``, ``b2``."""

    w1: _Array
    b1: _Array
    w2: _Array
    b2: _Array


def numpy_step(
    params: GateParams, x: _Array, mask: _Array, reward: _Array, rate: float
) -> tuple[GateParams, float]:
    """One SGD step on ``sum(((f(x) - reward) * mask)^2) / max(sum(mask), 1)``, the
    gradient written out by hand; returns the new weights and the loss before the step."""
    w1, b1, w2, b2 = params
    hidden = np.tanh(x @ w1 + b1)
    error = (hidden @ w2 + b2 - reward) * mask
    scale = np.float32(1.0 / max(float(mask.sum()), 1.0))
    loss = float((error * error).sum() * scale)
    d_out = np.float32(2.0) * scale * error * mask
    d_hidden = (w2 @ d_out) * (np.float32(1.0) - hidden * hidden)
    lr = np.float32(rate)
    return (
        GateParams(
            w1 - lr * (x[:, None] * d_hidden[None, :]),
            b1 - lr * d_hidden,
            w2 - lr * (hidden[:, None] * d_out[None, :]),
            b2 - lr * d_out,
        ),
        loss,
    )


@functools.cache
def _jax_kernels() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The jit-compiled batch scorer and SGD step (imports JAX on first call)."""
    import jax
    import jax.numpy as jnp

    def forward(params: Any, x: Any) -> Any:
        w1, b1, w2, b2 = params
        return jnp.tanh(x @ w1 + b1) @ w2 + b2

    def loss(params: Any, x: Any, mask: Any, reward: Any) -> Any:
        error = (forward(params, x) - reward) * mask
        return jnp.sum(error * error) / jnp.maximum(jnp.sum(mask), 1.0)

    def step(params: Any, x: Any, mask: Any, reward: Any, rate: Any) -> Any:
        value, grads = jax.value_and_grad(loss)(params, x, mask, reward)
        return tuple(p - rate * g for p, g in zip(params, grads, strict=True)), value

    return jax.jit(forward), jax.jit(step)


def jax_step(
    params: GateParams, x: _Array, mask: _Array, reward: _Array, rate: float
) -> tuple[GateParams, float]:
    """``numpy_step`` by ``jax.value_and_grad`` under ``jax.jit``: the reference."""
    _, step = _jax_kernels()
    updated, loss = step(tuple(params), x, mask, reward, np.float32(rate))
    return GateParams(*(np.asarray(p) for p in updated)), float(loss)


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
        rng = np.random.default_rng(seed)
        # Glorot-style scale for the hidden layer. The output layer starts at zero
        # weights and a bias of ``initial_reward`` for every expert: no initial
        # favourite, and optimistic, so an untried expert looks good until tried (the
        # gate's exploration; use the best reward the task can give).
        self.params = GateParams(
            (rng.standard_normal((self.input_dim, self.hidden)) / np.sqrt(self.input_dim)).astype(
                np.float32
            ),
            np.zeros(self.hidden, np.float32),
            np.zeros((self.hidden, self.num_experts), np.float32),
            np.full(self.num_experts, float(initial_reward), np.float32),
        )
        self.updates = 0

    def _features(self, features: npt.ArrayLike) -> _Array:
        x = np.asarray(features, dtype=np.float32)
        if x.shape != (self.input_dim,):
            raise ValueError(f"features must have shape ({self.input_dim},) (got {x.shape})")
        if not np.all(np.isfinite(x)):
            raise ValueError("features must be finite")
        return x

    def scores(self, features: npt.ArrayLike) -> _Array:
        """The expected reward of each expert on a request with these features."""
        w1, b1, w2, b2 = self.params
        out: _Array = np.tanh(self._features(features) @ w1 + b1) @ w2 + b2
        return out

    def scores_batch(self, features: npt.ArrayLike) -> _Array:
        """Scores of a batch (``requests x input_dim``), in one jit-compiled JAX call."""
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"features must have shape (n, {self.input_dim}) (got {x.shape})")
        forward, _ = _jax_kernels()
        return np.asarray(forward(tuple(self.params), x))

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
        self.params, loss = numpy_step(
            self.params, self._features(features), mask, target, self.learning_rate
        )
        self.updates += 1
        return loss

    def reset_expert(self, expert: int, initial_reward: float = 1.0) -> None:
        """Forgets what was learned about ``expert`` (its slot now serves another)."""
        if not 0 <= expert < self.num_experts:
            raise ValueError(f"expert {expert} is not in [0, {self.num_experts})")
        w1, b1, w2, b2 = self.params
        w2, b2 = w2.copy(), b2.copy()
        w2[:, expert] = 0.0
        b2[expert] = initial_reward
        self.params = GateParams(w1, b1, w2, b2)
