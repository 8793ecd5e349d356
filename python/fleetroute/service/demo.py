"""The demo fleet that ``fleetroute serve --demo`` (``make run``) starts with.

Seed 002's services (neuromorphic, memory tiers, Byzantine consensus, LNN, TDA) and
seed 004's four models, each model served by two stand-in OpenAI-compatible backends
(``backend_stub``) on loopback ports, with latencies that differ by model so that the
router has something to learn. ``demo_traffic`` keeps a steady stream of requests
going through the service's own decision paths, so the dashboard moves from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetroute.service.routing_service import BudgetExhausted, NoModelAvailable, RoutingService

__all__ = [
    "DEMO_MODELS",
    "DEMO_SERVICES",
    "DemoBackend",
    "demo_backends",
    "demo_fleet",
    "demo_traffic",
]

#: Seed 002's services (its integration list).
DEMO_SERVICES: Sequence[Mapping[str, Any]] = (
    {
        "service_id": "neuromorphic",
        "service_type": "inference",
        "capabilities": ["inference", "energy-efficient"],
        "max_capacity": 200,
    },
    {
        "service_id": "memory_tiers",
        "service_type": "storage",
        "capabilities": ["storage", "retrieval"],
        "max_capacity": 300,
    },
    {
        "service_id": "byzantine",
        "service_type": "consensus",
        "capabilities": ["consensus", "voting"],
        "max_capacity": 100,
    },
    {
        "service_id": "lnn",
        "service_type": "inference",
        "capabilities": ["inference", "adaptive", "analysis"],
        "max_capacity": 150,
    },
    {
        "service_id": "tda",
        "service_type": "analysis",
        "capabilities": ["analysis", "anomaly"],
        "max_capacity": 100,
    },
)

#: Seed 004's models: (name, quality, time to first token in seconds).
DEMO_MODELS: Sequence[tuple[str, float, float]] = (
    ("mixtral-8x7b", 0.92, 0.12),
    ("hermes-2", 0.85, 0.06),
    ("openchat-3.5", 0.82, 0.04),
    ("phi-3-mini", 0.75, 0.02),
)


@dataclass(frozen=True, slots=True)
class DemoBackend:
    """One stand-in backend: which model instance it serves and where."""

    instance_id: str
    model: str
    port: int
    latency_s: float


def demo_backends(first_port: int, replicas: int = 2) -> list[DemoBackend]:
    """The backends of the demo fleet on consecutive loopback ports."""
    backends = []
    port = first_port
    for model, _, latency in DEMO_MODELS:
        for replica in range(1, replicas + 1):
            backends.append(DemoBackend(f"{model}-{replica}", model, port, latency))
            port += 1
    return backends


def demo_fleet(backends: Sequence[DemoBackend]) -> dict[str, Any]:
    """The ``fleet`` configuration section for ``backends``."""
    quality = {name: q for name, q, _ in DEMO_MODELS}
    models: dict[str, dict[str, Any]] = {}
    for backend in backends:
        model = models.setdefault(
            backend.model,
            {
                "name": backend.model,
                "quality": quality[backend.model],
                "latency_ms": backend.latency_s * 1000.0,
                "instances": [],
            },
        )
        model["instances"].append(
            {
                "id": backend.instance_id,
                "url": f"http://127.0.0.1:{backend.port}",
                "capacity": 64,
            }
        )
    return {
        "demo": True,
        "services": [dict(s) for s in DEMO_SERVICES],
        "models": list(models.values()),
    }


_DEMO_PROMPTS = (
    ("chat", "Hello, how are you today?"),
    ("coding", "Write a function that merges two sorted lists in Python"),
    ("analysis", "Analyze the quarterly sales data and explain the trend"),
    ("chat", "Tell me a joke about routers"),
    ("summarization", "Summarize this article about load balancing in three sentences"),
)
_DEMO_REQUESTS = (
    {"type": "inference", "data": [0.1, 0.2, 0.3], "priority": 0.8, "complexity": 0.5},
    {"type": "storage", "data": {"key": "value"}},
    {"type": "consensus", "data": {"votes": [1, 0, 1]}},
    {"type": "analysis", "data": {"rows": 1000}, "capabilities": ["analysis"]},
)


async def demo_traffic(
    service: RoutingService, rate_per_s: float, stop: asyncio.Event, *, seed: int = 0
) -> None:
    """Sends ``rate_per_s`` requests a second through both seeds' decision paths and
    completes each after a made-up service time, until ``stop`` is set."""
    rng = random.Random(seed)
    pending: list[tuple[float, str, bool, float]] = []
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate_per_s
    while not stop.is_set():
        now = loop.time()
        for item in [p for p in pending if p[0] <= now]:
            pending.remove(item)
            _, request_id, success, latency_ms = item
            # KeyError: its lease ran out first.
            with contextlib.suppress(KeyError):
                await service.complete(request_id, success=success, latency_ms=latency_ms)
        if rng.random() < 0.5:
            result = service.route(rng.choice(_DEMO_REQUESTS), client_id="demo")
            if result["selected_services"]:
                latency = rng.uniform(5.0, 80.0)
                pending.append((now + latency / 1000.0, result["request_id"], True, latency))
        else:
            kind, content = rng.choice(_DEMO_PROMPTS)
            try:
                decision = await service.decide(kind, content, client_id="demo")
            except (NoModelAvailable, BudgetExhausted):
                decision = None
            if decision is not None:
                latency = decision.choice.model.latency_ms * rng.uniform(0.6, 1.8)
                success = rng.random() > 0.02
                pending.append((now + latency / 1000.0, decision.request_id, success, latency))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
