"""Contextual bandits: learned routing among arms (endpoints, models, providers).

Each request is described by a feature vector (its *context*, see :func:`featurize`);
a bandit picks one arm for it, the caller observes a reward (see :func:`reward`) and
feeds it back with ``update``. Three policies share one interface and one per-arm
model, ridge regression of the reward on the context (Li et al., "A Contextual-Bandit
Approach to Personalized News Article Recommendation", WWW 2010, the disjoint model):

- :class:`LinUCB`: the arm with the highest upper confidence bound
  ``x·θ_a + alpha·sqrt(xᵀ A_a⁻¹ x)``;
- :class:`ThompsonSampling`: the arm with the highest reward drawn from its posterior
  (Agrawal & Goyal, "Thompson Sampling for Contextual Bandits with Linear Payoffs",
  ICML 2013);
- :class:`EpsilonGreedy`: the A/B baseline; a share ``epsilon`` of requests goes to an
  arm drawn uniformly, the rest to the best estimate.

Per arm ``a`` the model keeps ``A_a = ridge·I + Σ x xᵀ`` only through its inverse,
updated by the Sherman-Morrison formula (O(d²) per update, no inversion), with
``b_a = Σ r x`` and ``θ_a = A_a⁻¹ b_a``. Arms are stacked in arrays, so scoring every
arm for one request is a few vectorised numpy operations, not a Python loop. Ties are
broken uniformly at random by an injected, seedable ``numpy.random.Generator``.

Thompson sampling here is the linear-Gaussian one (Bayesian linear regression per
arm), not Beta-Bernoulli: routing rewards mix quality, cost and latency and are not
Bernoulli. A context-free bandit is ``dimension=1`` with the context ``[1.0]``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_COST_WEIGHT",
    "DEFAULT_LATENCY_WEIGHT",
    "DEFAULT_MAX_PROMPT_TOKENS",
    "ContextualBandit",
    "EpsilonGreedy",
    "FeatureEncoder",
    "LinUCB",
    "ThompsonSampling",
    "featurize",
    "reward",
]

FloatArray = npt.NDArray[np.float64]
# Which arms a computation covers: index positions, or slice(None) for all of them
# (a view of the stacked state instead of a fancy-indexed copy).
_Arms = npt.NDArray[np.intp] | slice
_ALL = slice(None)

#: Reward lost per unit of cost (the caller's currency per request).
DEFAULT_COST_WEIGHT = 1.0
#: Reward lost per second of latency: a 1 s answer is worth 0.1 less than an instant one.
DEFAULT_LATENCY_WEIGHT = 0.1
#: The prompt length whose log-scaled length feature is 1.0 (a 128k context).
DEFAULT_MAX_PROMPT_TOKENS = 131_072

# Scores this close to the best count as tied (relative to the best's magnitude):
# arms computed by the same arithmetic from the same state tie exactly, but a
# discounted or re-added arm may differ in the last bits.
_TIE_TOLERANCE = 1e-12


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"{name} must be a number (got {value!r})")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite (got {value!r})")
    return number


def _non_negative(name: str, value: object) -> float:
    number = _finite(name, value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0 (got {value!r})")
    return number


def reward(
    quality: float,
    cost: float,
    latency_s: float,
    cost_weight: float = DEFAULT_COST_WEIGHT,
    latency_weight: float = DEFAULT_LATENCY_WEIGHT,
) -> float:
    """The routing reward ``quality - cost_weight·cost - latency_weight·latency_s``.

    ``quality`` is the answer's quality (0 to 1 by convention, 0 for a failed
    request), ``cost`` what the request cost (>= 0, the caller's currency) and
    ``latency_s`` how long it took in seconds (>= 0). The weights (>= 0) price cost
    and latency in units of quality."""
    q = _finite("quality", quality)
    c = _non_negative("cost", cost)
    t = _non_negative("latency_s", latency_s)
    lam = _non_negative("cost_weight", cost_weight)
    mu = _non_negative("latency_weight", latency_weight)
    return q - lam * c - mu * t


def _names(what: str, values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(f"{what} must be a sequence of names (got {values!r})")
    names = tuple(values)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what} must be non-empty strings (got {name!r})")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} has duplicates: {sorted(names)}")
    return names


class FeatureEncoder:
    """Turns a request's task type, prompt length and tier into a context vector.

    Layout (``dimension = len(task_types) + len(tiers) + 2``):

    - ``[0, T)``: one-hot task type, in the order of ``task_types``;
    - ``[T, T + K)``: one-hot tier, in the order of ``tiers``;
    - ``T + K``: ``log1p(prompt_tokens) / log1p(max_prompt_tokens)``, the length on a
      log scale, 1.0 at ``max_prompt_tokens`` (longer prompts go slightly above 1);
    - ``T + K + 1``: 1.0, the bias term (each arm's intercept).

    The indices are resolved once here, so encoding a request is a dict lookup and a
    small array fill.
    """

    __slots__ = ("_length_scale", "_task_index", "_tier_index", "dimension", "task_types", "tiers")

    def __init__(
        self,
        task_types: Sequence[str],
        tiers: Sequence[str],
        max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
    ) -> None:
        self.task_types = _names("task_types", task_types)
        self.tiers = _names("tiers", tiers)
        if (
            isinstance(max_prompt_tokens, bool)
            or not isinstance(max_prompt_tokens, int)
            or max_prompt_tokens < 1
        ):
            raise ValueError(
                f"max_prompt_tokens must be an integer >= 1 (got {max_prompt_tokens!r})"
            )
        self._length_scale = 1.0 / math.log1p(max_prompt_tokens)
        self._task_index = {name: i for i, name in enumerate(self.task_types)}
        offset = len(self.task_types)
        self._tier_index = {name: offset + i for i, name in enumerate(self.tiers)}
        self.dimension = offset + len(self.tiers) + 2

    def encode(
        self, task_type: str, prompt_tokens: int, tier: str, *, strict: bool = True
    ) -> FloatArray:
        """The context vector of one request. An unknown task type or tier raises
        ``ValueError`` when ``strict``, else leaves its one-hot block all zero (the
        request is then described by its length and the bias only)."""
        if isinstance(prompt_tokens, bool) or not isinstance(prompt_tokens, int | np.integer):
            raise ValueError(f"prompt_tokens must be an integer >= 0 (got {prompt_tokens!r})")
        if prompt_tokens < 0:
            raise ValueError(f"prompt_tokens must be an integer >= 0 (got {prompt_tokens!r})")
        x = np.zeros(self.dimension)
        task = self._task_index.get(task_type)
        if task is not None:
            x[task] = 1.0
        elif strict:
            raise ValueError(f"unknown task type {task_type!r}; known: {list(self.task_types)}")
        tier_slot = self._tier_index.get(tier)
        if tier_slot is not None:
            x[tier_slot] = 1.0
        elif strict:
            raise ValueError(f"unknown tier {tier!r}; known: {list(self.tiers)}")
        x[-2] = math.log1p(int(prompt_tokens)) * self._length_scale
        x[-1] = 1.0
        return x


def featurize(
    task_type: str,
    prompt_tokens: int,
    tier: str,
    task_types: Sequence[str],
    tiers: Sequence[str],
    *,
    max_prompt_tokens: int = DEFAULT_MAX_PROMPT_TOKENS,
    strict: bool = True,
) -> FloatArray:
    """One request's context vector: one-hot task type, one-hot tier, log-scaled
    prompt length, bias (the layout is :class:`FeatureEncoder`'s). For many requests
    build one :class:`FeatureEncoder` and call ``encode``."""
    encoder = FeatureEncoder(task_types, tiers, max_prompt_tokens)
    return encoder.encode(task_type, prompt_tokens, tier, strict=strict)


class ContextualBandit(ABC):
    """The shared per-arm ridge-regression model and the arm bookkeeping.

    Subclasses define ``_values``, what :meth:`select` maximises and :meth:`scores`
    reports. One instance serves one thread (the router's event loop).
    """

    def __init__(
        self,
        arms: Sequence[str],
        dimension: int,
        *,
        ridge: float = 1.0,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise ValueError(f"dimension must be an integer >= 1 (got {dimension!r})")
        ridge_value = _finite("ridge", ridge)
        if ridge_value <= 0:
            raise ValueError(f"ridge must be > 0 (got {ridge!r})")
        names = _names("arms", arms)
        self.dimension = dimension
        self.ridge = ridge_value
        self.rng = np.random.default_rng(rng)
        self._arms: list[str] = []
        self._index: dict[str, int] = {}
        d = dimension
        # Stacked per-arm state: A⁻¹ (k, d, d), b (k, d), θ = A⁻¹b (k, d), pulls (k,).
        self._a_inv: FloatArray = np.empty((0, d, d))
        self._b: FloatArray = np.empty((0, d))
        self._theta: FloatArray = np.empty((0, d))
        self._pulls = np.empty(0, dtype=np.int64)
        for name in names:
            self.add_arm(name)

    # Arms -------------------------------------------------------------------------------

    @property
    def arms(self) -> list[str]:
        """The arms, in the order they were added."""
        return list(self._arms)

    def __len__(self) -> int:
        return len(self._arms)

    def __contains__(self, arm: object) -> bool:
        return arm in self._index

    def add_arm(self, arm: str) -> None:
        """Adds an arm with the prior model (no observations)."""
        if not isinstance(arm, str) or not arm:
            raise ValueError(f"an arm must be a non-empty string (got {arm!r})")
        if arm in self._index:
            raise ValueError(f"arm {arm!r} already exists")
        d = self.dimension
        self._a_inv = np.concatenate([self._a_inv, (np.eye(d) / self.ridge)[None]])
        self._b = np.concatenate([self._b, np.zeros((1, d))])
        self._theta = np.concatenate([self._theta, np.zeros((1, d))])
        self._pulls = np.append(self._pulls, 0)
        self._index[arm] = len(self._arms)
        self._arms.append(arm)

    def remove_arm(self, arm: str) -> None:
        """Removes an arm and everything learned about it."""
        index = self._arm_index(arm)
        self._a_inv = np.delete(self._a_inv, index, axis=0)
        self._b = np.delete(self._b, index, axis=0)
        self._theta = np.delete(self._theta, index, axis=0)
        self._pulls = np.delete(self._pulls, index)
        del self._arms[index]
        self._index = {name: i for i, name in enumerate(self._arms)}

    def _arm_index(self, arm: str) -> int:
        try:
            return self._index[arm]
        except (KeyError, TypeError):
            raise KeyError(f"unknown arm {arm!r}; known: {self._arms}") from None

    # Inputs -----------------------------------------------------------------------------

    def _context(self, context: npt.ArrayLike) -> FloatArray:
        try:
            x = np.asarray(context, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"context must be a numeric vector (got {context!r})") from None
        if x.shape != (self.dimension,):
            raise ValueError(f"context must have shape ({self.dimension},) (got shape {x.shape})")
        if not np.isfinite(x).all():
            raise ValueError("context must be finite (it holds NaN or inf)")
        return x

    def _candidates(self, allowed: Collection[str] | None) -> _Arms:
        if allowed is None:
            if not self._arms:
                raise ValueError("the bandit has no arms")
            return _ALL
        if isinstance(allowed, str):
            raise ValueError(f"allowed must be a collection of arms (got {allowed!r})")
        indices = sorted({self._arm_index(arm) for arm in allowed})
        if not indices:
            raise ValueError("allowed is empty: no arm to choose")
        return np.asarray(indices, dtype=np.intp)

    # Model ------------------------------------------------------------------------------

    def _means(self, x: FloatArray, indices: _Arms) -> FloatArray:
        """``x·θ_a`` for the arms at ``indices``."""
        return self._theta[indices] @ x

    def _variances(self, x: FloatArray, indices: _Arms) -> FloatArray:
        """``xᵀ A_a⁻¹ x`` for the arms at ``indices`` (clipped at 0 against rounding)."""
        quad: FloatArray = (self._a_inv[indices] @ x) @ x
        return np.maximum(quad, 0.0)

    @abstractmethod
    def _values(self, x: FloatArray, indices: _Arms) -> FloatArray:
        """The values :meth:`select` maximises, for the arms at ``indices``."""

    def _argmax(self, values: FloatArray) -> int:
        best = float(values.max())
        tied = np.flatnonzero(values >= best - _TIE_TOLERANCE * max(1.0, abs(best)))
        if len(tied) == 1:
            return int(tied[0])
        return int(tied[self.rng.integers(len(tied))])

    def select(self, context: npt.ArrayLike, allowed: Collection[str] | None = None) -> str:
        """The arm for a request with this context, among ``allowed`` (all arms by
        default); ties are broken uniformly at random."""
        x = self._context(context)
        indices = self._candidates(allowed)
        return self._arm_at(indices, self._argmax(self._values(x, indices)))

    def _arm_at(self, indices: _Arms, position: int) -> str:
        """The arm at ``position`` among ``indices``."""
        return self._arms[position if isinstance(indices, slice) else int(indices[position])]

    def scores(self, context: npt.ArrayLike) -> dict[str, float]:
        """Every arm's value for this context, the quantity :meth:`select` maximises."""
        x = self._context(context)
        return dict(zip(self._arms, self._values(x, _ALL).tolist(), strict=True))

    def expected_rewards(self, context: npt.ArrayLike) -> dict[str, float]:
        """Every arm's estimated mean reward ``x·θ_a`` for this context."""
        x = self._context(context)
        return dict(zip(self._arms, self._means(x, _ALL).tolist(), strict=True))

    def update(self, arm: str, context: npt.ArrayLike, reward: float) -> None:
        """Feeds back the reward observed for ``arm`` on a request with ``context``:
        a Sherman-Morrison rank-1 update of ``A⁻¹`` in O(d²)."""
        index = self._arm_index(arm)
        x = self._context(context)
        r = _finite("reward", reward)
        a_inv = self._a_inv[index]
        v = a_inv @ x
        # (A + xxᵀ)⁻¹ = A⁻¹ - (A⁻¹x)(A⁻¹x)ᵀ / (1 + xᵀA⁻¹x); A⁻¹ is symmetric, so the
        # outer product of one vector with itself keeps it exactly symmetric.
        a_inv -= np.outer(v, v) / (1.0 + float(x @ v))
        self._b[index] += r * x
        self._theta[index] = a_inv @ self._b[index]
        self._pulls[index] += 1

    def update_many(self, observations: Iterable[tuple[str, npt.ArrayLike, float]]) -> None:
        """``update`` for each ``(arm, context, reward)``."""
        for arm, context, value in observations:
            self.update(arm, context, value)

    def discount(self, factor: float) -> None:
        """Forgets part of what was learned (for a fleet that changed): ``A`` and ``b``
        are scaled by ``factor`` in (0, 1]. The estimates stay, their confidence
        shrinks, so the policy explores again and new rewards weigh more. The ridge
        prior is not rescaled, so repeated discounts drift toward the prior."""
        f = _finite("factor", factor)
        if not 0 < f <= 1:
            raise ValueError(f"factor must be in (0, 1] (got {factor!r})")
        self._a_inv /= f
        self._b *= f

    # Reading ----------------------------------------------------------------------------

    def pulls(self) -> dict[str, int]:
        """Updates received per arm."""
        return dict(zip(self._arms, self._pulls.tolist(), strict=True))

    def theta(self, arm: str) -> FloatArray:
        """The arm's coefficient estimate ``θ_a = A_a⁻¹ b_a`` (a copy)."""
        theta: FloatArray = self._theta[self._arm_index(arm)].copy()
        return theta

    def inverse_design(self, arm: str) -> FloatArray:
        """The arm's ``A_a⁻¹`` as maintained by the rank-1 updates (a copy)."""
        a_inv: FloatArray = self._a_inv[self._arm_index(arm)].copy()
        return a_inv

    def state(self) -> Mapping[str, object]:
        """A summary for logs and dashboards: arms, pulls, dimension."""
        return {"arms": self.arms, "pulls": self.pulls(), "dimension": self.dimension}


class LinUCB(ContextualBandit):
    """Disjoint LinUCB: the arm maximising ``x·θ_a + alpha·sqrt(xᵀ A_a⁻¹ x)``.

    ``alpha`` (>= 0) scales the exploration bonus; 0 is greedy. ``ridge`` (> 0) is the
    prior precision ``A_a = ridge·I`` before any observation.
    """

    def __init__(
        self,
        arms: Sequence[str],
        dimension: int,
        alpha: float = 1.0,
        ridge: float = 1.0,
        *,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        self.alpha = _non_negative("alpha", alpha)
        super().__init__(arms, dimension, ridge=ridge, rng=rng)

    def _values(self, x: FloatArray, indices: _Arms) -> FloatArray:
        return self._means(x, indices) + self.alpha * np.sqrt(self._variances(x, indices))


class ThompsonSampling(ContextualBandit):
    """Linear-Gaussian Thompson sampling: per arm, Bayesian linear regression with
    prior ``θ_a ~ N(0, noise_std²/ridge · I)`` and Gaussian reward noise of standard
    deviation ``noise_std``, so the posterior is ``N(A_a⁻¹b_a, noise_std²·A_a⁻¹)``.

    Only ``x·θ̃_a`` of a posterior draw ``θ̃_a`` matters, and for independent arms it
    is exactly ``N(x·θ_a, noise_std²·xᵀA_a⁻¹x)``: each request draws one normal per
    arm instead of a d-dimensional sample (no Cholesky factor). :meth:`scores` returns
    one such draw; :meth:`expected_rewards` the posterior means.
    """

    def __init__(
        self,
        arms: Sequence[str],
        dimension: int,
        noise_std: float = 0.5,
        ridge: float = 1.0,
        *,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        self.noise_std = _non_negative("noise_std", noise_std)
        super().__init__(arms, dimension, ridge=ridge, rng=rng)

    def _values(self, x: FloatArray, indices: _Arms) -> FloatArray:
        spread = self.noise_std * np.sqrt(self._variances(x, indices))
        return self._means(x, indices) + spread * self.rng.standard_normal(len(spread))


class EpsilonGreedy(ContextualBandit):
    """The A/B baseline: with probability ``epsilon`` a request goes to an allowed arm
    drawn uniformly (the exploration share of traffic), otherwise to the arm with the
    best ridge estimate ``x·θ_a``."""

    def __init__(
        self,
        arms: Sequence[str],
        dimension: int,
        epsilon: float = 0.1,
        ridge: float = 1.0,
        *,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        value = _finite("epsilon", epsilon)
        if not 0 <= value <= 1:
            raise ValueError(f"epsilon must be in [0, 1] (got {epsilon!r})")
        self.epsilon = value
        super().__init__(arms, dimension, ridge=ridge, rng=rng)

    def _values(self, x: FloatArray, indices: _Arms) -> FloatArray:
        return self._means(x, indices)

    def select(self, context: npt.ArrayLike, allowed: Collection[str] | None = None) -> str:
        x = self._context(context)
        indices = self._candidates(allowed)
        if self.epsilon and self.rng.random() < self.epsilon:
            count = len(self._arms) if isinstance(indices, slice) else len(indices)
            return self._arm_at(indices, int(self.rng.integers(count)))
        return self._arm_at(indices, self._argmax(self._values(x, indices)))
