"""The routing service's configuration: seed 004's YAML file and environment variables,
validated before the service starts.

Settings come from four places; a higher one wins, per setting:

1. explicit overrides (``load_config(overrides=...)`` or ``ServiceConfig(**sections)``);
2. environment variables, through :data:`ENVIRONMENT_VARIABLES` (seed 004's flat names
   and fleetroute's own ``FLEETROUTE_*`` names, each mapped onto one field);
3. the YAML file (the path given to :func:`load_config`, else ``FLEETROUTE_CONFIG``),
   laid out as seed 004's ``routing-api.yaml``;
4. the defaults, which are seed 004's values (except ``service.host``, which is
   ``127.0.0.1`` so that a default install is not reachable from the network).

Nested sections merge: a file that sets ``service.workers`` and an environment that sets
``ROUTING_API_PORT`` give both. ``ServiceConfig()`` reads neither the environment nor a
file, so code and tests that build one get exactly what they pass plus the defaults;
:func:`load_config` is what reads them.

A wrong value raises :class:`ConfigError` naming the setting as the user wrote it (the
environment variable, the YAML path, or the override path), the bad value and what is
allowed. Unknown keys are errors, so a misspelt setting cannot be silently ignored.

Seed 004's file repeats its ``performance:`` key (cache settings, then memory, CPU and
log level). Plain YAML loaders keep only the last block; this loader merges repeated
keys whose values are both mappings, so the file loads as its author meant, and refuses
a repeated key holding anything else.
"""

from __future__ import annotations

import json
import math
import os
import types
import typing
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import SplitResult, urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from fleetroute.service.url_policy import check_service_url

__all__ = [
    "CONFIG_FILE_VARIABLE",
    "ENVIRONMENT_VARIABLES",
    "AnalyticsSection",
    "ApiKeyConfig",
    "AuthSection",
    "CircuitBreakerSection",
    "ConfigError",
    "CostOptimizationSection",
    "FleetSection",
    "InstanceConfig",
    "LoadBalancingSection",
    "ModelConfig",
    "ModelSpecializationSection",
    "MonitoringSection",
    "PerformanceSection",
    "ProxySection",
    "RedisSection",
    "RoutingSection",
    "ServiceConfig",
    "ServiceRegistration",
    "ServiceSection",
    "SpecializationRule",
    "load_config",
]


class ConfigError(ValueError):
    """The configuration is wrong; the service must not start.

    ``problems`` holds one line per wrong setting, each naming the setting as the user
    wrote it, the value and what is allowed; the message joins them.
    """

    def __init__(self, problems: str | list[str] | tuple[str, ...]) -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems)
        )
        if len(self.problems) == 1:
            message = f"invalid configuration: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {problem}" for problem in self.problems)
            message = f"invalid configuration ({len(self.problems)} problems):\n{lines}"
        super().__init__(message)


#: The environment variable naming the YAML file :func:`load_config` reads when it is
#: given no path.
CONFIG_FILE_VARIABLE: Final = "FLEETROUTE_CONFIG"

