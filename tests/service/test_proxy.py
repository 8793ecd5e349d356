"""The OpenAI-compatible proxy against real servers: stand-in backends and a proxy app,
each a uvicorn server on a loopback port, talked to over real sockets.

The fake picker hands out targets in a fixed order and checks the proxy's side of the
contract: every pick is finished exactly once, so its in-flight count returns to zero.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from fleetroute.resilience.retry import RetryPolicy
from fleetroute.service.backend_stub import create_backend_app
from fleetroute.service.proxy import (
    ChatProxy,
    ProxyOutcome,
    ProxyTarget,
    make_upstream_client,
)

from .live_server import LiveServer, free_port

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
PROMPT = {"messages": [{"role": "user", "content": "hello proxy world"}]}
STREAM_PROMPT = {
    "messages": [{"role": "user", "content": "one two three four five"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}
DEADLINE_S = 15.0


class FakePicker:
    """Picks the first target not excluded; records picks and finishes; counts load."""

    def __init__(self, targets: list[ProxyTarget]) -> None:
        self.targets = targets
        self.picks: list[tuple[str | None, frozenset[str]]] = []
        self.finishes: list[tuple[str, ProxyOutcome]] = []
        self.outstanding: dict[str, int] = {}
        self.problems: list[str] = []
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return sum(self.outstanding.values())

    async def pick(
        self, body: Mapping[str, Any], exclude: frozenset[str], client_id: str
    ) -> ProxyTarget | None:
        if client_id != "tester":
            self.problems.append(f"unexpected client id {client_id!r}")
        with self._lock:
            for target in self.targets:
                if target.target not in exclude:
                    self.picks.append((target.target, exclude))
                    self.outstanding[target.target] = self.outstanding.get(target.target, 0) + 1
                    return target
            self.picks.append((None, exclude))
            return None

    async def finish(self, target: ProxyTarget, outcome: ProxyOutcome) -> None:
        with self._lock:
            if self.outstanding.get(target.target, 0) <= 0:
                self.problems.append(f"finish without a pick on {target.target}")
            self.outstanding[target.target] = self.outstanding.get(target.target, 0) - 1
            self.finishes.append((target.target, outcome))


class RecordingSleep:
    """The proxy's backoff sleep: records the delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class Gate:
    """A backend ``sleep`` that holds every token until the test opens the gate, so a
    test decides when a stream moves on instead of relying on timing."""

    def __init__(self) -> None:
        self._open = threading.Event()

    def open(self) -> None:
        self._open.set()

    async def sleep(self, seconds: float) -> None:
        while not self._open.is_set():
            await asyncio.sleep(0.005)


