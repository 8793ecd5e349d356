"""The routing service as users run it: the real app under a real uvicorn server on a
loopback port, talked to over HTTP.

What only a running server shows: the proxy forwarding to stand-in model servers (each its
own uvicorn server) with retries, breakers and client disconnects; replicas agreeing
through one real Redis on rate limits, the budget and breakers, and carrying on when that
Redis is killed; every open decision written to SQLite or PostgreSQL when the server
stops; the dashboard rendering the live feed in headless Chromium; and ``fleetroute serve
--demo`` started, used and stopped with Ctrl-C as a process.

Nothing here waits for time to pass: where the server acts on its own (a released load,
a recovered Redis, a started process), the test polls for the effect with a deadline.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from fleetroute.service.app import create_app
from fleetroute.service.backend_stub import create_backend_app
from fleetroute.service.config import CONFIG_FILE_VARIABLE, ENVIRONMENT_VARIABLES, ServiceConfig
from fleetroute.service.demo import DEMO_SERVICES, demo_backends

from .chromium import artifacts_dir, launch_chromium
from .conftest import ROUTER, MakeConfig
from .live_server import LiveServer, free_port
from .postgres_server import reset
from .redis_server import RedisServer
from .test_dashboard import assert_self_contained, open_dashboard

T = TypeVar("T")

DEADLINE_S = 15.0
CHAT = "/v1/chat/completions"
FAST = "fast-model"
SLOW = "slow-model"
# Two instances per model; an instance id is also its stand-in's name (x-backend).
FAST_INSTANCES = ("fast-1", "fast-2")
SLOW_INSTANCES = ("slow-1", "slow-2")
BREAKER_THRESHOLD = 2


# ---- helpers ---------------------------------------------------------------------------


def poll(probe: Callable[[], T | None], what: str, timeout_s: float = DEADLINE_S) -> T:
    """``probe()``'s first truthy value, asked until ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:g} s waiting for {what}")
        time.sleep(0.02)


def metric(client: httpx.Client, name: str, **labels: str) -> float | None:
    """The value of one sample of ``/metrics``, or None when it is not exposed."""
    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def api(server: LiveServer, headers: Mapping[str, str] = ROUTER) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=dict(headers), timeout=DEADLINE_S)


def chat(content: str, model: str = FAST, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def decide(client: httpx.Client, model: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"request_type": "chat_completion", "content": "hello there"}
    if model is not None:
        body["model"] = model
    return client.post("/routing/decide", json=body)


def model_entry(name: str, instances: Mapping[str, str], cost: float) -> dict[str, Any]:
    """A ``fleet.models`` entry: ``instances`` maps instance ids to their URLs."""
    return {
        "name": name,
        "cost_per_request": cost,
        "quality": 0.8,
        "latency_ms": 50.0,
        "instances": [{"id": i, "url": url, "capacity": 8} for i, url in instances.items()],
    }


def unreachable(*ids: str) -> dict[str, str]:
    """Instance URLs for tests that only decide (nothing is ever sent to them)."""
    return {i: f"http://127.0.0.1:{9 + n}" for n, i in enumerate(ids)}


def table_rows(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)))
    finally:
        engine.dispose()


def sse_data(lines: Iterator[str]) -> list[str]:
    return [line.removeprefix("data:").strip() for line in lines if line.startswith("data:")]


# ---- 1. the proxy, end to end ----------------------------------------------------------


