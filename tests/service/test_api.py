"""The routing service's HTTP and WebSocket API, end to end through the ASGI app.

Every endpoint of seed 002 (the MoE router under ``/api/v1``) and seed 004 (the routing
API under ``/routing``) is called the way the seeds show it, with the seeds' own
request bodies; seed 004's routing decision is checked against the JSON schema the seed
gives for it. Around that: authentication and scopes, the per-client rate limit, bad
input (refused with the field named, nothing changed), leases, the budget and the
circuit breaker.

Each test runs the real app, lifespan included, under ``TestClient``. Time is two
``ManualClock``s (the monotonic clock of leases and the wall clock of budgets, breakers,
tokens and rate limits), so nothing here waits for time to pass.
"""

from __future__ import annotations

import json
import warnings
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.exceptions import StarletteDeprecationWarning
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetroute.clock import ManualClock
from fleetroute.service.app import create_app
from fleetroute.service.config import ServiceConfig, load_config

from .conftest import ADMIN, JWT_SECRET, ROUTER, MakeConfig, base_settings, merge

# Starlette's TestClient prefers httpx2 and warns once, on import, when it falls back to
# httpx; the fallback behaves the same for these tests.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

#: Where the wall clock starts: a fixed epoch time, so breaker timestamps are exact.
EPOCH = 1_700_000_000.0
MODELS = ["hermes-2", "mixtral-8x7b", "openchat-3.5", "phi-3-mini"]
SERVICES = ["neuromorphic", "memory_tiers", "byzantine", "lnn", "tda"]
STRATEGIES = [
    "switch",
    "top_k",
    "semantic",
    "tda_aware",
    "consistent_hash",
    "power_of_two",
    "adaptive",
]

# -- the seeds' requests, verbatim ---------------------------------------------------------

SEED_002_BASIC_ROUTING = {
    "data": {"type": "inference", "data": [0.1, 0.2, 0.3], "priority": 0.8, "complexity": 0.5},
    "routing_strategy": "adaptive",
}
SEED_002_BATCH_ROUTING = {
    "requests": [
        {"type": "inference", "data": [0.1, 0.2]},
        {"type": "storage", "data": {"key": "value"}},
        {"type": "consensus", "data": {"votes": [1, 0, 1]}},
    ]
}
SEED_002_REGISTRATION = {
    "service_id": "custom_processor",
    "service_type": "custom",
    "endpoint": "http://localhost:8006",
    "capabilities": ["processing", "analysis"],
    "max_capacity": 100,
}
SEED_004_DECIDE = {"request_type": "chat_completion", "content": "Hello world", "budget": 0.05}
SEED_004_TEST = {
    "test_scenarios": [
        {"type": "chat", "content": "Hello", "budget": 0.05},
        {"type": "coding", "content": "Write a function", "budget": 0.10},
        {"type": "analysis", "content": "Analyze data", "budget": 0.15},
    ]
}
#: Seed 004's "Routing Decision Schema", as the seed writes it.
SEED_004_DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "request_id": {"type": "string"},
        "model_selection": {
            "type": "object",
            "properties": {
                "selected_model": {"type": "string"},
                "confidence_score": {"type": "number"},
                "reasoning": {"type": "string"},
                "cost_estimate": {"type": "number"},
            },
        },
        "load_balancing": {
            "type": "object",
            "properties": {
                "target_instance": {"type": "string"},
                "load_factor": {"type": "number"},
                "health_status": {"type": "string"},
            },
        },
        "circuit_breaker": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["closed", "open", "half_open"]},
                "failure_count": {"type": "integer"},
                "last_failure_time": {"type": "string"},
            },
        },
    },
    "required": ["request_id", "model_selection", "load_balancing", "circuit_breaker"],
}

# -- helpers -------------------------------------------------------------------------------

_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _has_json_type(value: object, name: str) -> bool:
    # JSON Schema's numbers are Python's ints and floats, but never its booleans.
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _JSON_TYPES[name])


def schema_violations(value: object, schema: Mapping[str, Any], where: str = "$") -> list[str]:
    """How ``value`` breaks ``schema`` (the JSON Schema keywords seed 004 uses: type,
    properties, required, enum); empty when it conforms."""
    expected = schema.get("type")
    if expected is not None and not _has_json_type(value, expected):
        return [f"{where}: expected {expected}, got {json.dumps(value)}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {json.dumps(value)} is not one of {schema['enum']}")
    if isinstance(value, dict):
        problems += [
            f"{where}: required {key!r} is missing"
            for key in schema.get("required", ())
            if key not in value
        ]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                problems += schema_violations(value[key], sub, f"{where}.{key}")
    return problems


@dataclass
class Clocks:
    monotonic: ManualClock
    wall: ManualClock


@pytest.fixture
def clocks() -> Clocks:
    return Clocks(ManualClock(1_000.0), ManualClock(EPOCH))


def serve(config: ServiceConfig, clocks: Clocks) -> TestClient:
    """A client of the app for ``config`` on manual clocks; use it as a context manager
    so that the lifespan runs."""
    app = create_app(config, clock=clocks.monotonic, wall_clock=clocks.wall, seed=7)
    return TestClient(app)


@pytest.fixture
def client(make_config: MakeConfig, clocks: Clocks) -> Iterator[TestClient]:
    """The service with the test settings (the demo fleet, an admin and a route key)."""
    with serve(make_config(), clocks) as client:
        yield client


