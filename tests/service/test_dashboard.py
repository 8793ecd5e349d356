"""The dashboard page: served self-contained, and rendering a live feed in a real browser.

The browser test serves the page next to a fake ``/ws/routing`` feed (the message
formats of the service, made-up numbers) and drives headless Chromium: the page must
connect with the token from its URL, come back after the server drops it, render the
snapshot and the decisions, stay on its own origin, keep to one DOM update per frame
under a burst of decisions, and log no error. The screenshot it leaves is for people.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from fleetroute.service.dashboard import DASHBOARD_PATH, dashboard_router, load_dashboard_page

from .chromium import Chromium, ChromiumError, artifacts_dir, launch_chromium
from .live_server import LiveServer

TOKEN = "s3cret-token"
BURST = 3_000

ENDPOINTS: list[dict[str, Any]] = [
    {
        "id": "svc-chat",
        "kind": "service",
        "model": None,
        "load": 18,
        "capacity": 100,
        "breaker": "closed",
        "healthy": True,
    },
    {
        "id": "gpu-07",
        "kind": "instance",
        "model": "hermes-2",
        "load": 77,
        "capacity": 96,
        "breaker": "half_open",
        "healthy": True,
    },
    {
        "id": "gpu-12",
        "kind": "instance",
        "model": "llama-3-70b",
        "load": 0,
        "capacity": 64,
        "breaker": "open",
        "healthy": False,
    },
]
ENDPOINT_IDS = [endpoint["id"] for endpoint in ENDPOINTS]
VISIBLE_DECISION_ROWS = "document.querySelectorAll('#decisions tbody tr:not([hidden])').length"


# ---- helpers a test against the real service can share ---------------------------


def open_dashboard(
    browser: Chromium,
    base_url: str,
    *,
    token: str | None = None,
    snapshots: int = 2,
    decisions: int = 0,
    timeout_s: float = 15.0,
) -> None:
    """Opens the dashboard and waits until it is connected and has rendered at least
    ``snapshots`` snapshots and ``decisions`` decisions."""
    query = f"?token={token}" if token else ""
    browser.navigate(f"{base_url}{DASHBOARD_PATH}{query}")
    browser.wait_for(
        "document.body.dataset.connection === 'open'"
        f" && Number(document.body.dataset.snapshots) >= {snapshots}"
        f" && Number(document.body.dataset.decisions) >= {decisions}",
        timeout_s,
    )


def assert_self_contained(browser: Chromium, base_url: str) -> None:
    """No console error, and nothing loaded from anywhere but the server itself."""
    assert browser.console_errors == []
    urls = browser.resource_urls()
    assert urls, "the page reported no navigation entry"
    foreign = [url for url in urls if not url.startswith(f"{base_url}/")]
    assert foreign == []


# ---- the fake feed --------------------------------------------------------------------


class FakeFeed:
    """Counts connections and the tokens they bring; a burst is asked for by the test."""

    def __init__(self) -> None:
        self.connections = 0
        self.tokens: list[str | None] = []
        self.burst = threading.Event()


def snapshot(tick: int) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "timestamp": time.time(),
        "decisions_per_second": round(900 + 350 * math.sin(tick / 3) + 40 * (tick % 4), 1),
        "decisions_total": 52_000 + 97 * tick,
        "total_cost": round(412.37 + 0.8 * tick, 2),
        "budget_limit": 1000.0,
        "shared_state": "degraded",
        "endpoints": ENDPOINTS,
    }


def decision(n: int, *, target: str | None = None) -> dict[str, Any]:
    routed = ENDPOINTS[n % 2]
    return {
        "type": "decision",
        "request_id": f"req-{n:06d}",
        "api": ("route", "batch", "decide", "proxy")[n % 4],
        "selected_services": [routed["id"]],
        "routing_strategy": ("power_of_two", "least_connections", "cost_aware")[n % 3],
        "model": routed["model"],
        "target": target or f"{routed['id']}/replica-{n % 3}",
        "cost": round(0.0042 + 0.0011 * (n % 7), 6),
        "latency_ms": round(0.18 + 0.07 * (n % 5), 3),
        "timestamp": time.time(),
    }


def fake_service(feed: FakeFeed) -> FastAPI:
    """The dashboard router and a ``/ws/routing`` feed: a snapshot and three decisions
    every 0.1 s; the first connection is dropped after one round, as a restart would."""
    app = FastAPI()
    app.include_router(dashboard_router)

    @app.websocket("/ws/routing")
    async def routing(websocket: WebSocket) -> None:
        feed.connections += 1
        first = feed.connections == 1
        feed.tokens.append(websocket.query_params.get("token"))
        await websocket.accept()
        sent = 0
        try:
            for tick in range(10_000):
                await websocket.send_text(json.dumps(snapshot(tick)))
                for _ in range(3):
                    await websocket.send_text(json.dumps(decision(sent)))
                    sent += 1
                if first:
                    await websocket.close(code=1012, reason="restarting")
                    return
                if feed.burst.is_set():
                    feed.burst.clear()
                    for i in range(BURST):
                        await websocket.send_text(json.dumps(decision(sent, target=f"burst-{i}")))
                        sent += 1
                await asyncio.sleep(0.1)
        except WebSocketDisconnect:
            return

    return app


# ---- tests ----------------------------------------------------------------------------


async def _get(app: FastAPI, path: str) -> httpx.Response:
    # In process through ASGI; starlette's TestClient warns on import with httpx (it wants
    # httpx2), and the suite turns warnings into errors.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path)


def test_dashboard_is_one_self_contained_page() -> None:
    response = asyncio.run(_get(fake_service(FakeFeed()), DASHBOARD_PATH))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert html == load_dashboard_page().html
    assert re.findall(r"https?://", html) == []
    assert "<script src" not in html and '<link rel="stylesheet"' not in html
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert response.headers["referrer-policy"] == "no-referrer"


def test_dashboard_renders_the_live_feed_in_chromium(tmp_path: Path) -> None:
    feed = FakeFeed()
    with LiveServer(fake_service(feed)) as server, launch_chromium() as browser:
        open_dashboard(browser, server.url, token=TOKEN, snapshots=2, decisions=3)

        # The first connection was dropped: the page came back on its own, with its token.
        assert feed.connections >= 2
        assert set(feed.tokens) == {TOKEN}

        rows = browser.evaluate(
            "[...document.querySelectorAll('#endpoints tbody tr')].map((tr) =>"
            " [...tr.cells].map((cell) => cell.textContent.trim()))"
        )
        assert [row[0] for row in rows] == ENDPOINT_IDS
        open_row = rows[ENDPOINT_IDS.index("gpu-12")]
        assert open_row[4] == "open"
        assert open_row[5] == "unhealthy"
        assert browser.evaluate(
            "[...document.querySelectorAll('#endpoints tbody tr')]"
            ".find((tr) => tr.cells[0].textContent === 'gpu-12')"
            ".cells[4].firstElementChild.classList.contains('bad')"
        )
        assert browser.evaluate("!document.getElementById('degraded').hidden")
        shown = browser.evaluate(VISIBLE_DECISION_ROWS)
        assert 3 <= shown <= 20
        assert_self_contained(browser, server.url)

        # A fuller sparkline for the picture.
        browser.wait_for("Number(document.body.dataset.snapshots) >= 15", 15.0)
        picture = browser.screenshot(artifacts_dir(tmp_path) / "dashboard.png")
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert picture.stat().st_size > 10_000

        # A burst of decisions is taken in with a handful of DOM updates, not one each.
        browser.evaluate(
            "window.mutationBatches = 0;"
            " new MutationObserver(() => { window.mutationBatches += 1; })"
            ".observe(document.querySelector('#decisions tbody'),"
            " {subtree: true, childList: true, characterData: true, attributes: true}); true"
        )
        before = int(browser.evaluate("Number(document.body.dataset.decisions)"))
        feed.burst.set()
        browser.wait_for(f"Number(document.body.dataset.decisions) >= {before + BURST}", 15.0)
        assert browser.evaluate("window.mutationBatches") <= BURST // 20
        assert browser.evaluate(VISIBLE_DECISION_ROWS) == 20

        assert_self_contained(browser, server.url)
        with pytest.raises(ChromiumError, match="boom"):
            browser.evaluate("(() => { throw new Error('boom'); })()")
