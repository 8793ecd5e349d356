"""Seed 004's routing cache: a request type and content seen within the TTL reuse their
detected task; models and instances are still chosen afresh."""

from __future__ import annotations

import warnings

from prometheus_client.parser import text_string_to_metric_families

from fleetroute.clock import ManualClock
from fleetroute.service.app import create_app

from .conftest import ROUTER, MakeConfig

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def cache_counts(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "fleetroute_routing_cache":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["result"]] = sample.value
    return counts


def test_repeated_content_hits_the_cache_until_the_ttl_passes(make_config: MakeConfig) -> None:
    clock = ManualClock(100.0)
    app = create_app(make_config(performance={"cache_ttl": 60}), clock=clock)
    body = {"request_type": "coding", "content": "Write a function that parses JSON"}
    with TestClient(app) as client:
        first = client.post("/routing/decide", json=body, headers=ROUTER).json()
        second = client.post("/routing/decide", json=body, headers=ROUTER).json()
        assert first["model_selection"]["task"] == second["model_selection"]["task"]
        assert first["model_selection"]["selected_model"] == "mixtral-8x7b"
        # The instance is chosen by load each time, so the second goes elsewhere.
        assert (
            first["load_balancing"]["target_instance"]
            != second["load_balancing"]["target_instance"]
        )
        assert cache_counts(client) == {"hit": 1.0, "miss": 1.0}
        clock.advance(61.0)
        client.post("/routing/decide", json=body, headers=ROUTER)
        assert cache_counts(client) == {"hit": 1.0, "miss": 2.0}


def test_the_cache_can_be_switched_off(make_config: MakeConfig) -> None:
    app = create_app(make_config(performance={"cache_enabled": False}))
    body = {"request_type": "chat", "content": "Hello"}
    with TestClient(app) as client:
        for _ in range(2):
            assert client.post("/routing/decide", json=body, headers=ROUTER).status_code == 200
        assert cache_counts(client) == {}