#: Every environment variable the service reads, mapped onto the field it sets (a dotted
#: path into :class:`ServiceConfig`). Seed 004's names come first, in its order, then
#: fleetroute's. Two names for one field (``ROUTING_API_PORT`` and ``FLEETROUTE_PORT``;
#: seed 004's ``ROUTING_API_DECISION_TIMEOUT`` and ``ROUTING_DECISION_TIMEOUT``) may both
#: be set only to the same value. Booleans take true/false, 1/0, yes/no or on/off;
#: ``FLEETROUTE_API_KEYS`` takes a JSON list of ``auth.api_keys`` entries. An empty
#: value counts as unset.
ENVIRONMENT_VARIABLES: Final[Mapping[str, str]] = types.MappingProxyType(
    {
        # Seed 004: intelligent routing
        "ROUTING_API_PORT": "service.port",
        "ROUTING_API_MEMORY_GB": "performance.memory_limit_gb",
        "ROUTING_API_CPU_CORES": "performance.cpu_cores",
        "ROUTING_API_DECISION_TIMEOUT": "performance.decision_timeout",
        # Seed 004: load balancing
        "LOAD_BALANCING_ENABLED": "load_balancing.enabled",
        "LOAD_BALANCING_ALGORITHM": "load_balancing.algorithm",
        "LOAD_BALANCING_HEALTH_CHECK_INTERVAL": "load_balancing.health_check_interval",
        "LOAD_BALANCING_FAILURE_THRESHOLD": "load_balancing.failure_threshold",
        # Seed 004: model specialisation
        "MODEL_SPECIALIZATION_ENABLED": "model_specialization.enabled",
        "MODEL_SPECIALIZATION_ANALYSIS_ENABLED": "model_specialization.analysis_enabled",
        "MODEL_SPECIALIZATION_LEARNING_ENABLED": "model_specialization.learning_enabled",
        "MODEL_SPECIALIZATION_UPDATE_INTERVAL": "model_specialization.update_interval",
        # Seed 004: cost optimisation
        "COST_OPTIMIZATION_ENABLED": "cost_optimization.enabled",
        "COST_OPTIMIZATION_BUDGET_LIMIT": "cost_optimization.budget_limit",
        "COST_OPTIMIZATION_PREFERENCE": "cost_optimization.preference",
        "COST_OPTIMIZATION_ANALYSIS_ENABLED": "cost_optimization.analysis_enabled",
        # Seed 004: circuit breaker
        "CIRCUIT_BREAKER_ENABLED": "circuit_breaker.enabled",
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "circuit_breaker.failure_threshold",
        "CIRCUIT_BREAKER_RECOVERY_TIMEOUT": "circuit_breaker.recovery_timeout",
        "CIRCUIT_BREAKER_HALF_OPEN_LIMIT": "circuit_breaker.half_open_limit",
        # Seed 004: performance
        "ROUTING_CACHE_ENABLED": "performance.cache_enabled",
        "ROUTING_CACHE_TTL": "performance.cache_ttl",
        "ROUTING_DECISION_TIMEOUT": "performance.decision_timeout",
        "ROUTING_MAX_RETRIES": "performance.max_retries",
        # Seed 004: external integration (recorded, not used)
        "API_GATEWAY_ENDPOINT": "monitoring.api_gateway_endpoint",
        "SQL_DATABASE_ENDPOINT": "monitoring.sql_database_endpoint",
        "METRICS_SERVER_ENDPOINT": "monitoring.metrics_server_endpoint",
        "CUSTOM_METRICS_ENDPOINT": "monitoring.custom_metrics_endpoint",
        # fleetroute
        "FLEETROUTE_HOST": "service.host",
        "FLEETROUTE_PORT": "service.port",
        "FLEETROUTE_DATABASE_URL": "analytics.database_url",
        "FLEETROUTE_REDIS_URL": "redis.url",
        "FLEETROUTE_AUTH_ENABLED": "auth.enabled",
        "FLEETROUTE_JWT_SECRET": "auth.jwt_secret",
        "FLEETROUTE_API_KEYS": "auth.api_keys",
        "FLEETROUTE_DEMO": "fleet.demo",
        "FLEETROUTE_DEFAULT_STRATEGY": "routing.default_strategy",
        "FLEETROUTE_DECISION_LEASE_S": "routing.decision_lease_s",
    }
)

