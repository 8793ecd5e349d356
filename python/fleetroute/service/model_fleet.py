"""Seed 004's routing decision: a model by specialisation, budget, breaker and score,
then an instance of it by load, in one atomic call into the Rust core.

The order is the one issue 5 set for the score stage: constraints first, scores after.

1. The task is detected from the request type and content (``TaskDetector``).
2. Models whose specialisations serve the task (seed 004's ``specialization_rules``)
   rank ahead of all others; the others take the request only when none of those can
   (over the request's budget, every instance open, unhealthy or full), and the
   reasoning says so.
3. The request's ``budget`` is a hard cap on the model's cost per request.
4. The survivors are scored by the configured preference (balanced, cost, quality,
   latency) over normalised quality, price and observed latency; the global budget's
   pacing pressure moves the weights toward cost as spend runs ahead of the window.
5. ``Router.route_joint`` takes the best model with an instance that has room and picks
   the instance with the configured load-balancing algorithm, atomically.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from fleetroute._native import Accelerator, Router
from fleetroute.scoring.provider_scoring import DEFAULT_WEIGHTS, ProviderScorer, RoutingStrategy
from fleetroute.scoring.specialisation import SpecialisationRule, SpecialisationRules
from fleetroute.scoring.task_detection import TaskDetection, TaskDetector

__all__ = ["Instance", "Model", "ModelChoice", "ModelFleet", "NoModelAvailable"]

# Seed 004's request types, mapped onto the detector's task names when the content
# alone says nothing more specific.
_REQUEST_TYPE_TASKS = {
    "chat": "conversation",
    "chat_completion": "conversation",
    "conversation": "conversation",
    "coding": "code_generation",
    "code": "code_generation",
    "analysis": "reasoning",
    "reasoning": "reasoning",
    "summarization": "summarization",
    "translation": "translation",
}


class NoModelAvailable(RuntimeError):
    """No model can take the request; the message says why. ``reason`` is
    ``"unknown_model"``, ``"budget"``, ``"unavailable"`` (every instance unhealthy or
    open) or ``"empty"`` (no models configured)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class Instance:
    """One server of a model (an accelerator of the native router)."""

    id: str
    model: str
    url: str | None
    capacity: int
    weight: float
    api_key: str | None
    native_id: int
    healthy: bool = True


@dataclass(slots=True)
class Model:
    """A model: its price per request, configured quality, observed latency (EWMA)."""

    name: str
    cost_per_request: float
    quality: float
    latency_ms: float
    specialisations: tuple[str, ...]
    instances: list[Instance] = field(default_factory=list)
    requests: int = 0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """What ``ModelFleet.choose`` placed: the model, the instance, and why."""

    model: Model
    instance: Instance
    detection: TaskDetection
    specialised: bool
    confidence: float
    reasoning: str
    load_factor: float


