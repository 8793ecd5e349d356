"""Pydantic models of every request and response body of the HTTP API.

Request models forbid unknown fields and bound every size, so a malformed or oversized
body is a 422 that names the field, never a 500. Response models make the OpenAPI
document say what the service really returns.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleetroute.routers.moe_router import MOE_STRATEGIES

__all__ = [
    "BatchRouteRequest",
    "BatchRouteResponse",
    "BreakerInfo",
    "BreakerStatusResponse",
    "CompleteRequest",
    "CompleteResponse",
    "DecideRequest",
    "DecisionResponse",
    "ErrorResponse",
    "HealthResponse",
    "LoadBalancingInfo",
    "LoadResponse",
    "ModelSelection",
    "OpenAIError",
    "RebalanceResponse",
    "RouteRequest",
    "RouteResponse",
    "ServiceInfo",
    "ServiceList",
    "ServiceRegistration",
    "StatusResponse",
    "StrategyOverride",
    "StrategyOverrideResponse",
    "TestRequest",
    "TestResponse",
    "TestScenario",
]

Strategy = Literal[
    "switch", "top_k", "semantic", "tda_aware", "consistent_hash", "power_of_two", "adaptive"
]
assert set(Strategy.__args__) == set(MOE_STRATEGIES)  # type: ignore[attr-defined]

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_MAX_TEXT = 1_000_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorResponse(BaseModel):
    """Every error: what was wrong."""

    detail: Any


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class OpenAIError(BaseModel):
    """The proxy's errors, in OpenAI's shape, which OpenAI SDKs parse."""

    error: OpenAIErrorBody


# -- seed 002 ----------------------------------------------------------------------------


class RouteRequest(_Body):
    """``POST /api/v1/route``: seed 002's request (``type``, ``data``, ``priority``,
    ``complexity``; optionally ``capabilities`` and a consistent-hash ``key``)."""

    data: dict[str, Any] = Field(description="the request to route")
    routing_strategy: Strategy | None = Field(
        default=None, description="a strategy for this request; default: the service's"
    )
    top_k: int | None = Field(default=None, ge=1, le=64, description="services for top_k")


class ServiceRef(BaseModel):
    service_id: str
    endpoint: str | None


class RouteResponse(BaseModel):
    request_id: str = Field(description="pass to /api/v1/route/complete when it ends")
    selected_services: list[str]
    services: list[ServiceRef]
    routing_strategy: str
    latency_ms: float = Field(description="decision time inside the service")
    lease_expires_in_s: float = Field(
        description="the selected services' load is returned after this unless completed"
    )


class BatchRouteRequest(_Body):
    requests: list[dict[str, Any]] = Field(min_length=1, description="requests to route")
    routing_strategy: Strategy | None = None


class BatchRouteResponse(BaseModel):
    results: list[RouteResponse]
    total: int
    routed: int
    latency_ms: float


class CompleteRequest(_Body):
    """Reports the end of a routed request, returning its load early."""

    request_id: str = Field(min_length=1, max_length=64)
    success: bool = True
    latency_ms: float | None = Field(default=None, ge=0, le=86_400_000)
    cost_actual: float | None = Field(default=None, ge=0, le=1e9)


class CompleteResponse(BaseModel):
    request_id: str
    status: Literal["completed", "failed"]


class StrategyOverride(_Body):
    strategy: Strategy


class StrategyOverrideResponse(BaseModel):
    previous: str
    strategy: str


class ServiceRegistration(_Body):
    """Seed 002's registration body."""

    service_id: str = Field(pattern=_ID_PATTERN)
    service_type: str = Field(default="generic", min_length=1, max_length=64)
    endpoint: str | None = Field(default=None, max_length=2048)
    capabilities: list[str] = Field(default_factory=list, max_length=64)
    max_capacity: int = Field(default=100, ge=1, le=1_000_000)

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, value: list[str]) -> list[str]:
        for capability in value:
            if not 1 <= len(capability) <= 64:
                raise ValueError(f"capability {capability[:80]!r} must be 1 to 64 characters")
        return value


class ServiceInfo(BaseModel):
    service_id: str
    service_type: str
    endpoint: str | None
    capabilities: list[str]
    max_capacity: int
    current_load: int


class ServiceList(BaseModel):
    services: list[ServiceInfo]
    total: int


class RebalanceResponse(BaseModel):
    released_leases: int
    open_leases: int
    load_balance_score_before: float
    load_balance_score_after: float
    services: dict[str, int]


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded"]
    service: str
    load_balancing: bool
    circuit_breaker: bool
    timestamp: str
    shared_state: str = Field(description="redis, local, or degraded (Redis unreachable)")
    analytics: str = Field(description="the analytics store's backend")
    services: int
    models: int
    instances: int
    open_leases: int


# -- seed 004 ----------------------------------------------------------------------------


class DecideRequest(_Body):
    """``POST /routing/decide``: seed 004's request."""

    request_type: str = Field(default="chat_completion", min_length=1, max_length=64)
    content: str = Field(default="", max_length=_MAX_TEXT)
    budget: float | None = Field(default=None, ge=0, le=1e9, description="max cost per request")
    model: str | None = Field(default=None, max_length=128, description="pin a model")


class ModelSelection(BaseModel):
    selected_model: str
    confidence_score: float
    reasoning: str
    cost_estimate: float
    task: str


class LoadBalancingInfo(BaseModel):
    target_instance: str
    load_factor: float
    health_status: Literal["healthy", "unhealthy"]
    algorithm: str


class BreakerInfo(BaseModel):
    status: Literal["closed", "open", "half_open"]
    failure_count: int
    #: ISO 8601; absent until the first failure (seed 004 types it as a string).
    last_failure_time: str | None = None


class DecisionResponse(BaseModel):
    """Seed 004's routing decision schema."""

    request_id: str
    model_selection: ModelSelection
    load_balancing: LoadBalancingInfo
    circuit_breaker: BreakerInfo
    decision_latency_ms: float
    lease_expires_in_s: float


class TestScenario(_Body):
    type: str = Field(min_length=1, max_length=64)
    content: str = Field(default="", max_length=_MAX_TEXT)
    budget: float | None = Field(default=None, ge=0, le=1e9)


class TestRequest(_Body):
    test_scenarios: list[TestScenario] = Field(min_length=1, max_length=100)


class TestResult(BaseModel):
    scenario: TestScenario
    selected_model: str | None
    task: str | None
    specialised: bool
    within_budget: bool
    target_instance: str | None
    reasoning: str


class TestResponse(BaseModel):
    results: list[TestResult]
    passed: int
    total: int


class StatusResponse(BaseModel):
    service: str
    version: str
    uptime_s: float
    load_balancing: dict[str, Any]
    model_specialization: dict[str, Any]
    cost_optimization: dict[str, Any]
    circuit_breaker: dict[str, Any]
    routing: dict[str, Any]
    models: list[str]


class LoadResponse(BaseModel):
    models: dict[str, dict[str, Any]]
    services: dict[str, dict[str, Any]]
    load_balance_score: float


class BreakerStatusResponse(BaseModel):
    enabled: bool
    policy: dict[str, Any]
    models: dict[str, dict[str, BreakerInfo]]
