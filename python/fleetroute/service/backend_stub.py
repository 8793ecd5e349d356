"""A stand-in for an OpenAI-compatible LLM server, with fault injection.

Real model servers (vLLM, TGI, llama.cpp, a provider's API) cannot run in tests or on a
laptop demo, so the proxy and the routing service are exercised against this app
instead. It speaks the parts of the OpenAI HTTP API that a router touches, in the same
shapes: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (with ``stream: true``
answered as Server-Sent Events, ``chat.completion.chunk`` / ``text_completion`` chunks,
an optional usage chunk and ``data: [DONE]``), ``GET /v1/models`` and ``GET /health``.

The reply is deterministic: ``"echo"`` followed by the words of the last message (or of
the prompt), cut to ``max_tokens`` words, so a test can predict every byte. Tokens are
counted by whitespace split. The reply names the model the request asked for (any name is
accepted, so one stand-in can pose as any model), or the stand-in's own ``model``.

Timing, through the injected ``sleep``: ``latency_s`` passes before anything is sent (the
prompt's processing) and ``chunk_interval_s`` before each token of the reply; a
non-streaming reply waits the same total before it is sent.

Faults, for tests and demos (``POST /admin/faults``, applied to completion requests only,
in the order they were posted; health checks and model listings never consume them):

- ``{"status": 503, "count": 2}``: the next 2 completion requests get HTTP 503 and an
  OpenAI-style error body;
- ``{"delay_s": 1.5, "count": 1}``: the next request waits 1.5 s more (may be combined
  with ``status``);
- ``{"disconnect_after_chunks": 3, "count": 1}``: the next stream sends 3 SSE events and
  then the connection drops (a non-streaming reply sends its headers and half its body).

``DELETE /admin/faults`` clears the queue. ``GET /admin/stats`` reports ``requests``,
``in_flight``, ``completed``, ``streams_cancelled`` (streams whose client went away before
``[DONE]``), ``faults_injected``, ``faults_pending`` and ``served_by``. Every response
carries ``x-backend: <name>`` and echoes the request's ``x-request-id``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetroute.validation import non_negative_number

__all__ = ["create_backend_app"]

#: ``max_tokens`` when the request names none.
DEFAULT_MAX_TOKENS = 16

_FAULT_KEYS = frozenset({"status", "delay_s", "disconnect_after_chunks", "count"})


class _BadRequest(Exception):
    """A request the stand-in refuses with HTTP 400, naming the offending field."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class _DropConnection(Exception):
    """Raised inside a stream to make the server drop the connection (a fault)."""


@dataclass(slots=True)
class _Fault:
    status: int | None = None
    delay_s: float = 0.0
    disconnect_after_chunks: int | None = None
    remaining: int = 1

    def describe(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "delay_s": self.delay_s,
            "disconnect_after_chunks": self.disconnect_after_chunks,
            "count": self.remaining,
        }


@dataclass(slots=True)
class _Stats:
    requests: int = 0
    in_flight: int = 0
    completed: int = 0
    streams_cancelled: int = 0
    faults_injected: int = 0
    faults: deque[_Fault] = field(default_factory=deque)
    next_id: int = 0

    def take_fault(self) -> _Fault | None:
        """The fault for this request, if any: one use of the oldest queued fault."""
        if not self.faults:
            return None
        head = self.faults[0]
        head.remaining -= 1
        if head.remaining <= 0:
            self.faults.popleft()
        self.faults_injected += 1
        return replace(head, remaining=1)


@dataclass(frozen=True, slots=True)
class _Completion:
    """A validated completion request."""

    chat: bool
    model: str
    prompt_tokens: int
    reply: tuple[str, ...]
    finish_reason: str
    stream: bool
    include_usage: bool


@dataclass(slots=True)
class _StreamRun:
    """How one stream ended, filled in by its event generator."""

    finished: bool = False
    dropped: bool = False


