"""The routing event hub behind ``WS /ws/routing``: every decision and a snapshot of
the fleet each second, fanned out to the subscribers.

Publishing never waits on a subscriber: each has a bounded queue and a slow one loses
decision messages (counted), never the router's time. A snapshot is never lost: when
the queue is full the oldest waiting message makes room for it. A
message is serialised once, however many subscribers read it, and not at all when
nobody listens.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["EventHub", "Subscription"]


class Subscription:
    """One subscriber's queue of JSON text frames."""

    def __init__(self, limit: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=limit)
        self.dropped = 0

    def offer(self, frame: str, *, essential: bool = False) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1
            if essential:
                self.queue.get_nowait()
                self.queue.put_nowait(frame)

    async def next(self) -> str:
        return await self.queue.get()


class EventHub:
    """Fans routing events out to WebSocket subscribers."""

    def __init__(self, *, queue_limit: int = 1_000) -> None:
        if queue_limit < 1:
            raise ValueError(f"queue_limit must be >= 1 (got {queue_limit!r})")
        self._queue_limit = queue_limit
        self._subscribers: set[Subscription] = set()
        self.published = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self._subscribers)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self._queue_limit)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def publish(self, message: dict[str, Any], *, essential: bool = False) -> None:
        """Queues ``message`` for every subscriber (a no-op without subscribers);
        ``essential`` messages displace the oldest waiting one rather than be dropped."""
        if not self._subscribers:
            return
        frame = json.dumps(message, separators=(",", ":"), default=str)
        self.published += 1
        for subscription in self._subscribers:
            subscription.offer(frame, essential=essential)
