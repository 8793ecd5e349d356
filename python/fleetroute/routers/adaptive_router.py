"""``AdaptiveRouter``: seed 000's router that learns from the outcomes it observes.

It is ``BaseRouter`` (tiers, the Rust pick, ``complete``/``call``) plus a learner in
the observe stage and, for the bandit strategies, in the score stage:

- ``"dynamic_weighted"``: every observation updates its endpoint's statistics
  (latency, success rate and quality, EWMAs with ``learning_rate``) and recomputes
  that endpoint's weight in the Rust registry; the ``weighted_round_robin`` strategy
  then spreads requests in proportion to the weights, with no Python work per
  request. The weight is ``endpoint.weight x capacity x score``, where ``score`` is
  the weighted geometric mean (``performance_weights``) of the endpoint's ratios to
  the fleet over the history window: latency (fleet mean / its EWMA), throughput
  (successful completions per second per unit of capacity, ``success / latency``,
  relative to the fleet's), accuracy (its quality / the fleet's) and availability
  (its success rate / the fleet's). Ratios are clipped to [0.01, 100] and the score
  to [0.05, 20], so a poor endpoint keeps a trickle of traffic (enough to see it
  recover). The weight pushed to Rust is a small integer: the score quantised to
  steps of 2^(1/4) (with hysteresis) times ``capacity x weight`` times a power-of-two
  unit sized to the fleet, because the weighted schedule is rebuilt after weight
  changes at a cost that grows with the weights' sum and variety.
- ``"bandit"`` (LinUCB), ``"thompson_sampling"``, ``"epsilon_greedy"``: a contextual
  bandit (:mod:`fleetroute.scoring.bandit`) over the registered endpoints chooses the
  endpoint for each request from its features (task type, prompt length, tier) and
  learns from the reward ``quality - cost_weight x cost - latency_weight x latency_s``.
  The Rust core then takes the load on the chosen endpoint atomically; when it is
  full the request falls back to the normal tiered placement. Scoring costs
  O(arms x d²) vectorised numpy per request: meant for tens of endpoints, models or
  providers, not for a fleet of thousands of replicas (use ``dynamic_weighted``).

Outcomes arrive through ``complete(result, ..., quality_score=...)`` or seed 000's
``update_performance_metrics``, which completes the oldest request in flight on the
endpoint (or updates the statistics alone when none is). The result of
``route_adaptive`` carries ``actual_latency``, ``success`` and ``quality_score``:
None until the request completes, or until the caller's dispatch fills them in for
the seed's ``update_performance_metrics(endpoint_id=result.endpoint_id,
actual_latency=result.actual_latency, ...)``. ``record_performance`` puts a
request's outcome into the statistics; ``update_weights`` lets it change routing.

Adaptation triggers (``configure_adaptation``) are checked on the last
``history_window`` observations, every few observations once ``min_samples`` are
in: the failure rate over the window above ``failure_rate``, the window's mean
latency above ``(1 + performance_degradation)`` times its baseline (the best mean
seen since the last adaptation), or a load imbalance above ``load_imbalance``
(``1 -`` Jain's index of requests per unit of capacity in each tier, as
``RouterMonitor`` computes it, judged once a tier has 10 requests per member in the
window). Any of them makes the router adapt once, and counts one
``adaptation_events``: every weight is recomputed from the current statistics (at
once up to 256 endpoints, beyond that as each endpoint's next outcome arrives); a
failure rate also halves the score of each endpoint failing more than the trigger
allows until its own failure rate in the window is back under it; an imbalance
halves the score exponent, flattening the weights, until the imbalance is under
half the threshold. With a bandit, the bandit discounts what it learned by half so
it explores again. Then the triggers rest until the window has turned over
(``history_window`` observations), so one condition is not counted twice.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from fleetroute.admission.priority import NATIVE_PRIORITY, Priority
from fleetroute.clock import Clock, monotonic_clock
from fleetroute.fairness import jain_from_sums
from fleetroute.resilience.retry import RetryPolicy
from fleetroute.routers.base_router import BaseRouter, request_class
from fleetroute.routers.endpoint import Endpoint
from fleetroute.routers.routing_result import RoutingResult
from fleetroute.scoring.bandit import (
    DEFAULT_COST_WEIGHT,
    DEFAULT_LATENCY_WEIGHT,
    ContextualBandit,
    EpsilonGreedy,
    FeatureEncoder,
    LinUCB,
    ThompsonSampling,
    reward,
)
from fleetroute.validation import non_negative_number

__all__ = [
    "ADAPTATION_STRATEGIES",
    "DEFAULT_ADAPTATION_CONFIG",
    "DEFAULT_PERFORMANCE_WEIGHTS",
    "DEFAULT_TASK_TYPES",
    "DEFAULT_TIERS",
    "AdaptationEvent",
    "AdaptiveRouter",
    "AdaptiveRoutingResult",
    "EndpointPerformance",
    "RequestFeatures",
]

#: The strategies ``AdaptiveRouter`` knows: weights, or a contextual bandit.
ADAPTATION_STRATEGIES = ("dynamic_weighted", "bandit", "thompson_sampling", "epsilon_greedy")

#: Seed 000's performance weights; the keys are every metric known.
DEFAULT_PERFORMANCE_WEIGHTS: Mapping[str, float] = {
    "latency": 0.4,
    "throughput": 0.3,
    "accuracy": 0.2,
    "availability": 0.1,
}

#: Seed 000's adaptation config. ``min_samples`` None means
#: ``min(history_window, max(50, history_window // 10))``; a trigger set to None is off.
DEFAULT_ADAPTATION_CONFIG: Mapping[str, Mapping[str, Any]] = {
    "load_monitoring": {
        "cpu_utilization": True,
        "memory_usage": True,
        "queue_length": True,
        "response_time": True,
    },
    "performance_tracking": {
        "success_rate": True,
        "error_rate": True,
        "timeout_rate": True,
        "quality_metrics": True,
    },
    "adaptation_triggers": {
        "performance_degradation": 0.2,
        "load_imbalance": 0.3,
        "failure_rate": 0.05,
        "min_samples": None,
    },
}

#: Task types a bandit distinguishes unless told otherwise.
DEFAULT_TASK_TYPES = ("general",)
#: Tiers a bandit distinguishes unless told otherwise: the priority classes.
DEFAULT_TIERS = ("low", "normal", "high", "critical")

# Weights pushed to the Rust registry are small integers: the smooth weighted round
# robin schedule is rebuilt after weights change, at a cost that grows with the sum
# of the (integer-scaled) weights times the number of distinct weights, and float
# weights make it scale to a large cycle. So the score is quantised to a geometric
# grid of _LEVELS_PER_OCTAVE steps per doubling, a level changes only when the score
# moves _LEVEL_HYSTERESIS steps away (no flapping at a boundary), and the weight is
# round(capacity x weight x level x units), units a power of two chosen so the fleet's
# weights sum to about _CYCLE_TARGET (finer for small fleets, at most _MAX_UNITS).
_LEVELS_PER_OCTAVE = 4
_LEVEL_HYSTERESIS = 0.75
_CYCLE_TARGET = 65_536
_MAX_UNITS = 64
_RATIO_BOUNDS = (0.01, 100.0)
_SCORE_BOUNDS = (0.05, 20.0)
_FLOOR = 0.01
# A tier's balance is judged only once the window holds this many requests per
# member: with fewer, even perfect spreading leaves most counts at 0 or 1 and Jain's
# index reads that as imbalance.
_MIN_REQUESTS_PER_ENDPOINT = 10
# Fleets up to this size are re-weighted at once on an adaptation; larger ones as
# each endpoint's next outcome arrives, so an adaptation never costs a Python pass
# over thousands of endpoints.
_EAGER_REWEIGH_LIMIT = 256
# The score exponent never flattens below this (weights stay performance-aware).
_MIN_TEMPER = 1.0 / 16.0
# A failing endpoint's penalty never goes below this (the score clip bounds it too).
_MIN_PENALTY = 1.0 / 16.0
# Discount applied to a bandit's statistics when a trigger fires.
_BANDIT_DISCOUNT = 0.5
# Characters per token when a request gives its prompt as text, not a token count.
_CHARS_PER_TOKEN = 4


class RequestFeatures(NamedTuple):
    """What a bandit sees of a request."""

    task_type: str
    prompt_tokens: int
    tier: str


class AdaptationEvent(NamedTuple):
    """One adaptation: when, after how many observations, and which triggers fired
    with their values (failure rate, relative latency increase, imbalance)."""

    at: float
    observation: int
    triggers: tuple[str, ...]
    values: Mapping[str, float]


@dataclass(slots=True, eq=False)
class AdaptiveRoutingResult(RoutingResult):
    """A :class:`RoutingResult` that also carries the request's outcome.

    ``actual_latency`` (milliseconds, like ``estimated_latency_ms``), ``success`` and
    ``quality_score`` (0 to 1) are None until the request completes: ``complete``
    and ``update_performance_metrics`` fill them in, and a dispatcher may set them
    before calling ``update_performance_metrics(endpoint_id=result.endpoint_id,
    actual_latency=result.actual_latency, ...)`` as seed 000 does. ``bandit_arm`` is
    the endpoint the bandit chose (the request fell back elsewhere when it differs
    from ``endpoint_id``); ``context`` is the feature vector it was chosen with.
    """

    actual_latency: float | None = None
    success: bool | None = None
    quality_score: float | None = None
    bandit_arm: str | None = None
    update_weights: bool = field(default=True, repr=False)
    record_performance: bool = field(default=True, repr=False)
    context: npt.NDArray[np.float64] | None = field(default=None, repr=False)


_BASE_FIELDS = tuple(f.name for f in fields(RoutingResult))


def _adopt(base: RoutingResult) -> AdaptiveRoutingResult:
    """The same routing decision as an :class:`AdaptiveRoutingResult`."""
    if isinstance(base, AdaptiveRoutingResult):
        return base
    return AdaptiveRoutingResult(**{name: getattr(base, name) for name in _BASE_FIELDS})


class EndpointPerformance:
    """What the router learned about one endpoint. The EWMAs are None until the
    first observation, which sets them (a prior would take ``1 / learning_rate``
    observations to wash out)."""

    __slots__ = (
        "base_weight",
        "capacity",
        "cost_per_request",
        "failures",
        "latency_ms",
        "level",
        "observations",
        "penalty",
        "priority",
        "quality",
        "reward",
        "score",
        "success_rate",
        "weight",
    )

    def __init__(self, endpoint: Endpoint, cost_per_request: float) -> None:
        self.priority = endpoint.priority
        self.capacity = endpoint.capacity
        self.base_weight = endpoint.weight
        self.cost_per_request = cost_per_request
        self.latency_ms: float | None = None
        self.success_rate: float | None = None
        self.quality: float | None = None
        self.reward: float | None = None
        self.observations = 0
        self.failures = 0
        #: Factor on the score while the endpoint fails more than the failure-rate
        #: trigger allows (halved by each failure-rate adaptation).
        self.penalty = 1.0
        #: The performance score, its level on the quantisation grid (the score is
        #: about 2 ** (level / 4)) and the weight last pushed to the Rust registry.
        self.score = 1.0
        self.level = 0
        self.weight = endpoint.weight

    def observe(
        self,
        rate: float,
        latency_ms: float | None,
        success: bool | None,
        quality: float | None,
        reward_value: float | None,
    ) -> None:
        self.observations += 1
        if latency_ms is not None:
            old = self.latency_ms
            self.latency_ms = latency_ms if old is None else old + rate * (latency_ms - old)
        if success is not None:
            self.failures += not success
            outcome = 1.0 if success else 0.0
            old = self.success_rate
            self.success_rate = outcome if old is None else old + rate * (outcome - old)
        if quality is not None:
            old = self.quality
            self.quality = quality if old is None else old + rate * (quality - old)
        if reward_value is not None:
            old = self.reward
            self.reward = reward_value if old is None else old + rate * (reward_value - old)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


# One observation in the history window.
_Record = tuple[str, bool | None, float | None, float | None, float | None]


def _quality(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"quality_score must be a number in [0, 1] (got {value!r})")
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"quality_score must be in [0, 1] (got {value!r})")
    return float(value)


def _fraction(name: str, value: object, upper: float | None = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number (got {value!r})")
    if not (math.isfinite(value) and value > 0 and (upper is None or value <= upper)):
        bound = f"in (0, {upper:g}]" if upper is not None else "finite and > 0"
        raise ValueError(f"{name} must be {bound} (got {value!r})")
    return float(value)


def _clip(value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return low if value < low else high if value > high else value


class AdaptiveRouter(BaseRouter):
    """A router that adapts its choices to observed latency, success and quality.

    - ``adaptation_strategy``: one of :data:`ADAPTATION_STRATEGIES` (module docs).
    - ``learning_rate`` in (0, 1]: the EWMA rate of the per-endpoint statistics.
    - ``history_window`` (>= 1): observations the triggers, the fleet references of
      the weights and :attr:`adaptation_effectiveness` look back over.
    - ``performance_weights``: shares of ``latency``, ``throughput``, ``accuracy``
      and ``availability`` in the score (>= 0, normalised to sum 1; missing keys 0).
    - ``strategy``: the Rust pick; ``weighted_round_robin`` (required) for
      ``dynamic_weighted``, the fallback placement's strategy (``p2c``) for bandits.
    - ``exploration``: LinUCB's ``alpha`` (1.0), Thompson's ``noise_std`` (0.5) or
      epsilon-greedy's ``epsilon`` (0.1); bandits only.
    - ``task_types``, ``tiers``, ``feature_extractor``: what a bandit sees of a
      request (:meth:`features`); ``cost_weight`` and ``latency_weight`` price cost
      (an endpoint's ``cost_per_request``) and seconds in the reward.
    - ``sharpness`` (> 0): exponent on the score; higher prefers the best harder.

    The rest are ``BaseRouter``'s. ``seed`` seeds the Rust pick and the bandit.
    """

    _result_type = AdaptiveRoutingResult

    def __init__(
        self,
        adaptation_strategy: str = "dynamic_weighted",
        learning_rate: float = 0.1,
        history_window: int = 1000,
        performance_weights: Mapping[str, float] | None = None,
        *,
        tpu_config: Mapping[str, Any] | None = None,
        monitoring_enabled: bool = True,
        strategy: str | None = None,
        priority_reserve: float = 0.1,
        default_latency_ms: float = 100.0,
        exploration: float | None = None,
        task_types: Sequence[str] = DEFAULT_TASK_TYPES,
        tiers: Sequence[str] = DEFAULT_TIERS,
        feature_extractor: Callable[[Mapping[str, Any]], RequestFeatures] | None = None,
        cost_weight: float = DEFAULT_COST_WEIGHT,
        latency_weight: float = DEFAULT_LATENCY_WEIGHT,
        sharpness: float = 1.0,
        seed: int | None = None,
        retry_policy: RetryPolicy | None = None,
        clock: Clock = monotonic_clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        name: str | None = None,
    ) -> None:
        if adaptation_strategy not in ADAPTATION_STRATEGIES:
            raise ValueError(
                f"unknown adaptation_strategy {adaptation_strategy!r}; "
                f"known: {list(ADAPTATION_STRATEGIES)}"
            )
        weighted = adaptation_strategy == "dynamic_weighted"
        if strategy is None:
            strategy = "weighted_round_robin" if weighted else "p2c"
        elif weighted and strategy != "weighted_round_robin":
            raise ValueError(
                f"adaptation_strategy 'dynamic_weighted' sets endpoint weights, which only "
                f"strategy 'weighted_round_robin' reads (got strategy {strategy!r})"
            )
        rate = _fraction("learning_rate", learning_rate)
        if (
            isinstance(history_window, bool)
            or not isinstance(history_window, int)
            or history_window < 1
        ):
            raise ValueError(f"history_window must be an integer >= 1 (got {history_window!r})")
        shares = self._performance_shares(performance_weights)
        self.cost_weight = non_negative_number("cost_weight", cost_weight)
        self.latency_weight = non_negative_number("latency_weight", latency_weight)
        self.sharpness = _fraction("sharpness", sharpness, upper=None)
        if feature_extractor is not None and not callable(feature_extractor):
            raise ValueError(f"feature_extractor must be callable (got {feature_extractor!r})")
        encoder = FeatureEncoder(task_types, tiers)
        bandit: ContextualBandit | None = None
        if not weighted:
            bandit = self._make_bandit(adaptation_strategy, encoder.dimension, exploration, seed)
        elif exploration is not None:
            raise ValueError("exploration applies to the bandit strategies, not dynamic_weighted")
        super().__init__(
            tpu_config,
            monitoring_enabled=monitoring_enabled,
            strategy=strategy,
            priority_reserve=priority_reserve,
            default_latency_ms=default_latency_ms,
            seed=seed,
            retry_policy=retry_policy,
            clock=clock,
            sleep=sleep,
            name=name,
        )
        self.adaptation_strategy = adaptation_strategy
        self.learning_rate = rate
        self.history_window = history_window
        self.performance_weights: dict[str, float] = dict(shares)
        self.encoder = encoder
        self.bandit = bandit
        self._feature_extractor = feature_extractor
        self._stats: dict[str, EndpointPerformance] = {}
        self._tier_sizes: dict[int, int] = {}
        # Sum of capacity x weight over the endpoints, and the weight units it implies.
        self._total_base = 0.0
        self._units = 1
        self._deweight_factors: dict[str, float] = {}
        # Requests routed by route_adaptive and not completed yet, per endpoint, oldest
        # first (dicts keep insertion order), for update_performance_metrics.
        self._open: dict[str, dict[int, AdaptiveRoutingResult]] = {}
        self._pending_quality: float | None = None
        # The history window and running sums over it.
        self._window: deque[_Record] = deque()
        self._window_counts: dict[str, int] = {}
        self._window_failures: dict[str, int] = {}
        self._tier_requests: dict[int, int] = {}
        self._penalised: set[str] = set()
        self._sums = [0, 0, 0.0, 0, 0.0, 0, 0.0, 0]
        self._pushes = 0
        # Adaptation state.
        self.adaptation_config: dict[str, dict[str, Any]] = {
            key: dict(value) for key, value in DEFAULT_ADAPTATION_CONFIG.items()
        }
        self._apply_adaptation_config()
        self.adaptation_log: deque[AdaptationEvent] = deque(maxlen=1000)
        self.adaptation_events = 0
        self.observations = 0
        self._since_check = 0
        self._since_event = history_window  # the first check may fire at once
        self._temper = 1.0
        self._baseline_latency: float | None = None
        self._baseline_reward: float | None = None

    @staticmethod
    def _performance_shares(weights: Mapping[str, float] | None) -> dict[str, float]:
        given = DEFAULT_PERFORMANCE_WEIGHTS if weights is None else weights
        if not isinstance(given, Mapping):
            raise ValueError(f"performance_weights must be a mapping (got {given!r})")
        unknown = set(given) - set(DEFAULT_PERFORMANCE_WEIGHTS)
        if unknown:
            raise ValueError(
                f"unknown performance_weights key(s) {sorted(unknown)}; "
                f"known: {sorted(DEFAULT_PERFORMANCE_WEIGHTS)}"
            )
        for key, value in given.items():
            non_negative_number(f"performance_weights[{key!r}]", value)
        total = sum(float(v) for v in given.values())
        if not total > 0:
            raise ValueError(f"performance_weights must have a positive sum (got {dict(given)})")
        return {key: float(given.get(key, 0.0)) / total for key in DEFAULT_PERFORMANCE_WEIGHTS}

    @staticmethod
    def _make_bandit(
        strategy: str, dimension: int, exploration: float | None, seed: int | None
    ) -> ContextualBandit:
        if strategy == "bandit":
            return LinUCB(
                [], dimension, alpha=1.0 if exploration is None else exploration, rng=seed
            )
        if strategy == "thompson_sampling":
            noise = 0.5 if exploration is None else exploration
            return ThompsonSampling([], dimension, noise_std=noise, rng=seed)
        epsilon = 0.1 if exploration is None else exploration
        return EpsilonGreedy([], dimension, epsilon=epsilon, rng=seed)

    # Configuration ----------------------------------------------------------------------

    def configure_adaptation(self, config: Mapping[str, Any]) -> None:
        """Sets what is monitored and when the router adapts (seed 000's nested dict).
        Sections and keys not given keep their values; everything is validated
        before anything changes.

        - ``load_monitoring``: ``queue_length`` enables the load-imbalance trigger;
          ``response_time`` makes latencies count (weights, degradation trigger);
          ``cpu_utilization`` and ``memory_usage`` are kept for reporting (the router
          has no host metrics; endpoints report load through the Rust counters).
        - ``performance_tracking``: ``success_rate`` or ``error_rate`` makes outcomes
          count (availability, throughput, the failure-rate trigger needs
          ``error_rate``); ``quality_metrics`` makes quality scores count;
          ``timeout_rate`` is kept for reporting (a timeout is reported as a failure).
        - ``adaptation_triggers``: ``performance_degradation`` (> 0, relative latency
          increase), ``load_imbalance`` and ``failure_rate`` (in (0, 1]), None to turn
          one off; ``min_samples`` (int >= 1, or None for the default).
        """
        if not isinstance(config, Mapping):
            raise ValueError(f"adaptation config must be a mapping (got {config!r})")
        unknown = set(config) - set(DEFAULT_ADAPTATION_CONFIG)
        if unknown:
            raise ValueError(
                f"unknown adaptation config section(s) {sorted(unknown)}; "
                f"known: {sorted(DEFAULT_ADAPTATION_CONFIG)}"
            )
        merged = {key: dict(value) for key, value in self.adaptation_config.items()}
        for section, values in config.items():
            if not isinstance(values, Mapping):
                raise ValueError(f"adaptation config {section} must be a mapping (got {values!r})")
            known = DEFAULT_ADAPTATION_CONFIG[section]
            bad = set(values) - set(known)
            if bad:
                raise ValueError(
                    f"unknown {section} setting(s) {sorted(bad)}; known: {sorted(known)}"
                )
            for key, value in values.items():
                merged[section][key] = self._adaptation_value(section, key, value)
        self.adaptation_config = merged
        self._apply_adaptation_config()

    @staticmethod
    def _adaptation_value(section: str, key: str, value: object) -> Any:
        where = f"{section} {key}"
        if section != "adaptation_triggers":
            if not isinstance(value, bool):
                raise ValueError(f"{where} must be a bool (got {value!r})")
            return value
        if value is None:
            return None
        if key == "min_samples":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{where} must be an integer >= 1 or None (got {value!r})")
            return value
        upper = None if key == "performance_degradation" else 1.0
        return _fraction(where, value, upper)

    def _apply_adaptation_config(self) -> None:
        load = self.adaptation_config["load_monitoring"]
        tracking = self.adaptation_config["performance_tracking"]
        triggers = self.adaptation_config["adaptation_triggers"]
        self._track_latency = bool(load["response_time"])
        self._track_load = bool(load["queue_length"])
        self._track_success = bool(tracking["success_rate"] or tracking["error_rate"])
        self._track_errors = bool(tracking["error_rate"])
        self._track_quality = bool(tracking["quality_metrics"])
        window = self.history_window
        min_samples = triggers["min_samples"]
        if min_samples is None:
            min_samples = min(window, max(50, window // 10))
        self._min_samples = min(int(min_samples), window)
        # Checks cost a pass over the window's per-endpoint counts: a few per min_samples.
        self._check_interval = max(1, self._min_samples // 4)
        self._degradation: float | None = triggers["performance_degradation"]
        self._imbalance: float | None = triggers["load_imbalance"] if self._track_load else None
        self._failure_rate: float | None = triggers["failure_rate"] if self._track_errors else None

    # Registration -----------------------------------------------------------------------

    def register_endpoints(
        self, endpoints: Iterable[Mapping[str, Any] | Endpoint]
    ) -> list[Endpoint]:
        """Registers endpoints as ``BaseRouter`` does. An endpoint may carry
        ``cost_per_request`` (>= 0, the reward's cost; 0 by default)."""
        parsed = [e if isinstance(e, Endpoint) else Endpoint.from_mapping(e) for e in endpoints]
        for endpoint in parsed:
            self._cost_of(endpoint)  # validated before anything is registered
        registered = super().register_endpoints(parsed)
        if self.bandit is None:
            if self._choose_units():
                targets = list(self._stats)
            else:
                targets = [endpoint.id for endpoint in registered]
            for endpoint_id in targets:
                self._refresh_weight(endpoint_id, self._stats[endpoint_id], force=True)
        return registered

    @staticmethod
    def _cost_of(endpoint: Endpoint) -> float:
        return non_negative_number(
            f"endpoint {endpoint.id!r} cost_per_request",
            endpoint.metadata.get("cost_per_request", 0.0),
        )

    def _on_register(self, endpoint: Endpoint) -> None:
        stats = EndpointPerformance(endpoint, self._cost_of(endpoint))
        self._stats[endpoint.id] = stats
        self._tier_sizes[endpoint.priority] = self._tier_sizes.get(endpoint.priority, 0) + 1
        self._total_base += endpoint.capacity * endpoint.weight
        if self.bandit is not None:
            self.bandit.add_arm(endpoint.id)

    def _on_remove(self, endpoint_id: str) -> None:
        super()._on_remove(endpoint_id)
        stats = self._stats.pop(endpoint_id)
        self._total_base -= stats.capacity * stats.base_weight
        self._tier_sizes[stats.priority] -= 1
        if not self._tier_sizes[stats.priority]:
            del self._tier_sizes[stats.priority]
        if self.bandit is not None:
            self.bandit.remove_arm(endpoint_id)
        self._deweight_factors.pop(endpoint_id, None)
        self._penalised.discard(endpoint_id)
        self._open.pop(endpoint_id, None)
        if endpoint_id in self._window_counts:
            kept = [record for record in self._window if record[0] != endpoint_id]
            self._window = deque(kept)
            self._recount()
        if self.bandit is None and self._choose_units():
            for other, other_stats in self._stats.items():
                self._refresh_weight(other, other_stats, force=True)

    def deweight(self, endpoint_id: str, factor: float = 0.25) -> None:
        """As ``BaseRouter.deweight``; the factor stays applied on top of the learned
        weight until :meth:`restore_weight`."""
        super().deweight(endpoint_id, factor)
        self._deweight_factors[endpoint_id] = float(factor)
        if self.bandit is None:
            self._refresh_weight(endpoint_id, self._stats[endpoint_id], force=True)

    def restore_weight(self, endpoint_id: str) -> None:
        super().restore_weight(endpoint_id)
        self._deweight_factors.pop(endpoint_id, None)
        if self.bandit is None:
            self._refresh_weight(endpoint_id, self._stats[endpoint_id], force=True)

    # Routing ----------------------------------------------------------------------------

    def _owns_weights(self) -> bool:
        # Learned weights take precedence over configure_load_balancing's adjustment.
        return self.adaptation_strategy == "dynamic_weighted"

    def route_adaptive(
        self,
        request: Mapping[str, Any],
        update_weights: bool = True,
        record_performance: bool = True,
        *,
        consider_load: bool = True,
        enable_fallback: bool | None = None,
        return_metrics: bool = False,
    ) -> AdaptiveRoutingResult:
        """Routes ``request`` with the learned policy. The result holds load until
        ``complete(result, ...)`` or ``update_performance_metrics(result.endpoint_id,
        ...)``. ``update_weights``: its outcome may change routing (weights, bandit);
        ``record_performance``: its outcome enters the statistics and triggers."""
        if update_weights is not True and update_weights is not False:
            raise ValueError(f"update_weights must be a bool (got {update_weights!r})")
        if record_performance is not True and record_performance is not False:
            raise ValueError(f"record_performance must be a bool (got {record_performance!r})")
        cost, priority = request_class(request)
        fallback = self._fallback(enable_fallback)
        now = self._clock()
        if self.bandit is None:
            result = _adopt(
                self._route(cost, priority, now, consider_load, fallback, return_metrics)
            )
        else:
            result = self._route_bandit(
                request, cost, priority, now, consider_load, fallback, return_metrics
            )
        result.update_weights = update_weights
        result.record_performance = record_performance
        if result.endpoint_id is not None:
            self._open.setdefault(result.endpoint_id, {})[id(result)] = result
        return result

    def features(self, request: Mapping[str, Any]) -> RequestFeatures:
        """The request's task type (``task_type`` field, else "general"), prompt
        length (``prompt_tokens``, else the ``input``/``prompt`` text's length / 4, or
        the length of a token list) and tier (``tier`` or ``user_tier`` field, else
        its priority class), or what ``feature_extractor`` says."""
        if self._feature_extractor is not None:
            found = self._feature_extractor(request)
            if not isinstance(found, tuple) or len(found) != 3:
                raise ValueError(
                    f"feature_extractor must return (task_type, prompt_tokens, tier) "
                    f"(got {found!r})"
                )
            return RequestFeatures(*found)
        task = request.get("task_type", "general")
        tokens = request.get("prompt_tokens")
        if tokens is None:
            text = request.get("input", request.get("prompt"))
            if isinstance(text, str):
                tokens = len(text) // _CHARS_PER_TOKEN
            elif isinstance(text, Sequence):
                tokens = len(text)
            else:
                tokens = 0
        tier = request.get("tier") or request.get("user_tier")
        if tier is None:
            _, priority = request_class(request)
            tier = priority.name.lower()
        return RequestFeatures(str(task), tokens, str(tier))

    def request_context(self, request: Mapping[str, Any]) -> npt.NDArray[np.float64]:
        """The feature vector the bandit sees for ``request`` (unknown task types and
        tiers leave their one-hot block zero)."""
        task, tokens, tier = self.features(request)
        return self.encoder.encode(task, tokens, tier, strict=False)

    def _route_bandit(
        self,
        request: Mapping[str, Any],
        cost: int,
        priority: Priority,
        now: float,
        consider_load: bool,
        fallback: bool,
        return_metrics: bool,
    ) -> AdaptiveRoutingResult:
        bandit = self.bandit
        assert bandit is not None
        context = self.request_context(request)
        pool = self.pool
        arm: str | None = None
        picked: int | None = None
        if len(bandit):
            out = pool.availability.unavailable()
            allowed: list[str] | None = None
            if out or self._deweight_factors:
                allowed = [a for a in bandit.arms if a not in out]
                preferred = [a for a in allowed if a not in self._deweight_factors]
                allowed = preferred or allowed
            if allowed is None or allowed:
                arm = bandit.select(context, allowed)
                native_id = pool.native_id(arm)
                # The Rust core checks and takes the capacity in one atomic step.
                picked = pool.native.route(cost, NATIVE_PRIORITY[priority], candidates=[native_id])
        if picked is None:
            result = _adopt(
                self._route(cost, priority, now, consider_load, fallback, return_metrics)
            )
        else:
            pool.in_flight += cost
            endpoint = pool.by_native[picked]
            assert endpoint is not None
            result = _adopt(
                self._placed(endpoint, picked, 0, cost, priority, now, consider_load, fallback)
            )
            if return_metrics:
                endpoint = result.endpoint
                assert endpoint is not None
                result.metrics = {
                    "tier_index": pool.tier_priorities.index(endpoint.priority),
                    "tiers": pool.tier_priorities,
                    "endpoint_load": pool.native.load(picked),
                    "endpoint_capacity": endpoint.capacity,
                    "fleet_utilisation": pool.utilisation,
                    "strategy": self.adaptation_strategy,
                }
        result.context = context
        result.bandit_arm = arm
        return result

    def _first_attempt(
        self, request: Mapping[str, Any], options: Mapping[str, Any]
    ) -> RoutingResult:
        return self.route_adaptive(request, **options)

    def _retry_attempt(self, first: RoutingResult, exclude: tuple[int, ...]) -> RoutingResult:
        result = _adopt(super()._retry_attempt(first, exclude))
        if isinstance(first, AdaptiveRoutingResult):
            result.context = first.context
            result.update_weights = first.update_weights
            result.record_performance = first.record_performance
        return result

    # Observe ----------------------------------------------------------------------------

    def complete(
        self,
        result: RoutingResult,
        *,
        success: bool = True,
        latency_ms: float | None = None,
        response: Any = None,
        error: BaseException | None = None,
        quality_score: float | None = None,
    ) -> None:
        """As ``BaseRouter.complete``, with the answer's ``quality_score`` (0 to 1)
        when known; the outcome is learned from (see the module docs)."""
        quality = None if quality_score is None else _quality(quality_score)
        self._pending_quality = quality
        try:
            super().complete(
                result, success=success, latency_ms=latency_ms, response=response, error=error
            )
        finally:
            self._pending_quality = None

    def _observe(
        self,
        result: RoutingResult,
        success: bool,
        latency_ms: float,
        response: Any,
        error: BaseException | None,
        now: float,
    ) -> None:
        endpoint_id: str = result.endpoint_id  # type: ignore[assignment]
        quality = self._pending_quality
        context = None
        record = update = True
        if isinstance(result, AdaptiveRoutingResult):
            result.actual_latency = latency_ms
            result.success = success
            if quality is not None:
                result.quality_score = quality
            context = result.context
            record = result.record_performance
            update = result.update_weights
            self._close(endpoint_id, result)
        self._learn(endpoint_id, latency_ms, success, quality, context, record, update, now)

    def _on_abandon(self, result: RoutingResult) -> None:
        if isinstance(result, AdaptiveRoutingResult) and result.endpoint_id is not None:
            self._close(result.endpoint_id, result)

    def _close(self, endpoint_id: str, result: AdaptiveRoutingResult) -> None:
        open_results = self._open.get(endpoint_id)
        if open_results is not None:
            open_results.pop(id(result), None)
            if not open_results:
                del self._open[endpoint_id]

    def update_performance_metrics(
        self,
        endpoint_id: str | None,
        actual_latency: float | None = None,
        success: bool | None = None,
        quality_score: float | None = None,
        *,
        result: AdaptiveRoutingResult | None = None,
    ) -> AdaptiveRoutingResult | None:
        """Reports a request's outcome on ``endpoint_id`` (seed 000).
        ``actual_latency`` is in milliseconds, ``quality_score`` in [0, 1].

        When a request routed by :meth:`route_adaptive` is in flight there (``result``,
        or else the oldest one on that endpoint), it is completed: its load is
        released, its outcome recorded and learned from (a missing latency is the
        time since routing, a missing success counts as success, as in
        ``complete``), and it is returned. Otherwise (an outcome learned elsewhere,
        or a request already completed) the endpoint's statistics and weight are
        still updated with what is given, the bandit is not (no request features to
        learn from), no load changes and None is returned: report each request once,
        through ``complete`` or through this method.

        ``endpoint_id`` None (the result of a request that was not placed, as seed
        000's loop passes it under overload) reports nothing and returns None; the
        refusal is already counted in ``metrics``."""
        if endpoint_id is None:
            return None
        self.pool.get(endpoint_id)
        latency = (
            None
            if actual_latency is None
            else non_negative_number("actual_latency", actual_latency, "milliseconds")
        )
        if success is not None and not isinstance(success, bool):
            raise ValueError(f"success must be a bool or None (got {success!r})")
        quality = None if quality_score is None else _quality(quality_score)
        if result is not None:
            if not isinstance(result, AdaptiveRoutingResult):
                raise ValueError(
                    f"result must be an AdaptiveRoutingResult (got {type(result).__name__})"
                )
            if result.endpoint_id != endpoint_id:
                raise ValueError(
                    f"result was routed to {result.endpoint_id!r}, not {endpoint_id!r}"
                )
            target: AdaptiveRoutingResult | None = (
                None if result.completed else self._open.get(endpoint_id, {}).get(id(result))
            )
        else:
            open_results = self._open.get(endpoint_id)
            target = next(iter(open_results.values())) if open_results else None
        if target is not None:
            self.complete(
                target,
                success=True if success is None else success,
                latency_ms=latency,
                quality_score=quality,
            )
            return target
        if latency is not None:
            self.pool.observe_latency(self.pool.native_id(endpoint_id), latency)
        self._learn(endpoint_id, latency, success, quality, None, True, True, self._clock())
        return None

    def _learn(
        self,
        endpoint_id: str,
        latency_ms: float | None,
        success: bool | None,
        quality: float | None,
        context: npt.NDArray[np.float64] | None,
        record: bool,
        update: bool,
        now: float,
    ) -> None:
        stats = self._stats.get(endpoint_id)
        if stats is None:  # removed while the request was in flight
            return
        if not self._track_latency:
            latency_ms = None
        if not self._track_success:
            success = None
        if not self._track_quality:
            quality = None
        value = self._reward(stats, latency_ms, success, quality)
        if record:
            stats.observe(self.learning_rate, latency_ms, success, quality, value)
            self._push((endpoint_id, success, latency_ms, quality, value))
        if update:
            bandit = self.bandit
            if bandit is None:
                self._refresh_weight(endpoint_id, stats)
            elif context is not None and value is not None:
                bandit.update(endpoint_id, context, value)
        if record:
            self.observations += 1
            self._since_event += 1
            self._since_check += 1
            if self._since_check >= self._check_interval:
                self._since_check = 0
                self._check_triggers(now)

    def _reward(
        self,
        stats: EndpointPerformance,
        latency_ms: float | None,
        success: bool | None,
        quality: float | None,
    ) -> float | None:
        """The bandit reward of one outcome; None when neither success nor quality is
        known. A failed request has quality 0; a missing latency is the endpoint's
        estimate."""
        if success is False:
            quality = 0.0
        elif quality is None:
            if success is None:
                return None
            quality = 1.0
        latency = latency_ms if latency_ms is not None else stats.latency_ms
        seconds = 0.0 if latency is None else latency / 1000.0
        return reward(
            quality, stats.cost_per_request, seconds, self.cost_weight, self.latency_weight
        )

    # The history window -----------------------------------------------------------------

    # _sums: [successes known, failures, latency sum, latencies, quality sum, qualities,
    #         reward sum, rewards]
    def _push(self, record: _Record) -> None:
        window = self._window
        window.append(record)
        self._account(record, 1)
        if len(window) > self.history_window:
            self._account(window.popleft(), -1)
        self._pushes += 1
        if self._pushes % self.history_window == 0:
            self._recount()  # running float sums drift; start them afresh now and then

    def _account(self, record: _Record, sign: int) -> None:
        endpoint_id, success, latency, quality, value = record
        tier = self._stats[endpoint_id].priority
        self._tier_requests[tier] = self._tier_requests.get(tier, 0) + sign
        counts = self._window_counts
        count = counts.get(endpoint_id, 0) + sign
        if count:
            counts[endpoint_id] = count
        else:
            del counts[endpoint_id]
        sums = self._sums
        if success is not None:
            sums[0] += sign
            if not success:
                sums[1] += sign
                failures = self._window_failures
                failed = failures.get(endpoint_id, 0) + sign
                if failed:
                    failures[endpoint_id] = failed
                else:
                    del failures[endpoint_id]
        if latency is not None:
            sums[2] += sign * latency
            sums[3] += sign
        if quality is not None:
            sums[4] += sign * quality
            sums[5] += sign
        if value is not None:
            sums[6] += sign * value
            sums[7] += sign

    def _recount(self) -> None:
        self._window_counts = {}
        self._window_failures = {}
        self._tier_requests = {}
        self._sums = [0, 0, 0.0, 0, 0.0, 0, 0.0, 0]
        for record in self._window:
            self._account(record, 1)

    @property
    def window_failure_rate(self) -> float | None:
        """Failures over outcomes in the history window; None before any."""
        known, failures = self._sums[0], self._sums[1]
        return failures / known if known else None

    @property
    def window_latency_ms(self) -> float | None:
        """Mean latency (ms) over the history window; None before any."""
        return self._sums[2] / self._sums[3] if self._sums[3] else None

    @property
    def window_quality(self) -> float | None:
        """Mean quality score over the history window; None before any."""
        return self._sums[4] / self._sums[5] if self._sums[5] else None

    @property
    def window_reward(self) -> float | None:
        """Mean reward over the history window; None before any."""
        return self._sums[6] / self._sums[7] if self._sums[7] else None

    @property
    def load_imbalance(self) -> float:
        """``1 -`` Jain's fairness index of requests per unit of capacity in the
        history window, over the in-service endpoints of each tier, weighted by the
        tier's requests (``RouterMonitor``'s load-balance score, on this window).
        Tiers with fewer than 10 requests per member in the window are not judged
        (0.0 when none is)."""
        tier_sizes = self._tier_sizes
        if not any(
            requests >= _MIN_REQUESTS_PER_ENDPOINT * tier_sizes[tier] and tier_sizes[tier] > 1
            for tier, requests in self._tier_requests.items()
        ):
            return 0.0  # no tier has enough requests in the window to judge
        out = self.pool.availability.unavailable()
        per_tier: dict[int, list[float]] = {}  # tier -> [requests, sum x, sum x²]
        for endpoint_id, count in self._window_counts.items():
            if endpoint_id in out:
                continue
            stats = self._stats[endpoint_id]
            x = count / stats.capacity
            sums = per_tier.setdefault(stats.priority, [0.0, 0.0, 0.0])
            sums[0] += count
            sums[1] += x
            sums[2] += x * x
        if not per_tier:
            return 0.0
        out_per_tier: dict[int, int] = {}
        for endpoint_id in out:
            known = self._stats.get(endpoint_id)
            if known is not None:
                out_per_tier[known.priority] = out_per_tier.get(known.priority, 0) + 1
        weighted = total = 0.0
        for tier, (requests, sum_x, sum_x2) in per_tier.items():
            members = tier_sizes[tier] - out_per_tier.get(tier, 0)
            if members < 2 or requests < _MIN_REQUESTS_PER_ENDPOINT * members:
                continue
            weighted += requests * jain_from_sums(members, sum_x, sum_x2)
            total += requests
        return 1.0 - weighted / total if total else 0.0

    # Weights ----------------------------------------------------------------------------

    def _score(self, stats: EndpointPerformance) -> float:
        """The weighted geometric mean of the endpoint's ratios to the fleet."""
        shares = self.performance_weights
        log_score = 0.0
        fleet_latency = self.window_latency_ms
        latency_ratio = 1.0
        if fleet_latency is not None and stats.latency_ms is not None:
            latency_ratio = fleet_latency / max(stats.latency_ms, 1e-6)
        failure_rate = self.window_failure_rate
        success_ratio = 1.0
        if failure_rate is not None and stats.success_rate is not None:
            success_ratio = max(stats.success_rate, _FLOOR) / max(1.0 - failure_rate, _FLOOR)
        fleet_quality = self.window_quality
        quality_ratio = 1.0
        if fleet_quality is not None and stats.quality is not None:
            quality_ratio = max(stats.quality, _FLOOR) / max(fleet_quality, _FLOOR)
        log_score += shares["latency"] * math.log(_clip(latency_ratio, _RATIO_BOUNDS))
        # Throughput per unit of capacity: successes per second of a slot, S / L.
        throughput_ratio = _clip(success_ratio * latency_ratio, _RATIO_BOUNDS)
        log_score += shares["throughput"] * math.log(throughput_ratio)
        log_score += shares["accuracy"] * math.log(_clip(quality_ratio, _RATIO_BOUNDS))
        log_score += shares["availability"] * math.log(_clip(success_ratio, _RATIO_BOUNDS))
        return _clip(math.exp(self.sharpness * self._temper * log_score), _SCORE_BOUNDS)

    def _refresh_weight(
        self, endpoint_id: str, stats: EndpointPerformance, force: bool = False
    ) -> None:
        endpoint = self.pool.get(endpoint_id)
        score = self._score(stats)
        stats.score = score
        # The penalty is inside the clip, so the weight never leaves the score's bounds.
        position = _LEVELS_PER_OCTAVE * math.log2(_clip(score * stats.penalty, _SCORE_BOUNDS))
        if abs(position - stats.level) > _LEVEL_HYSTERESIS:
            stats.level = round(position)
        elif not force:
            return
        level = 2.0 ** (stats.level / _LEVELS_PER_OCTAVE)
        units = endpoint.weight * endpoint.capacity * self._units
        factor = self._deweight_factors.get(endpoint_id, 1.0)
        weight = float(max(1, round(units * level * factor)))
        if weight != stats.weight:
            self.pool.reweigh(endpoint_id, weight)
            stats.weight = weight

    def _choose_units(self) -> bool:
        """Picks the weight units for the fleet's size; True when they changed."""
        units = 1
        while units < _MAX_UNITS and self._total_base * units * 2 <= _CYCLE_TARGET:
            units *= 2
        changed = units != self._units
        self._units = units
        return changed

    def _reweigh_all(self) -> None:
        """Recomputes every weight after an adaptation. Beyond a few hundred
        endpoints nothing is done here: each endpoint's weight is recomputed with
        its next outcome (every endpoint keeps some traffic, so none stays stale)."""
        if len(self._stats) > _EAGER_REWEIGH_LIMIT:
            return
        for endpoint_id, stats in self._stats.items():
            self._refresh_weight(endpoint_id, stats, force=True)

    # Triggers ---------------------------------------------------------------------------

    def _check_triggers(self, now: float) -> None:
        if self._penalised:
            self._lift_penalties()
        if len(self._window) < self._min_samples or self._since_event < self.history_window:
            return
        latency = self.window_latency_ms
        if self._baseline_reward is None:
            self._baseline_reward = self._static_reward()
        fired: dict[str, float] = {}
        failure_rate = self.window_failure_rate
        if (
            self._failure_rate is not None
            and failure_rate is not None
            and failure_rate > self._failure_rate
        ):
            fired["failure_rate"] = failure_rate
        if latency is not None:
            baseline = self._baseline_latency
            if baseline is None or latency < baseline:
                self._baseline_latency = latency
            elif self._degradation is not None and latency > (1.0 + self._degradation) * baseline:
                fired["performance_degradation"] = latency / baseline - 1.0
        if self._imbalance is not None:
            imbalance = self.load_imbalance
            if imbalance > self._imbalance:
                fired["load_imbalance"] = imbalance
            elif imbalance < self._imbalance / 2 and self._temper < 1.0:
                self._temper = min(1.0, self._temper * 2.0)
                if self.bandit is None:
                    self._reweigh_all()
        if fired:
            self._adapt(fired, now)

    def _endpoint_failure_rate(self, endpoint_id: str) -> float | None:
        """The endpoint's failure rate in the history window; None without requests."""
        count = self._window_counts.get(endpoint_id, 0)
        return self._window_failures.get(endpoint_id, 0) / count if count else None

    def _lift_penalties(self) -> None:
        """Lifts the penalty of endpoints whose failure rate in the window is back
        under the trigger (or that have no request left in it)."""
        limit = self._failure_rate
        for endpoint_id in list(self._penalised):
            rate = self._endpoint_failure_rate(endpoint_id)
            if limit is None or rate is None or rate <= limit:
                self._penalised.discard(endpoint_id)
                stats = self._stats[endpoint_id]
                stats.penalty = 1.0
                if self.bandit is None:
                    self._refresh_weight(endpoint_id, stats, force=True)

    def _static_reward(self) -> float | None:
        """The reward routing without learning would earn: the endpoints' reward
        EWMAs weighted by their registration share (capacity x weight). The first
        baseline of :attr:`adaptation_effectiveness` (O(endpoints), once)."""
        total = weighted = 0.0
        for endpoint in self.pool.endpoints():
            value = self._stats[endpoint.id].reward
            if value is not None:
                share = endpoint.capacity * endpoint.weight
                total += share
                weighted += share * value
        return weighted / total if total else None

    def _adapt(self, fired: Mapping[str, float], now: float) -> None:
        if "load_imbalance" in fired:
            self._temper = max(_MIN_TEMPER, self._temper / 2.0)
        limit = self._failure_rate
        if "failure_rate" in fired and limit is not None and self.bandit is None:
            # The endpoints failing more than the fleet may are the ones to move away from.
            for endpoint_id in list(self._window_failures):
                rate = self._endpoint_failure_rate(endpoint_id)
                if rate is not None and rate > limit:
                    stats = self._stats[endpoint_id]
                    stats.penalty = max(_MIN_PENALTY, stats.penalty / 2.0)
                    self._penalised.add(endpoint_id)
        if self.bandit is None:
            self._reweigh_all()
        else:
            self.bandit.discount(_BANDIT_DISCOUNT)
        self.adaptation_events += 1
        self.adaptation_log.append(
            AdaptationEvent(now, self.observations, tuple(fired), dict(fired))
        )
        self._since_event = 0
        self._baseline_latency = None
        self._baseline_reward = self.window_reward

    def adapt_now(self) -> None:
        """Adapts as if a trigger fired (an operator's or a test's request)."""
        self._adapt({"manual": 1.0}, self._clock())

    # Reading ----------------------------------------------------------------------------

    @property
    def adaptation_effectiveness(self) -> float:
        """How much the mean reward over the history window improved on the routing
        before the last adaptation: the change as a share of the headroom the
        baseline left below the best possible reward 1, in [-1, 1]. The baseline is
        the window's mean reward when the router last adapted; before any
        adaptation, what static routing would earn (the endpoints' reward EWMAs
        weighted by capacity x weight, taken at the first trigger check). 0.0 before
        there is a baseline. ``RouterMonitor`` reports it."""
        base = self._baseline_reward
        current = self.window_reward
        if base is None or current is None:
            return 0.0
        headroom = 1.0 - base
        if headroom <= 1e-9:
            return 0.0 if current >= base else -1.0
        return _clip((current - base) / headroom, (-1.0, 1.0))

    @property
    def weight_temper(self) -> float:
        """The factor on the score exponent: 1, halved by each load-imbalance
        adaptation (down to 1/16), doubled back once the imbalance is low."""
        return self._temper

    def performance(self, endpoint_id: str) -> EndpointPerformance:
        """What the router learned about ``endpoint_id`` (live; do not modify)."""
        self.pool.get(endpoint_id)
        return self._stats[endpoint_id]

    def weights(self) -> dict[str, float]:
        """The weight each endpoint has in the Rust registry now (``dynamic_weighted``:
        the learned weight; bandits: the registration weight)."""
        return {
            endpoint.id: self.pool.native.accelerator(self.pool.native_id(endpoint.id)).weight
            for endpoint in self.pool.endpoints()
        }

    def in_flight(self, endpoint_id: str) -> int:
        """Requests routed by :meth:`route_adaptive` on ``endpoint_id`` and not yet
        completed."""
        self.pool.get(endpoint_id)
        return len(self._open.get(endpoint_id, {}))