class Fleet:
    """The service in front of four stand-ins: ``fast-model`` answers at once,
    ``slow-model`` streams a token every 50 ms."""

    def __init__(self, stack: ExitStack, make_config: MakeConfig, **sections: Any) -> None:
        self.backends: dict[str, LiveServer] = {}
        for instance in FAST_INSTANCES:
            app = create_backend_app(instance, model=FAST)
            self.backends[instance] = stack.enter_context(LiveServer(app))
        for instance in SLOW_INSTANCES:
            app = create_backend_app(instance, model=SLOW, chunk_interval_s=0.05)
            self.backends[instance] = stack.enter_context(LiveServer(app))
        urls = {i: server.url for i, server in self.backends.items()}
        config = make_config(
            fleet={
                "models": [
                    model_entry(FAST, {i: urls[i] for i in FAST_INSTANCES}, 0.01),
                    model_entry(SLOW, {i: urls[i] for i in SLOW_INSTANCES}, 0.02),
                ],
                "services": [],
            },
            circuit_breaker={"failure_threshold": BREAKER_THRESHOLD, "recovery_timeout": 600},
            performance={"max_retries": 3},
            **sections,
        )
        self.config = config
        self.server = stack.enter_context(LiveServer(create_app(config)))
        self.client = stack.enter_context(api(self.server))

    def backend_stats(self, instance: str) -> dict[str, Any]:
        with httpx.Client(base_url=self.backends[instance].url, timeout=DEADLINE_S) as client:
            stats: dict[str, Any] = client.get("/admin/stats").json()
            return stats

    def fault(self, instance: str, **fault: Any) -> None:
        with httpx.Client(base_url=self.backends[instance].url, timeout=DEADLINE_S) as client:
            assert client.post("/admin/faults", json=fault).status_code == 200

    def loads(self) -> dict[str, int]:
        response = self.client.get("/routing/load")
        assert response.status_code == 200
        return {
            instance: int(entry["load"])
            for model in response.json()["models"].values()
            for instance, entry in model["instances"].items()
        }

    def breakers(self) -> dict[str, dict[str, Any]]:
        response = self.client.get("/routing/circuit-breaker/status")
        assert response.status_code == 200
        return {
            instance: info
            for model in response.json()["models"].values()
            for instance, info in model.items()
        }


@pytest.fixture
def fleet(make_config: MakeConfig) -> Iterator[Fleet]:
    with ExitStack() as stack:
        yield Fleet(stack, make_config)


