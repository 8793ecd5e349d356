"""The lease book (load held by a decision until completion or its deadline) and the
event hub behind ``/ws/routing``."""

from __future__ import annotations

import asyncio
import json

import pytest

from fleetroute.service.events import EventHub
from fleetroute.service.leases import Lease, LeaseBook


def lease(request_id: str, expires_at: float) -> Lease:
    return Lease(request_id, "route", None, "p2c", None, None, 0.0, 0.1, 0.0, expires_at)


def test_expired_leases_close_in_deadline_order_and_completed_ones_never_expire() -> None:
    book = LeaseBook()
    for name, deadline in (("c", 3.0), ("a", 1.0), ("b", 2.0)):
        book.add(lease(name, deadline))
    assert book.pop("b") is not None
    expired: list[str] = []
    assert book.expire(2.5, lambda item: expired.append(item.request_id)) == 1
    assert expired == ["a"]
    assert "c" in book and "a" not in book and len(book) == 1
    assert book.expire(10.0, lambda item: expired.append(item.request_id)) == 1
    assert expired == ["a", "c"] and len(book) == 0


def test_a_request_id_holds_one_lease() -> None:
    book = LeaseBook()
    book.add(lease("x", 1.0))
    with pytest.raises(ValueError, match="'x' already holds a lease"):
        book.add(lease("x", 2.0))
    assert book.get("x") is not None and book.get("x").expires_at == 1.0  # type: ignore[union-attr]


def test_drain_returns_every_open_lease() -> None:
    book = LeaseBook()
    book.add(lease("a", 1.0))
    book.add(lease("b", 2.0))
    book.pop("a")
    assert [item.request_id for item in book.drain()] == ["b"]
    assert len(book) == 0 and book.expire(99.0, lambda item: None) == 0


def test_hub_serialises_nothing_without_subscribers() -> None:
    hub = EventHub()
    hub.publish({"type": "decision"})
    assert hub.published == 0


def test_slow_subscribers_lose_decisions_but_never_a_snapshot() -> None:
    async def scenario() -> None:
        hub = EventHub(queue_limit=3)
        slow = hub.subscribe()
        for i in range(5):
            hub.publish({"type": "decision", "n": i})
        assert slow.dropped == 2
        hub.publish({"type": "snapshot"}, essential=True)
        frames = [json.loads(await slow.next()) for _ in range(3)]
        assert [f["type"] for f in frames] == ["decision", "decision", "snapshot"]
        assert [f.get("n") for f in frames[:2]] == [1, 2]
        hub.unsubscribe(slow)
        assert hub.subscribers == 0

    asyncio.run(scenario())


def test_queue_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="queue_limit"):
        EventHub(queue_limit=0)