# The load-balancing algorithms are the Rust core's strategies that need nothing beyond
# the registry (cache_aware and endpoint_picker need request data the config cannot give).
LoadBalancingAlgorithm = Literal[
    "round_robin",
    "least_connections",
    "p2c",
    "random",
    "weighted_round_robin",
    "consistent_hash",
    "peak_ewma",
]
# Seed 002's strategies, as fleetroute.routers.moe_router.MOE_STRATEGIES lists them; named
# here so that reading the configuration does not import the router (and JAX).
RoutingStrategy = Literal[
    "switch", "top_k", "semantic", "tda_aware", "consistent_hash", "power_of_two", "adaptive"
]
CostPreference = Literal["balanced", "cost", "quality", "latency"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Scope = Literal["route", "admin"]
JwtAlgorithm = Literal["HS256", "HS384", "HS512"]
BudgetWindowName = Literal["day", "week", "month"]

#: Seconds in each named budget window; a month is 30 days, because budgets are kept in
#: fixed windows of equal length.
_BUDGET_WINDOWS: Final[Mapping[str, float]] = types.MappingProxyType(
    {"day": 86_400.0, "week": 7 * 86_400.0, "month": 30 * 86_400.0}
)
_API_KEY_HASH_HINT = "'sha256:' followed by 64 lowercase hex digits"
_MASK: Final = "***"
#: Fields whose values never appear in logs or error messages.
_SECRET_FIELDS: Final = frozenset({"jwt_secret", "api_key", "key_hash"})


_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
_FLAG_HINT: Final = "use true/false, 1/0, yes/no or on/off"


def _flag(value: object) -> object:
    """``value`` as a bool if it spells one (see ``_TRUE``/``_FALSE``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean; {_FLAG_HINT}")


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


class _Section(BaseModel):
    """A section of the file: unknown keys are errors, values are final once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_and_numbers_apart(cls, value: object, info: ValidationInfo) -> object:
        # Pydantic would read "t" or "y" as true and true as the number 1; in a config
        # file either is far more likely a mistake than a meaning.
        if info.field_name is None:
            return value
        annotation = _unwrap_optional(cls.model_fields[info.field_name].annotation)
        if annotation is bool:
            return _flag(value)
        if annotation in (int, float) and isinstance(value, bool):
            raise ValueError("must be a number, not true or false")
        return value


def _lower_choice(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _http_url_problem(url: str) -> str | None:
    """Why the service may not call ``url`` (``url_policy``'s rules), or None."""
    try:
        check_service_url(url)
    except ValueError as exc:
        return str(exc)
    return None


def _unique(kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {kind} {name!r}; each must be unique")
        seen.add(name)


class ServiceSection(_Section):
    """``service``: where the HTTP server listens."""

    name: str = Field(default="routing-api", min_length=1)
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=9097, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)


class LoadBalancingSection(_Section):
    """``load_balancing``: the Rust strategy that picks among healthy targets."""

    enabled: bool = True
    algorithm: LoadBalancingAlgorithm = "weighted_round_robin"
    health_check_interval: float = Field(default=30.0, gt=0)
    failure_threshold: int = Field(default=3, ge=1)
    health_check_timeout: float = Field(default=10.0, gt=0)
    health_check_path: str = "/health"

    @field_validator("algorithm", mode="before")
    @classmethod
    def _alias_power_of_two(cls, value: object) -> object:
        # The Rust core calls it p2c; seed 002 and the literature call it power_of_two.
        value = _lower_choice(value)
        return "p2c" if value == "power_of_two" else value

    @field_validator("health_check_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path starting with '/'")
        return value


class SpecializationRule(_Section):
    """One ``model_specialization.specialization_rules`` entry."""

    model: str = Field(min_length=1)
    specializations: list[str] = Field(default_factory=list)


def _seed_specialization_rules() -> list[SpecializationRule]:
    return [
        SpecializationRule(model="mixtral-8x7b", specializations=["general", "coding", "analysis"]),
        SpecializationRule(model="hermes-2", specializations=["conversation", "chat", "dialogue"]),
        SpecializationRule(
            model="openchat-3.5", specializations=["interactive", "real-time", "streaming"]
        ),
        SpecializationRule(
            model="phi-3-mini", specializations=["efficient", "fast", "lightweight"]
        ),
    ]


class ModelSpecializationSection(_Section):
    """``model_specialization``: which model suits which kind of request."""

    enabled: bool = True
    analysis_enabled: bool = True
    learning_enabled: bool = True
    update_interval: float = Field(default=300.0, gt=0)
    specialization_rules: list[SpecializationRule] = Field(
        default_factory=_seed_specialization_rules
    )

    @field_validator("specialization_rules")
    @classmethod
    def _one_rule_per_model(cls, rules: list[SpecializationRule]) -> list[SpecializationRule]:
        _unique("specialization rule for model", [rule.model for rule in rules])
        return rules


def _seed_costs() -> dict[str, float]:
    return {"mixtral-8x7b": 0.02, "hermes-2": 0.015, "openchat-3.5": 0.01, "phi-3-mini": 0.005}


class CostOptimizationSection(_Section):
    """``cost_optimization``: the spend budget and what to trade for it."""

    enabled: bool = True
    budget_limit: float = Field(default=1000.0, ge=0)
    #: "day", "week", "month" (30 days), or a number of seconds.
    budget_window: BudgetWindowName | float = "month"
    preference: CostPreference = "balanced"
    analysis_enabled: bool = True
    cost_per_request: dict[str, float] = Field(default_factory=_seed_costs)

    @field_validator("budget_window", mode="before")
    @classmethod
    def _window(cls, value: object) -> object:
        # Checked here, whole, so that an error names the setting once rather than once
        # per member of the union.
        if isinstance(value, str):
            name = value.strip().lower()
            if name in _BUDGET_WINDOWS:
                return name
            try:
                value = float(name)
            except ValueError:
                raise ValueError(
                    "must be 'day', 'week', 'month' or a number of seconds > 0"
                ) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be 'day', 'week', 'month' or a number of seconds > 0")
        if not (math.isfinite(value) and value > 0):
            raise ValueError("must be a finite number of seconds > 0")
        return float(value)

    @field_validator("preference", mode="before")
    @classmethod
    def _preference(cls, value: object) -> object:
        return _lower_choice(value)

    @field_validator("cost_per_request")
    @classmethod
    def _costs(cls, costs: dict[str, float]) -> dict[str, float]:
        for model, cost in costs.items():
            if not model:
                raise ValueError("model names must not be empty")
            if cost < 0:
                raise ValueError(f"cost of {model!r} must be >= 0 (got {cost!r})")
        return costs

    @property
    def budget_window_s(self) -> float:
        """The budget window in seconds."""
        if isinstance(self.budget_window, str):
            return _BUDGET_WINDOWS[self.budget_window]
        return self.budget_window


class CircuitBreakerSection(_Section):
    """``circuit_breaker``: when a failing target is taken out, and for how long."""

    enabled: bool = True
    failure_threshold: int = Field(default=5, ge=1)
    recovery_timeout: float = Field(default=60.0, gt=0)
    half_open_limit: int = Field(default=3, ge=1)
    timeout: float = Field(default=30.0, gt=0)


class PerformanceSection(_Section):
    """``performance`` (both of seed 004's blocks): caching, time limits, resources."""

    cache_enabled: bool = True
    cache_ttl: float = Field(default=60.0, gt=0)
    decision_timeout: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    memory_limit_gb: float = Field(default=2.0, gt=0)
    cpu_cores: int = Field(default=4, ge=1)
    log_level: LogLevel = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class MonitoringSection(_Section):
    """``monitoring``: seed 004's external endpoints, recorded for operators."""

    api_gateway_endpoint: str | None = None
    sql_database_endpoint: str | None = None
    metrics_server_endpoint: str | None = None
    custom_metrics_endpoint: str | None = None


class RoutingSection(_Section):
    """``routing``: seed 002's strategies and the service's request limits."""

    default_strategy: RoutingStrategy = "adaptive"
    top_k: int = Field(default=2, ge=1)
    max_services: int = Field(default=4096, ge=1)
    #: How long a decision from /api/v1/route holds its load when the client never
    #: reports completion.
    decision_lease_s: float = Field(default=2.0, gt=0)
    max_batch: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)

    @field_validator("default_strategy", mode="before")
    @classmethod
    def _strategy(cls, value: object) -> object:
        return _lower_choice(value)

    @model_validator(mode="after")
    def _top_k_fits(self) -> RoutingSection:
        if self.top_k > self.max_services:
            raise ValueError(
                f"top_k ({self.top_k}) must not exceed max_services ({self.max_services})"
            )
        return self


def _route_scope() -> list[Scope]:
    return ["route"]


def _hs256() -> list[JwtAlgorithm]:
    return ["HS256"]


class ApiKeyConfig(_Section):
    """One API key: its name (the client id), the SHA-256 of the key, and its scopes."""

    name: str = Field(min_length=1)
    key_hash: str
    scopes: list[Scope] = Field(default_factory=_route_scope)

    @field_validator("key_hash")
    @classmethod
    def _hash_form(cls, value: str) -> str:
        digest = value.removeprefix("sha256:")
        if (
            not value.startswith("sha256:")
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
        ):
            # The value is not echoed: a malformed hash is often the key itself.
            raise ValueError(
                f"must be {_API_KEY_HASH_HINT} (the hash of the key, never the key itself)"
            )
        return value


class AuthSection(_Section):
    """``auth``: API keys and JWTs for the routing API."""

    enabled: bool = True
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    jwt_secret: SecretStr | None = None
    jwt_algorithms: list[JwtAlgorithm] = Field(default_factory=_hs256, min_length=1)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    client_rate_limit_per_minute: float = Field(default=60_000.0, gt=0)
    client_burst: float = Field(default=1000.0, gt=0)
    protect_observability: bool = False

    @field_validator("jwt_secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("must not be empty (leave it unset to turn JWTs off)")
        return value

    @field_validator("api_keys")
    @classmethod
    def _distinct_keys(cls, keys: list[ApiKeyConfig]) -> list[ApiKeyConfig]:
        _unique("API key name", [key.name for key in keys])
        owners: dict[str, str] = {}
        for key in keys:
            if key.key_hash in owners:
                raise ValueError(
                    f"API keys {owners[key.key_hash]!r} and {key.name!r} have the same key_hash"
                )
            owners[key.key_hash] = key.name
        return keys


class AnalyticsSection(_Section):
    """``analytics``: where routing decisions are stored (SQLite or PostgreSQL)."""

    database_url: str = "sqlite:///fleetroute-analytics.db"
    batch_size: int = Field(default=500, ge=1)
    flush_interval_s: float = Field(default=1.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        # SQLAlchemy is imported here so that reading a config does not pay for it twice
        # over when the analytics store is not in use.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"is not a SQLAlchemy database URL ({exc})") from None
        # psycopg 3 is the PostgreSQL driver the service ships with; plain and legacy
        # "postgres" spellings mean it.
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        if url.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
            raise ValueError(
                "must be a sqlite:/// or postgresql:// URL "
                "(drivers: sqlite, sqlite+pysqlite, postgresql+psycopg)"
            )
        return url.render_as_string(hide_password=False)


class RedisSection(_Section):
    """``redis``: shared state for several replicas; unset, each keeps its own."""

    url: str | None = None
    retry_interval_s: float = Field(default=5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class ProxySection(_Section):
    """``proxy``: the HTTP client that forwards requests to model instances."""

    connect_timeout_s: float = Field(default=2.0, gt=0)
    read_timeout_s: float = Field(default=60.0, gt=0)
    max_connections: int = Field(default=200, ge=1)
    max_keepalive: int = Field(default=50, ge=0)

    @model_validator(mode="after")
    def _keepalive_fits(self) -> ProxySection:
        if self.max_keepalive > self.max_connections:
            raise ValueError(
                f"max_keepalive ({self.max_keepalive}) must not exceed "
                f"max_connections ({self.max_connections})"
            )
        return self


class ServiceRegistration(_Section):
    """A service registered at start-up: seed 002's registration body."""

    service_id: str = Field(min_length=1)
    service_type: str = "generic"
    endpoint: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    max_capacity: int = Field(gt=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (problem := _http_url_problem(value)) is not None:
            raise ValueError(f"endpoint of service {info.data.get('service_id')!r}: {problem}")
        return value


class InstanceConfig(_Section):
    """One server of a model: where it is and how much it takes."""

    id: str = Field(min_length=1)
    url: str
    capacity: int = Field(default=100, gt=0)
    weight: float = Field(default=1.0, gt=0)
    api_key: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str, info: ValidationInfo) -> str:
        if (problem := _http_url_problem(value)) is not None:
            raise ValueError(f"url of instance {info.data.get('id')!r}: {problem}")
        return value


class ModelConfig(_Section):
    """A model and the instances that serve it."""

    name: str = Field(min_length=1)
    #: None: ``cost_optimization.cost_per_request`` gives the cost.
    cost_per_request: float | None = Field(default=None, ge=0)
    quality: float = Field(default=0.8, ge=0, le=1)
    latency_ms: float = Field(default=500.0, ge=0)
    instances: list[InstanceConfig] = Field(default_factory=list)


class FleetSection(_Section):
    """``fleet``: the targets the service routes to, known at start-up."""

    demo: bool = False
    services: list[ServiceRegistration] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> FleetSection:
        _unique("service_id", [service.service_id for service in self.services])
        _unique("model name", [model.name for model in self.models])
        # Instance ids name routing targets, so they are unique across all models.
        owner: dict[str, str] = {}
        for model in self.models:
            for instance in model.instances:
                if instance.id in owner:
                    raise ValueError(
                        f"duplicate instance id {instance.id!r} (models {owner[instance.id]!r} "
                        f"and {model.name!r}); each instance id must be unique"
                    )
                owner[instance.id] = model.name
        return self


# Loading ---------------------------------------------------------------------------------


@dataclass
class _LoadContext:
    """What one :func:`load_config` call reads, and where each value came from."""

    environ: Mapping[str, str]
    document: Mapping[str, Any]
    file: str | None
    #: Field path -> the environment variable that set it (filled by the source).
    env_paths: dict[tuple[str, ...], str] = field(default_factory=dict)


_CONTEXT: ContextVar[_LoadContext | None] = ContextVar("fleetroute_config_load", default=None)


def _field_annotation(path: tuple[str, ...]) -> Any:
    """The annotation of the field at ``path`` in :class:`ServiceConfig`."""
    model: type[BaseModel] = ServiceConfig
    annotation: Any = None
    for depth, name in enumerate(path):
        annotation = _unwrap_optional(model.model_fields[name].annotation)
        if depth < len(path) - 1:
            model = annotation
    return annotation


def _env_kind(annotation: Any) -> Literal["bool", "json", "secret", "text"]:
    if annotation is bool:
        return "bool"
    if annotation is SecretStr:
        return "secret"
    if typing.get_origin(annotation) in (list, dict) or (
        isinstance(annotation, type) and issubclass(annotation, BaseModel)
    ):
        return "json"
    return "text"


def _comparable(kind: str, value: Any) -> Any:
    """A form of an environment value in which equal settings compare equal."""
    if kind == "text" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


class _EnvironmentTableSource(PydanticBaseSettingsSource):
    """Reads :data:`ENVIRONMENT_VARIABLES` from one environment mapping.

    Booleans and JSON are parsed here, so that a bad value is reported against its
    variable; everything else is left as text for the field's own validation.
    """

    def __init__(self, settings_cls: type[BaseSettings], context: _LoadContext | None) -> None:
        super().__init__(settings_cls)
        self._context = context

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ reads the table, which names nested fields directly.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        context = self._context
        if context is None:
            return {}
        values: dict[str, Any] = {}
        first_setter: dict[tuple[str, ...], tuple[str, str, Any]] = {}
        for name, dotted in ENVIRONMENT_VARIABLES.items():
            raw = context.environ.get(name)
            if raw is None or not raw.strip():
                continue
            path = tuple(dotted.split("."))
            kind = _env_kind(_field_annotation(path))
            value = self._parse(name, kind, raw)
            if path in first_setter:
                other, other_raw, other_value = first_setter[path]
                if _comparable(kind, other_value) != _comparable(kind, value):
                    shown = ("***", "***") if kind == "secret" else (other_raw, raw)
                    raise ConfigError(
                        f"{other}={shown[0]!r} and {name}={shown[1]!r} both set {dotted} and "
                        "disagree; set one of them, or both to the same value"
                    )
                continue
            first_setter[path] = (name, raw, value)
            context.env_paths[path] = name
            target = values
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = value
        return values

    @staticmethod
    def _parse(name: str, kind: str, raw: str) -> Any:
        if kind == "secret":
            return raw
        text = raw.strip()
        if kind == "bool":
            try:
                return _flag(text)
            except ValueError as exc:
                raise ConfigError(f"{name} = {raw!r}: {exc}") from None
        if kind == "json":
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                # The text is not echoed: it may hold key hashes.
                raise ConfigError(
                    f"{name}: not valid JSON ({exc.msg} at line {exc.lineno} column "
                    f"{exc.colno}); it takes a JSON list"
                ) from None
        return text


class _YamlDocumentSource(PydanticBaseSettingsSource):
    """The sections of an already-read YAML document."""

    def __init__(self, settings_cls: type[BaseSettings], context: _LoadContext | None) -> None:
        super().__init__(settings_cls)
        self._document = {} if context is None else context.document

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._document.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        # A section left empty (every entry commented out) reads as null: it means
        # "the defaults", not "no section allowed".
        return {key: value for key, value in self._document.items() if value is not None}


class ServiceConfig(BaseSettings):
    """The routing service's whole configuration: seed 004's sections, then fleetroute's.

    ``ServiceConfig(**sections)`` takes sections as mappings or section objects and
    reads no environment or file; :func:`load_config` reads both. Invalid values raise
    :class:`ConfigError`.
    """

    model_config = SettingsConfigDict(extra="forbid", frozen=True, validate_default=True)

    service: ServiceSection = Field(default_factory=ServiceSection)
    load_balancing: LoadBalancingSection = Field(default_factory=LoadBalancingSection)
    model_specialization: ModelSpecializationSection = Field(
        default_factory=ModelSpecializationSection
    )
    cost_optimization: CostOptimizationSection = Field(default_factory=CostOptimizationSection)
    circuit_breaker: CircuitBreakerSection = Field(default_factory=CircuitBreakerSection)
    performance: PerformanceSection = Field(default_factory=PerformanceSection)
    monitoring: MonitoringSection = Field(default_factory=MonitoringSection)
    routing: RoutingSection = Field(default_factory=RoutingSection)
    auth: AuthSection = Field(default_factory=AuthSection)
    analytics: AnalyticsSection = Field(default_factory=AnalyticsSection)
    redis: RedisSection = Field(default_factory=RedisSection)
    proxy: ProxySection = Field(default_factory=ProxySection)
    fleet: FleetSection = Field(default_factory=FleetSection)

    def __init__(self, **values: Any) -> None:
        context = _CONTEXT.get()
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(exc, values, context) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest first: overrides, then the environment table, then the YAML file.
        context = _CONTEXT.get()
        return (
            init_settings,
            _EnvironmentTableSource(settings_cls, context),
            _YamlDocumentSource(settings_cls, context),
        )

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data for logs: secrets, key hashes and passwords
        in URLs are shown as ``"***"``."""
        return typing.cast(dict[str, Any], _redact(self))


def _mask_url_password(text: str) -> str:
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password:
        return text
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    masked = SplitResult(
        parts.scheme, f"{user}:{_MASK}@{hostinfo}", parts.path, parts.query, parts.fragment
    )
    return masked.geturl()


def _redact(value: Any, name: str = "") -> Any:
    if isinstance(value, SecretStr):
        return _MASK
    if name in _SECRET_FIELDS and value is not None:
        return _MASK
    if isinstance(value, BaseModel):
        return {key: _redact(getattr(value, key), key) for key in type(value).model_fields}
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, str):
        return _mask_url_password(value)
    return value


# Errors ----------------------------------------------------------------------------------


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "configuration"


def _holds(data: Any, loc: tuple[str | int, ...]) -> bool:
    """Whether ``data`` (nested mappings and lists) gave the value at ``loc``."""
    current = data
    for part in loc:
        if isinstance(current, Mapping):
            if part not in current:
                return False
            current = current[part]
        elif isinstance(current, list):
            if not isinstance(part, int) or not 0 <= part < len(current):
                return False
            current = current[part]
        else:
            # A whole object (a section model) was given at a shorter path.
            return True
    return True


def _where(
    loc: tuple[str | int, ...],
    overrides: Mapping[str, Any],
    context: _LoadContext | None,
    missing: bool = False,
) -> str:
    """The setting at ``loc`` named as the user wrote it: override, variable or file.

    A ``missing`` setting is named after whoever wrote the mapping that lacks it."""
    given = loc[:-1] if missing else loc
    if _holds(overrides, given):
        return f"{_dotted(loc)} (override)" if context is not None else _dotted(loc)
    if context is not None:
        for length in range(len(loc), 0, -1):
            variable = context.env_paths.get(typing.cast(tuple[str, ...], loc[:length]))
            if variable is not None:
                rest = _dotted(loc[length:]) if length < len(loc) else ""
                if rest and not rest.startswith("["):
                    rest = "." + rest
                return variable + rest
        if context.file is not None and _holds(context.document, given):
            return f"{_dotted(loc)} in {context.file}"
    return _dotted(loc)


def _secret_loc(loc: tuple[str | int, ...]) -> bool:
    return any(part in _SECRET_FIELDS or part == "api_keys" for part in loc)


def _known_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The keys allowed in the mapping that holds ``loc``."""
    model: Any = ServiceConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        annotation = _unwrap_optional(model.model_fields[part].annotation)
        while typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
        model = annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _problems(
    exc: ValidationError, overrides: Mapping[str, Any], context: _LoadContext | None
) -> Iterator[str]:
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        where = _where(loc, overrides, context, missing=error["type"] == "missing")
        if error["type"] == "extra_forbidden":
            known = ", ".join(_known_keys(loc))
            yield f"{where}: unknown setting {loc[-1]!r}; known: {known}"
            continue
        message = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        if isinstance(value, str | int | float | bool) and not _secret_loc(loc):
            shown = _mask_url_password(value) if isinstance(value, str) else value
            yield f"{where} = {shown!r}: {message}"
        else:
            yield f"{where}: {message}"


def _config_error(
    exc: ValidationError, overrides: Mapping[str, Any], context: _LoadContext | None
) -> ConfigError:
    return ConfigError(list(_problems(exc, overrides, context)))


# YAML ------------------------------------------------------------------------------------

_MAP_TAG: Final = "tag:yaml.org,2002:map"
_SEQ_TAG: Final = "tag:yaml.org,2002:seq"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader; :func:`_construct` builds mappings itself."""


def _construct(loader: _Loader, node: yaml.Node, path: tuple[Any, ...], file: str) -> Any:
    if isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG:
        return _construct_mapping(loader, node, path, file)
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
        return [
            _construct(loader, item, (*path, index), file) for index, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _construct_mapping(
    loader: _Loader, node: yaml.MappingNode, path: tuple[Any, ...], file: str
) -> dict[Any, Any]:
    own_count = sum(1 for key, _ in node.value if key.tag != _MERGE_TAG)
    loader.flatten_mapping(node)  # YAML merge keys ("<<: *anchor") become leading pairs
    inherited = node.value[: len(node.value) - own_count]
    own = node.value[len(node.value) - own_count :]
    result: dict[Any, Any] = {}
    for key_node, value_node in inherited:  # explicit keys override merged ones
        key = loader.construct_object(key_node, deep=True)
        result[key] = _construct(loader, value_node, (*path, key), file)
    groups: dict[Any, list[tuple[yaml.Node, yaml.Node]]] = {}
    for key_node, value_node in own:
        key = loader.construct_object(key_node, deep=True)
        try:
            groups.setdefault(key, []).append((key_node, value_node))
        except TypeError:
            raise ConfigError(
                f"{file}: line {_line(key_node)}: a key must be a scalar, not {key!r}"
            ) from None
    for key, pairs in groups.items():
        if len(pairs) == 1:
            value_node = pairs[0][1]
        elif all(
            isinstance(value, yaml.MappingNode) and value.tag == _MAP_TAG for _, value in pairs
        ):
            # A repeated section (seed 004's two "performance:" blocks) is one section;
            # its entries are merged and checked for repeats like any other mapping.
            value_node = yaml.MappingNode(
                _MAP_TAG,
                [pair for _, value in pairs for pair in value.value],
                pairs[0][1].start_mark,
                pairs[-1][1].end_mark,
            )
        else:
            lines = " and ".join(str(_line(key_node)) for key_node, _ in pairs)
            raise ConfigError(
                f"{file}: {_dotted((*path, key))} is set more than once (lines {lines}); "
                "only a repeated section (a mapping) may be written twice, and is merged"
            )
        result[key] = _construct(loader, value_node, (*path, key), file)
    return result


def _read_yaml(path: str | os.PathLike[str], origin: str) -> dict[str, Any]:
    """The top-level mapping of the YAML file at ``path``; ``origin`` says who named it."""
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"configuration file {file!r}{origin} cannot be read: {reason}") from None
    loader = _Loader(text)
    loader.name = file  # YAML's messages name the file rather than "<unicode string>"
    try:
        root = loader.get_single_node()
        document = {} if root is None else _construct(loader, root, (), file)
    except RecursionError:
        raise ConfigError(f"{file}: an alias refers to itself") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(document, dict):
        raise ConfigError(
            f"{file}: the top level must be a mapping of sections (got {type(document).__name__})"
        )
    for key in document:
        if not isinstance(key, str):
            raise ConfigError(f"{file}: section names must be strings (got {key!r})")
    return document


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServiceConfig:
    """The service configuration from ``overrides`` > ``environ`` > the YAML file at
    ``path`` > the defaults.

    ``environ`` defaults to ``os.environ``; ``path`` to ``FLEETROUTE_CONFIG`` when that is
    set (no file otherwise); ``overrides`` is nested by section, e.g.
    ``{"service": {"port": 8080}}``. Raises :class:`ConfigError`.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    origin = ""
    if path is None and env.get(CONFIG_FILE_VARIABLE, "").strip():
        path = env[CONFIG_FILE_VARIABLE].strip()
        origin = f" (from {CONFIG_FILE_VARIABLE})"
    document = {} if path is None else _read_yaml(path, origin)
    context = _LoadContext(
        environ=env, document=document, file=None if path is None else os.fspath(path)
    )
    token = _CONTEXT.set(context)
    try:
        return ServiceConfig(**dict(overrides or {}))
    finally:
        _CONTEXT.reset(token)
