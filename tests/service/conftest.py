"""Fixtures of the service tests: configurations with known credentials, and real
Redis and PostgreSQL servers (see redis_server.py and postgres_server.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from fleetroute.service.auth import hash_api_key
from fleetroute.service.config import ServiceConfig, load_config
from fleetroute.service.demo import demo_backends, demo_fleet

from .postgres_server import PostgresServer, require_postgres_binaries
from .redis_server import RedisServer, require_redis_server

ADMIN_KEY = "fr_test-admin-key-0123456789abcdefghijklmnopqrstuv"
ROUTE_KEY = "fr_test-route-key-0123456789abcdefghijklmnopqrstuv"
JWT_SECRET = "test-jwt-secret-that-is-at-least-32-bytes-long"
ADMIN = {"X-API-Key": ADMIN_KEY}
ROUTER = {"X-API-Key": ROUTE_KEY}

MakeConfig = Callable[..., ServiceConfig]


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, section by section."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def base_settings(database: Path, *, first_port: int = 1) -> dict[str, Any]:
    """Test settings: the demo fleet (its backends are not started unless a test
    starts them on these ports), an admin and a route key, a JWT secret, SQLite in
    ``database``, health checks off."""
    return {
        "analytics": {"database_url": f"sqlite:///{database}", "flush_interval_s": 0.05},
        "load_balancing": {"enabled": False},
        "auth": {
            "api_keys": [
                {"name": "admin", "key_hash": hash_api_key(ADMIN_KEY), "scopes": ["admin"]},
                {"name": "router", "key_hash": hash_api_key(ROUTE_KEY), "scopes": ["route"]},
            ],
            "jwt_secret": JWT_SECRET,
        },
        "fleet": demo_fleet(demo_backends(first_port)),
    }


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    """``make_config(**sections)``: the test settings with sections overridden."""

    def make(**sections: Any) -> ServiceConfig:
        return load_config(environ={}, overrides=merge(base_settings(tmp_path / "a.db"), sections))

    return make


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    require_postgres_binaries()
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server per test (a test may kill it)."""
    require_redis_server()
    with RedisServer() as server:
        yield server
