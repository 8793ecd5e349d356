"""The service configuration: defaults, seed 004's file and variables, precedence, and
an error naming the setting for every kind of wrong value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetroute.service.config import (
    ENVIRONMENT_VARIABLES,
    ConfigError,
    CostOptimizationSection,
    ServiceConfig,
    ServiceSection,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]

# Seed 004's routing-api.yaml as the seed writes it, the second "performance:" included
# (its whitespace-only lines are left empty here; YAML reads them alike).
SEED_004_YAML = (REPO / "tests" / "data" / "seed004_routing_api.yaml").read_text(encoding="utf-8")

# Seed 004's .env block, as written.
SEED_004_ENV = {
    "ROUTING_API_PORT": "9097",
    "ROUTING_API_MEMORY_GB": "2",
    "ROUTING_API_CPU_CORES": "4",
    "ROUTING_API_DECISION_TIMEOUT": "5",
    "LOAD_BALANCING_ENABLED": "true",
    "LOAD_BALANCING_ALGORITHM": "weighted_round_robin",
    "LOAD_BALANCING_HEALTH_CHECK_INTERVAL": "30",
    "LOAD_BALANCING_FAILURE_THRESHOLD": "3",
    "MODEL_SPECIALIZATION_ENABLED": "true",
    "MODEL_SPECIALIZATION_ANALYSIS_ENABLED": "true",
    "MODEL_SPECIALIZATION_LEARNING_ENABLED": "true",
    "MODEL_SPECIALIZATION_UPDATE_INTERVAL": "300",
    "COST_OPTIMIZATION_ENABLED": "true",
    "COST_OPTIMIZATION_BUDGET_LIMIT": "1000",
    "COST_OPTIMIZATION_PREFERENCE": "balanced",
    "COST_OPTIMIZATION_ANALYSIS_ENABLED": "true",
    "CIRCUIT_BREAKER_ENABLED": "true",
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "5",
    "CIRCUIT_BREAKER_RECOVERY_TIMEOUT": "60",
    "CIRCUIT_BREAKER_HALF_OPEN_LIMIT": "3",
    "ROUTING_CACHE_ENABLED": "true",
    "ROUTING_CACHE_TTL": "60",
    "ROUTING_DECISION_TIMEOUT": "5",
    "ROUTING_MAX_RETRIES": "3",
    "API_GATEWAY_ENDPOINT": "http://192.168.10.29:8000",
    "SQL_DATABASE_ENDPOINT": "192.168.10.35:5432",
    "METRICS_SERVER_ENDPOINT": "http://192.168.10.37:9090",
    "CUSTOM_METRICS_ENDPOINT": "http://192.168.10.29:9091",
}

HASH_A = "sha256:" + "a" * 64
HASH_B = "sha256:" + "b" * 64


def at(config: ServiceConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing-api.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(**kwargs)
    return str(caught.value)


# Defaults --------------------------------------------------------------------------------


def test_defaults_are_seed_004s_values() -> None:
    config = load_config(environ={})
    assert config == ServiceConfig()
    assert (config.service.name, config.service.host, config.service.port) == (
        "routing-api",
        "127.0.0.1",
        9097,
    )
    assert config.service.workers == 1
    assert config.load_balancing.algorithm == "weighted_round_robin"
    assert config.load_balancing.health_check_interval == 30
    assert config.load_balancing.health_check_path == "/health"
    assert [rule.model for rule in config.model_specialization.specialization_rules] == [
        "mixtral-8x7b",
        "hermes-2",
        "openchat-3.5",
        "phi-3-mini",
    ]
    assert config.model_specialization.specialization_rules[1].specializations == [
        "conversation",
        "chat",
        "dialogue",
    ]
    assert config.cost_optimization.cost_per_request == {
        "mixtral-8x7b": 0.02,
        "hermes-2": 0.015,
        "openchat-3.5": 0.01,
        "phi-3-mini": 0.005,
    }
    assert config.cost_optimization.budget_window == "month"
    assert config.cost_optimization.budget_window_s == 30 * 86_400
    assert (config.circuit_breaker.failure_threshold, config.circuit_breaker.timeout) == (5, 30)
    assert (config.performance.memory_limit_gb, config.performance.log_level) == (2, "INFO")
    assert config.routing.default_strategy == "adaptive"
    assert config.routing.decision_lease_s == 2.0
    assert config.routing.max_body_bytes == 10 * 1024 * 1024
    assert config.auth.enabled and config.auth.api_keys == [] and config.auth.jwt_secret is None
    assert config.auth.jwt_algorithms == ["HS256"]
    assert config.analytics.database_url == "sqlite:///fleetroute-analytics.db"
    assert config.redis.url is None
    assert config.fleet.demo is False and config.fleet.models == []


def test_the_config_is_immutable() -> None:
    config = ServiceConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.service.port = 1


def test_strategy_names_match_the_routers() -> None:
    from typing import get_args

    from fleetroute._native import STRATEGIES
    from fleetroute.routers.moe_router import MOE_STRATEGIES
    from fleetroute.service.config import LoadBalancingSection, RoutingSection

    algorithms = get_args(LoadBalancingSection.model_fields["algorithm"].annotation)
    assert set(algorithms) <= set(STRATEGIES)
    strategies = get_args(RoutingSection.model_fields["default_strategy"].annotation)
    assert strategies == MOE_STRATEGIES


# Seed 004's file -------------------------------------------------------------------------


def test_seed_004_yaml_loads_with_both_performance_blocks(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SEED_004_YAML), environ={})
    assert (config.service.host, config.service.workers) == ("0.0.0.0", 2)
    assert config.monitoring.sql_database_endpoint == "192.168.10.35:5432"
    assert config.monitoring.metrics_server_endpoint == "http://192.168.10.37:9090"
    assert config.model_specialization.specialization_rules[2].specializations == [
        "interactive",
        "real-time",
        "streaming",
    ]
    # The seed's values are the defaults; changed values show that both halves are read.
    changed = (
        SEED_004_YAML.replace("cache_ttl: 60", "cache_ttl: 61")
        .replace("max_retries: 3", "max_retries: 4")
        .replace("cpu_cores: 4", "cpu_cores: 8")
        .replace("log_level: INFO", "log_level: debug")
    )
    performance = load_config(write(tmp_path, changed), environ={}).performance
    assert (performance.cache_ttl, performance.max_retries) == (61, 4)
    assert (performance.cpu_cores, performance.log_level) == (8, "DEBUG")


def test_example_config_file_loads() -> None:
    config = load_config(REPO / "config" / "routing-api.yaml", environ={})
    assert config.service.host == "127.0.0.1"
    assert config.service.workers == 2
    assert config.monitoring.api_gateway_endpoint == "http://192.168.10.29:8000"


def test_example_config_commented_sections_load(tmp_path: Path) -> None:
    # The commented fleetroute sections are documentation; uncommented they must load.
    text = (REPO / "config" / "routing-api.yaml").read_text(encoding="utf-8")
    head, marker, tail = text.partition("\n# routing:\n")
    assert marker
    lines = [head]
    for line in (marker + tail).splitlines():
        line = line[2:] if line.startswith("# ") else line.removeprefix("#")
        if not line.lstrip().startswith("##"):
            lines.append(line)
    config = load_config(write(tmp_path, "\n".join(lines)), environ={})
    assert config.routing.default_strategy == "adaptive"
    assert config.auth.api_keys[0].name == "example-client"
    assert config.redis.url == "redis://127.0.0.1:6379/0"
    assert [model.name for model in config.fleet.models] == ["hermes-2", "phi-3-mini"]
    assert config.fleet.models[0].instances[1].weight == 0.5
    assert config.fleet.services[0].service_id == "custom_processor"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "service:\n  port: 8123\n")
    assert load_config(environ={"FLEETROUTE_CONFIG": str(path)}).service.port == 8123
    message = config_error(environ={"FLEETROUTE_CONFIG": str(tmp_path / "missing.yaml")})
    assert "missing.yaml" in message and "FLEETROUTE_CONFIG" in message


def test_empty_file_and_empty_sections_give_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), environ={}) == ServiceConfig()
    assert load_config(write(tmp_path, "auth:\nfleet:\n"), environ={}) == ServiceConfig()


def test_yaml_merge_keys_are_honoured(tmp_path: Path) -> None:
    text = (
        "fleet:\n  models:\n    - name: m\n      instances:\n"
        "        - &base {id: a, url: 'http://h:1', capacity: 7}\n"
        "        - {<<: *base, id: b}\n"
    )
    instances = load_config(write(tmp_path, text), environ={}).fleet.models[0].instances
    assert [(i.id, i.capacity) for i in instances] == [("a", 7), ("b", 7)]


# Environment -----------------------------------------------------------------------------

# (variable, value, field, expected): each value differs from the default.
SEED_004_VARIABLES = [
    ("ROUTING_API_PORT", "9197", "service.port", 9197),
    ("ROUTING_API_MEMORY_GB", "3", "performance.memory_limit_gb", 3.0),
    ("ROUTING_API_CPU_CORES", "8", "performance.cpu_cores", 8),
    ("ROUTING_API_DECISION_TIMEOUT", "7", "performance.decision_timeout", 7.0),
    ("LOAD_BALANCING_ENABLED", "false", "load_balancing.enabled", False),
    (
        "LOAD_BALANCING_ALGORITHM",
        "least_connections",
        "load_balancing.algorithm",
        "least_connections",
    ),
    ("LOAD_BALANCING_HEALTH_CHECK_INTERVAL", "15", "load_balancing.health_check_interval", 15.0),
    ("LOAD_BALANCING_FAILURE_THRESHOLD", "6", "load_balancing.failure_threshold", 6),
    ("MODEL_SPECIALIZATION_ENABLED", "no", "model_specialization.enabled", False),
    ("MODEL_SPECIALIZATION_ANALYSIS_ENABLED", "0", "model_specialization.analysis_enabled", False),
    (
        "MODEL_SPECIALIZATION_LEARNING_ENABLED",
        "OFF",
        "model_specialization.learning_enabled",
        False,
    ),
    ("MODEL_SPECIALIZATION_UPDATE_INTERVAL", "600", "model_specialization.update_interval", 600.0),
    ("COST_OPTIMIZATION_ENABLED", "False", "cost_optimization.enabled", False),
    ("COST_OPTIMIZATION_BUDGET_LIMIT", "250.5", "cost_optimization.budget_limit", 250.5),
    ("COST_OPTIMIZATION_PREFERENCE", "quality", "cost_optimization.preference", "quality"),
    ("COST_OPTIMIZATION_ANALYSIS_ENABLED", "false", "cost_optimization.analysis_enabled", False),
    ("CIRCUIT_BREAKER_ENABLED", "false", "circuit_breaker.enabled", False),
    ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "9", "circuit_breaker.failure_threshold", 9),
    ("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "120", "circuit_breaker.recovery_timeout", 120.0),
    ("CIRCUIT_BREAKER_HALF_OPEN_LIMIT", "1", "circuit_breaker.half_open_limit", 1),
    ("ROUTING_CACHE_ENABLED", "false", "performance.cache_enabled", False),
    ("ROUTING_CACHE_TTL", "5", "performance.cache_ttl", 5.0),
    ("ROUTING_DECISION_TIMEOUT", "2.5", "performance.decision_timeout", 2.5),
    ("ROUTING_MAX_RETRIES", "0", "performance.max_retries", 0),
    ("API_GATEWAY_ENDPOINT", "http://gw:8000", "monitoring.api_gateway_endpoint", "http://gw:8000"),
    ("SQL_DATABASE_ENDPOINT", "db:5432", "monitoring.sql_database_endpoint", "db:5432"),
    (
        "METRICS_SERVER_ENDPOINT",
        "http://m:9090",
        "monitoring.metrics_server_endpoint",
        "http://m:9090",
    ),
    (
        "CUSTOM_METRICS_ENDPOINT",
        "http://c:9091",
        "monitoring.custom_metrics_endpoint",
        "http://c:9091",
    ),
]

FLEETROUTE_VARIABLES = [
    ("FLEETROUTE_HOST", "0.0.0.0", "service.host", "0.0.0.0"),
    ("FLEETROUTE_PORT", "8080", "service.port", 8080),
    (
        "FLEETROUTE_DATABASE_URL",
        "postgres://u@db/r",
        "analytics.database_url",
        "postgresql+psycopg://u@db/r",
    ),
    ("FLEETROUTE_REDIS_URL", "redis://r:6379/0", "redis.url", "redis://r:6379/0"),
    ("FLEETROUTE_AUTH_ENABLED", "off", "auth.enabled", False),
    ("FLEETROUTE_DEMO", "yes", "fleet.demo", True),
    ("FLEETROUTE_DEFAULT_STRATEGY", "top_k", "routing.default_strategy", "top_k"),
    ("FLEETROUTE_DECISION_LEASE_S", "0.5", "routing.decision_lease_s", 0.5),
]


@pytest.mark.parametrize(
    ("variable", "value", "dotted", "expected"), SEED_004_VARIABLES + FLEETROUTE_VARIABLES
)
def test_each_variable_lands_on_its_field(
    variable: str, value: str, dotted: str, expected: Any
) -> None:
    assert ENVIRONMENT_VARIABLES[variable] == dotted
    config = load_config(environ={variable: value})
    assert at(config, dotted) == expected
    assert at(ServiceConfig(), dotted) != expected


def test_every_seed_004_variable_is_in_the_table() -> None:
    assert set(SEED_004_ENV) == {name for name, *_ in SEED_004_VARIABLES}
    assert set(SEED_004_ENV) <= set(ENVIRONMENT_VARIABLES)
    config = ServiceConfig()
    for dotted in ENVIRONMENT_VARIABLES.values():
        at(config, dotted)  # every entry names a field


def test_seed_004_env_block_loads() -> None:
    config = load_config(environ=SEED_004_ENV)
    assert config.monitoring.api_gateway_endpoint == "http://192.168.10.29:8000"
    assert config.performance.decision_timeout == 5
    assert config.redacted()["service"] == ServiceConfig().redacted()["service"]


def test_secret_and_json_variables() -> None:
    keys = [{"name": "ops", "key_hash": HASH_A, "scopes": ["route", "admin"]}]
    config = load_config(
        environ={"FLEETROUTE_JWT_SECRET": "s3cret", "FLEETROUTE_API_KEYS": json.dumps(keys)}
    )
    assert config.auth.jwt_secret is not None
    assert config.auth.jwt_secret.get_secret_value() == "s3cret"
    assert config.auth.api_keys[0].scopes == ["route", "admin"]


def test_unrelated_and_empty_variables_are_ignored() -> None:
    assert load_config(environ={"PATH": "/bin", "ROUTING_API_PORT": ""}) == ServiceConfig()


def test_aliases_agreeing_are_accepted() -> None:
    environ = {"ROUTING_API_PORT": "9000", "FLEETROUTE_PORT": "9000"}
    assert load_config(environ=environ).service.port == 9000
    environ = {"ROUTING_API_DECISION_TIMEOUT": "5", "ROUTING_DECISION_TIMEOUT": "5.0"}
    assert load_config(environ=environ).performance.decision_timeout == 5


# Precedence ------------------------------------------------------------------------------


def test_precedence_overrides_then_environment_then_file_then_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "service:\n  port: 1000\n  workers: 3\n")
    environ = {"ROUTING_API_PORT": "2000"}
    overrides = {"service": {"port": 3000}}
    assert load_config(path, environ=environ, overrides=overrides).service.port == 3000
    config = load_config(path, environ=environ)
    assert (config.service.port, config.service.workers) == (2000, 3)  # sections merge
    assert load_config(path, environ={}).service.port == 1000
    assert load_config(environ={}).service.port == 9097


def test_override_with_a_section_object_replaces_the_section(tmp_path: Path) -> None:
    path = write(tmp_path, "service:\n  workers: 3\n")
    config = load_config(path, environ={}, overrides={"service": ServiceSection(port=4000)})
    assert (config.service.port, config.service.workers) == (4000, 1)


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOAD_BALANCING_ALGORITHM", "power_of_two")
    assert load_config().load_balancing.algorithm == "p2c"  # the Rust core's name
    assert ServiceConfig().load_balancing.algorithm == "weighted_round_robin"


def test_budget_window() -> None:
    assert CostOptimizationSection(budget_window="week").budget_window_s == 7 * 86_400
    assert (
        CostOptimizationSection.model_validate({"budget_window": "Day"}).budget_window_s == 86_400
    )
    assert CostOptimizationSection(budget_window=3600).budget_window_s == 3600.0
    assert CostOptimizationSection.model_validate({"budget_window": "90"}).budget_window_s == 90.0


# Errors ----------------------------------------------------------------------------------


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ConfigError, match=r"service\.port"):
        ServiceConfig(service={"port": 0})


def one_key(**entry: Any) -> str:
    return json.dumps([{"name": "x", "key_hash": HASH_A, **entry}])


# (environment, parts of the message): the variable, the value, what is allowed.
BAD_ENVIRONMENTS: list[tuple[dict[str, str], list[str]]] = [
    ({"LOAD_BALANCING_ALGORITHM": "fastest"}, ["LOAD_BALANCING_ALGORITHM", "'fastest'", "'p2c'"]),
    ({"LOAD_BALANCING_ENABLED": "maybe"}, ["LOAD_BALANCING_ENABLED", "'maybe'", "on/off"]),
    ({"CIRCUIT_BREAKER_ENABLED": "t"}, ["CIRCUIT_BREAKER_ENABLED", "'t'", "true/false"]),
    ({"ROUTING_API_PORT": "70000"}, ["ROUTING_API_PORT", "70000", "65535"]),
    ({"FLEETROUTE_PORT": "http"}, ["FLEETROUTE_PORT", "'http'", "valid integer"]),
    (
        {"ROUTING_API_PORT": "9097", "FLEETROUTE_PORT": "8080"},
        ["ROUTING_API_PORT='9097'", "FLEETROUTE_PORT='8080'", "disagree"],
    ),
    (
        {"ROUTING_API_DECISION_TIMEOUT": "5", "ROUTING_DECISION_TIMEOUT": "6"},
        ["ROUTING_API_DECISION_TIMEOUT", "ROUTING_DECISION_TIMEOUT", "disagree"],
    ),
    (
        {"COST_OPTIMIZATION_BUDGET_LIMIT": "-1"},
        ["COST_OPTIMIZATION_BUDGET_LIMIT", "'-1'", "greater than or equal to 0"],
    ),
    ({"COST_OPTIMIZATION_PREFERENCE": "cheap"}, ["COST_OPTIMIZATION_PREFERENCE", "'latency'"]),
    ({"ROUTING_CACHE_TTL": "nan"}, ["ROUTING_CACHE_TTL", "'nan'", "finite"]),
    ({"FLEETROUTE_DEFAULT_STRATEGY": "p2c"}, ["FLEETROUTE_DEFAULT_STRATEGY", "'power_of_two'"]),
    ({"FLEETROUTE_DECISION_LEASE_S": "0"}, ["FLEETROUTE_DECISION_LEASE_S", "greater than 0"]),
    ({"FLEETROUTE_DATABASE_URL": "mysql://u@h/d"}, ["FLEETROUTE_DATABASE_URL", "postgresql://"]),
    ({"FLEETROUTE_DATABASE_URL": "not a url"}, ["FLEETROUTE_DATABASE_URL", "not a SQLAlchemy"]),
    ({"FLEETROUTE_REDIS_URL": "http://r:6379"}, ["FLEETROUTE_REDIS_URL", "redis://"]),
    ({"FLEETROUTE_API_KEYS": "[{"}, ["FLEETROUTE_API_KEYS", "not valid JSON"]),
    ({"FLEETROUTE_API_KEYS": '{"name": "x"}'}, ["FLEETROUTE_API_KEYS", "valid list"]),
    (
        {"FLEETROUTE_API_KEYS": one_key(key_hash="sha256:ABC")},
        ["FLEETROUTE_API_KEYS[0].key_hash", "64 lowercase hex"],
    ),
    (
        {"FLEETROUTE_API_KEYS": one_key(scopes=["root"])},
        ["FLEETROUTE_API_KEYS[0].scopes[0]", "'admin'"],
    ),
    ({"FLEETROUTE_CONFIG": "/nonexistent/x.yaml"}, ["/nonexistent/x.yaml", "cannot be read"]),
]


@pytest.mark.parametrize(
    ("environ", "expected"), BAD_ENVIRONMENTS, ids=["+".join(env) for env, _ in BAD_ENVIRONMENTS]
)
def test_bad_environment_values_name_the_variable(
    environ: dict[str, str], expected: list[str]
) -> None:
    message = config_error(environ=environ)
    for part in expected:
        assert part in message, (part, message)


def instances(*entries: str, model: str = "m") -> str:
    listed = "".join(f"        - {{{entry}}}\n" for entry in entries)
    return f"    - name: {model}\n      instances:\n{listed}"


def api_keys(*entries: str) -> str:
    return "auth:\n  api_keys:\n" + "".join(f"    - {{{entry}}}\n" for entry in entries)


FLEET = "fleet:\n  models:\n"
FIRST_INSTANCE = "fleet.models[0].instances[0]"

# (file text, parts of the message): the YAML path, the value, what is allowed.
BAD_FILES: list[tuple[str, list[str]]] = [
    (
        "cost_optimization:\n  budget_limit: -5\n",
        ["cost_optimization.budget_limit in", "-5", "greater than or equal to 0"],
    ),
    (
        "circuit_breaker:\n  failure_threshold: 0\n",
        ["circuit_breaker.failure_threshold in", "= 0", "greater than or equal to 1"],
    ),
    ("service:\n  port: 0\n", ["service.port in", "greater than or equal to 1"]),
    (
        "circuit_breaker:\n  failur_threshold: 4\n",
        ["circuit_breaker.failur_threshold", "unknown setting", "failure_threshold"],
    ),
    ("routng:\n  top_k: 1\n", ["routng", "unknown setting", "routing"]),
    (
        FLEET + instances("id: a, url: 'http://h', color: red"),
        [f"{FIRST_INSTANCE}.color", "unknown setting", "capacity"],
    ),
    ("service:\n  port: 1\n  port: 2\n", ["service.port", "more than once", "lines 2 and 3"]),
    (
        "performance:\n  cache_ttl: 1\nperformance:\n  cache_ttl: 2\n",
        ["performance.cache_ttl", "more than once", "lines 2 and 4"],
    ),
    ("service: {port: 1}\nservice: 3\n", ["service is set more than once"]),
    ("service:\n  port: true\n", ["service.port in", "= True", "not true or false"]),
    ("circuit_breaker:\n  enabled: 'y'\n", ["circuit_breaker.enabled in", "'y'", "yes/no"]),
    (
        "load_balancing:\n  enabled: sometimes\n",
        ["load_balancing.enabled", "'sometimes'", "on/off"],
    ),
    (
        "cost_optimization:\n  budget_window: fortnight\n",
        ["cost_optimization.budget_window", "'fortnight'", "'month'"],
    ),
    ("cost_optimization:\n  budget_window: -3\n", ["cost_optimization.budget_window", "> 0"]),
    (
        "cost_optimization:\n  cost_per_request: {hermes-2: -0.1}\n",
        ["cost_optimization.cost_per_request", "'hermes-2'", ">= 0"],
    ),
    ("performance:\n  log_level: loud\n", ["performance.log_level", "'LOUD'", "'DEBUG'"]),
    ("load_balancing:\n  health_check_path: health\n", ["health_check_path", "'/'"]),
    (
        "model_specialization:\n  specialization_rules: [{model: a}, {model: a}]\n",
        ["model_specialization.specialization_rules", "model 'a'"],
    ),
    (
        FLEET + instances("id: gpu-a, url: 'ftp://h/x'"),
        [f"{FIRST_INSTANCE}.url", "'ftp://h/x'", "'gpu-a'", "http:// or https://"],
    ),
    (FLEET + instances("id: gpu-a, url: 'http://'"), ["'gpu-a'", "must name a host"]),
    (FLEET + instances("id: gpu-a, url: 'http://h:99999'"), ["'gpu-a'", "not a URL"]),
    (
        FLEET + instances("id: a, url: 'http://h', capacity: 0"),
        [f"{FIRST_INSTANCE}.capacity", "greater than 0"],
    ),
    (FLEET + "    - {name: m, quality: 1.5}\n", ["fleet.models[0].quality", "less than or equal"]),
    (
        FLEET
        + instances("id: a, url: 'http://h'")
        + instances("id: a, url: 'http://k'", model="n"),
        ["fleet in", "duplicate instance id 'a'", "models 'm' and 'n'"],
    ),
    (
        "fleet:\n  services: [{service_id: s, max_capacity: 1}, {service_id: s, max_capacity: 2}]",
        ["fleet in", "duplicate service_id 's'"],
    ),
    (
        "fleet:\n  services: [{service_id: s, max_capacity: 1, endpoint: 'localhost:80'}]\n",
        ["fleet.services[0].endpoint", "service 's'", "http://"],
    ),
    ("fleet:\n  services: [{service_id: s}]\n", ["fleet.services[0].max_capacity", "required"]),
    (
        api_keys("name: a, key_hash: 'sha256:xyz'"),
        ["auth.api_keys[0].key_hash", "64 lowercase hex"],
    ),
    (
        api_keys(f"name: a, key_hash: '{HASH_A}'", f"name: a, key_hash: '{HASH_B}'"),
        ["auth.api_keys in", "duplicate API key name 'a'"],
    ),
    (
        api_keys(f"name: a, key_hash: '{HASH_A}'", f"name: b, key_hash: '{HASH_A}'"),
        ["'a' and 'b' have the same key_hash"],
    ),
    ("auth:\n  jwt_algorithms: [none]\n", ["auth.jwt_algorithms[0]", "'none'", "'HS256'"]),
    ("auth:\n  client_burst: 0\n", ["auth.client_burst", "greater than 0"]),
    ("routing:\n  top_k: 5\n  max_services: 4\n", ["routing in", "top_k (5)", "(4)"]),
    ("proxy:\n  max_connections: 2\n  max_keepalive: 3\n", ["proxy in", "max_keepalive (3)"]),
    ("redis:\n  url: localhost:6379\n", ["redis.url", "'localhost:6379'", "rediss://"]),
    ("- a\n- b\n", ["top level must be a mapping"]),
    ("service: [\n", ["not valid YAML"]),
    ("a: &x [*x]\n", ["refers to itself"]),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES, ids=[parts[0] for _, parts in BAD_FILES])
def test_bad_file_values_name_the_path(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text)
    message = config_error(path=path, environ={})
    for part in expected:
        assert part in message, (part, message)


def test_errors_in_overrides_name_the_path() -> None:
    message = config_error(environ={}, overrides={"routing": {"top_k": 0}})
    assert "routing.top_k (override)" in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "service:\n  port: 0\ncircuit_breaker:\n  timeout: -1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"LOAD_BALANCING_ALGORITHM": "x"})
    problems = caught.value.problems
    assert len(problems) == 3
    assert any(p.startswith(f"service.port in {path}") for p in problems)
    assert any(p.startswith("LOAD_BALANCING_ALGORITHM") for p in problems)


def test_environment_error_beats_a_file_value_it_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "service:\n  port: 1000\n")
    message = config_error(path=path, environ={"ROUTING_API_PORT": "0"})
    assert "ROUTING_API_PORT" in message and "service.port in" not in message


# Secrets ---------------------------------------------------------------------------------


def test_secrets_are_redacted(tmp_path: Path) -> None:
    text = (
        "analytics:\n  database_url: postgresql://router:dbpass@db:5432/routing\n"
        "redis:\n  url: redis://:redispass@cache:6379/0\n"
        "auth:\n  api_keys: [{name: ops, key_hash: '" + HASH_A + "'}]\n"
        "fleet:\n  models:\n    - name: m\n"
        "      instances: [{id: a, url: 'https://api.example', api_key: provider-key}]\n"
    )
    config = load_config(write(tmp_path, text), environ={"FLEETROUTE_JWT_SECRET": "jwt-secret"})
    assert config.analytics.database_url == "postgresql+psycopg://router:dbpass@db:5432/routing"
    instance = config.fleet.models[0].instances[0]
    assert instance.api_key is not None and instance.api_key.get_secret_value() == "provider-key"
    redacted = config.redacted()
    dumped = json.dumps(redacted)
    for secret in ("jwt-secret", "provider-key", "dbpass", "redispass", "a" * 64):
        assert secret not in dumped
    assert "jwt-secret" not in repr(config) and "provider-key" not in repr(config)
    assert redacted["auth"]["jwt_secret"] == "***"
    assert redacted["auth"]["api_keys"][0] == {
        "name": "ops",
        "key_hash": "***",
        "scopes": ["route"],
    }
    assert redacted["fleet"]["models"][0]["instances"][0]["api_key"] == "***"
    assert (
        redacted["analytics"]["database_url"] == "postgresql+psycopg://router:***@db:5432/routing"
    )
    assert redacted["redis"]["url"] == "redis://:***@cache:6379/0"
    assert redacted["service"] == {
        "name": "routing-api",
        "host": "127.0.0.1",
        "port": 9097,
        "workers": 1,
    }


def test_errors_do_not_echo_secrets(tmp_path: Path) -> None:
    raw_key = "fr_live_" + "k" * 40
    path = write(tmp_path, f"auth:\n  api_keys: [{{name: a, key_hash: {raw_key}}}]\n")
    assert raw_key not in config_error(path=path, environ={})
    environ = {"FLEETROUTE_DATABASE_URL": "mysql://u:hunter2@h/d"}
    assert "hunter2" not in config_error(environ=environ)