def test_proxy_answers_and_streams_through_the_service(fleet: Fleet) -> None:
    client = fleet.client
    response = client.post(CHAT, json=chat("hello fleet"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "echo hello fleet"
    assert body["model"] == FAST
    assert response.headers["x-fleetroute-model"] == FAST
    target = response.headers["x-fleetroute-target"]
    assert target in FAST_INSTANCES
    assert response.headers["x-backend"] == target
    assert response.headers["x-fleetroute-attempts"] == "1"

    stream = chat("one two three", stream=True, stream_options={"include_usage": True})
    with client.stream("POST", CHAT, json=stream) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert streamed.headers["x-fleetroute-model"] == FAST
        events = sse_data(streamed.iter_lines())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )
    assert text == "echo one two three"
    assert chunks[-1]["usage"]["completion_tokens"] == 4

    assert fleet.loads() == dict.fromkeys(FAST_INSTANCES + SLOW_INSTANCES, 0)
    performance = client.get("/routing/performance").json()
    assert performance["per_api"] == {"proxy": 2}
    assert performance["completed"] == 2
    (fast,) = performance["per_model"]
    assert fast["model"] == FAST and fast["requests"] == 2 and fast["success_rate"] == 1.0
    costs = client.get("/routing/cost-analysis").json()
    assert costs["requests"] == 2
    assert costs["total_cost"] == pytest.approx(0.02)
    assert [(m["model"], m["requests"]) for m in costs["per_model"]] == [(FAST, 2)]
    assert metric(client, "fleetroute_proxy_requests_total", model=FAST, result="ok") == 2

    # Proxied requests are recorded against their client, like every other API's.
    rows = table_rows(
        fleet.config.analytics.database_url,
        "SELECT client_id, tokens_in, tokens_out FROM routing_decisions WHERE api = 'proxy'",
    )
    assert sorted(rows) == [("router", 2, 3), ("router", 3, 4)]


def test_proxy_retries_past_a_failing_instance_and_opens_its_breaker(fleet: Fleet) -> None:
    client = fleet.client
    fleet.fault("fast-1", status=503, count=100)

    def until_open() -> bool:
        response = client.post(CHAT, json=chat("retry me"))
        assert response.status_code == 200, response.text
        assert response.headers["x-fleetroute-target"] == "fast-2"
        assert response.json()["choices"][0]["message"]["content"] == "echo retry me"
        return bool(fleet.breakers()["fast-1"]["status"] == "open")

    poll(until_open, "the breaker of fast-1 to open")
    breakers = fleet.breakers()
    assert breakers["fast-1"]["failure_count"] == BREAKER_THRESHOLD
    assert breakers["fast-1"]["last_failure_time"] is not None
    assert breakers["fast-2"] == {"status": "closed", "failure_count": 0, "last_failure_time": None}
    # The breaker opened after exactly threshold failed attempts ...
    assert fleet.backend_stats("fast-1")["faults_injected"] == BREAKER_THRESHOLD

    # ... and from then on fast-1 is not even tried.
    for _ in range(4):
        response = client.post(CHAT, json=chat("skip it"))
        assert response.status_code == 200
        assert response.headers["x-fleetroute-target"] == "fast-2"
        assert response.headers["x-fleetroute-attempts"] == "1"
    assert fleet.backend_stats("fast-1")["requests"] == BREAKER_THRESHOLD
    assert metric(client, "fleetroute_breaker_state", endpoint="fast-1") == 2  # open
    assert (
        metric(client, "fleetroute_proxy_requests_total", model=FAST, result="error")
        == BREAKER_THRESHOLD
    )
    assert fleet.loads() == dict.fromkeys(FAST_INSTANCES + SLOW_INSTANCES, 0)


def test_client_disconnect_mid_stream_releases_the_load(fleet: Fleet) -> None:
    client = fleet.client
    # 400 tokens at 50 ms each: the stream runs for 20 s unless someone hangs up.
    body = chat(" ".join(["word"] * 500), model=SLOW, stream=True, max_tokens=400)
    with client.stream("POST", CHAT, json=body) as streamed:
        assert streamed.status_code == 200
        target = streamed.headers["x-fleetroute-target"]
        assert target in SLOW_INSTANCES
        lines = streamed.iter_lines()
        seen = 0
        for line in lines:
            if line.startswith("data:") and '"content":"word"' in line.replace(" ", ""):
                seen += 1
                if seen == 2:
                    break
        assert seen == 2
        # The stream holds one unit of load on its instance while it runs.
        assert fleet.loads()[target] == 1
    # Leaving the block hung up mid-stream.

    poll(lambda: fleet.loads()[target] == 0, f"the load on {target} to return to 0")
    assert fleet.loads() == dict.fromkeys(FAST_INSTANCES + SLOW_INSTANCES, 0)
    poll(
        lambda: (
            metric(
                client, "fleetroute_proxy_requests_total", model=SLOW, result="client_disconnected"
            )
            == 1
        ),
        "fleetroute_proxy_requests_total{result='client_disconnected'} to reach 1",
    )
    # The upstream was hung up on too, so the model server stops generating.
    poll(
        lambda: fleet.backend_stats(target)["streams_cancelled"] == 1,
        f"{target} to see its stream cancelled",
    )
    # A client that leaves says nothing about the instance's health.
    assert fleet.breakers()[target]["failure_count"] == 0
    assert client.get("/routing/performance").json()["live"]["proxy_in_flight"] == 0


def test_proxy_says_the_budget_is_spent(make_config: MakeConfig) -> None:
    # fast-model costs 0.01 a request: the budget pays for two.
    with ExitStack() as stack:
        fleet = Fleet(stack, make_config, cost_optimization={"budget_limit": 0.02})
        for _ in range(2):
            assert fleet.client.post(CHAT, json=chat("pay me")).status_code == 200
        refused = fleet.client.post(CHAT, json=chat("no money left"))
        # Not "no target is available, retry in 1 s": waiting will not help.
        assert refused.status_code in (402, 429), refused.text
        assert "budget" in refused.json()["error"]["message"]
        assert (
            fleet.backend_stats("fast-1")["requests"] + fleet.backend_stats("fast-2")["requests"]
            == 2
        )


# ---- 2. replicas sharing one Redis -----------------------------------------------------


def replicas(stack: ExitStack, configs: list[ServiceConfig]) -> list[httpx.Client]:
    servers = [stack.enter_context(LiveServer(create_app(config))) for config in configs]
    return [stack.enter_context(api(server)) for server in servers]


def replica_configs(
    make_config: MakeConfig, tmp_path: Path, redis_url: str, *, count: int = 2, **sections: Any
) -> list[ServiceConfig]:
    """Replicas' configurations: one Redis, an analytics file each."""
    return [
        make_config(
            redis={"url": redis_url},
            analytics={"database_url": f"sqlite:///{tmp_path / f'replica-{n}.db'}"},
            **sections,
        )
        for n in range(count)
    ]


def test_replicas_share_the_client_rate_limit(
    make_config: MakeConfig, tmp_path: Path, redis_server: RedisServer
) -> None:
    # 6 a minute refills one token in 10 s: none comes back during the calls, however
    # slow the machine, so the count below is exact.
    configs = replica_configs(
        make_config,
        tmp_path,
        redis_server.url,
        auth={"client_rate_limit_per_minute": 6, "client_burst": 5},
    )
    with ExitStack() as stack:
        a, b = replicas(stack, configs)
        responses = [(a, b)[n % 2].get("/routing/status") for n in range(12)]
        assert [r.status_code for r in responses] == [200] * 5 + [429] * 7
        for refused in responses[5:]:
            assert int(refused.headers["retry-after"]) >= 1
            assert "router" in refused.json()["detail"]
        assert metric(a, "fleetroute_rate_limited_total", scope="client") == 3
        assert metric(b, "fleetroute_rate_limited_total", scope="client") == 4


def test_replicas_share_one_budget(
    make_config: MakeConfig, tmp_path: Path, redis_server: RedisServer
) -> None:
    fleet = {"models": [model_entry("m", unreachable("m-1", "m-2"), 0.25)], "services": []}
    configs = replica_configs(
        make_config,
        tmp_path,
        redis_server.url,
        count=3,
        fleet=fleet,
        cost_optimization={"budget_limit": 1},
    )
    with ExitStack() as stack:
        a, b, idle = replicas(stack, configs)
        responses = [decide((a, b)[n % 2]) for n in range(8)]
        assert [r.status_code for r in responses] == [200] * 4 + [402] * 4
        assert "budget" in responses[-1].json()["detail"]
        # A replica that has decided nothing reports the one budget, not what it has
        # seen of it, and refuses too.
        spent = idle.get("/routing/status").json()["cost_optimization"]["spent"]
        assert spent == pytest.approx(1.0)
        assert metric(idle, "fleetroute_budget_spend", scope="global") == pytest.approx(1.0)
        assert decide(idle).status_code == 402


def test_replicas_share_breakers(
    make_config: MakeConfig, tmp_path: Path, redis_server: RedisServer
) -> None:
    fleet = {"models": [model_entry("solo", unreachable("solo-1"), 0.01)], "services": []}
    configs = replica_configs(
        make_config,
        tmp_path,
        redis_server.url,
        fleet=fleet,
        circuit_breaker={"failure_threshold": BREAKER_THRESHOLD, "recovery_timeout": 600},
    )
    with ExitStack() as stack:
        a, b = replicas(stack, configs)

        def decide_and_complete(client: httpx.Client, success: bool) -> None:
            decision = decide(client, "solo")
            assert decision.status_code == 200, decision.text
            request_id = decision.json()["request_id"]
            body = {"request_id": request_id, "success": success}
            done = client.post("/routing/complete", json=body)
            assert done.status_code == 200, done.text

        # B has seen solo-1 succeed: its last word on the breaker is "closed".
        decide_and_complete(b, success=True)
        for _ in range(BREAKER_THRESHOLD):
            decide_and_complete(a, success=False)
        # A opened the breaker: B must not route to solo-1 on what it saw before.
        refused = decide(b, "solo")
        assert refused.status_code == 503, refused.text
        assert decide(a, "solo").status_code == 503

        status = b.get("/routing/circuit-breaker/status").json()
        breaker = status["models"]["solo"]["solo-1"]
        assert breaker["status"] == "open"
        assert breaker["failure_count"] == BREAKER_THRESHOLD


# ---- 3. Redis killed mid-run -----------------------------------------------------------


def test_a_replica_survives_redis_dying_and_comes_back(
    make_config: MakeConfig, redis_server: RedisServer
) -> None:
    config = make_config(redis={"url": redis_server.url, "retry_interval_s": 0.2})
    with LiveServer(create_app(config)) as server, api(server) as client:
        assert decide(client).status_code == 200
        health = client.get("/health").json()
        assert (health["status"], health["shared_state"]) == ("healthy", "redis")
        assert metric(client, "fleetroute_shared_state_degraded") == 0

        redis_server.stop()
        for _ in range(3):
            assert decide(client).status_code == 200
            assert client.get("/routing/status").status_code == 200
        health = client.get("/health").json()
        assert (health["status"], health["shared_state"]) == ("degraded", "degraded")
        assert metric(client, "fleetroute_shared_state_degraded") == 1

        redis_server.restart()

        def recovered() -> bool:
            health = client.get("/health").json()
            return (health["status"], health["shared_state"]) == ("healthy", "redis")

        # No traffic now: an idle replica must notice too (an alert on the metric would
        # otherwise never clear). redis.retry_interval_s is 0.2 s: 3 s leaves room for a
        # slow machine, and none for the 5 s default.
        poll(recovered, "/health to report Redis back", timeout_s=3.0)
        assert metric(client, "fleetroute_shared_state_degraded") == 0
        assert decide(client).status_code == 200
        assert client.get("/health").json()["shared_state"] == "redis"


# ---- 4. every decision is written at shutdown -------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_stopping_the_server_writes_every_decision(
    database: str, make_config: MakeConfig, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if database == "postgresql":
        url = request.getfixturevalue("postgres_server").url
        reset(url)
    else:
        url = f"sqlite:///{tmp_path / 'decisions.db'}"
    # Leases outlive the test and the writer's timer never fires: what is written is
    # written by the shutdown.
    config = make_config(
        analytics={"database_url": url, "flush_interval_s": 60},
        routing={"decision_lease_s": 600},
    )
    expected: dict[str, tuple[str, str]] = {}  # request id -> (api, status)
    server = LiveServer(create_app(config))
    with server, api(server) as client:
        request_data = {"type": "inference", "data": [0.1, 0.2], "complexity": 0.3}
        for n in range(100):
            routed = client.post("/api/v1/route", json={"data": request_data})
            assert routed.status_code == 200, routed.text
            result = routed.json()
            status = "routed" if result["selected_services"] else "rejected"
            if n % 3 == 0 and status == "routed":
                done = client.post(
                    "/api/v1/route/complete",
                    json={"request_id": result["request_id"], "latency_ms": 5.0},
                )
                assert done.status_code == 200
                status = "completed"
            expected[result["request_id"]] = ("route", status)

        batch = client.post("/api/v1/route/batch", json={"requests": [request_data] * 100})
        assert batch.status_code == 200, batch.text
        for result in batch.json()["results"]:
            status = "routed" if result["selected_services"] else "rejected"
            expected[result["request_id"]] = ("batch", status)

        for n in range(100):
            decided = decide(client)
            assert decided.status_code == 200, decided.text
            request_id = decided.json()["request_id"]
            status = "routed"
            if n % 3 == 0:
                done = client.post("/routing/complete", json={"request_id": request_id})
                assert done.status_code == 200
                status = "completed"
            expected[request_id] = ("decide", status)
        assert len(expected) == 300
        server.stop()

    rows = table_rows(url, "SELECT request_id, api, status FROM routing_decisions")
    assert len(rows) == 300
    assert {row.request_id: (row.api, row.status) for row in rows} == expected


# ---- 5. the dashboard on the real app ---------------------------------------------------


def test_dashboard_shows_the_live_service_in_chromium(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    app = create_app(make_config())
    failures: list[BaseException] = []

    def decide_once_watched(url: str) -> None:
        # A decision made once the page has subscribed reaches it as a decision message.
        try:
            poll(lambda: app.state.hub.subscribers, "the page to subscribe to /ws/routing")
            with httpx.Client(base_url=url, headers=ROUTER, timeout=DEADLINE_S) as client:
                assert decide(client).status_code == 200
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    with LiveServer(app) as server, launch_chromium() as browser:
        worker = threading.Thread(target=decide_once_watched, args=(server.url,))
        worker.start()
        try:
            open_dashboard(browser, server.url, snapshots=2, decisions=1)
        finally:
            worker.join(DEADLINE_S)
        assert failures == []
        assert_self_contained(browser, server.url)

        ids = browser.evaluate(
            "[...document.querySelectorAll('#endpoints tbody tr')]"
            ".map((tr) => tr.cells[0].textContent.trim())"
        )
        services = [service["service_id"] for service in DEMO_SERVICES]
        instances = [backend.instance_id for backend in demo_backends(1)]
        assert sorted(ids) == sorted(services + instances)
        shown = browser.evaluate("document.querySelectorAll('#decisions tbody tr').length")
        assert shown >= 1

        picture = browser.screenshot(artifacts_dir(tmp_path) / "dashboard-live.png")
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert picture.stat().st_size > 10_000


# ---- 6. `fleetroute serve --demo` as a process -----------------------------------------

_KEY_LINE = re.compile(r"demo admin API key \(valid for this run only\): (\S+)")
_DASHBOARD_LINE = re.compile(r"dashboard: (http://\S+)/dashboard")


def test_cli_serve_demo_starts_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    database = tmp_path / "a.db"
    port = free_port()
    # The service's own settings come from the command line only.
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ENVIRONMENT_VARIABLES and name != CONFIG_FILE_VARIABLE
    }
    stderr_path = tmp_path / "stderr.txt"
    command = [
        sys.executable,
        "-m",
        "fleetroute.cli",
        "serve",
        "--demo",
        "--port",
        str(port),
        "--database-url",
        f"sqlite:///{database}",
    ]
    lines: queue.Queue[str | None] = queue.Queue()

    def read(stream: Any) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    with (
        stderr_path.open("w") as stderr,
        subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        ) as process,
    ):
        reader = threading.Thread(target=read, args=(process.stdout,), daemon=True)
        reader.start()
        try:
            key = base_url = None
            deadline = time.monotonic() + 60.0
            while key is None or base_url is None:
                remaining = deadline - time.monotonic()
                try:
                    line = lines.get(timeout=max(remaining, 0.0))
                except queue.Empty:
                    line = None
                if line is None:
                    raise AssertionError(
                        "fleetroute serve --demo did not print its admin key and dashboard URL "
                        f"within 60 s (exit status {process.poll()}); stderr: "
                        f"{stderr_path.read_text()[-2000:]}"
                    )
                if match := _KEY_LINE.search(line):
                    key = match.group(1)
                if match := _DASHBOARD_LINE.search(line):
                    base_url = match.group(1)
            assert base_url == f"http://127.0.0.1:{port}"

            with httpx.Client(base_url=base_url, timeout=DEADLINE_S) as client:
                health = client.get("/health")
                assert health.status_code == 200
                assert health.json()["status"] == "healthy"
                assert health.json()["models"] == 4
                assert decide(client).status_code == 401
                decided = client.post(
                    "/routing/decide",
                    json={"request_type": "chat_completion", "content": "hi"},
                    headers={"X-API-Key": key},
                )
                assert decided.status_code == 200, decided.text
                request_id = decided.json()["request_id"]

            process.send_signal(signal.SIGINT)
            status = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        reader.join(DEADLINE_S)
    errors = stderr_path.read_text()
    assert status == 0, errors[-2000:]
    assert "Traceback" not in errors, errors[-4000:]
    rows = table_rows(f"sqlite:///{database}", "SELECT request_id, api FROM routing_decisions")
    assert [tuple(row) for row in rows] == [(request_id, "decide")]