class Fleet:
    """Starts stand-in backends and a proxy app; stops them when the test ends."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack

    def backend(self, name: str, **options: Any) -> LiveServer:
        return self._stack.enter_context(LiveServer(create_backend_app(name, **options)))

    def proxy(
        self, picker: FakePicker, *, max_retries: int = 2, sleep: RecordingSleep | None = None
    ) -> str:
        retry = RetryPolicy(max_retries=max_retries, base_delay=0.001, max_delay=0.001)
        backoff = sleep or RecordingSleep()

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            client = make_upstream_client(
                connect_timeout_s=5.0, read_timeout_s=10.0, max_connections=20, max_keepalive=10
            )
            async with client:
                app.state.proxy = ChatProxy(picker, client=client, retry=retry, sleep=backoff)
                yield

        app = FastAPI(lifespan=lifespan)

        @app.post(CHAT)
        async def chat(request: Request) -> Response:
            proxy: ChatProxy = request.app.state.proxy
            return await proxy.forward(request, CHAT, "tester")

        @app.post(COMPLETIONS)
        async def completions(request: Request) -> Response:
            proxy: ChatProxy = request.app.state.proxy
            return await proxy.forward(request, COMPLETIONS, "tester")

        return self._stack.enter_context(LiveServer(app)).url


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    with ExitStack() as stack:
        yield Fleet(stack)


def target(name: str, server: LiveServer | str, *, api_key: str | None = None) -> ProxyTarget:
    url = server if isinstance(server, str) else server.url
    return ProxyTarget(target=name, model=f"model-{name}", base_url=url, api_key=api_key)


def stats(server: LiveServer) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{server.url}/admin/stats", timeout=5).json()
    return result


def inject(server: LiveServer, **fault: Any) -> None:
    response = httpx.post(f"{server.url}/admin/faults", json=fault, timeout=5)
    assert response.status_code == 200, response.text


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Polls a server-side condition until it holds (deadline: a failure, not a hang)."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def sse_events(raw: bytes) -> list[Any]:
    """The data payloads of an SSE body: JSON objects, or the string ``[DONE]``."""
    events: list[Any] = []
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data:"):
                payload = line[5:].strip()
                events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def outcome_of(picker: FakePicker, name: str) -> ProxyOutcome:
    outcomes = [outcome for finished, outcome in picker.finishes if finished == name]
    assert len(outcomes) == 1, picker.finishes
    return outcomes[0]


def assert_settled(picker: FakePicker) -> None:
    assert picker.problems == []
    assert picker.in_flight == 0
    assert len(picker.finishes) == sum(1 for name, _ in picker.picks if name is not None)


# -- non-streaming -------------------------------------------------------------------------


def test_non_streaming_answer_passes_through_with_usage(fleet: Fleet) -> None:
    a = fleet.backend("a", api_key="sk-backend-a")
    b = fleet.backend("b")
    picker = FakePicker([target("a", a, api_key="sk-backend-a"), target("b", b)])
    url = fleet.proxy(picker)
    with httpx.Client(base_url=url, timeout=10) as client:
        # The client's own credentials are not what reaches the backend: the target's are.
        headers = {"authorization": "Bearer client-secret", "x-request-id": "req-42"}
        response = client.post(CHAT, json={**PROMPT, "model": "whatever"}, headers=headers)
        legacy = client.post(COMPLETIONS, json={"prompt": "two words", "max_tokens": 2})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "model-a"  # the router's choice of model reached the backend
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "echo hello proxy world",
    }
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert response.headers["x-fleetroute-target"] == "a"
    assert response.headers["x-fleetroute-model"] == "model-a"
    assert response.headers["x-fleetroute-attempts"] == "1"
    assert response.headers["x-backend"] == "a"
    assert response.headers["x-request-id"] == "req-42"
    assert response.headers["content-type"].startswith("application/json")

    assert legacy.status_code == 200, legacy.text
    assert legacy.json()["choices"][0]["text"] == "echo two"
    assert legacy.json()["choices"][0]["finish_reason"] == "length"

    first = picker.finishes[0][1]
    assert first.success and first.status_code == 200 and first.error is None
    assert (first.prompt_tokens, first.completion_tokens) == (3, 4)
    assert not first.streamed and not first.client_disconnected
    assert first.latency_ms >= 0
    assert stats(b)["requests"] == 0
    assert_settled(picker)


def test_client_credentials_are_never_forwarded(fleet: Fleet) -> None:
    """A target without a key gets no Authorization header, even when the client sent
    the very key the backend wants: the backend's 401 comes back, and is not retried."""
    a = fleet.backend("a", api_key="sk-backend-a")
    b = fleet.backend("b")
    picker = FakePicker([target("a", a), target("b", b)])
    url = fleet.proxy(picker)
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(CHAT, json=PROMPT, headers={"authorization": "Bearer sk-backend-a"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert "sk-backend-a" not in repr(picker.targets[0])
    assert stats(b)["requests"] == 0
    assert_settled(picker)


def test_a_bad_request_is_passed_through_and_not_retried(fleet: Fleet) -> None:
    a = fleet.backend("a")
    b = fleet.backend("b")
    picker = FakePicker([target("a", a), target("b", b)])
    url = fleet.proxy(picker)
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(CHAT, json={**PROMPT, "max_tokens": 0})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "max_tokens"
    assert response.headers["x-fleetroute-attempts"] == "1"
    assert stats(b)["requests"] == 0
    # The backend is healthy; the request was wrong: not a failure for the breaker.
    outcome = outcome_of(picker, "a")
    assert outcome.success and outcome.status_code == 400
    assert_settled(picker)


# -- retries -------------------------------------------------------------------------------


def test_a_failing_target_is_retried_on_another(fleet: Fleet) -> None:
    a = fleet.backend("a")
    b = fleet.backend("b")
    inject(a, status=503, count=2)
    picker = FakePicker([target("a", a), target("b", b)])
    backoff = RecordingSleep()
    url = fleet.proxy(picker, max_retries=3, sleep=backoff)
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(CHAT, json=PROMPT)

    assert response.status_code == 200, response.text
    assert response.headers["x-backend"] == "b"
    assert response.headers["x-fleetroute-target"] == "b"
    assert response.headers["x-fleetroute-attempts"] == "2"
    assert picker.picks == [("a", frozenset()), ("b", frozenset({"a"}))]
    assert stats(a)["requests"] == 1  # never tried twice in one request
    failed = outcome_of(picker, "a")
    assert not failed.success and failed.status_code == 503
    assert outcome_of(picker, "b").success
    assert len(backoff.delays) == 1 and 0 <= backoff.delays[0] <= 0.001
    assert_settled(picker)


def test_after_max_retries_the_last_error_is_passed_through(fleet: Fleet) -> None:
    servers = {name: fleet.backend(name) for name in ("a", "b", "c")}
    for name, status in (("a", 503), ("b", 502), ("c", 500)):
        inject(servers[name], status=status, count=5)
    picker = FakePicker([target(name, server) for name, server in servers.items()])
    url = fleet.proxy(picker, max_retries=1)
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(CHAT, json=PROMPT)

    assert response.status_code == 502  # b's answer: the last attempt
    assert "backend b" in response.json()["error"]["message"]
    assert response.headers["x-fleetroute-target"] == "b"
    assert response.headers["x-fleetroute-attempts"] == "2"
    assert stats(servers["c"])["requests"] == 0
    assert [name for name, _ in picker.finishes] == ["a", "b"]
    assert not any(outcome.success for _, outcome in picker.finishes)
    assert_settled(picker)


def test_running_out_of_targets_passes_the_last_error_through(fleet: Fleet) -> None:
    a = fleet.backend("a")
    b = fleet.backend("b")
    inject(a, status=429, count=5)
    inject(b, status=503, count=5)
    picker = FakePicker([target("a", a), target("b", b)])
    url = fleet.proxy(picker, max_retries=5)
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(CHAT, json=PROMPT)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error"
    assert response.headers["x-fleetroute-attempts"] == "2"
    assert picker.picks[-1] == (None, frozenset({"a", "b"}))
    assert_settled(picker)


def test_a_refused_connection_is_retried_on_the_next_target(fleet: Fleet) -> None:
    a = fleet.backend("a")
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    picker = FakePicker([target("dead", closed), target("a", a)])
    url = fleet.proxy(picker)
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(CHAT, json=PROMPT)
    assert response.status_code == 200, response.text
    assert response.headers["x-fleetroute-attempts"] == "2"
    dead = outcome_of(picker, "dead")
    assert not dead.success and dead.status_code is None
    assert dead.error is not None and "ConnectError" in dead.error
    assert_settled(picker)


def test_an_unreachable_fleet_answers_502(fleet: Fleet) -> None:
    picker = FakePicker([target("dead", f"http://127.0.0.1:{free_port()}")])
    url = fleet.proxy(picker)
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(CHAT, json=PROMPT)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"
    assert_settled(picker)


# -- streaming -----------------------------------------------------------------------------


def test_a_stream_is_relayed_chunk_by_chunk_as_it_is_produced(fleet: Fleet) -> None:
    gate = Gate()
    a = fleet.backend("a", sleep=gate.sleep, chunk_interval_s=0.01)
    picker = FakePicker([target("a", a)])
    url = fleet.proxy(picker)
    try:
        with (
            httpx.Client(base_url=url, timeout=10) as client,
            client.stream("POST", CHAT, json=STREAM_PROMPT) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-fleetroute-attempts"] == "1"
            chunks = response.iter_raw()
            first = next(chunks)
            # The backend is held before its first token, so this chunk came through
            # while the stream was still being produced, not after it ended.
            assert sse_events(first)[0]["choices"][0]["delta"]["role"] == "assistant"
            backend_now = stats(a)
            assert (backend_now["in_flight"], backend_now["completed"]) == (1, 0)
            assert picker.finishes == []
            gate.open()
            raw = first + b"".join(chunks)
    finally:
        gate.open()

    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    words = [
        event["choices"][0]["delta"].get("content", "") for event in events[:-1] if event["choices"]
    ]
    assert "".join(words) == "echo one two three four five"
    assert all(event["object"] == "chat.completion.chunk" for event in events[:-1])
    assert events[-2]["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
    wait_until(lambda: len(picker.finishes) == 1, "the stream's finish")
    outcome = outcome_of(picker, "a")
    assert outcome.success and outcome.streamed and not outcome.client_disconnected
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (5, 6)
    assert_settled(picker)


def test_a_client_leaving_mid_stream_cancels_the_upstream(fleet: Fleet) -> None:
    gate = Gate()
    a = fleet.backend("a", sleep=gate.sleep, chunk_interval_s=0.01)
    picker = FakePicker([target("a", a)])
    url = fleet.proxy(picker)
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            with client.stream("POST", CHAT, json=STREAM_PROMPT) as response:
                assert response.status_code == 200
                next(response.iter_raw())
            # Leaving the block closed the connection with the stream unfinished.
            wait_until(lambda: len(picker.finishes) == 1, "the proxy to finish the pick")
            outcome = outcome_of(picker, "a")
            assert outcome.client_disconnected and not outcome.success and outcome.streamed
            assert_settled(picker)
            wait_until(lambda: stats(a)["streams_cancelled"] >= 1, "the backend's cancel")
            assert stats(a)["in_flight"] == 0
            assert stats(a)["completed"] == 0
    finally:
        gate.open()


def test_an_upstream_breaking_mid_stream_ends_the_stream_as_a_failure(fleet: Fleet) -> None:
    a = fleet.backend("a")
    b = fleet.backend("b")
    inject(a, disconnect_after_chunks=3)
    picker = FakePicker([target("a", a), target("b", b)])
    url = fleet.proxy(picker)
    with (
        httpx.Client(base_url=url, timeout=10) as client,
        client.stream("POST", CHAT, json=STREAM_PROMPT) as response,
    ):
        assert response.status_code == 200
        raw = response.read()  # ends cleanly for the client, with an error event

    events = sse_events(raw)
    assert len(events) == 4
    assert [event["choices"][0]["delta"] for event in events[:3]] == [
        {"role": "assistant", "content": ""},
        {"content": "echo"},
        {"content": " one"},
    ]
    assert events[3]["error"]["code"] == "upstream_disconnected"
    assert "[DONE]" not in events
    assert response.headers["x-fleetroute-attempts"] == "1"
    assert stats(b)["requests"] == 0  # too late to retry: the client had bytes
    wait_until(lambda: len(picker.finishes) == 1, "the stream's finish")
    outcome = outcome_of(picker, "a")
    assert not outcome.success and not outcome.client_disconnected and outcome.streamed
    assert outcome.error is not None and "mid-stream" in outcome.error
    assert_settled(picker)


def test_a_stream_dropped_before_its_first_chunk_is_retried(fleet: Fleet) -> None:
    a = fleet.backend("a")
    b = fleet.backend("b")
    inject(a, disconnect_after_chunks=0)
    picker = FakePicker([target("a", a), target("b", b)])
    url = fleet.proxy(picker)
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(CHAT, json=STREAM_PROMPT)
    assert response.status_code == 200
    assert response.headers["x-backend"] == "b"
    assert response.headers["x-fleetroute-attempts"] == "2"
    assert sse_events(response.content)[-1] == "[DONE]"
    wait_until(lambda: len(picker.finishes) == 2, "both finishes")
    assert not outcome_of(picker, "a").success
    assert outcome_of(picker, "b").success
    assert_settled(picker)


# -- the proxy's own answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content", "names"),
    [
        (CHAT, b"not json", "not valid JSON"),
        (CHAT, b"", "empty"),
        (CHAT, b"[1, 2]", "JSON object (got list)"),
        (CHAT, b'{"model": "m"}', "'messages'"),
        (CHAT, b'{"messages": "hi"}', "'messages'"),
        (CHAT, b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "'stream'"),
        (COMPLETIONS, b'{"messages": [{"role": "user", "content": "x"}]}', "'prompt'"),
    ],
)
def test_a_malformed_body_is_refused_naming_the_problem(
    fleet: Fleet, path: str, content: bytes, names: str
) -> None:
    picker = FakePicker([target("a", "http://127.0.0.1:9")])
    url = fleet.proxy(picker)
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert names in error["message"]
    assert error["type"] == "invalid_request_error"
    assert picker.picks == []


def test_no_available_target_answers_503_with_retry_after(fleet: Fleet) -> None:
    picker = FakePicker([])
    url = fleet.proxy(picker)
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(CHAT, json=PROMPT)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["type"] == "service_unavailable"
    assert error["code"] == "no_target_available"
    assert picker.picks == [(None, frozenset())]


@pytest.mark.parametrize(
    ("arguments", "names"),
    [
        ({"connect_timeout_s": 0}, "connect_timeout_s"),
        ({"read_timeout_s": float("nan")}, "read_timeout_s"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_keepalive": -1}, "max_keepalive"),
        ({"max_keepalive": 50}, "max_keepalive"),
    ],
)
def test_the_upstream_client_refuses_bad_settings(arguments: dict[str, Any], names: str) -> None:
    settings: dict[str, Any] = {
        "connect_timeout_s": 1.0,
        "read_timeout_s": 1.0,
        "max_connections": 10,
        "max_keepalive": 5,
    }
    with pytest.raises(ValueError, match=names):
        make_upstream_client(**{**settings, **arguments})


# -- the stand-in backend ------------------------------------------------------------------


def test_the_stand_in_refuses_bad_requests_and_bad_faults(fleet: Fleet) -> None:
    a = fleet.backend("a")
    with httpx.Client(base_url=a.url, timeout=10) as client:
        missing = client.post(CHAT, json={"model": "m"})
        assert missing.status_code == 400
        assert missing.json()["error"]["param"] == "messages"
        assert missing.headers["x-backend"] == "a"
        for fault, field in (
            ({"status": 200}, "status"),
            ({"count": 0, "status": 503}, "count"),
            ({"delay_s": -1}, "delay_s"),
            ({"disconnect_after_chunks": "2"}, "disconnect_after_chunks"),
            ({"stauts": 503}, "stauts"),
        ):
            refused = client.post("/admin/faults", json=fault)
            assert refused.status_code == 400, fault
            assert refused.json()["error"]["param"] == field
        assert client.get("/admin/stats").json()["faults_pending"] == 0
        models = client.get("/v1/models").json()
        assert models["data"][0]["id"] == "stand-in"
        assert client.get("/health").json() == {"status": "ok", "backend": "a"}


def test_the_stand_in_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="latency_s"):
        create_backend_app("a", latency_s=-1)
    with pytest.raises(ValueError, match="name"):
        create_backend_app("")


def test_the_stand_in_paces_replies_through_its_sleep(fleet: Fleet) -> None:
    """Latency, per-token intervals and an injected delay all go through ``sleep``."""
    recorded = RecordingSleep()
    a = fleet.backend("a", sleep=recorded, latency_s=0.5, chunk_interval_s=0.25)
    inject(a, delay_s=2, count=1)
    with httpx.Client(base_url=a.url, timeout=10) as client:
        answer = client.post(COMPLETIONS, json={"prompt": "a b c"})  # reply: 4 tokens
        assert answer.json()["usage"]["completion_tokens"] == 4
        with client.stream("POST", COMPLETIONS, json={"prompt": "a b", "stream": True}) as stream:
            events = sse_events(stream.read())
    assert recorded.delays == [2.0, 0.5, 1.0, 0.5, 0.25, 0.25, 0.25]
    assert "".join(event["choices"][0]["text"] for event in events[:-1]) == "echo a b"
    assert all(event["object"] == "text_completion" for event in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in events[0]  # only when stream_options.include_usage asks
    assert stats(a) == {
        "served_by": "a",
        "requests": 2,
        "in_flight": 0,
        "completed": 2,
        "streams_cancelled": 0,
        "faults_injected": 1,
        "faults_pending": 0,
    }


def test_the_proxy_refuses_a_wrong_client_or_retry_policy() -> None:
    picker = FakePicker([])

    async def build() -> None:
        async with httpx.AsyncClient() as client:
            with pytest.raises(TypeError, match="retry"):
                ChatProxy(picker, client=client, retry=3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="client"):
            ChatProxy(picker, client=object(), retry=RetryPolicy())  # type: ignore[arg-type]

    asyncio.run(build())
