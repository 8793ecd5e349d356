"""The routing service's FastAPI application: both seeds' HTTP APIs, the WebSocket
feed, the OpenAI-compatible proxy, Prometheus metrics and the dashboard.

``create_app(config)`` wires the parts (``RoutingService``, the state store, the
analytics store, the authenticator, the proxy) and owns their lifetimes: the lifespan
starts the analytics writer, the lease sweeper, the snapshot feed and the health
checks, and on shutdown closes every open decision and flushes the analytics store, so
a clean stop loses nothing.

Routing endpoints need the ``route`` scope; changing the fleet or the strategy needs
``admin``. Every authenticated call also passes the per-client rate limit (shared
across replicas when Redis is configured). ``/health``, ``/metrics``, ``/dashboard``
and ``/ws/routing`` are open unless ``auth.protect_observability`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from fleetroute.clock import Clock, monotonic_clock
from fleetroute.resilience.health_check import HealthChecker
from fleetroute.resilience.retry import RetryPolicy
from fleetroute.service.analytics import AnalyticsStore
from fleetroute.service.auth import (
    SCOPE_ADMIN,
    SCOPE_ROUTE,
    ApiKeyEntry,
    Authenticator,
    AuthError,
    Principal,
    RedactSecrets,
    principal_from_websocket,
    require_scope,
)
from fleetroute.service.config import ServiceConfig, load_config
from fleetroute.service.dashboard import dashboard_router
from fleetroute.service.events import EventHub
from fleetroute.service.metrics import CONTENT_TYPE_LATEST, ServiceMetrics
from fleetroute.service.model_fleet import NoModelAvailable
from fleetroute.service.proxy import ChatProxy, make_upstream_client
from fleetroute.service.routing_service import BudgetExhausted, Decision, RoutingService
from fleetroute.service.schemas import (
    BatchRouteRequest,
    BatchRouteResponse,
    BreakerInfo,
    BreakerStatusResponse,
    CompleteRequest,
    CompleteResponse,
    DecideRequest,
    DecisionResponse,
    ErrorResponse,
    HealthResponse,
    LoadBalancingInfo,
    LoadResponse,
    ModelSelection,
    OpenAIError,
    RebalanceResponse,
    RouteRequest,
    RouteResponse,
    ServiceInfo,
    ServiceList,
    ServiceRegistration,
    StatusResponse,
    StrategyOverride,
    StrategyOverrideResponse,
    TestRequest,
    TestResponse,
    TestResult,
)
from fleetroute.service.shared_state import BreakerStatus, StateStore, open_state_store
from fleetroute.service.url_policy import check_service_url

__all__ = ["VERSION", "create_app"]

VERSION = "0.1.0"
logger = logging.getLogger("fleetroute.service")
_REDACTED_LOGGERS = ("fleetroute.service", "uvicorn.access", "uvicorn.error")

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "the body is not JSON or not UTF-8"},
    422: {"model": ErrorResponse, "description": "the body or a parameter is invalid"},
    401: {"model": ErrorResponse, "description": "missing or invalid credentials"},
    403: {"model": ErrorResponse, "description": "the credentials lack the scope"},
    413: {"model": ErrorResponse, "description": "the body is larger than allowed"},
    429: {"model": ErrorResponse, "description": "rate limited; see Retry-After"},
}


class BodySizeLimit:
    """Refuses bodies over ``limit`` bytes with 413, whether or not the client sent a
    Content-Length, before the app reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, _too_large(self.limit))
            return message

        # FastAPI turns the HTTPException raised while it reads the body into the 413.
        await self.app(scope, limited, send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse({"detail": _too_large(self.limit)}, status_code=413)
        await response({"type": "http"}, _no_receive, send)


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _too_large(limit: int) -> str:
    return f"request body exceeds routing.max_body_bytes ({limit} bytes)"


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()


def _breaker_info(status: BreakerStatus) -> BreakerInfo:
    return BreakerInfo(
        status=status.state,
        failure_count=status.failure_count,
        last_failure_time=_iso(status.last_failure_time),
    )


def _authenticator(config: ServiceConfig, clock: Clock) -> Authenticator:
    auth = config.auth
    return Authenticator(
        enabled=auth.enabled,
        api_keys=[
            ApiKeyEntry(entry.name, entry.key_hash, frozenset(entry.scopes))
            for entry in auth.api_keys
        ],
        jwt_secret=auth.jwt_secret.get_secret_value() if auth.jwt_secret else None,
        jwt_algorithms=tuple(auth.jwt_algorithms),
        jwt_audience=auth.jwt_audience,
        jwt_issuer=auth.jwt_issuer,
        clock=clock,
    )


# Built once: ``require_scope`` makes a new dependency function on every call.
_AUTHENTICATE = {scope: require_scope(scope) for scope in (SCOPE_ROUTE, SCOPE_ADMIN)}


async def _guarded(request: Request, scope: str) -> Principal:
    """Authenticates for ``scope``, then applies the client's rate limit (429 with
    Retry-After when it is spent)."""
    principal = await _AUTHENTICATE[scope](request)
    state = request.app.state
    auth = state.config.auth
    retry_after = await state.store.acquire_tokens(
        f"client:{principal.client_id}",
        rate_per_s=auth.client_rate_limit_per_minute / 60.0,
        burst=auth.client_burst,
    )
    if retry_after is not None:
        state.metrics.rate_limited.labels("client").inc()
        raise HTTPException(
            429,
            f"rate limit of {auth.client_rate_limit_per_minute:g} requests per minute "
            f"exceeded for client {principal.client_id!r}",
            headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
        )
    return principal


async def _route_principal(request: Request) -> Principal:
    return await _guarded(request, SCOPE_ROUTE)


async def _admin_principal(request: Request) -> Principal:
    return await _guarded(request, SCOPE_ADMIN)


async def _observer(request: Request) -> None:
    """Observability endpoints are open unless ``auth.protect_observability``."""
    if request.app.state.config.auth.protect_observability:
        await _AUTHENTICATE[SCOPE_ROUTE](request)


RoutePrincipal = Annotated[Principal, Depends(_route_principal)]
AdminPrincipal = Annotated[Principal, Depends(_admin_principal)]


def create_app(
    config: ServiceConfig | None = None,
    *,
    state: StateStore | None = None,
    clock: Clock = monotonic_clock,
    wall_clock: Clock = time.time,
    seed: int | None = None,
) -> FastAPI:
    """The service for ``config`` (default: ``load_config()``, the environment and
    ``FLEETROUTE_CONFIG``). ``state`` replaces the store the config names (tests)."""
    if config is None:
        config = load_config()
    metrics = ServiceMetrics()
    hub = EventHub()
    store = (
        state
        if state is not None
        else open_state_store(
            config.redis.url, clock=wall_clock, retry_interval_s=config.redis.retry_interval_s
        )
    )
    analytics = AnalyticsStore(
        config.analytics.database_url,
        batch_size=config.analytics.batch_size,
        flush_interval_s=config.analytics.flush_interval_s,
    )
    service = RoutingService(
        config,
        state=store,
        analytics=analytics,
        metrics=metrics,
        hub=hub,
        clock=clock,
        wall_clock=wall_clock,
        seed=seed,
    )
    authenticator = _authenticator(config, wall_clock)
    redaction = RedactSecrets()
    # uvicorn logs request lines (with query strings: a WebSocket's ?token=) on its own
    # loggers; the filter sits on each, since a logger's filters see only its own records.
    redacted = [logging.getLogger(name) for name in _REDACTED_LOGGERS]
    for named in redacted:
        named.addFilter(redaction)
    proxy_settings = config.proxy
    upstream = make_upstream_client(
        connect_timeout_s=proxy_settings.connect_timeout_s,
        read_timeout_s=proxy_settings.read_timeout_s,
        max_connections=proxy_settings.max_connections,
        max_keepalive=proxy_settings.max_keepalive,
    )
    proxy = ChatProxy(
        service,
        client=upstream,
        retry=RetryPolicy(max_retries=config.performance.max_retries, base_delay=0.05),
        clock=clock,
    )
    checker: HealthChecker | None = None
    targets = {i.id: i.url for i in service.fleet.instances.values() if i.url is not None}
    if config.load_balancing.enabled and targets:
        lb = config.load_balancing

        def on_change(instance_id: str, healthy: bool) -> None:
            logger.warning("instance %s is now %s", instance_id, "up" if healthy else "down")
            service.fleet.set_healthy(instance_id, healthy)

        checker = HealthChecker(
            targets,
            path=lb.health_check_path,
            interval=float(lb.health_check_interval),
            timeout=float(lb.health_check_timeout),
            unhealthy_threshold=lb.failure_threshold,
            on_change=on_change,
            clock=wall_clock,
        )

    async def sweep_leases(stop: asyncio.Event) -> None:
        while not stop.is_set():
            service.sweep()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    async def feed_snapshots(stop: asyncio.Event) -> None:
        while not stop.is_set():
            if hub.subscribers:
                hub.publish(service.snapshot(), essential=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def sync_shared_state(stop: asyncio.Event) -> None:
        # Reads the shared budget every second (so an idle replica's status and gauges
        # follow the others' spending) and, through that call, lets a replica serving
        # from local state notice that Redis is back even when no request arrives.
        interval = min(1.0, config.redis.retry_interval_s)
        while not stop.is_set():
            try:
                await service.refresh_budget()
            except Exception:  # the loop must outlive any one failure
                logger.exception("reading the shared budget failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def check_health(stop: asyncio.Event, checker: HealthChecker) -> None:
        interval = float(config.load_balancing.health_check_interval)
        while not stop.is_set():
            await checker.check_once()
            service.health_checked_at = {
                s.endpoint_id: s.last_checked
                for s in checker.statuses()
                if s.last_checked is not None
            }
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        analytics.start()
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(sweep_leases(stop)),
            asyncio.create_task(feed_snapshots(stop)),
            asyncio.create_task(sync_shared_state(stop)),
        ]
        if checker is not None:
            tasks.append(asyncio.create_task(check_health(stop, checker)))
        logger.info(
            "routing service %s ready: %d services, %d models, %d instances, state %s",
            config.service.name,
            service.moe.service_count,
            len(service.fleet.models),
            len(service.fleet.instances),
            service.shared_state_mode(),
        )
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            closed = service.drain()
            await run_in_threadpool(analytics.close)
            await upstream.aclose()
            if checker is not None:
                await checker.aclose()
            await store.close()
            for named in redacted:
                named.removeFilter(redaction)
            logger.info("routing service stopped; %d open decisions recorded", closed)

    app = FastAPI(
        title="fleetroute routing service",
        version=VERSION,
        description=(
            "Routes AI inference requests: seed 002's MoE router API under /api/v1, "
            "seed 004's routing API under /routing, an OpenAI-compatible proxy under /v1."
        ),
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.service = service
    app.state.authenticator = authenticator
    app.state.metrics = metrics
    app.state.analytics = analytics
    app.state.hub = hub
    app.add_middleware(BodySizeLimit, limit=config.routing.max_body_bytes)

    app.state.store = store
    Observer = Depends(_observer)

    # -- errors ---------------------------------------------------------------------------

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422, except that a NaN or an infinity the client sent is echoed
        # as text: JSON has no such numbers, and encoding them would fail with a 500.
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, 422)

    @app.exception_handler(BudgetExhausted)
    async def _budget(request: Request, exc: BudgetExhausted) -> JSONResponse:
        if request.url.path.startswith("/v1/"):
            # The proxy's clients are OpenAI SDKs: they read OpenAI's error shape.
            body: dict[str, Any] = {
                "error": {
                    "message": str(exc),
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "budget_exhausted",
                }
            }
        else:
            body = {"detail": str(exc)}
        return JSONResponse(body, status_code=402)

    @app.exception_handler(NoModelAvailable)
    async def _no_model(request: Request, exc: NoModelAvailable) -> JSONResponse:
        status = {"unavailable": 503, "empty": 503, "unknown_model": 404}.get(exc.reason, 422)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    # -- seed 002 -------------------------------------------------------------------------

    def _route_or_503(call: Callable[[], Any]) -> Any:
        if not service.moe.service_count:
            raise HTTPException(503, "no services are registered; POST /api/v1/services/register")
        try:
            return call()
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    _NO_SERVICES: dict[int | str, dict[str, Any]] = {
        503: {"model": ErrorResponse, "description": "no services are registered"}
    }

    @app.post(
        "/api/v1/route",
        response_model=RouteResponse,
        tags=["seed 002"],
        responses={**_ERRORS, **_NO_SERVICES},
    )
    async def route(body: RouteRequest, principal: RoutePrincipal) -> Any:
        """Routes one request to a service (seed 002)."""
        # The service builds the documented shape itself; a JSONResponse skips FastAPI
        # validating it again (a third of a decision's time in the batch endpoint).
        return JSONResponse(
            _route_or_503(
                lambda: service.route(
                    body.data,
                    strategy=body.routing_strategy,
                    top_k=body.top_k,
                    client_id=principal.client_id,
                )
            )
        )

    @app.post(
        "/api/v1/route/batch",
        response_model=BatchRouteResponse,
        tags=["seed 002"],
        responses={**_ERRORS, **_NO_SERVICES},
    )
    async def route_batch(body: BatchRouteRequest, principal: RoutePrincipal) -> Any:
        """Routes many requests in one call (seed 002)."""
        if len(body.requests) > config.routing.max_batch:
            raise HTTPException(
                422,
                f"requests: {len(body.requests)} requests exceed routing.max_batch "
                f"({config.routing.max_batch})",
            )
        start = time.perf_counter()
        results = _route_or_503(
            lambda: service.route_batch(
                body.requests, strategy=body.routing_strategy, client_id=principal.client_id
            )
        )
        return JSONResponse(
            {
                "results": results,
                "total": len(results),
                "routed": sum(1 for r in results if r["selected_services"]),
                "latency_ms": (time.perf_counter() - start) * 1000.0,
            }
        )

    async def _complete(body: CompleteRequest) -> Any:
        try:
            await service.complete(
                body.request_id,
                success=body.success,
                latency_ms=body.latency_ms,
                cost_actual=body.cost_actual,
            )
        except KeyError as exc:
            raise HTTPException(404, exc.args[0]) from None
        return {"request_id": body.request_id, "status": "completed" if body.success else "failed"}

    @app.post(
        "/api/v1/route/complete",
        response_model=CompleteResponse,
        tags=["seed 002"],
        responses={**_ERRORS, 404: {"model": ErrorResponse}},
    )
    async def route_complete(body: CompleteRequest, principal: RoutePrincipal) -> Any:
        """Reports that a routed request ended: its load is returned at once and the
        router learns from the outcome."""
        return await _complete(body)

    @app.post(
        "/api/v1/strategy/override",
        response_model=StrategyOverrideResponse,
        tags=["seed 002"],
        responses=_ERRORS,
    )
    async def override_strategy(body: StrategyOverride, principal: AdminPrincipal) -> Any:
        """Sets the default strategy (admin)."""
        previous = service.override_strategy(body.strategy)
        logger.info(
            "strategy overridden by %s: %s -> %s", principal.client_id, previous, body.strategy
        )
        return {"previous": previous, "strategy": body.strategy}

    @app.post(
        "/api/v1/services/register",
        response_model=ServiceInfo,
        status_code=201,
        tags=["seed 002"],
        responses={**_ERRORS, 409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    )
    async def register_service(body: ServiceRegistration, principal: AdminPrincipal) -> Any:
        """Registers a service (admin). Its endpoint must be an http(s) URL with a host."""
        if body.endpoint is not None:
            try:
                check_service_url(body.endpoint)
            except ValueError as exc:
                raise HTTPException(422, f"endpoint: {exc}") from None
        if service.moe.has_service(body.service_id):
            raise HTTPException(409, f"service {body.service_id!r} is already registered")
        try:
            registered = service.register_service(body.model_dump())
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        logger.info("service %s registered by %s", registered.service_id, principal.client_id)
        return next(s for s in service.services() if s["service_id"] == registered.service_id)

    @app.delete(
        "/api/v1/services/{service_id}",
        tags=["seed 002"],
        responses={**_ERRORS, 404: {"model": ErrorResponse}},
    )
    async def unregister_service(service_id: str, principal: AdminPrincipal) -> dict[str, str]:
        """Unregisters a service (admin)."""
        try:
            service.unregister_service(service_id)
        except KeyError:
            raise HTTPException(404, f"unknown service {service_id!r}") from None
        return {"service_id": service_id, "status": "unregistered"}

    @app.get("/api/v1/services", response_model=ServiceList, tags=["seed 002"], responses=_ERRORS)
    async def list_services(principal: RoutePrincipal) -> Any:
        """Every registered service with its live load."""
        services = service.services()
        return {"services": services, "total": len(services)}

    @app.post(
        "/api/v1/load/rebalance",
        response_model=RebalanceResponse,
        tags=["seed 002"],
        responses=_ERRORS,
    )
    async def rebalance(principal: AdminPrincipal) -> Any:
        """Reclaims the load of expired decisions and reports the balance (admin)."""
        return service.rebalance()

    @app.get("/api/v1/metrics", tags=["seed 002"], responses=_ERRORS)
    async def moe_metrics(principal: RoutePrincipal) -> dict[str, Any]:
        """Routing metrics as JSON (Prometheus text is at /metrics)."""
        return service.moe_metrics()

    @app.get("/api/v1/demo/smart_routing", tags=["seed 002"], responses={**_ERRORS, **_NO_SERVICES})
    async def smart_routing_demo(
        principal: RoutePrincipal,
        complexity: Annotated[str, Query(pattern="^(simple|moderate|complex)$")] = "moderate",
    ) -> dict[str, Any]:
        """Seed 002's demo: sample requests of one complexity under every strategy."""
        if not service.moe.service_count:
            raise HTTPException(503, "no services are registered")
        return service.demo(complexity)

    def _health() -> dict[str, Any]:
        mode = service.shared_state_mode()
        return {
            "status": "degraded" if store.degraded else "healthy",
            "service": config.service.name,
            "load_balancing": config.load_balancing.enabled,
            "circuit_breaker": config.circuit_breaker.enabled,
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "shared_state": mode,
            "analytics": config.analytics.database_url.split(":", 1)[0],
            "services": service.moe.service_count,
            "models": len(service.fleet.models),
            "instances": len(service.fleet.instances),
            "open_leases": len(service.leases),
        }

    @app.get("/api/v1/health", response_model=HealthResponse, tags=["seed 002"])
    async def health_v1(_: None = Observer) -> Any:
        """Health of the service (seed 002)."""
        return _health()

    @app.websocket("/ws/routing")
    async def routing_feed(websocket: WebSocket) -> None:
        """Every routing decision and a fleet snapshot each second."""
        if config.auth.protect_observability:
            try:
                principal_from_websocket(websocket, SCOPE_ROUTE)
            except AuthError as exc:
                await websocket.close(code=1008, reason=exc.detail[:120])
                return
        await websocket.accept()
        subscription = hub.subscribe()
        try:
            await websocket.send_json(service.snapshot())

            # One task relays the hub's frames, the other reads the socket only to see
            # the client leave; whichever ends first ends both (an anyio task group, so
            # a server shutting down cancels them cleanly too).
            async with anyio.create_task_group() as group:

                async def relay() -> None:
                    try:
                        while True:
                            await websocket.send_text(await subscription.next())
                    except (WebSocketDisconnect, RuntimeError, OSError) as error:
                        logger.info("routing feed subscriber left: %r", error)
                    finally:
                        group.cancel_scope.cancel()

                async def watch() -> None:
                    try:
                        while True:
                            await websocket.receive_text()
                    except WebSocketDisconnect:
                        pass
                    finally:
                        group.cancel_scope.cancel()

                group.start_soon(relay)
                group.start_soon(watch)
        except WebSocketDisconnect:
            pass
        finally:
            hub.unsubscribe(subscription)

    # -- seed 004 -------------------------------------------------------------------------

    @app.get("/health", response_model=HealthResponse, tags=["seed 004"])
    async def health(_: None = Observer) -> Any:
        """Health of the service (seed 004's fields first)."""
        return _health()

    def _decision_body(decision: Decision) -> DecisionResponse:
        choice = decision.choice
        return DecisionResponse(
            request_id=decision.request_id,
            model_selection=ModelSelection(
                selected_model=choice.model.name,
                confidence_score=choice.confidence,
                reasoning=choice.reasoning,
                cost_estimate=decision.cost_estimate,
                task=choice.detection.task,
            ),
            load_balancing=LoadBalancingInfo(
                target_instance=choice.instance.id,
                load_factor=round(choice.load_factor, 6),
                health_status="healthy" if choice.instance.healthy else "unhealthy",
                algorithm=service.fleet.algorithm,
            ),
            circuit_breaker=_breaker_info(decision.breaker),
            decision_latency_ms=decision.latency_ms,
            lease_expires_in_s=service.lease_s,
        )

    @app.post(
        "/routing/decide",
        response_model=DecisionResponse,
        # Seed 004's schema types last_failure_time as a string: absent, never null.
        response_model_exclude_none=True,
        tags=["seed 004"],
        responses={
            **_ERRORS,
            402: {"model": ErrorResponse, "description": "the global budget is spent"},
            404: {"model": ErrorResponse, "description": "the pinned model is unknown"},
            422: {
                "model": ErrorResponse,
                "description": "invalid body, or no model fits the budget",
            },
            503: {"model": ErrorResponse, "description": "every instance is full or open"},
        },
    )
    async def decide(body: DecideRequest, principal: RoutePrincipal) -> Any:
        """Seed 004's routing decision: model by task, budget and score, then instance."""
        decision = await service.decide(
            body.request_type,
            body.content,
            budget=body.budget,
            model=body.model,
            client_id=principal.client_id,
        )
        if decision is None:
            raise HTTPException(503, "every instance of the eligible models is at capacity")
        return _decision_body(decision)

    @app.post(
        "/routing/complete",
        response_model=CompleteResponse,
        tags=["seed 004"],
        responses={**_ERRORS, 404: {"model": ErrorResponse}},
    )
    async def decide_complete(body: CompleteRequest, principal: RoutePrincipal) -> Any:
        """Reports the outcome of a decided request: returns its load, feeds the
        breaker and the model's latency, settles its cost."""
        return await _complete(body)

    @app.get("/routing/status", response_model=StatusResponse, tags=["seed 004"])
    async def status(principal: RoutePrincipal) -> Any:
        """The service's configuration in force and its uptime."""
        co = config.cost_optimization
        return {
            "service": config.service.name,
            "version": VERSION,
            "uptime_s": wall_clock() - service.started_at,
            "load_balancing": {
                "enabled": config.load_balancing.enabled,
                "algorithm": service.fleet.algorithm,
                "health_check_interval": config.load_balancing.health_check_interval,
                "failure_threshold": config.load_balancing.failure_threshold,
            },
            "model_specialization": {
                "enabled": config.model_specialization.enabled,
                "rules": {
                    r.model: list(r.specializations)
                    for r in config.model_specialization.specialization_rules
                },
            },
            "cost_optimization": {
                "enabled": co.enabled,
                "budget_limit": co.budget_limit,
                "budget_window_s": co.budget_window_s,
                "preference": co.preference,
                "spent": await service.refresh_budget(),
            },
            "circuit_breaker": {
                "enabled": config.circuit_breaker.enabled,
                "failure_threshold": config.circuit_breaker.failure_threshold,
                "recovery_timeout": config.circuit_breaker.recovery_timeout,
                "half_open_limit": config.circuit_breaker.half_open_limit,
            },
            "routing": {
                "default_strategy": service.moe.strategy,
                "decision_lease_s": service.lease_s,
                "open_leases": len(service.leases),
                "shared_state": service.shared_state_mode(),
            },
            "models": sorted(service.fleet.models),
        }

    @app.get("/routing/load", response_model=LoadResponse, tags=["seed 004"])
    async def load(principal: RoutePrincipal) -> Any:
        """The current load of every model instance and service."""
        models: dict[str, dict[str, Any]] = {}
        for row in service.instance_rows():
            model = models.setdefault(row["model"], {"load": 0, "capacity": 0, "instances": {}})
            model["load"] += row["load"]
            model["capacity"] += row["capacity"]
            model["instances"][row["id"]] = {
                "load": row["load"],
                "capacity": row["capacity"],
                "utilisation": row["load"] / row["capacity"],
                "healthy": row["healthy"],
            }
        for model in models.values():
            model["utilisation"] = model["load"] / model["capacity"] if model["capacity"] else 0.0
        services = {
            row["id"]: {"load": row["load"], "capacity": row["capacity"]}
            for row in service.service_rows()
        }
        return {
            "models": models,
            "services": services,
            "load_balance_score": service.load_balance_score(),
        }

    @app.get(
        "/routing/circuit-breaker/status", response_model=BreakerStatusResponse, tags=["seed 004"]
    )
    async def breaker_status(principal: RoutePrincipal) -> Any:
        """Every instance's breaker, by model."""
        models: dict[str, dict[str, BreakerInfo]] = {}
        for instance in service.fleet.instances.values():
            status = await service.breaker_status(instance.id)
            models.setdefault(instance.model, {})[instance.id] = _breaker_info(status)
        cb = config.circuit_breaker
        return {
            "enabled": cb.enabled,
            "policy": {
                "failure_threshold": cb.failure_threshold,
                "recovery_timeout": cb.recovery_timeout,
                "half_open_limit": cb.half_open_limit,
            },
            "models": models,
        }

    @app.get("/routing/cost-analysis", tags=["seed 004"], responses=_ERRORS)
    async def cost_analysis(
        principal: RoutePrincipal,
        since_s: Annotated[float | None, Query(gt=0, le=10 * 365 * 86400)] = None,
    ) -> dict[str, Any]:
        """Spend by model and recommendations, from the analytics store."""
        since = None if since_s is None else wall_clock() - since_s

        def query() -> dict[str, Any]:
            analytics.flush()
            limit = float(config.cost_optimization.budget_limit)
            return analytics.cost_analysis(since, limit or None)

        return await run_in_threadpool(query)

    @app.get("/routing/performance", tags=["seed 004"], responses=_ERRORS)
    async def performance(
        principal: RoutePrincipal,
        since_s: Annotated[float | None, Query(gt=0, le=10 * 365 * 86400)] = None,
    ) -> dict[str, Any]:
        """Decision counts, success rate and latency percentiles from the analytics
        store, with the live decision rate."""
        since = None if since_s is None else wall_clock() - since_s

        def query() -> dict[str, Any]:
            analytics.flush()
            return analytics.performance(since)

        result = await run_in_threadpool(query)
        result["live"] = {
            "decisions_per_second": service.decisions_per_second(),
            "open_leases": len(service.leases),
            "proxy_in_flight": service.proxy_in_flight,
        }
        return result

    @app.post("/routing/test", response_model=TestResponse, tags=["seed 004"], responses=_ERRORS)
    async def routing_test(body: TestRequest, principal: RoutePrincipal) -> Any:
        """Seed 004's routing test: decides each scenario for real, then releases it."""
        results: list[TestResult] = []
        for scenario in body.test_scenarios:
            try:
                decision = await service.decide(
                    scenario.type,
                    scenario.content,
                    budget=scenario.budget,
                    client_id=principal.client_id,
                    api="test",
                    hold=False,
                )
            except (NoModelAvailable, BudgetExhausted) as exc:
                decision, refusal = None, str(exc)
            else:
                refusal = "every instance is at capacity"
            if decision is None:
                results.append(
                    TestResult(
                        scenario=scenario,
                        selected_model=None,
                        task=None,
                        specialised=False,
                        within_budget=False,
                        target_instance=None,
                        reasoning=refusal,
                    )
                )
                continue
            await service.release_decision(decision)
            choice = decision.choice
            results.append(
                TestResult(
                    scenario=scenario,
                    selected_model=choice.model.name,
                    task=choice.detection.task,
                    specialised=choice.specialised,
                    within_budget=scenario.budget is None
                    or decision.cost_estimate <= scenario.budget,
                    target_instance=choice.instance.id,
                    reasoning=choice.reasoning,
                )
            )
        passed = sum(1 for r in results if r.specialised and r.within_budget)
        return {"results": results, "passed": passed, "total": len(results)}

    @app.get("/metrics", tags=["seed 004"], response_class=Response)
    async def prometheus(_: None = Observer) -> Response:
        """Prometheus text exposition of every metric."""
        await service.refresh_budget()
        service.refresh_gauges()
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    # -- the OpenAI-compatible proxy ------------------------------------------------------

    _PROXY_ERRORS: dict[int | str, dict[str, Any]] = {
        **{status: _ERRORS[status] for status in (401, 403, 413, 429)},
        400: {"model": OpenAIError, "description": "the body is not a valid request"},
        402: {"model": OpenAIError, "description": "the global budget is spent"},
        502: {"model": OpenAIError, "description": "every attempt failed to reach a backend"},
        503: {"model": OpenAIError, "description": "no instance can take the request"},
        504: {"model": OpenAIError, "description": "every attempt timed out"},
    }

    @app.post("/v1/chat/completions", tags=["proxy"], responses=_PROXY_ERRORS)
    async def chat_completions(request: Request, principal: RoutePrincipal) -> Response:
        """OpenAI chat completions, forwarded to the chosen model instance (streaming
        passed through); ``model`` names a configured model or ``auto``."""
        return await proxy.forward(request, "/v1/chat/completions", principal.client_id)

    @app.post("/v1/completions", tags=["proxy"], responses=_PROXY_ERRORS)
    async def completions(request: Request, principal: RoutePrincipal) -> Response:
        """OpenAI completions, forwarded like chat completions."""
        return await proxy.forward(request, "/v1/completions", principal.client_id)

    @app.get("/v1/models", tags=["proxy"], responses=_ERRORS)
    async def models(principal: RoutePrincipal) -> dict[str, Any]:
        """The configured models, in OpenAI's list format (plus ``auto``)."""
        created = int(service.started_at)
        names = ["auto", *sorted(service.fleet.models)]
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "fleetroute"}
                for name in names
            ],
        }

    # -- the dashboard --------------------------------------------------------------------

    app.include_router(dashboard_router, dependencies=[Observer])
    return app