@pytest.fixture
def open_client(make_config: MakeConfig, clocks: Clocks) -> Iterator[TestClient]:
    """The service with authentication off, so the seeds' requests go as written."""
    with serve(make_config(auth={"enabled": False}), clocks) as client:
        yield client


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One service for the tests of refusals. Each of them checks that the service's
    state after its request is the state before, so they can share one service (and
    the time it takes to start). The clients' burst is large because the manual wall
    clock never refills their tokens."""
    database = tmp_path_factory.mktemp("shared") / "analytics.db"
    settings = merge(
        base_settings(database),
        {"routing": {"max_batch": 3}, "auth": {"client_burst": 1e9}},
    )
    config = load_config(environ={}, overrides=settings)
    with serve(config, Clocks(ManualClock(1_000.0), ManualClock(EPOCH))) as client:
        yield client


def detail(response: Any) -> str:
    """The error body as text, to look for the field it names."""
    return json.dumps(response.json())


def loads(client: TestClient) -> dict[str, int]:
    """The current load of every service and model instance."""
    services = client.get("/api/v1/services", headers=ADMIN).json()["services"]
    load = client.get("/routing/load", headers=ADMIN).json()
    result = {s["service_id"]: s["current_load"] for s in services}
    for model in load["models"].values():
        result.update({i: row["load"] for i, row in model["instances"].items()})
    return result


def state(client: TestClient) -> dict[str, Any]:
    """Everything a refused request must leave as it was: the registered services and
    their loads, instance loads, open leases, decisions made, budget spent, strategy."""
    status = client.get("/routing/status", headers=ADMIN).json()
    return {
        "services": client.get("/api/v1/services", headers=ADMIN).json(),
        "loads": loads(client),
        "open_leases": client.get("/api/v1/health").json()["open_leases"],
        "decisions": client.get("/api/v1/metrics", headers=ADMIN).json()["decisions_total"],
        "spent": status["cost_optimization"]["spent"],
        "strategy": status["routing"]["default_strategy"],
    }


def metric_samples(client: TestClient) -> dict[str, float]:
    """``/metrics`` parsed: every sample by name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def route_to_byzantine(client: TestClient, headers: Mapping[str, str] = ROUTER) -> str:
    """Routes a consensus request by capability (always Byzantine); returns its id."""
    response = client.post(
        "/api/v1/route",
        json={
            "data": {"type": "consensus", "data": {"votes": [1]}},
            "routing_strategy": "semantic",
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["selected_services"] == ["byzantine"]
    request_id: str = response.json()["request_id"]
    return request_id


def jwt_for(scope: str, *, exp: float, sub: str = "jwt-client") -> dict[str, str]:
    token = jwt.encode({"sub": sub, "scope": scope, "exp": int(exp)}, JWT_SECRET, "HS256")
    return {"Authorization": f"Bearer {token}"}


class AdvanceBeforeNextRequest:
    """Wraps the app so that a test can move a clock forward on the app's event loop,
    just as the next HTTP request enters the app. The lifespan's lease sweeper runs on
    that loop too, so it cannot run between the clock moving and the request: what the
    request reports (released leases) does not depend on the sweeper's timing."""

    def __init__(self, app: ASGIApp, clock: ManualClock) -> None:
        self.app = app
        self.clock = clock
        self.pending = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.pending:
            self.clock.advance(self.pending)
            self.pending = 0.0
        await self.app(scope, receive, send)


# -- seed 002 ------------------------------------------------------------------------------


def test_schema_checker_finds_violations() -> None:
    # The checker must not pass everything, or the seed-schema test below proves nothing.
    good = {
        "request_id": "r",
        "model_selection": {"confidence_score": 1},
        "load_balancing": {},
        "circuit_breaker": {"status": "open", "failure_count": 2},
    }
    assert schema_violations(good, SEED_004_DECISION_SCHEMA) == []
    assert schema_violations({**good, "request_id": 5}, SEED_004_DECISION_SCHEMA)
    assert schema_violations({"request_id": "r"}, SEED_004_DECISION_SCHEMA)
    broken = {**good, "circuit_breaker": {"status": "ajar", "failure_count": True}}
    assert len(schema_violations(broken, SEED_004_DECISION_SCHEMA)) == 2
    null_time = {**good, "circuit_breaker": {"status": "closed", "last_failure_time": None}}
    assert schema_violations(null_time, SEED_004_DECISION_SCHEMA)


@pytest.mark.parametrize("headers", [{}, ROUTER], ids=["as-written-auth-off", "route-key"])
def test_seed002_basic_routing_example(
    make_config: MakeConfig, clocks: Clocks, headers: dict[str, str]
) -> None:
    config = make_config(auth={"enabled": bool(headers)})
    with serve(config, clocks) as client:
        response = client.post("/api/v1/route", json=SEED_002_BASIC_ROUTING, headers=headers)
        assert response.status_code == 200, response.text
        result = response.json()
        assert len(result["selected_services"]) >= 1
        assert set(result["selected_services"]) <= set(SERVICES)
        # "adaptive" picks a strategy and says which.
        assert result["routing_strategy"].split(":")[0] == "adaptive"
        assert result["routing_strategy"].split(":")[-1] in STRATEGIES
        assert [s["service_id"] for s in result["services"]] == result["selected_services"]
        assert result["lease_expires_in_s"] == 2.0
        assert result["latency_ms"] >= 0


def test_seed002_batch_routing_example(open_client: TestClient) -> None:
    response = open_client.post("/api/v1/route/batch", json=SEED_002_BATCH_ROUTING)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 3
    assert len(body["results"]) == 3
    assert body["routed"] == sum(1 for r in body["results"] if r["selected_services"])
    assert body["routed"] >= 1
    ids = {r["request_id"] for r in body["results"]}
    assert len(ids) == 3


def test_seed002_service_registration_example(open_client: TestClient) -> None:
    response = open_client.post("/api/v1/services/register", json=SEED_002_REGISTRATION)
    assert response.status_code == 201, response.text
    assert response.json() == {
        "service_id": "custom_processor",
        "service_type": "custom",
        "endpoint": "http://localhost:8006",
        "capabilities": ["analysis", "processing"],
        "max_capacity": 100,
        "current_load": 0,
    }
    listed = open_client.get("/api/v1/services").json()
    assert listed["total"] == len(SERVICES) + 1
    assert response.json() in listed["services"]
    # The new service takes requests for its capabilities.
    routed = open_client.post(
        "/api/v1/route",
        json={
            "data": {"type": "x", "capabilities": ["processing"]},
            "routing_strategy": "semantic",
        },
    )
    assert routed.json()["selected_services"] == ["custom_processor"]
    assert routed.json()["services"] == [
        {"service_id": "custom_processor", "endpoint": "http://localhost:8006"}
    ]


def test_route_with_every_strategy(client: TestClient) -> None:
    for strategy in STRATEGIES:
        response = client.post(
            "/api/v1/route",
            json={"data": {"type": "inference", "data": [1]}, "routing_strategy": strategy},
            headers=ROUTER,
        )
        assert response.status_code == 200, (strategy, response.text)
        assert response.json()["routing_strategy"].startswith(strategy)
    top = client.post(
        "/api/v1/route",
        json={"data": {"type": "inference"}, "routing_strategy": "top_k", "top_k": 3},
        headers=ROUTER,
    )
    assert len(top.json()["selected_services"]) == 3


def test_strategy_override(client: TestClient) -> None:
    response = client.post(
        "/api/v1/strategy/override", json={"strategy": "semantic"}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"previous": "adaptive", "strategy": "semantic"}
    routed = client.post("/api/v1/route", json={"data": {"type": "consensus"}}, headers=ROUTER)
    assert routed.json()["routing_strategy"] == "semantic"
    assert routed.json()["selected_services"] == ["byzantine"]
    assert client.get("/api/v1/metrics", headers=ROUTER).json()["strategy"] == "semantic"


def test_unregister_service(client: TestClient) -> None:
    response = client.delete("/api/v1/services/tda", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json() == {"service_id": "tda", "status": "unregistered"}
    listed = client.get("/api/v1/services", headers=ROUTER).json()
    assert [s["service_id"] for s in listed["services"]] == [s for s in SERVICES if s != "tda"]
    again = client.delete("/api/v1/services/tda", headers=ADMIN)
    assert again.status_code == 404
    assert "tda" in detail(again)


def test_unregister_every_service_then_route_is_503(client: TestClient) -> None:
    for service_id in SERVICES:
        assert client.delete(f"/api/v1/services/{service_id}", headers=ADMIN).status_code == 200
    response = client.post("/api/v1/route", json={"data": {"type": "x"}}, headers=ROUTER)
    assert response.status_code == 503
    assert "register" in detail(response)


def test_moe_metrics(client: TestClient) -> None:
    route_to_byzantine(client)
    metrics = client.get("/api/v1/metrics", headers=ROUTER)
    assert metrics.status_code == 200
    body = metrics.json()
    assert body["decisions_total"] == 1
    assert body["open_leases"] == 1
    assert body["strategy"] == "adaptive"
    assert set(body["services"]) == set(SERVICES)
    assert body["services"]["byzantine"] == {"load": 1, "capacity": 100}
    assert 0 < body["load_balance_score"] <= 1


def test_health_v1(client: TestClient) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["services"] == len(SERVICES)
    assert body["models"] == len(MODELS)
    assert body["instances"] == 2 * len(MODELS)
    assert body["shared_state"] == "local"
    assert body["analytics"] == "sqlite"
    assert body["open_leases"] == 0


@pytest.mark.parametrize("complexity", ["simple", "moderate", "complex"])
def test_smart_routing_demo(client: TestClient, complexity: str) -> None:
    before = state(client)
    response = client.get(
        "/api/v1/demo/smart_routing", params={"complexity": complexity}, headers=ROUTER
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["complexity"] == complexity
    assert set(body["strategies"]) == set(STRATEGIES)
    for chosen in body["strategies"].values():
        assert len(chosen) == len(body["requests"])
    # The demo routes for show only: nothing stays routed.
    assert state(client) == before


def test_smart_routing_demo_rejects_unknown_complexity(client: TestClient) -> None:
    response = client.get("/api/v1/demo/smart_routing?complexity=extreme", headers=ROUTER)
    assert response.status_code == 422
    assert "complexity" in detail(response)


def test_websocket_sends_a_snapshot_then_each_decision(client: TestClient) -> None:
    with client.websocket_connect("/ws/routing") as ws:
        snapshot = ws.receive_json()
        assert snapshot["type"] == "snapshot"
        assert snapshot["shared_state"] == "local"
        ids = {e["id"]: e for e in snapshot["endpoints"]}
        assert set(ids) == set(SERVICES) | {f"{m}-{n}" for m in MODELS for n in (1, 2)}
        assert ids["byzantine"]["kind"] == "service"
        assert ids["hermes-2-1"]["kind"] == "instance"
        assert ids["hermes-2-1"]["model"] == "hermes-2"

        request_id = route_to_byzantine(client)
        # Snapshots come once a second and may come first; the decision follows.
        for _ in range(20):
            message = ws.receive_json()
            if message["type"] == "decision":
                break
        assert message["type"] == "decision"
        assert message["request_id"] == request_id
        assert message["api"] == "route"
        assert message["selected_services"] == ["byzantine"]
        assert message["routing_strategy"] == "semantic"
        assert message["model"] is None
        assert message["timestamp"] == EPOCH


# -- seed 004 ------------------------------------------------------------------------------


def test_seed004_health(make_config: MakeConfig, clocks: Clocks) -> None:
    # Seed 004's expected answer has load balancing on: so is it here (the health checks
    # find the test fleet's ports closed, which /health does not depend on).
    with serve(make_config(load_balancing={"enabled": True}), clocks) as client:
        response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    expected = {
        "status": "healthy",
        "service": "routing-api",
        "load_balancing": True,
        "circuit_breaker": True,
    }
    assert {key: body[key] for key in expected} == expected
    assert list(body)[:5] == [*expected, "timestamp"]
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None


@pytest.mark.parametrize("headers", [{}, ROUTER], ids=["as-written-auth-off", "route-key"])
def test_seed004_decide(make_config: MakeConfig, clocks: Clocks, headers: dict[str, str]) -> None:
    config = make_config(auth={"enabled": bool(headers)})
    with serve(config, clocks) as client:
        response = client.post("/routing/decide", json=SEED_004_DECIDE, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        selection = body["model_selection"]
        assert selection["selected_model"] == "hermes-2"
        assert selection["cost_estimate"] == 0.015
        assert selection["cost_estimate"] <= SEED_004_DECIDE["budget"]
        assert 0 <= selection["confidence_score"] <= 1
        assert "hermes-2" in selection["reasoning"]
        assert "budget" in selection["reasoning"]
        balancing = body["load_balancing"]
        assert balancing["target_instance"] in ("hermes-2-1", "hermes-2-2")
        assert balancing["health_status"] == "healthy"
        assert balancing["load_factor"] == 1 / 64
        assert body["circuit_breaker"]["status"] == "closed"
        assert body["circuit_breaker"]["failure_count"] == 0
        assert loads(client)[balancing["target_instance"]] == 1


def test_seed004_decision_matches_the_seed_schema(client: TestClient) -> None:
    response = client.post("/routing/decide", json=SEED_004_DECIDE, headers=ROUTER)
    assert response.status_code == 200, response.text
    assert schema_violations(response.json(), SEED_004_DECISION_SCHEMA) == []


@pytest.mark.parametrize("headers", [{}, ROUTER], ids=["as-written-auth-off", "route-key"])
def test_seed004_validation_commands(
    make_config: MakeConfig, clocks: Clocks, headers: dict[str, str]
) -> None:
    config = make_config(auth={"enabled": bool(headers)})
    with serve(config, clocks) as client:
        decided = client.post("/routing/decide", json=SEED_004_DECIDE, headers=headers).json()
        target = decided["load_balancing"]["target_instance"]

        status = client.get("/routing/status", headers=headers)
        assert status.status_code == 200
        body = status.json()
        assert body["service"] == "routing-api"
        assert body["models"] == MODELS
        assert body["circuit_breaker"]["failure_threshold"] == 5
        assert body["cost_optimization"]["budget_limit"] == 1000
        assert body["cost_optimization"]["spent"] == 0.015
        assert body["routing"]["open_leases"] == 1
        assert body["model_specialization"]["rules"]["hermes-2"] == [
            "conversation",
            "chat",
            "dialogue",
        ]

        load = client.get("/routing/load", headers=headers)
        assert load.status_code == 200
        models = load.json()["models"]
        assert set(models) == set(MODELS)
        assert models["hermes-2"]["load"] == 1
        assert models["hermes-2"]["instances"][target]["load"] == 1
        assert models["hermes-2"]["instances"][target]["utilisation"] == 1 / 64
        assert models["mixtral-8x7b"]["load"] == 0
        assert set(load.json()["services"]) == set(SERVICES)

        breakers = client.get("/routing/circuit-breaker/status", headers=headers)
        assert breakers.status_code == 200
        assert breakers.json()["enabled"] is True
        by_model = breakers.json()["models"]
        assert set(by_model) == set(MODELS)
        for instances in by_model.values():
            assert len(instances) == 2
            for info in instances.values():
                assert info == {"status": "closed", "failure_count": 0, "last_failure_time": None}

        costs = client.get("/routing/cost-analysis", headers=headers)
        assert costs.status_code == 200
        assert costs.json()["budget_limit"] == 1000
        assert isinstance(costs.json()["recommendations"], list)

        performance = client.get("/routing/performance", headers=headers)
        assert performance.status_code == 200
        assert performance.json()["live"]["open_leases"] == 1


def test_seed004_routing_test_scenarios(open_client: TestClient) -> None:
    before = state(open_client)
    response = open_client.post("/routing/test", json=SEED_004_TEST)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 3
    assert body["passed"] == 3
    chosen = {r["scenario"]["type"]: r["selected_model"] for r in body["results"]}
    assert chosen == {"chat": "hermes-2", "coding": "mixtral-8x7b", "analysis": "mixtral-8x7b"}
    for result in body["results"]:
        assert result["specialised"] is True
        assert result["within_budget"] is True
        assert result["target_instance"].startswith(result["selected_model"])
    # The test decides for real (counted as decisions), then lets go: no load, lease or
    # spend is left behind.
    after = state(open_client)
    assert after["decisions"] == before["decisions"] + 3
    assert {**after, "decisions": 0} == {**before, "decisions": 0}


def test_routing_complete_and_performance(client: TestClient) -> None:
    decided = client.post("/routing/decide", json=SEED_004_DECIDE, headers=ROUTER).json()
    request_id = decided["request_id"]
    done = client.post(
        "/routing/complete",
        json={"request_id": request_id, "success": True, "latency_ms": 120.0},
        headers=ROUTER,
    )
    assert done.status_code == 200, done.text
    assert done.json() == {"request_id": request_id, "status": "completed"}
    assert loads(client)[decided["load_balancing"]["target_instance"]] == 0
    # Once only.
    again = client.post("/routing/complete", json={"request_id": request_id}, headers=ROUTER)
    assert again.status_code == 404
    assert request_id in detail(again)

    performance = client.get("/routing/performance", headers=ROUTER).json()
    assert performance["decisions"] == 1
    assert performance["completed"] == 1
    assert performance["success_rate"] == 1.0
    assert performance["live"]["open_leases"] == 0
    costs = client.get("/routing/cost-analysis", headers=ROUTER).json()
    assert costs["requests"] == 1
    assert costs["total_cost"] == pytest.approx(0.015)
    assert [m["model"] for m in costs["per_model"]] == ["hermes-2"]


def test_prometheus_metrics(client: TestClient) -> None:
    route_to_byzantine(client)
    client.post("/routing/decide", json=SEED_004_DECIDE, headers=ROUTER)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    for name in ("moe_routing", "moe_expert_usage", "moe_routing_latency_ms"):
        assert name in families
    assert "moe_load_balance_score" in families
    samples = metric_samples(client)
    assert samples["moe_routing_total{strategy=semantic}"] == 1
    assert samples["moe_expert_usage{service=byzantine}"] == 1 / 100
    assert samples["moe_routing_latency_ms_count{}"] == 1
    assert 0 < samples["moe_load_balance_score{}"] <= 1
    assert samples["fleetroute_model_selected_total{model=hermes-2}"] == 1
    assert samples["fleetroute_routing_decisions_total{api=decide,outcome=routed}"] == 1
    ours = [name for name in families if name.startswith("fleetroute_")]
    assert len(ours) >= 10


def test_openai_models(client: TestClient) -> None:
    response = client.get("/v1/models", headers=ROUTER)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["auto", *MODELS]
    assert all(m["object"] == "model" and m["created"] == int(EPOCH) for m in body["data"])


def test_dashboard(client: TestClient) -> None:
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "/ws/routing" in response.text


def test_openapi_lists_every_path(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        "/api/v1/route": {"post"},
        "/api/v1/route/batch": {"post"},
        "/api/v1/route/complete": {"post"},
        "/api/v1/strategy/override": {"post"},
        "/api/v1/services/register": {"post"},
        "/api/v1/services/{service_id}": {"delete"},
        "/api/v1/services": {"get"},
        "/api/v1/load/rebalance": {"post"},
        "/api/v1/metrics": {"get"},
        "/api/v1/health": {"get"},
        "/api/v1/demo/smart_routing": {"get"},
        "/health": {"get"},
        "/routing/decide": {"post"},
        "/routing/status": {"get"},
        "/routing/load": {"get"},
        "/routing/circuit-breaker/status": {"get"},
        "/routing/cost-analysis": {"get"},
        "/routing/test": {"post"},
        "/routing/performance": {"get"},
        "/routing/complete": {"post"},
        "/metrics": {"get"},
        "/v1/models": {"get"},
        "/v1/chat/completions": {"post"},
        "/v1/completions": {"post"},
    }
    assert {path: set(ops) for path, ops in paths.items()} == expected
    # The WebSocket is not an OpenAPI operation and the dashboard is a page, not an API;
    # both are served (tested above) but not listed.


# -- authentication and scopes --------------------------------------------------------------

ADMIN_CALLS = [
    ("POST", "/api/v1/services/register", {"service_id": "extra", "max_capacity": 5}),
    ("DELETE", "/api/v1/services/tda", None),
    ("POST", "/api/v1/strategy/override", {"strategy": "switch"}),
    ("POST", "/api/v1/load/rebalance", None),
]
ROUTE_CALLS = [
    ("POST", "/api/v1/route", {"data": {"type": "inference"}}),
    ("POST", "/api/v1/route/batch", {"requests": [{"type": "inference"}]}),
    ("GET", "/api/v1/services", None),
    ("GET", "/api/v1/metrics", None),
    ("POST", "/routing/decide", SEED_004_DECIDE),
    ("GET", "/routing/status", None),
    ("GET", "/routing/load", None),
    ("GET", "/v1/models", None),
]


def call(client: TestClient, method: str, path: str, body: Any, headers: Mapping[str, str]) -> Any:
    return client.request(method, path, json=body, headers=dict(headers))


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS + ROUTE_CALLS)
def test_no_credentials_is_401_with_a_challenge(
    shared: TestClient, method: str, path: str, body: Any
) -> None:
    before = state(shared)
    response = call(shared, method, path, body, {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "credentials" in detail(response)
    assert state(shared) == before


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS + ROUTE_CALLS)
def test_a_wrong_key_is_401(shared: TestClient, method: str, path: str, body: Any) -> None:
    before = state(shared)
    response = call(shared, method, path, body, {"X-API-Key": "fr_not-a-key-of-ours-0123456789"})
    assert response.status_code == 401
    assert "invalid API key" in detail(response)
    assert state(shared) == before


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_the_route_key_cannot_administer(
    shared: TestClient, method: str, path: str, body: Any
) -> None:
    before = state(shared)
    response = call(shared, method, path, body, ROUTER)
    assert response.status_code == 403
    assert "admin" in detail(response)
    assert state(shared) == before


def test_the_admin_key_administers(client: TestClient) -> None:
    for method, path, body in ADMIN_CALLS:
        response = call(client, method, path, body, ADMIN)
        assert response.status_code in (200, 201), (path, response.text)
    services = [
        s["service_id"] for s in client.get("/api/v1/services", headers=ADMIN).json()["services"]
    ]
    assert "extra" in services
    assert "tda" not in services
    assert client.get("/api/v1/metrics", headers=ADMIN).json()["strategy"] == "switch"


def test_route_calls_take_the_route_key(client: TestClient) -> None:
    for method, path, body in ROUTE_CALLS:
        response = call(client, method, path, body, ROUTER)
        assert response.status_code == 200, (path, response.text)


def test_jwt_bearer_tokens(client: TestClient) -> None:
    # The token expires 10 minutes after the service's (manual) wall clock, long before
    # the real now: accepting it proves expiry is judged by the injected clock.
    valid = jwt_for("route", exp=EPOCH + 600)
    routed = client.post("/api/v1/route", json={"data": {"type": "inference"}}, headers=valid)
    assert routed.status_code == 200, routed.text
    decided = client.post("/routing/decide", json=SEED_004_DECIDE, headers=valid)
    assert decided.status_code == 200, decided.text

    not_admin = client.post("/api/v1/load/rebalance", headers=valid)
    assert not_admin.status_code == 403
    assert "jwt-client" in detail(not_admin)
    admin = client.post("/api/v1/load/rebalance", headers=jwt_for("admin", exp=EPOCH + 600))
    assert admin.status_code == 200

    expired = client.post(
        "/api/v1/route", json={"data": {}}, headers=jwt_for("route", exp=EPOCH - 1)
    )
    assert expired.status_code == 401
    assert "expired" in detail(expired)
    assert expired.headers["www-authenticate"].startswith("Bearer")

    forged = jwt.encode({"sub": "x", "scope": "admin", "exp": int(EPOCH + 600)}, "k" * 40)
    refused = client.get("/routing/status", headers={"Authorization": f"Bearer {forged}"})
    assert refused.status_code == 401
    assert "signature" in detail(refused)


def test_auth_disabled_lets_everything_through(open_client: TestClient) -> None:
    for method, path, body in ROUTE_CALLS + ADMIN_CALLS:
        response = call(open_client, method, path, body, {})
        assert response.status_code in (200, 201), (path, response.text)


# -- the per-client rate limit ---------------------------------------------------------------


def test_rate_limit_per_client(make_config: MakeConfig, clocks: Clocks) -> None:
    config = make_config(auth={"client_rate_limit_per_minute": 60, "client_burst": 2})
    with serve(config, clocks) as client:
        assert client.get("/api/v1/services", headers=ROUTER).status_code == 200
        assert client.get("/api/v1/services", headers=ROUTER).status_code == 200
        limited = client.get("/api/v1/services", headers=ROUTER)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "'router'" in detail(limited)
        assert "60" in detail(limited)
        # Another client has its own allowance.
        assert client.get("/api/v1/services", headers=ADMIN).status_code == 200
        assert client.get("/api/v1/services", headers=ADMIN).status_code == 200
        # A refused call routes nothing.
        refused = client.post("/api/v1/route", json={"data": {}}, headers=ROUTER)
        assert refused.status_code == 429
        assert client.get("/api/v1/metrics", headers=ADMIN).status_code == 429
        # One request a second: a second later, one more is allowed.
        clocks.wall.advance(1.0)
        assert client.get("/api/v1/metrics", headers=ROUTER).json()["decisions_total"] == 0
        assert client.get("/api/v1/services", headers=ROUTER).status_code == 429
        samples = metric_samples(client)
        assert samples["fleetroute_rate_limited_total{scope=client}"] == 4


# -- bad input -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A bad request: what is sent, the status expected and what the error must name."""

    method: str
    path: str
    status: int
    names: tuple[str, ...]
    json: Any = None
    content: bytes | None = None


JSON = {"Content-Type": "application/json"}
BAD_REQUESTS = {
    "unknown-strategy": Bad(
        "POST", "/api/v1/route", 422, ("routing_strategy",), {"data": {}, "routing_strategy": "x"}
    ),
    "top-k-0": Bad("POST", "/api/v1/route", 422, ("top_k",), {"data": {}, "top_k": 0}),
    "missing-data": Bad("POST", "/api/v1/route", 422, ("data", "missing"), {"top_k": 1}),
    "extra-field": Bad("POST", "/api/v1/route", 422, ("colour",), {"data": {}, "colour": "red"}),
    "data-not-an-object": Bad("POST", "/api/v1/route", 422, ("data",), {"data": [1, 2]}),
    "not-json": Bad("POST", "/api/v1/route", 422, ("JSON",), content=b"{data: nope"),
    "batch-over-max": Bad(
        "POST", "/api/v1/route/batch", 422, ("requests", "max_batch"), {"requests": [{}] * 4}
    ),
    "batch-empty": Bad("POST", "/api/v1/route/batch", 422, ("requests",), {"requests": []}),
    "batch-unknown-strategy": Bad(
        "POST",
        "/api/v1/route/batch",
        422,
        ("routing_strategy",),
        {"requests": [{}], "routing_strategy": "x"},
    ),
    "override-unknown-strategy": Bad(
        "POST", "/api/v1/strategy/override", 422, ("strategy",), {"strategy": "random"}
    ),
    "register-bad-id": Bad(
        "POST", "/api/v1/services/register", 422, ("service_id",), {"service_id": "bad id!"}
    ),
    "register-zero-capacity": Bad(
        "POST",
        "/api/v1/services/register",
        422,
        ("max_capacity",),
        {"service_id": "ok", "max_capacity": 0},
    ),
    "register-duplicate": Bad(
        "POST", "/api/v1/services/register", 409, ("byzantine",), {"service_id": "byzantine"}
    ),
    "delete-unknown": Bad("DELETE", "/api/v1/services/ghost", 404, ("ghost",)),
    "complete-unknown-v1": Bad(
        "POST", "/api/v1/route/complete", 404, ("no-such-id",), {"request_id": "no-such-id"}
    ),
    "complete-unknown-routing": Bad(
        "POST", "/routing/complete", 404, ("no-such-id",), {"request_id": "no-such-id"}
    ),
    "complete-negative-latency": Bad(
        "POST", "/routing/complete", 422, ("latency_ms",), {"request_id": "r", "latency_ms": -1}
    ),
    "decide-below-cheapest": Bad(
        "POST", "/routing/decide", 422, ("budget", "0.001"), {"content": "hi", "budget": 0.001}
    ),
    "decide-negative-budget": Bad("POST", "/routing/decide", 422, ("budget",), {"budget": -0.01}),
    "decide-unknown-model": Bad("POST", "/routing/decide", 404, ("gpt-9",), {"model": "gpt-9"}),
    "decide-pinned-over-budget": Bad(
        "POST", "/routing/decide", 422, ("budget",), {"model": "mixtral-8x7b", "budget": 0.01}
    ),
    "test-no-scenarios": Bad(
        "POST", "/routing/test", 422, ("test_scenarios",), {"test_scenarios": []}
    ),
    "test-scenario-without-type": Bad(
        "POST", "/routing/test", 422, ("type",), {"test_scenarios": [{"content": "x"}]}
    ),
    "cost-analysis-negative-window": Bad(
        "GET", "/routing/cost-analysis?since_s=-5", 422, ("since_s",)
    ),
    # JSON numbers Python's parser reads but that are no numbers: the error must say so,
    # not fail to render the rejected value.
    "decide-nan-budget": Bad(
        "POST", "/routing/decide", 422, ("budget",), content=b'{"budget": NaN}'
    ),
    "decide-infinite-budget": Bad(
        "POST", "/routing/decide", 422, ("budget",), content=b'{"budget": Infinity}'
    ),
    "complete-nan-latency": Bad(
        "POST",
        "/routing/complete",
        422,
        ("latency_ms",),
        content=b'{"request_id": "r", "latency_ms": NaN}',
    ),
    "test-nan-budget": Bad(
        "POST",
        "/routing/test",
        422,
        ("budget",),
        content=b'{"test_scenarios": [{"type": "chat", "budget": -Infinity}]}',
    ),
    # Seed 002's request data is free-form, but its capabilities must be names.
    "capabilities-not-a-list-semantic": Bad(
        "POST",
        "/api/v1/route",
        422,
        ("capabilities",),
        {"data": {"type": "x", "capabilities": 5}, "routing_strategy": "semantic"},
    ),
    "capabilities-not-a-list-switch": Bad(
        "POST",
        "/api/v1/route",
        422,
        ("capabilities",),
        {"data": {"type": "x", "capabilities": 5}, "routing_strategy": "switch"},
    ),
    # A batch is refused whole: the good request before the bad one is not left routed.
    "batch-with-one-bad-request": Bad(
        "POST",
        "/api/v1/route/batch",
        422,
        ("capabilities",),
        {
            "requests": [{"type": "consensus"}, {"type": "x", "capabilities": 5}],
            "routing_strategy": "semantic",
        },
    ),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_input_is_refused_naming_the_field(shared: TestClient, name: str) -> None:
    bad = BAD_REQUESTS[name]
    before = state(shared)
    response = shared.request(
        bad.method,
        bad.path,
        json=bad.json,
        content=bad.content,
        headers={**ADMIN, **(JSON if bad.content is not None else {})},
    )
    assert response.status_code == bad.status, response.text
    text = detail(response)
    for name_ in bad.names:
        assert name_ in text, f"{name_!r} not named in {text}"
    assert state(shared) == before


def test_semantic_routing_without_type_or_capabilities(client: TestClient) -> None:
    # Seed 002's data need not say its type; with nothing to match on, semantic routing
    # may select nothing or refuse the request, but a refusal must name what is missing.
    before = state(client)
    response = client.post(
        "/api/v1/route", json={"data": {}, "routing_strategy": "semantic"}, headers=ROUTER
    )
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        text = detail(response)
        assert "type" in text or "capabilities" in text, text
        assert state(client) == before
    else:
        assert response.json()["selected_services"] == []


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://example.com/x",
        "javascript:alert(1)",
        "http://user:pw@example.com/",
        "file:///etc/passwd",
        "http:///no-host",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://exa\x00mple.com/",
    ],
)
def test_register_refuses_a_bad_endpoint(shared: TestClient, endpoint: str) -> None:
    service_id = f"sneaky-{zlib.crc32(endpoint.encode())}"
    before = state(shared)
    response = shared.post(
        "/api/v1/services/register",
        json={"service_id": service_id, "endpoint": endpoint},
        headers=ADMIN,
    )
    assert response.status_code == 422, response.text
    assert "endpoint" in detail(response)
    assert "pw" not in detail(response)  # an embedded password is not echoed
    assert state(shared) == before
    listed = shared.get("/api/v1/services", headers=ADMIN).json()["services"]
    assert service_id not in [s["service_id"] for s in listed]


def test_body_over_the_limit_is_413(make_config: MakeConfig, clocks: Clocks) -> None:
    with serve(make_config(routing={"max_body_bytes": 512}), clocks) as client:
        before = state(client)
        small = {"data": {"type": "inference", "data": "x" * 100}}
        assert client.post("/api/v1/route", json=small, headers=ROUTER).status_code == 200
        before = state(client)
        big = json.dumps({"data": {"type": "inference", "data": "x" * 2000}}).encode()

        with_length = client.post("/api/v1/route", content=big, headers={**ROUTER, **JSON})
        assert with_length.status_code == 413
        assert "max_body_bytes" in detail(with_length)

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(big), 300):
                yield big[start : start + 300]

        # A chunked body has no Content-Length: it is counted as it arrives.
        streamed = client.post("/api/v1/route", content=chunks(), headers={**ROUTER, **JSON})
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413
        assert "max_body_bytes" in detail(streamed)
        assert state(client) == before


# -- leases ----------------------------------------------------------------------------------


def test_completion_returns_the_load_at_once(client: TestClient) -> None:
    request_id = route_to_byzantine(client)
    assert loads(client)["byzantine"] == 1
    assert client.get("/api/v1/health").json()["open_leases"] == 1
    done = client.post(
        "/api/v1/route/complete",
        json={"request_id": request_id, "success": True, "latency_ms": 12.5},
        headers=ROUTER,
    )
    assert done.status_code == 200, done.text
    assert done.json() == {"request_id": request_id, "status": "completed"}
    assert loads(client)["byzantine"] == 0
    assert client.get("/api/v1/health").json()["open_leases"] == 0
    assert metric_samples(client)["fleetroute_leases_expired_total{}"] == 0


def test_an_uncompleted_decision_is_returned_when_its_lease_runs_out(
    make_config: MakeConfig, clocks: Clocks
) -> None:
    config = make_config()
    app = AdvanceBeforeNextRequest(
        create_app(config, clock=clocks.monotonic, wall_clock=clocks.wall, seed=7),
        clocks.monotonic,
    )
    lease_s = config.routing.decision_lease_s
    with TestClient(app) as client:
        request_id = route_to_byzantine(client)
        decided = client.post("/routing/decide", json=SEED_004_DECIDE, headers=ROUTER).json()
        target = decided["load_balancing"]["target_instance"]
        assert loads(client)["byzantine"] == 1
        assert loads(client)[target] == 1

        # Before the deadline, a rebalance releases nothing.
        app.pending = lease_s / 2
        early = client.post("/api/v1/load/rebalance", headers=ADMIN).json()
        assert early["released_leases"] == 0
        assert early["open_leases"] == 2
        assert early["services"]["byzantine"] == 1

        app.pending = lease_s
        rebalanced = client.post("/api/v1/load/rebalance", headers=ADMIN)
        assert rebalanced.status_code == 200, rebalanced.text
        body = rebalanced.json()
        assert body["released_leases"] == 2
        assert body["open_leases"] == 0
        assert body["services"]["byzantine"] == 0
        assert body["load_balance_score_after"] == 1.0
        assert loads(client)["byzantine"] == 0
        assert loads(client)[target] == 0
        assert metric_samples(client)["fleetroute_leases_expired_total{}"] == 2

        # Too late to complete: the load is already back.
        late = client.post(
            "/api/v1/route/complete", json={"request_id": request_id}, headers=ROUTER
        )
        assert late.status_code == 404
        assert "expired" in detail(late)


# -- the budget ------------------------------------------------------------------------------


def test_decisions_stop_when_the_budget_is_spent(make_config: MakeConfig, clocks: Clocks) -> None:
    config = make_config(cost_optimization={"budget_limit": 0.05})
    with serve(config, clocks) as client:
        spent = 0.0
        admitted = 0
        for _ in range(10):
            response = client.post("/routing/decide", json=SEED_004_DECIDE, headers=ROUTER)
            if response.status_code != 200:
                break
            decision = response.json()
            spent += decision["model_selection"]["cost_estimate"]
            admitted += 1
            done = client.post(
                "/routing/complete", json={"request_id": decision["request_id"]}, headers=ROUTER
            )
            assert done.status_code == 200
        # hermes-2 at 0.015 a request: three fit in 0.05, the fourth does not.
        assert admitted == 3
        assert spent == pytest.approx(0.045)
        assert response.status_code == 402
        assert "budget" in detail(response)
        assert "0.05" in detail(response)

        before = state(client)
        again = client.post("/routing/decide", json=SEED_004_DECIDE, headers=ROUTER)
        assert again.status_code == 402
        assert state(client) == before
        assert before["spent"] == pytest.approx(spent)

        costs = client.get("/routing/cost-analysis", headers=ROUTER).json()
        assert costs["total_cost"] == pytest.approx(spent)
        assert costs["requests"] == admitted
        assert costs["budget_limit"] == 0.05
        assert costs["budget_used_pct"] == pytest.approx(90.0)
        assert costs["per_model"][0]["model"] == "hermes-2"
        samples = metric_samples(client)
        assert samples["fleetroute_budget_refusals_total{scope=global}"] == 2
        assert samples["fleetroute_budget_spend{scope=global}"] == pytest.approx(spent)


def test_cost_analysis_with_a_zero_budget(make_config: MakeConfig, clocks: Clocks) -> None:
    # The configuration accepts budget_limit 0 (nothing may be spent); the cost analysis
    # of such a service must still answer.
    with serve(make_config(cost_optimization={"budget_limit": 0}), clocks) as client:
        refused = client.post("/routing/decide", json=SEED_004_DECIDE, headers=ROUTER)
        assert refused.status_code == 402
        costs = client.get("/routing/cost-analysis", headers=ROUTER)
        assert costs.status_code == 200, costs.text
        assert costs.json()["total_cost"] == 0


# -- the circuit breaker ---------------------------------------------------------------------

SOLO_MODEL = {
    "name": "solo",
    "cost_per_request": 0.01,
    "quality": 0.8,
    "latency_ms": 100.0,
    "instances": [{"id": "solo-1", "url": "http://127.0.0.1:1", "capacity": 8}],
}


def test_failures_open_the_breaker(make_config: MakeConfig, clocks: Clocks) -> None:
    config = make_config(
        fleet={"models": [SOLO_MODEL]},
        circuit_breaker={"failure_threshold": 3, "recovery_timeout": 30},
    )
    pinned = {"request_type": "chat_completion", "content": "Hello", "model": "solo"}
    with serve(config, clocks) as client:
        for failure in range(1, 4):
            decided = client.post("/routing/decide", json=pinned, headers=ROUTER)
            assert decided.status_code == 200, decided.text
            assert decided.json()["load_balancing"]["target_instance"] == "solo-1"
            assert decided.json()["circuit_breaker"]["status"] == "closed"
            clocks.wall.advance(1.0)
            failed = client.post(
                "/routing/complete",
                json={"request_id": decided.json()["request_id"], "success": False},
                headers=ROUTER,
            )
            assert failed.status_code == 200
            assert failed.json()["status"] == "failed"
            info = client.get("/routing/circuit-breaker/status", headers=ROUTER).json()
            solo = info["models"]["solo"]["solo-1"]
            assert solo["failure_count"] == failure
            assert solo["status"] == ("open" if failure == 3 else "closed")

        assert info["policy"]["failure_threshold"] == 3
        last = datetime.fromisoformat(solo["last_failure_time"])
        assert last == datetime.fromtimestamp(EPOCH + 3, tz=timezone.utc)
        assert metric_samples(client)["fleetroute_breaker_state{endpoint=solo-1}"] == 2

        before = state(client)
        refused = client.post("/routing/decide", json=pinned, headers=ROUTER)
        assert refused.status_code == 503
        assert "breaker" in detail(refused)
        assert state(client) == before

        # After the recovery timeout a trial request goes through; its success closes it.
        clocks.wall.advance(31.0)
        trial = client.post("/routing/decide", json=pinned, headers=ROUTER)
        assert trial.status_code == 200, trial.text
        assert trial.json()["circuit_breaker"]["status"] == "half_open"
        ok = client.post(
            "/routing/complete", json={"request_id": trial.json()["request_id"]}, headers=ROUTER
        )
        assert ok.status_code == 200
        info = client.get("/routing/circuit-breaker/status", headers=ROUTER).json()
        assert info["models"]["solo"]["solo-1"]["status"] == "closed"
