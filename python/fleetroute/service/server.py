"""Running the service: uvicorn for the app and, with ``demo``, the stand-in backends
of the demo fleet in the same event loop.

Only the main server handles Ctrl-C; when it has shut down (its lifespan closed every
open decision and flushed the analytics store) the backends are stopped too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from fleetroute.service.app import create_app
from fleetroute.service.auth import generate_api_key, hash_api_key
from fleetroute.service.backend_stub import create_backend_app
from fleetroute.service.config import ServiceConfig
from fleetroute.service.demo import demo_backends, demo_fleet, demo_traffic
from fleetroute.service.routing_service import RoutingService

__all__ = ["prepare_demo", "serve"]

logger = logging.getLogger("fleetroute.service")


class _BackendServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the main server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def prepare_demo(config: ServiceConfig) -> tuple[ServiceConfig, list[Any], str | None]:
    """The config with the demo fleet on free loopback ports, the backend servers to
    run, and a fresh admin key when authentication is on but has no credentials."""
    backends = demo_backends(0)
    ports = _free_ports(len(backends))
    backends = [
        type(b)(b.instance_id, b.model, port, b.latency_s)
        for b, port in zip(backends, ports, strict=True)
    ]
    data = config.model_dump(mode="python")
    data["fleet"] = demo_fleet(backends)
    key: str | None = None
    auth = data["auth"]
    if auth["enabled"] and not auth["api_keys"] and auth["jwt_secret"] is None:
        key = generate_api_key()
        auth["api_keys"] = [
            {"name": "demo-admin", "key_hash": hash_api_key(key), "scopes": ["admin"]}
        ]
    prepared = ServiceConfig.model_validate(data)
    servers = [
        _BackendServer(
            uvicorn.Config(
                create_backend_app(
                    b.instance_id, model=b.model, latency_s=b.latency_s, chunk_interval_s=0.01
                ),
                host="127.0.0.1",
                port=b.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        for b in backends
    ]
    return prepared, servers, key


async def serve(
    config: ServiceConfig,
    *,
    demo: bool = False,
    demo_traffic_rate: float = 0.0,
    announce: Callable[[str], None] = print,
) -> None:
    """Serves ``config`` until interrupted."""
    backends: list[Any] = []
    if demo:
        config, backends, key = prepare_demo(config)
        if key is not None:
            announce(f"demo admin API key (valid for this run only): {key}")
    if config.service.workers > 1:
        # One process holds the fleet's live loads; replicas are separate processes
        # that share limits, budgets and breakers through Redis.
        announce(
            f"service.workers is {config.service.workers}: this process serves with one "
            "worker; run one `fleetroute serve` per replica, with --redis-url, to share "
            "rate limits, budgets and breakers"
        )
    app = create_app(config)
    host, port = config.service.host, config.service.port
    main = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=config.performance.log_level.lower(),
            ws="websockets-sansio",
        )
    )
    backend_tasks = [asyncio.create_task(b.serve()) for b in backends]
    stop = asyncio.Event()

    async def announce_when_ready() -> None:
        while not main.started:
            if main.should_exit:
                return
            await asyncio.sleep(0.05)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        announce(f"fleetroute routing service on http://{shown}:{port}")
        announce(f"dashboard: http://{shown}:{port}/dashboard")
        announce(f"API documentation: http://{shown}:{port}/docs")
        if demo_traffic_rate > 0:
            service: RoutingService = app.state.service
            await demo_traffic(service, demo_traffic_rate, stop)

    helper = asyncio.create_task(announce_when_ready())
    try:
        await main.serve()
    finally:
        stop.set()
        helper.cancel()
        await asyncio.gather(helper, return_exceptions=True)
        for server in backends:
            server.should_exit = True
        await asyncio.gather(*backend_tasks, return_exceptions=True)
