"""The service's Prometheus metrics, in one registry per app.

Seed 002's four names come first (``moe_routing_total``, ``moe_expert_usage``,
``moe_routing_latency_ms``, ``moe_load_balance_score``); fleetroute's own follow under
``fleetroute_``. Gauges of live state (loads, breaker states, spend, staleness) are set
from the fleet at scrape time, so a scrape always reads the present, not the last
decision's view.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["BREAKER_STATE_VALUES", "CONTENT_TYPE_LATEST", "ServiceMetrics"]

#: ``fleetroute_breaker_state``'s value for each state.
BREAKER_STATE_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

# Decision latency in milliseconds: from tens of microseconds to a second.
_DECISION_BUCKETS_MS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 1000.0)
_UPSTREAM_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServiceMetrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        # The ``_created`` timestamps double the exposition and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.moe_routing_total = Counter(
            "moe_routing", "Routing decisions (seed 002)", ["strategy"], registry=r
        )
        self.moe_expert_usage = Gauge(
            "moe_expert_usage",
            "Load of each service as a share of its capacity",
            ["service"],
            registry=r,
        )
        self.moe_routing_latency_ms = Histogram(
            "moe_routing_latency_ms",
            "Decision latency of /api/v1/route in milliseconds",
            buckets=_DECISION_BUCKETS_MS,
            registry=r,
        )
        self.moe_load_balance_score = Gauge(
            "moe_load_balance_score",
            "Jain's fairness index of the services' utilisation (1 = perfectly even)",
            registry=r,
        )
        self.decisions = Counter(
            "fleetroute_routing_decisions",
            "Routing decisions by API and outcome",
            ["api", "outcome"],
            registry=r,
        )
        self.decision_latency = Histogram(
            "fleetroute_decision_latency_ms",
            "Time to decide, in milliseconds, by API",
            ["api"],
            buckets=_DECISION_BUCKETS_MS,
            registry=r,
        )
        self.model_selected = Counter(
            "fleetroute_model_selected", "Decisions per selected model", ["model"], registry=r
        )
        self.endpoint_load = Gauge(
            "fleetroute_endpoint_load",
            "Requests in flight per endpoint",
            ["endpoint", "kind"],
            registry=r,
        )
        self.endpoint_capacity = Gauge(
            "fleetroute_endpoint_capacity",
            "Capacity per endpoint",
            ["endpoint", "kind"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "fleetroute_breaker_state",
            "Circuit breaker state per instance (0 closed, 1 half-open, 2 open)",
            ["endpoint"],
            registry=r,
        )
        self.rate_limited = Counter(
            "fleetroute_rate_limited", "Requests refused by a rate limit", ["scope"], registry=r
        )
        self.budget_refusals = Counter(
            "fleetroute_budget_refusals",
            "Requests refused because a budget was spent",
            ["scope"],
            registry=r,
        )
        self.budget_spend = Gauge(
            "fleetroute_budget_spend",
            "Spend in the current budget window",
            ["scope"],
            registry=r,
        )
        self.budget_limit = Gauge(
            "fleetroute_budget_limit", "Budget limit of the current window", ["scope"], registry=r
        )
        self.cost = Counter(
            "fleetroute_cost", "Estimated cost of routed requests", ["model"], registry=r
        )
        self.load_data_age = Gauge(
            "fleetroute_load_data_age_seconds",
            "Age of the oldest health/load observation of an endpoint the router acts on",
            ["source"],
            registry=r,
        )
        self.shared_state_degraded = Gauge(
            "fleetroute_shared_state_degraded",
            "1 when Redis is configured but unreachable and local state is used",
            registry=r,
        )
        self.proxy_requests = Counter(
            "fleetroute_proxy_requests",
            "Proxied requests by model and result",
            ["model", "result"],
            registry=r,
        )
        self.proxy_upstream_latency = Histogram(
            "fleetroute_proxy_upstream_seconds",
            "Upstream time of proxied requests",
            ["model"],
            buckets=_UPSTREAM_BUCKETS_S,
            registry=r,
        )
        self.leases_expired = Counter(
            "fleetroute_leases_expired",
            "Decisions whose load was returned because no completion was reported in time",
            registry=r,
        )
        self.analytics_queue = Gauge(
            "fleetroute_analytics_queue_depth",
            "Decision records waiting to be written",
            registry=r,
        )
        self.analytics_dropped = Gauge(
            "fleetroute_analytics_dropped",
            "Decision records dropped on queue overflow",
            registry=r,
        )
        self.routing_cache = Counter(
            "fleetroute_routing_cache",
            "Lookups of the routing cache (detected tasks by request type and content)",
            ["result"],
            registry=r,
        )
        self.websocket_subscribers = Gauge(
            "fleetroute_websocket_subscribers", "Subscribers of /ws/routing", registry=r
        )

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