def _error_body(
    message: str, error_type: str, *, param: str | None = None, code: Any = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _bad_request(error: _BadRequest) -> JSONResponse:
    return JSONResponse(
        _error_body(error.message, "invalid_request_error", param=error.param), status_code=400
    )


def _words(text: object) -> list[str]:
    """Whitespace-split words of a message content (a string or a list of text parts)."""
    if isinstance(text, str):
        return text.split()
    if isinstance(text, list):
        words: list[str] = []
        for part in text:
            if isinstance(part, str):
                words.extend(part.split())
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                words.extend(part["text"].split())
        return words
    return []


def _parse_messages(body: Mapping[str, Any]) -> tuple[int, list[str]]:
    """(prompt tokens, words of the last message) of a chat request."""
    messages = body.get("messages")
    if messages is None:
        raise _BadRequest("'messages' is a required property", "messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty array of message objects", "messages")
    total = 0
    last: list[str] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise _BadRequest(f"{where} must be an object", where)
        if not isinstance(message.get("role"), str):
            raise _BadRequest(f"{where}.role must be a string", f"{where}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _BadRequest(
                f"{where}.content must be a string, an array of parts or null", f"{where}.content"
            )
        last = _words(content)
        total += len(last)
    return total, last


def _parse_prompt(body: Mapping[str, Any]) -> tuple[int, list[str]]:
    """(prompt tokens, words of the prompt) of a legacy completion request."""
    prompt = body.get("prompt")
    if prompt is None:
        raise _BadRequest("'prompt' is a required property", "prompt")
    if isinstance(prompt, str):
        words = prompt.split()
    elif isinstance(prompt, list) and all(isinstance(item, str) for item in prompt):
        words = [word for item in prompt for word in item.split()]
    else:
        raise _BadRequest("'prompt' must be a string or an array of strings", "prompt")
    return len(words), words


def _parse_completion(body: object, *, chat: bool, default_model: str) -> _Completion:
    if not isinstance(body, Mapping):
        raise _BadRequest(
            f"the request body must be a JSON object (got {type(body).__name__})", None
        )
    prompt_tokens, words = _parse_messages(body) if chat else _parse_prompt(body)
    max_tokens: object = DEFAULT_MAX_TOKENS
    param = "max_tokens"
    for name in ("max_completion_tokens", "max_tokens"):
        if body.get(name) is not None:
            max_tokens, param = body[name], name
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _BadRequest(f"{param} must be an integer >= 1 (got {max_tokens!r})", param)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _BadRequest(f"'stream' must be a boolean (got {stream!r})", "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, Mapping):
            raise _BadRequest("'stream_options' must be an object", "stream_options")
        usage_flag = options.get("include_usage", False)
        if not isinstance(usage_flag, bool):
            raise _BadRequest(
                "'stream_options.include_usage' must be a boolean", "stream_options.include_usage"
            )
        include_usage = usage_flag
    model = body.get("model")
    full = ("echo", *words)
    return _Completion(
        chat=chat,
        model=model if isinstance(model, str) and model else default_model,
        prompt_tokens=prompt_tokens,
        reply=full[:max_tokens],
        finish_reason="length" if len(full) > max_tokens else "stop",
        stream=stream,
        include_usage=include_usage,
    )


def _usage(completion: _Completion) -> dict[str, int]:
    completion_tokens = len(completion.reply)
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": completion.prompt_tokens + completion_tokens,
    }


def _completion_body(completion: _Completion, reply_id: str, created: int) -> dict[str, Any]:
    text = " ".join(completion.reply)
    choice: dict[str, Any] = {
        "index": 0,
        "logprobs": None,
        "finish_reason": completion.finish_reason,
    }
    if completion.chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {
        "id": reply_id,
        "object": "chat.completion" if completion.chat else "text_completion",
        "created": created,
        "model": completion.model,
        "choices": [choice],
        "usage": _usage(completion),
    }


def _sse(payload: Mapping[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _stream_events(
    completion: _Completion, reply_id: str, created: int
) -> list[tuple[bytes, bool]]:
    """The SSE events of a streamed reply, each with whether a token is generated for it."""

    def chunk(choice: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": reply_id,
            "object": "chat.completion.chunk" if completion.chat else "text_completion",
            "created": created,
            "model": completion.model,
            "choices": [] if choice is None else [{"index": 0, "logprobs": None, **choice}],
        }
        if completion.include_usage:
            body["usage"] = None
        return body

    events: list[tuple[bytes, bool]] = []
    pieces = [word if i == 0 else f" {word}" for i, word in enumerate(completion.reply)]
    if completion.chat:
        opening = {"delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        events.append((_sse(chunk(opening)), False))
        for piece in pieces:
            events.append((_sse(chunk({"delta": {"content": piece}, "finish_reason": None})), True))
        closing: dict[str, Any] = {"delta": {}, "finish_reason": completion.finish_reason}
    else:
        for piece in pieces:
            events.append((_sse(chunk({"text": piece, "finish_reason": None})), True))
        closing = {"text": "", "finish_reason": completion.finish_reason}
    events.append((_sse(chunk(closing)), False))
    if completion.include_usage:
        events.append((_sse({**chunk(None), "usage": _usage(completion)}), False))
    events.append((_sse("[DONE]"), False))
    return events


class _EventStreamResponse(StreamingResponse):
    """An SSE response that reports how it ended and can drop its connection on cue."""

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        run: _StreamRun,
        on_end: Callable[[_StreamRun], None],
    ) -> None:
        super().__init__(
            events, media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )
        self._events = events
        self._run = run
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except _DropConnection:
            # Returning with the body incomplete makes the server close the connection
            # (uvicorn logs that the response was not completed, which is the point).
            self._run.dropped = True
        finally:
            # Closing the generator here covers a client that left while a chunk was being
            # sent (the generator was suspended, not cancelled); shielded because the
            # surrounding scope may already be cancelled.
            with anyio.CancelScope(shield=True):
                await self._events.aclose()
            self._on_end(self._run)


class _TruncatedResponse(Response):
    """Headers promising the whole body, half the body, then a dropped connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})


class _BackendHeaders:
    """ASGI middleware: ``x-backend`` on every response, and the request id echoed."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = next(
            (value for key, value in scope["headers"] if key.lower() == b"x-request-id"), None
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.append("x-backend", self.name)
                if request_id is not None and "x-request-id" not in headers:
                    headers.append("x-request-id", request_id.decode("latin-1"))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _parse_fault(body: object) -> _Fault:
    if not isinstance(body, Mapping):
        raise _BadRequest("a fault must be a JSON object", None)
    unknown = sorted(set(body) - _FAULT_KEYS)
    if unknown:
        raise _BadRequest(
            f"unknown fault field(s) {unknown}; expected some of {sorted(_FAULT_KEYS)}", unknown[0]
        )
    fault = _Fault()
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise _BadRequest(f"count must be an integer >= 1 (got {count!r})", "count")
    fault.remaining = count
    status = body.get("status")
    if status is not None:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise _BadRequest(
                f"status must be an HTTP error status 400-599 (got {status!r})", "status"
            )
        fault.status = status
    delay = body.get("delay_s")
    if delay is not None:
        try:
            fault.delay_s = non_negative_number("delay_s", delay, "a number of seconds")
        except ValueError as error:
            raise _BadRequest(str(error), "delay_s") from None
    after = body.get("disconnect_after_chunks")
    if after is not None:
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise _BadRequest(
                f"disconnect_after_chunks must be an integer >= 0 (got {after!r})",
                "disconnect_after_chunks",
            )
        fault.disconnect_after_chunks = after
    if fault.status is not None and fault.disconnect_after_chunks is not None:
        raise _BadRequest("status and disconnect_after_chunks cannot be combined", "status")
    if status is None and delay is None and after is None:
        raise _BadRequest("a fault needs one of status, delay_s or disconnect_after_chunks", None)
    return fault


async def _json_body(request: Request) -> object:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as error:
        raise _BadRequest(f"the request body is not valid JSON: {error}", None) from None


def create_backend_app(
    name: str,
    *,
    model: str = "stand-in",
    latency_s: float = 0.0,
    chunk_interval_s: float = 0.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    api_key: str | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """An OpenAI-compatible stand-in server called ``name``.

    ``api_key``, when given, is required as ``Authorization: Bearer <key>`` on ``/v1/*``
    (HTTP 401 otherwise), as ``vllm serve --api-key`` does. ``clock`` gives the epoch
    seconds written into ``created``.
    """
    if (
        not isinstance(name, str)
        or not name.strip()
        or not name.isprintable()
        or not name.isascii()
    ):
        raise ValueError(f"name must be a non-empty printable ASCII string (got {name!r})")
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string (got {model!r})")
    latency = non_negative_number("latency_s", latency_s, "a number of seconds")
    interval = non_negative_number("chunk_interval_s", chunk_interval_s, "a number of seconds")
    if api_key is not None and (not isinstance(api_key, str) or not api_key):
        raise ValueError("api_key must be a non-empty string or None")

    stats = _Stats()
    app = FastAPI(title=f"LLM stand-in {name}", docs_url=None, redoc_url=None)
    app.add_middleware(_BackendHeaders, name=name)
    app.state.backend_stats = stats

    def authorised(request: Request) -> bool:
        return api_key is None or request.headers.get("authorization") == f"Bearer {api_key}"

    def unauthorised() -> JSONResponse:
        body = _error_body(
            "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key"
        )
        return JSONResponse(body, status_code=401)

    def stream_ended(run: _StreamRun) -> None:
        stats.in_flight -= 1
        if run.finished:
            stats.completed += 1
        elif not run.dropped:
            stats.streams_cancelled += 1

    async def events(
        completion: _Completion,
        reply_id: str,
        created: int,
        run: _StreamRun,
        drop_after: int | None,
    ) -> AsyncGenerator[bytes, None]:
        for index, (event, generates_token) in enumerate(
            _stream_events(completion, reply_id, created)
        ):
            if drop_after is not None and index >= drop_after:
                raise _DropConnection
            if generates_token and interval > 0:
                await sleep(interval)
            yield event
        run.finished = True

    async def complete(request: Request, *, chat: bool) -> Response:
        stats.requests += 1
        stats.in_flight += 1
        handed_off = False  # a stream settles in_flight itself when it ends
        try:
            if not authorised(request):
                return unauthorised()
            fault = stats.take_fault()
            if fault is not None and fault.delay_s > 0:
                await sleep(fault.delay_s)
            if fault is not None and fault.status is not None:
                message = f"injected fault: backend {name} answers HTTP {fault.status}"
                body = _error_body(message, _error_type(fault.status), code=fault.status)
                return JSONResponse(body, status_code=fault.status)
            try:
                completion = _parse_completion(
                    await _json_body(request), chat=chat, default_model=model
                )
            except _BadRequest as error:
                return _bad_request(error)
            stats.next_id += 1
            reply_id = f"{'chatcmpl' if chat else 'cmpl'}-{name}-{stats.next_id}"
            created = math.floor(clock())
            if latency > 0:
                await sleep(latency)
            drop_after = None if fault is None else fault.disconnect_after_chunks
            if completion.stream:
                run = _StreamRun()
                response = _EventStreamResponse(
                    events(completion, reply_id, created, run, drop_after), run, stream_ended
                )
                handed_off = True
                return response
            generation = interval * len(completion.reply)
            if generation > 0:
                await sleep(generation)
            body = _completion_body(completion, reply_id, created)
            if drop_after is not None:
                return _TruncatedResponse(json.dumps(body).encode(), media_type="application/json")
            stats.completed += 1
            return JSONResponse(body)
        finally:
            if not handed_off:
                stats.in_flight -= 1

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await complete(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await complete(request, chat=False)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        if not authorised(request):
            return unauthorised()
        entry = {"id": model, "object": "model", "created": 0, "owned_by": name}
        return JSONResponse({"object": "list", "data": [entry]})

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "backend": name}

    @app.post("/admin/faults")
    async def add_fault(request: Request) -> Response:
        try:
            fault = _parse_fault(await _json_body(request))
        except _BadRequest as error:
            return _bad_request(error)
        stats.faults.append(fault)
        return JSONResponse({"pending": [queued.describe() for queued in stats.faults]})

    @app.delete("/admin/faults")
    async def clear_faults() -> dict[str, list[Any]]:
        stats.faults.clear()
        return {"pending": []}

    @app.get("/admin/stats")
    async def admin_stats() -> dict[str, Any]:
        return {
            "served_by": name,
            "requests": stats.requests,
            "in_flight": stats.in_flight,
            "completed": stats.completed,
            "streams_cancelled": stats.streams_cancelled,
            "faults_injected": stats.faults_injected,
            "faults_pending": sum(fault.remaining for fault in stats.faults),
        }

    return app
