"""The OpenAI-compatible proxy: forward a completion request to a picked target, retrying.

``ChatProxy.forward`` takes a client's ``/v1/chat/completions`` or ``/v1/completions``
request, asks a :class:`TargetPicker` for a target (the picker takes load on it), sends the
request there over a pooled ``httpx.AsyncClient`` and hands the answer back. Every pick is
paired with exactly one ``finish`` call, on every path (success, error, retry, client
disconnect, cancellation), so the picker's load counters never leak.

Retries. A failure that another target may not repeat (a connection error, a timeout,
HTTP 429 or 5xx: :func:`fleetroute.resilience.retry.is_retryable`) is retried after the
:class:`~fleetroute.resilience.retry.RetryPolicy`'s jittered backoff, at most
``max_retries`` times, each time on a target not yet tried for this request. When every
attempt fails, the client gets the last upstream error as it was (status and body), or
502/504 when the last failure was a connection error or a timeout. A 4xx other than 429
says the request itself is wrong: it is passed through at once, and its outcome counts as
``success=True``, because the target answered correctly and must not be tripped by a
circuit breaker for a client's mistake.

Streaming (``"stream": true``). Retries are possible only until the first byte reaches the
client, so the proxy waits for the upstream's status and first chunk before it commits;
after that the chunks are relayed as they arrive, unbuffered, and the usage chunk (sent
when the client asked for ``stream_options.include_usage``) is read on the way for the
outcome. A stream that ends with ``data: [DONE]`` is a success. If the upstream breaks
mid-stream, the client gets an SSE error event (``data: {"error": ...}``, which the OpenAI
SDKs raise as an error) and the end of the stream; the outcome is a failure. If the client
goes away, the upstream response is closed too, so the model server stops generating; the
outcome has ``client_disconnected=True`` (and ``success=False``), which says nothing about
the target's health: a picker should not count it against the target's breaker.

What is sent upstream: the client's JSON body with ``model`` set to the target's model (the
router chooses the model), ``content-type: application/json``, an ``x-request-id`` (the
client's, or a new one) and ``Authorization: Bearer <key>`` only when the target has an API
key. The client's own credentials are never forwarded, and keys are never logged (a
target's ``repr`` hides its key).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from fleetroute.clock import Clock, monotonic_clock
from fleetroute.resilience.retry import RetryPolicy, UpstreamError, is_retryable
from fleetroute.validation import positive_int, positive_number

__all__ = [
    "ChatProxy",
    "ProxyOutcome",
    "ProxyTarget",
    "TargetPicker",
    "make_upstream_client",
]

logger = logging.getLogger("fleetroute.proxy")

# Upstream response headers that describe the upstream connection or encoding rather than
# the answer; the proxy's server writes its own.
_DROPPED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "date",
        "server",
        "x-request-id",
    }
)

# An SSE line longer than this is skipped by the usage scanner instead of buffered.
_MAX_SSE_LINE = 1 << 20


@dataclass(frozen=True, slots=True)
class ProxyTarget:
    """Where one attempt goes: the target's id, the model to ask for, its base URL
    (``scheme://host:port``; the request path is appended), its API key if it needs one,
    and whatever the picker wants back in ``finish`` (``lease``)."""

    target: str
    model: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    lease: object = None


@dataclass(frozen=True, slots=True)
class ProxyOutcome:
    """How one attempt on one target went, for the picker's ``finish``.

    ``success`` is True when the target answered as a healthy server does (2xx, or a 4xx
    other than 429 about the request itself) and, for a stream, finished it with
    ``[DONE]``. ``status_code`` is the upstream's HTTP status (None when none arrived).
    ``latency_ms`` runs from sending the request to the end of the answer (for a stream,
    its last chunk). The token counts come from the answer's ``usage`` when it has one.
    ``client_disconnected`` marks an attempt cut short because the client went away.
    """

    success: bool
    status_code: int | None
    latency_ms: float
    error: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    streamed: bool
    client_disconnected: bool


class TargetPicker(Protocol):
    """Chooses targets and is told how each attempt went."""

    async def pick(
        self, body: Mapping[str, Any], exclude: frozenset[str], client_id: str
    ) -> ProxyTarget | None:
        """A target not in ``exclude``, with load taken on it; None when none is available."""
        ...

    async def finish(self, target: ProxyTarget, outcome: ProxyOutcome) -> None:
        """Releases the load taken by ``pick`` and records the outcome (called once per pick)."""
        ...


def make_upstream_client(
    *, connect_timeout_s: float, read_timeout_s: float, max_connections: int, max_keepalive: int
) -> httpx.AsyncClient:
    """A pooled client for the upstream calls.

    ``read_timeout_s`` bounds each wait for data (the first token, and every gap between
    chunks of a stream), not the whole answer. Redirects are not followed.
    """
    connect = positive_number("connect_timeout_s", connect_timeout_s, "a number of seconds")
    read = positive_number("read_timeout_s", read_timeout_s, "a number of seconds")
    connections = positive_int("max_connections", max_connections)
    if isinstance(max_keepalive, bool) or not isinstance(max_keepalive, int) or max_keepalive < 0:
        raise ValueError(f"max_keepalive must be an integer >= 0 (got {max_keepalive!r})")
    if max_keepalive > connections:
        raise ValueError(
            f"max_keepalive ({max_keepalive}) must not exceed max_connections ({connections})"
        )
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=connect, read=read, write=read, pool=connect),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=max_keepalive),
        follow_redirects=False,
    )


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _error_response(
    status: int,
    message: str,
    error_type: str,
    code: str | None,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _parse_body(raw: bytes, path: str) -> dict[str, Any]:
    """The request's JSON object, checked for what the proxy itself relies on."""
    if not raw.strip():
        raise _BadRequest("the request body is empty; expected a JSON object")
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise _BadRequest(f"the request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise _BadRequest(f"the request body must be a JSON object (got {type(body).__name__})")
    chat = path.rstrip("/").endswith("chat/completions")
    legacy = not chat and path.rstrip("/").endswith("completions")
    if chat or (not legacy and "prompt" not in body):
        messages = body.get("messages")
        if messages is None:
            raise _BadRequest("'messages' is a required property", "messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must be a non-empty array of message objects", "messages")
    else:
        prompt = body.get("prompt")
        if prompt is None:
            raise _BadRequest("'prompt' is a required property", "prompt")
        if not isinstance(prompt, str | list):
            raise _BadRequest("'prompt' must be a string or an array", "prompt")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _BadRequest(f"'stream' must be a boolean (got {stream!r})", "stream")
    return body


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _token_counts(usage: object) -> tuple[int | None, int | None]:
    if not isinstance(usage, Mapping):
        return None, None

    def count(key: str) -> int | None:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return count("prompt_tokens"), count("completion_tokens")


def _usage_of_body(content: bytes) -> tuple[int | None, int | None]:
    try:
        body = json.loads(content)
    except ValueError:
        return None, None
    return _token_counts(body.get("usage")) if isinstance(body, dict) else (None, None)


def _passthrough_headers(upstream: httpx.Response) -> list[tuple[str, str]]:
    return [
        (key, value)
        for key, value in upstream.headers.multi_items()
        if key.lower() not in _DROPPED_HEADERS
    ]


class _SSEScanner:
    """Reads an SSE byte stream on the side: whether ``[DONE]`` came, and the usage."""

    __slots__ = ("_pending", "_skipping", "_tail", "completion_tokens", "done", "prompt_tokens")

    def __init__(self) -> None:
        self._pending = b""
        self._skipping = False
        self._tail = b""
        self.done = False
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None

    @property
    def at_event_boundary(self) -> bool:
        return self._tail.endswith(b"\n\n") or self._tail == b""

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._tail = (self._tail + data)[-2:]
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        if self._skipping and lines:
            lines.pop(0)  # the rest of the over-long line
            self._skipping = False
        if len(self._pending) > _MAX_SSE_LINE:
            self._pending = b""
            self._skipping = True
        for line in lines:
            self._line(line.rstrip(b"\r"))

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        payload = line[5:].strip()
        if payload == b"[DONE]":
            self.done = True
        elif b'"prompt_tokens"' in payload:
            try:
                event = json.loads(payload)
            except ValueError:
                return
            if isinstance(event, dict):
                prompt, completion = _token_counts(event.get("usage"))
                if prompt is not None or completion is not None:
                    self.prompt_tokens, self.completion_tokens = prompt, completion


async def _close_upstream(chunks: AsyncIterator[bytes] | None, upstream: httpx.Response) -> None:
    """Closes an upstream response (and its chunk iterator); a response not read to the
    end closes its connection, which is how the upstream learns the answer is unwanted."""
    try:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        await upstream.aclose()
    except Exception:
        # The connection is being dropped anyway; a failure to close it changes nothing.
        logger.debug("closing the upstream response failed", exc_info=True)


class _Lease:
    """One pick, finished exactly once."""

    __slots__ = ("_done", "_picker", "target")

    def __init__(self, picker: TargetPicker, target: ProxyTarget) -> None:
        self._picker = picker
        self.target = target
        self._done = False

    async def finish(self, outcome: ProxyOutcome) -> None:
        if self._done:
            return
        self._done = True
        # Shielded: this runs on cancellation paths too, and the load must be released.
        with anyio.CancelScope(shield=True):
            try:
                await self._picker.finish(self.target, outcome)
            except Exception:
                logger.exception("the picker failed to finish target %s", self.target.target)


@dataclass(frozen=True, slots=True)
class _Failure:
    """A failed attempt, kept to answer the client if it was the last one."""

    target: ProxyTarget
    retryable: bool
    error: str
    status_code: int | None = None
    content: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    timed_out: bool = False


class _Relay:
    """Relays one committed upstream stream to the client and finishes its lease."""

    def __init__(
        self,
        lease: _Lease,
        upstream: httpx.Response,
        chunks: AsyncIterator[bytes],
        first: bytes,
        clock: Clock,
        started: float,
    ) -> None:
        self._lease = lease
        self._upstream = upstream
        self._chunks = chunks
        self._first = first
        self._clock = clock
        self._started = started
        self._scanner = _SSEScanner()
        content_type = upstream.headers.get("content-type", "")
        self._event_stream = content_type.startswith("text/event-stream")

    async def events(self) -> AsyncGenerator[bytes, None]:
        outcome: ProxyOutcome | None = None
        client_left = False
        try:
            self._scanner.feed(self._first)
            yield self._first
            broken: BaseException | None = None
            while True:
                try:
                    chunk = await anext(self._chunks)
                except StopAsyncIteration:
                    break
                except httpx.HTTPError as error:
                    broken = error
                    break
                self._scanner.feed(chunk)
                yield chunk
            if broken is not None:
                message = (
                    f"upstream {self._lease.target.target} broke mid-stream: {_describe(broken)}"
                )
                logger.warning("%s", message)
                outcome = self._outcome(success=False, error=message)
                # Close the upstream before telling the client, so the picker sees the
                # load released no later than the client sees the end.
                await self.close(outcome)
                yield self._error_event(message)
            elif self._scanner.done or not self._event_stream:
                outcome = self._outcome(success=True, error=None)
            else:
                outcome = self._outcome(success=False, error="upstream stream ended without [DONE]")
        except (GeneratorExit, asyncio.CancelledError):
            # The server closed or cancelled the relay: the client went away.
            client_left = True
            raise
        finally:
            if outcome is None:
                reason = "client disconnected" if client_left else "the relay failed unexpectedly"
                outcome = self._outcome(False, reason, client=client_left)
            await self.close(outcome)

    async def close(self, outcome: ProxyOutcome | None = None) -> None:
        """Closes the upstream response and finishes the lease (once; idempotent)."""
        with anyio.CancelScope(shield=True):
            await _close_upstream(self._chunks, self._upstream)
            await self._lease.finish(
                outcome or self._outcome(False, "the response was not sent", client=True)
            )

    def _outcome(self, success: bool, error: str | None, *, client: bool = False) -> ProxyOutcome:
        return ProxyOutcome(
            success=success,
            status_code=self._upstream.status_code,
            latency_ms=(self._clock() - self._started) * 1000.0,
            error=error,
            prompt_tokens=self._scanner.prompt_tokens,
            completion_tokens=self._scanner.completion_tokens,
            streamed=True,
            client_disconnected=client,
        )

    def _error_event(self, message: str) -> bytes:
        event = {
            "error": {
                "message": message,
                "type": "upstream_error",
                "param": None,
                "code": "upstream_disconnected",
            }
        }
        # A partial upstream event is ended first so the error arrives as its own event.
        prefix = b"" if self._scanner.at_event_boundary else b"\n\n"
        return prefix + b"data: " + json.dumps(event).encode() + b"\n\n"


class _RelayResponse(StreamingResponse):
    """A streaming response that always closes its relay, even if it never ran."""

    def __init__(
        self, relay: _Relay, events: AsyncGenerator[bytes, None], status_code: int
    ) -> None:
        super().__init__(events, status_code=status_code)
        self._relay = relay
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The generator may be suspended (the client left during a send) or never
            # started (the response was abandoned): close it, then the relay.
            with anyio.CancelScope(shield=True):
                await self._events.aclose()
                await self._relay.close()


class ChatProxy:
    """Forwards OpenAI-style completion requests to targets chosen by a picker."""

    def __init__(
        self,
        picker: TargetPicker,
        *,
        client: httpx.AsyncClient,
        retry: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Clock = monotonic_clock,
    ) -> None:
        if not isinstance(client, httpx.AsyncClient):
            raise TypeError(f"client must be an httpx.AsyncClient (got {type(client).__name__})")
        if not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy (got {type(retry).__name__})")
        self._picker = picker
        self._client = client
        self._retry = retry
        self._sleep = sleep
        self._clock = clock

    async def forward(self, request: Request, path: str, client_id: str) -> Response:
        """Answers ``request`` (a completion request for ``path``, e.g.
        ``/v1/chat/completions``) from a picked target, retrying on other targets."""
        try:
            body = _parse_body(await request.body(), path)
        except _BadRequest as error:
            return _error_response(
                400, error.message, "invalid_request_error", None, param=error.param
            )
        stream = body.get("stream") is True
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        suffix = path if path.startswith("/") else f"/{path}"
        if request.url.query:
            suffix = f"{suffix}?{request.url.query}"

        tried: list[str] = []
        last: _Failure | None = None
        for retry in range(self._retry.max_retries + 1):
            if retry > 0:
                await self._sleep(self._retry.backoff(retry - 1))
            target = await self._picker.pick(body, frozenset(tried), client_id)
            if target is None:
                break
            tried.append(target.target)
            result = await self._attempt(
                _Lease(self._picker, target), body, suffix, request_id, stream, len(tried)
            )
            if isinstance(result, Response):
                return result
            last = result
            logger.warning(
                "attempt %d of request %s on %s failed: %s",
                len(tried),
                request_id,
                target.target,
                result.error,
            )
            if not result.retryable:
                break
        if last is None:
            return _error_response(
                503,
                "no target is available for this request",
                "service_unavailable",
                "no_target_available",
                headers={"retry-after": "1", "x-request-id": request_id},
            )
        return self._failure_response(last, len(tried), request_id)

    async def _attempt(
        self,
        lease: _Lease,
        body: Mapping[str, Any],
        suffix: str,
        request_id: str,
        stream: bool,
        attempts: int,
    ) -> Response | _Failure:
        """One attempt: a response to return (the lease is finished, or handed to the
        stream relay), or a failure (the lease is finished)."""
        target = lease.target
        payload = {**body, "model": target.model} if target.model else dict(body)
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            "accept-encoding": "identity",
            "x-request-id": request_id,
        }
        if target.api_key:
            headers["authorization"] = f"Bearer {target.api_key}"
        started = self._clock()
        upstream: httpx.Response | None = None
        chunks: AsyncIterator[bytes] | None = None
        outcome: ProxyOutcome | None = None
        handed_off = False
        cancelled = False

        def failed(error: str, status: int | None) -> ProxyOutcome:
            return ProxyOutcome(
                success=False,
                status_code=status,
                latency_ms=(self._clock() - started) * 1000.0,
                error=error,
                prompt_tokens=None,
                completion_tokens=None,
                streamed=stream,
                client_disconnected=False,
            )

        try:
            try:
                upstream = await self._client.send(
                    self._client.build_request(
                        "POST",
                        target.base_url.rstrip("/") + suffix,
                        content=json.dumps(payload, separators=(",", ":")).encode(),
                        headers=headers,
                    ),
                    stream=True,
                )
                status = upstream.status_code
                committing = stream and 200 <= status < 300
                if committing:
                    chunks = upstream.aiter_raw()
                    try:
                        first = await anext(chunks)
                    except StopAsyncIteration:
                        raise httpx.RemoteProtocolError(
                            "the upstream ended the stream before sending anything"
                        ) from None
                else:
                    await upstream.aread()
            except (httpx.HTTPError, httpx.InvalidURL) as error:
                # An invalid URL or scheme is the target's configuration, not a passing
                # failure: is_retryable says no, and the client gets a 502.
                message = f"upstream {target.target}: {_describe(error)}"
                outcome = failed(message, None)
                return _Failure(
                    target,
                    retryable=is_retryable(error),
                    error=message,
                    timed_out=isinstance(error, httpx.TimeoutException),
                )

            if is_retryable(UpstreamError(status)):
                message = f"upstream {target.target} answered HTTP {status}"
                outcome = failed(message, status)
                return _Failure(
                    target,
                    retryable=True,
                    error=message,
                    status_code=status,
                    content=upstream.content,
                    headers=tuple(_passthrough_headers(upstream)),
                )

            ours = {
                "x-fleetroute-target": target.target,
                "x-fleetroute-model": target.model,
                "x-fleetroute-attempts": str(attempts),
                "x-request-id": request_id,
            }
            if committing and chunks is not None:
                relay = _Relay(lease, upstream, chunks, first, self._clock, started)
                events = relay.events()
                response: Response = _RelayResponse(relay, events, status)
                handed_off = True
            else:
                # 2xx, 3xx, or a 4xx about the request: the target is healthy.
                prompt_tokens, completion_tokens = _usage_of_body(upstream.content)
                outcome = ProxyOutcome(
                    success=True,
                    status_code=status,
                    latency_ms=(self._clock() - started) * 1000.0,
                    error=None if status < 400 else f"upstream answered HTTP {status}",
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    streamed=False,
                    client_disconnected=False,
                )
                response = Response(upstream.content, status_code=status)
            for key, value in _passthrough_headers(upstream):
                response.headers.append(key, value)
            for key, value in ours.items():
                response.headers[key] = value
            return response
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            if not handed_off:
                with anyio.CancelScope(shield=True):
                    if upstream is not None:
                        await _close_upstream(chunks, upstream)
                    # No outcome here means the attempt was cancelled (the client or the
                    # server went away) or failed unexpectedly; the load is released anyway.
                    await lease.finish(
                        outcome
                        or ProxyOutcome(
                            success=False,
                            status_code=None if upstream is None else upstream.status_code,
                            latency_ms=(self._clock() - started) * 1000.0,
                            error="cancelled" if cancelled else "the proxy failed unexpectedly",
                            prompt_tokens=None,
                            completion_tokens=None,
                            streamed=stream,
                            client_disconnected=cancelled,
                        )
                    )

    def _failure_response(self, failure: _Failure, attempts: int, request_id: str) -> Response:
        ours = {
            "x-fleetroute-target": failure.target.target,
            "x-fleetroute-model": failure.target.model,
            "x-fleetroute-attempts": str(attempts),
            "x-request-id": request_id,
        }
        if failure.status_code is not None:
            response = Response(failure.content, status_code=failure.status_code)
            for key, value in failure.headers:
                response.headers.append(key, value)
            for key, value in ours.items():
                response.headers[key] = value
            return response
        if failure.timed_out:
            return _error_response(
                504, failure.error, "upstream_error", "upstream_timeout", headers=ours
            )
        return _error_response(
            502, failure.error, "upstream_error", "upstream_unreachable", headers=ours
        )