class ModelFleet:
    """Models with instances; ``choose`` is seed 004's decision."""

    def __init__(
        self,
        *,
        algorithm: str = "weighted_round_robin",
        preference: str = "balanced",
        rules: Iterable[SpecialisationRule] = (),
        specialisation_enabled: bool = True,
        latency_alpha: float = 0.2,
        seed: int | None = None,
    ) -> None:
        self.native = Router("p2c" if algorithm == "power_of_two" else algorithm, seed=seed)
        self.algorithm = self.native.strategy
        self.strategy = RoutingStrategy(preference)
        self._scorer = ProviderScorer(self.strategy, DEFAULT_WEIGHTS[self.strategy])
        self.rules = SpecialisationRules(list(rules))
        self.specialisation_enabled = specialisation_enabled
        self.latency_alpha = latency_alpha
        self.detector = TaskDetector()
        self.models: dict[str, Model] = {}
        self.instances: dict[str, Instance] = {}
        self._by_native: dict[int, Instance] = {}

    def add_model(
        self,
        name: str,
        *,
        cost_per_request: float,
        quality: float,
        latency_ms: float,
        instances: Iterable[tuple[str, str | None, int, float, str | None]],
    ) -> Model:
        """Adds a model and its instances ``(id, url, capacity, weight, api_key)``, all
        or nothing."""
        if name in self.models:
            raise ValueError(f"model {name!r} is already registered")
        specs = list(instances)
        if not specs:
            raise ValueError(f"model {name!r} needs at least one instance")
        ids = [spec[0] for spec in specs]
        taken = [i for i in ids if i in self.instances]
        if taken or len(set(ids)) != len(ids):
            raise ValueError(f"instance id(s) {sorted(set(taken) or ids)} of {name!r} are taken")
        model = Model(
            name,
            cost_per_request,
            quality,
            latency_ms,
            self.rules.specialisations_of(name) if name in self.rules else (),
        )
        first = len(self._by_native)
        accelerators = [
            Accelerator(first + i, capacity, weight)
            for i, (_, _, capacity, weight, _) in enumerate(specs)
        ]
        self.native.add_accelerators(accelerators)
        for i, (instance_id, url, capacity, weight, api_key) in enumerate(specs):
            instance = Instance(instance_id, name, url, capacity, weight, api_key, first + i)
            model.instances.append(instance)
            self.instances[instance_id] = instance
            self._by_native[instance.native_id] = instance
        self.models[name] = model
        return model

    def detect(self, request_type: str, content: str) -> TaskDetection:
        """The task of a request: the content's rules, or the request type's task when
        the content matches no rule."""
        detection = self.detector.detect(content) if content.strip() else None
        typed = _REQUEST_TYPE_TASKS.get(request_type.casefold())
        if detection is None or (not detection.signals and typed is not None):
            task = typed or self.detector.default_task
            return TaskDetection(task, 0.5 if typed else 0.0, (f"request_type:{request_type}",))
        return detection

    def choose(
        self,
        request_type: str,
        content: str,
        *,
        budget: float | None = None,
        pinned_model: str | None = None,
        blocked: Collection[str] = (),
        pressure: float = 0.0,
        cost: int = 1,
        detection: TaskDetection | None = None,
    ) -> ModelChoice | None:
        """Places one request. ``blocked`` are instance ids that must not be used
        (breaker open, tried already); ``pressure`` in [0, 1] is the budget's pacing.
        Returns None when every candidate instance is full; raises NoModelAvailable
        when no model is eligible at all. ``detection`` is the request's task when the
        caller already knows it (a cached detection)."""
        if detection is None:
            detection = self.detect(request_type, content)
        if pinned_model is not None:
            if pinned_model not in self.models:
                known = ", ".join(sorted(self.models))
                raise NoModelAvailable(
                    f"unknown model {pinned_model!r}; known: {known}", "unknown_model"
                )
            pool = [self.models[pinned_model]]
        else:
            pool = list(self.models.values())
        if not pool:
            raise NoModelAvailable("no models are configured", "empty")

        def usable(model: Model) -> list[int]:
            return [i.native_id for i in model.instances if i.healthy and i.id not in blocked]

        affordable = [m for m in pool if budget is None or m.cost_per_request <= budget]
        if not affordable:
            cheapest = min(pool, key=lambda m: m.cost_per_request)
            raise NoModelAvailable(
                f"no model within the budget {budget:g}: the cheapest, {cheapest.name!r}, "
                f"costs {cheapest.cost_per_request:g} per request",
                "budget",
            )
        reachable = [(m, ids) for m in affordable if (ids := usable(m))]
        if not reachable:
            raise NoModelAvailable(
                "every instance of the eligible models is unhealthy or has its breaker open",
                "unavailable",
            )
        specialised_names: set[str] = set()
        if self.specialisation_enabled and pinned_model is None:
            specialised_names = {m for m, _ in self.rules.models_for_task(detection.task)}
        models = [m for m, _ in reachable]
        scores = self._scorer.score_lists(
            [m.quality for m in models],
            [m.cost_per_request for m in models],
            [m.latency_ms for m in models],
            pressure,
        )
        # Scores lie in [0, 1]: a bonus of 1 puts every specialised model ahead of every
        # other one, and the core falls through to the others only when the specialised
        # models' instances are all full.
        ranked = [
            score + (1.0 if m.name in specialised_names else 0.0)
            for score, m in zip(scores, models, strict=True)
        ]
        picked = self.native.route_joint(
            [(rank, ids) for rank, (_, ids) in zip(ranked, reachable, strict=True)], cost=cost
        )
        if picked is None:
            return None
        index, native_id = picked
        model = models[index]
        specialised = model.name in specialised_names
        instance = self._by_native[native_id]
        load = self.native.load(native_id)
        reasons = [f"task {detection.task!r}"]
        if detection.signals:
            reasons[0] += f" ({', '.join(detection.signals[:3])})"
        if specialised:
            reasons.append(
                f"{model.name} specialises in {', '.join(model.specialisations) or 'it'}"
            )
        elif pinned_model is not None:
            reasons.append(f"model {pinned_model!r} requested")
        elif specialised_names:
            reasons.append("specialised models full or unavailable; scored every model")
        else:
            reasons.append("no model specialises in it; scored every model")
        reasons.append(f"{self.strategy.value} score {scores[index]:.2f}")
        if budget is not None:
            reasons.append(f"cost {model.cost_per_request:g} within budget {budget:g}")
        if pressure > 0:
            reasons.append(f"budget pacing pressure {pressure:.2f}")
        reasons.append(f"{instance.id} load {load}/{instance.capacity} ({self.algorithm})")
        confidence = detection.confidence * (1.0 if specialised or pinned_model else 0.5)
        return ModelChoice(
            model,
            instance,
            detection,
            specialised,
            round(min(max(confidence, 0.0), 1.0), 3),
            "; ".join(reasons),
            load / instance.capacity,
        )

    def release(self, instance: Instance, cost: int = 1) -> None:
        self.native.release(instance.native_id, cost)

    def observe(self, model_name: str, success: bool, latency_ms: float | None) -> None:
        """Folds an outcome into the model's counters and latency EWMA."""
        model = self.models.get(model_name)
        if model is None:
            return
        model.requests += 1
        if not success:
            model.failures += 1
        if latency_ms is not None and math.isfinite(latency_ms) and latency_ms >= 0:
            model.latency_ms += self.latency_alpha * (latency_ms - model.latency_ms)

    def set_healthy(self, instance_id: str, healthy: bool) -> None:
        instance = self.instances[instance_id]
        instance.healthy = healthy
        self.native.set_healthy(instance.native_id, healthy)

    def load(self, instance: Instance) -> int:
        return self.native.load(instance.native_id)
