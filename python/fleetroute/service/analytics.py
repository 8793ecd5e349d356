"""The analytics store: every routing decision, written to SQL off the request path.

The service records one :class:`DecisionRecord` per decision (and its outcome, when the
request was proxied) and answers two questions from them: where the money goes
(:meth:`AnalyticsStore.cost_analysis`) and how fast and how well requests are routed
(:meth:`AnalyticsStore.performance`).

Recording must never slow a request down, so :meth:`AnalyticsStore.record` only appends to
an in-memory queue; a writer thread inserts the queue in batches (one ``executemany`` per
batch), which is what makes tens of thousands of decisions a second affordable on SQLite or
PostgreSQL. The queue is bounded: when the database falls behind or goes away, the oldest
records are dropped and counted rather than letting memory grow without limit. A failed
write is logged and retried with exponential backoff, so an outage loses nothing while the
queue has room.

The schema is one table written with SQLAlchemy Core (not the ORM: batch inserts of plain
dicts are several times faster) and runs unchanged on SQLite (WAL mode, so readers do not
block the writer) and PostgreSQL (psycopg 3). Percentiles are computed in SQL with a
``row_number()`` window, which both databases support, so a query never loads every row
into Python.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)

__all__ = [
    "DECISION_APIS",
    "DECISION_STATUSES",
    "DEFAULT_ANALYTICS_URL",
    "AnalyticsStore",
    "DecisionRecord",
]

logger = logging.getLogger("fleetroute.service")

#: Where decisions go when no database is configured.
DEFAULT_ANALYTICS_URL = "sqlite:///fleetroute-analytics.db"

#: The service endpoints a decision can come from.
DECISION_APIS = frozenset({"route", "batch", "decide", "test", "proxy"})

#: What became of a decision: routed (chosen, not proxied), rejected (refused by admission),
#: completed or failed (proxied upstream, with the outcome).
DECISION_STATUSES = frozenset({"routed", "rejected", "completed", "failed"})

#: Spend past this share of the budget limit earns a recommendation.
_BUDGET_WARN_PCT = 80.0
#: Actual cost this far from the estimate (as a ratio) earns a recommendation.
_ESTIMATE_BIAS = 0.2
#: A batch failing with a non-connection error this many times in a row is dropped: it
#: would fail forever and block every record behind it.
_MAX_PERMANENT_FAILURES = 5
#: The token columns are 32-bit integers.
_MAX_TOKENS = 2**31 - 1
#: How long close() waits for the writer thread after the queue is settled.
_JOIN_TIMEOUT_S = 30.0


def _check_finite(name: str, value: object, *, minimum: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number (got {value!r})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite (got {value!r})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum} (got {value!r})")


def _check_optional_str(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string or None (got {value!r})")


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One routing decision and, once known, its outcome. Validated on construction."""

    request_id: str
    timestamp: float  # epoch seconds
    api: str
    client_id: str | None
    strategy: str | None
    model: str | None
    target: str | None
    decision_latency_ms: float
    cost_estimate: float
    status: str
    cost_actual: float | None = None
    success: bool | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    upstream_latency_ms: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, str) or not self.request_id:
            raise ValueError(f"request_id must be a non-empty string (got {self.request_id!r})")
        _check_finite("timestamp", self.timestamp)
        if self.api not in DECISION_APIS:
            raise ValueError(f"api must be one of {sorted(DECISION_APIS)} (got {self.api!r})")
        if self.status not in DECISION_STATUSES:
            raise ValueError(
                f"status must be one of {sorted(DECISION_STATUSES)} (got {self.status!r})"
            )
        _check_optional_str("client_id", self.client_id)
        _check_optional_str("strategy", self.strategy)
        _check_optional_str("model", self.model)
        _check_optional_str("target", self.target)
        _check_finite("decision_latency_ms", self.decision_latency_ms, minimum=0.0)
        _check_finite("cost_estimate", self.cost_estimate, minimum=0.0)
        if self.cost_actual is not None:
            _check_finite("cost_actual", self.cost_actual, minimum=0.0)
        if self.success is not None and not isinstance(self.success, bool):
            raise TypeError(f"success must be True, False or None (got {self.success!r})")
        for name, tokens in (("tokens_in", self.tokens_in), ("tokens_out", self.tokens_out)):
            if tokens is not None and (
                isinstance(tokens, bool)
                or not isinstance(tokens, int)
                or not 0 <= tokens <= _MAX_TOKENS
            ):
                raise ValueError(
                    f"{name} must be an integer in [0, {_MAX_TOKENS}] or None (got {tokens!r})"
                )
        if self.upstream_latency_ms is not None:
            _check_finite("upstream_latency_ms", self.upstream_latency_ms, minimum=0.0)


_metadata = sa.MetaData()

#: One row per decision. ``created_at`` is the record's epoch timestamp, indexed for ``since``.
_decisions = sa.Table(
    "routing_decisions",
    _metadata,
    # BIGINT on PostgreSQL; SQLite only auto-increments an INTEGER primary key.
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("request_id", sa.String(), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False, index=True),
    sa.Column("api", sa.String(), nullable=False),
    sa.Column("client_id", sa.String(), nullable=True),
    sa.Column("strategy", sa.String(), nullable=True),
    sa.Column("model", sa.String(), nullable=True),
    sa.Column("target", sa.String(), nullable=True),
    sa.Column("decision_latency_ms", sa.Double(), nullable=False),
    sa.Column("cost_estimate", sa.Double(), nullable=False),
    sa.Column("cost_actual", sa.Double(), nullable=True),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("success", sa.Boolean(), nullable=True),
    sa.Column("tokens_in", sa.Integer(), nullable=True),
    sa.Column("tokens_out", sa.Integer(), nullable=True),
    sa.Column("upstream_latency_ms", sa.Double(), nullable=True),
)


def _row(record: DecisionRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "created_at": float(record.timestamp),
        "api": record.api,
        "client_id": record.client_id,
        "strategy": record.strategy,
        "model": record.model,
        "target": record.target,
        "decision_latency_ms": float(record.decision_latency_ms),
        "cost_estimate": float(record.cost_estimate),
        "cost_actual": None if record.cost_actual is None else float(record.cost_actual),
        "status": record.status,
        "success": record.success,
        "tokens_in": record.tokens_in,
        "tokens_out": record.tokens_out,
        "upstream_latency_ms": (
            None if record.upstream_latency_ms is None else float(record.upstream_latency_ms)
        ),
    }


def _is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is unreachable (retry forever) rather than bad data."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _money(value: float) -> str:
    return f"${value:.4f}"


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else 0.0


class AnalyticsStore:
    """Records decisions to a SQL database in batches and answers cost/performance queries.

    ``record()`` is non-blocking and thread-safe; ``cost_analysis()`` and ``performance()``
    are synchronous (run them in a thread from async code). ``retry_backoff_s`` and
    ``retry_backoff_max_s`` bound the wait between retries of a failed write.
    """

    def __init__(
        self,
        url: str = DEFAULT_ANALYTICS_URL,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        max_queue: int = 200_000,
        retry_backoff_s: float = 0.1,
        retry_backoff_max_s: float = 5.0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1 (got {batch_size!r})")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError(f"max_queue must be an integer >= 1 (got {max_queue!r})")
        _check_finite("flush_interval_s", flush_interval_s)
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be > 0 (got {flush_interval_s!r})")
        _check_finite("retry_backoff_s", retry_backoff_s)
        _check_finite("retry_backoff_max_s", retry_backoff_max_s)
        if not 0 < retry_backoff_s <= retry_backoff_max_s:
            raise ValueError(
                "retry_backoff_s must be > 0 and <= retry_backoff_max_s "
                f"(got {retry_backoff_s!r} and {retry_backoff_max_s!r})"
            )
        self._engine = self._make_engine(url)
        self._safe_url = self._engine.url.render_as_string(hide_password=True)
        self._batch_size = batch_size
        self._flush_interval_s = float(flush_interval_s)
        self._max_queue = max_queue
        self._backoff_s = float(retry_backoff_s)
        self._backoff_max_s = float(retry_backoff_max_s)

        self._tables_ready = False
        self._schema_lock = threading.Lock()  # one create_all at a time (writer vs queries)
        self._thread: threading.Thread | None = None

        # The queue, the counters and the lifecycle flags are guarded by _cond's lock.
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[int, DecisionRecord]] = deque()
        self._seq = 0  # sequence number of the last record accepted
        self._inflight_first: int | None = None  # lowest sequence number being written
        self._inflight_size = 0
        self._flush_waiters = 0
        self._retry_now = False  # flush()/close() cut a retry backoff short
        self._started = False
        self._closing = False
        self._closed = False
        self._abandon = False
        self._overflowing = False
        self._episode_dropped = 0
        self._written = 0
        self._dropped = 0
        self._batches = 0
        self._errors = 0
        self._last_error: str | None = None

    @staticmethod
    def _make_engine(url: str) -> Engine:
        if not isinstance(url, str) or not url:
            raise ValueError(f"url must be a non-empty database URL string (got {url!r})")
        try:
            parsed = sa.engine.make_url(url)
        except ArgumentError:
            raise ValueError(
                "url is not a valid SQLAlchemy database URL "
                f"(expected something like {DEFAULT_ANALYTICS_URL!r})"
            ) from None
        options: dict[str, Any] = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            # Without it a connect to a black-holed host hangs the writer indefinitely.
            options["connect_args"] = {"connect_timeout": 10}
        if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
            # An in-memory database exists per connection: share one across threads.
            options["poolclass"] = sa.pool.StaticPool
            options["connect_args"] = {"check_same_thread": False}
        try:
            engine = sa.create_engine(parsed, **options)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise ValueError(
                f"url {parsed.render_as_string(hide_password=True)!r} cannot be used: {exc}"
            ) from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_on_connect)
        return engine

    # ---- counters --------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Records accepted and not yet written (queued or in the batch being written)."""
        with self._cond:
            return len(self._queue) + self._inflight_count

    @property
    def written_total(self) -> int:
        """Records committed to the database."""
        with self._cond:
            return self._written

    @property
    def dropped_total(self) -> int:
        """Records lost: pushed out of a full queue, or abandoned by close() or bad data."""
        with self._cond:
            return self._dropped

    @property
    def batches_written(self) -> int:
        """Batches committed: one executemany each (row by row for a batch with a bad row)."""
        with self._cond:
            return self._batches

    @property
    def errors_total(self) -> int:
        """Failed write attempts (each is logged and retried)."""
        with self._cond:
            return self._errors

    @property
    def last_error(self) -> str | None:
        """The most recent write error, or None if none happened."""
        with self._cond:
            return self._last_error

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Creates the table if missing and starts the writer thread.

        An unreachable database is logged, not raised: the writer keeps retrying and the
        records wait in the queue. Records made before ``start()`` are queued too.
        """
        with self._cond:
            if self._closed or self._closing:
                raise RuntimeError("the analytics store is closed; create a new one")
            if self._started:
                raise RuntimeError("the analytics store is already started")
            self._started = True
            # The writer starts first so flush() never sees a started store without one;
            # it waits on the schema lock if the table is still being created below.
            thread = threading.Thread(
                target=self._run, name="fleetroute-analytics-writer", daemon=True
            )
            self._thread = thread
            thread.start()
        try:
            self._ensure_tables()
        except Exception as exc:
            logger.warning(
                "analytics database %s is unavailable at start (%s); records are queued "
                "and the writer keeps retrying",
                self._safe_url,
                self._note_error(exc),
            )

    def record(self, record: DecisionRecord) -> None:
        """Queues ``record`` for writing; never waits for the database.

        A full queue drops its oldest record to make room (counted in ``dropped_total``).
        """
        if not isinstance(record, DecisionRecord):
            raise TypeError(f"record must be a DecisionRecord (got {type(record).__name__})")
        warn = False
        with self._cond:
            if self._closing or self._closed:
                raise RuntimeError("the analytics store is closed; record() is not accepted")
            queue = self._queue
            if len(queue) >= self._max_queue:
                queue.popleft()
                self._dropped += 1
                self._episode_dropped += 1
                if not self._overflowing:
                    self._overflowing = warn = True
            self._seq += 1
            queue.append((self._seq, record))
            depth = len(queue)
            # Wake the writer only when it has something new to act on: its first record
            # (starts the flush timer) or a full batch.
            if depth == 1 or depth == min(self._batch_size, self._max_queue):
                self._cond.notify_all()
        if warn:
            logger.warning(
                "analytics queue is full (%d records); dropping the oldest records until "
                "the database catches up",
                self._max_queue,
            )

    def flush(self, timeout: float | None = None) -> None:
        """Returns once every record accepted before the call is written (or dropped).

        Raises ``TimeoutError`` if that takes longer than ``timeout`` seconds.
        """
        if timeout is not None:
            _check_finite("timeout", timeout, minimum=0.0)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if not self._started:
                raise RuntimeError("the analytics store is not started; call start() first")
            self._wait_settled(self._seq, deadline)

    def _wait_settled(self, target: int, deadline: float | None) -> None:
        """Waits (lock held) until no record with sequence number <= ``target`` is pending."""
        if self._lowest_pending() > target:
            return
        self._flush_waiters += 1
        self._retry_now = True
        self._cond.notify_all()
        try:
            while self._lowest_pending() <= target:
                if self._thread is None or not self._thread.is_alive():
                    raise RuntimeError("the analytics writer thread is not running")
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pending = sum(1 for seq, _ in self._queue if seq <= target)
                    raise TimeoutError(
                        f"analytics flush timed out with {pending + self._inflight_count} "
                        f"records not yet written (last error: {self._last_error})"
                    )
                self._cond.wait(remaining)
        finally:
            self._flush_waiters -= 1

    def close(self, timeout: float | None = 30.0) -> None:
        """Writes everything queued, stops the writer and disposes the engine. Idempotent.

        If the database does not take the queue within ``timeout`` seconds (None: wait
        forever), the rest is abandoned, counted in ``dropped_total`` and logged.
        """
        if timeout is not None:
            _check_finite("timeout", timeout, minimum=0.0)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._closed or self._closing:
                return
            self._closing = True
            thread = self._thread
            if thread is None:
                # Never started: nothing can write what was queued.
                lost = len(self._queue)
                self._queue.clear()
                self._dropped += lost
            else:
                lost = 0
                try:
                    self._wait_settled(self._seq, deadline)
                except (TimeoutError, RuntimeError):
                    self._abandon = True
                    lost = len(self._queue) + self._inflight_count
                self._cond.notify_all()
        if lost:
            logger.error(
                "analytics store closed with %d records not written to %s", lost, self._safe_url
            )
        if thread is not None:
            thread.join(_JOIN_TIMEOUT_S)
            if thread.is_alive():
                logger.error("analytics writer thread did not stop; abandoning it")
        self._engine.dispose()
        with self._cond:
            self._closed = True

    def __enter__(self) -> AnalyticsStore:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- the writer ------------------------------------------------------------------

    @property
    def _inflight_count(self) -> int:
        return self._inflight_size if self._inflight_first is not None else 0

    def _lowest_pending(self) -> float:
        if self._inflight_first is not None:
            return self._inflight_first
        if self._queue:
            return self._queue[0][0]
        return math.inf

    def _next_batch(self) -> list[tuple[int, DecisionRecord]] | None:
        """Blocks (lock held) until a batch is due; None when the store is closing and drained."""
        full = min(self._batch_size, self._max_queue)
        deadline: float | None = None
        while True:
            queue = self._queue
            if self._abandon:
                return None
            if queue:
                if len(queue) >= full or self._flush_waiters or self._closing:
                    break
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._flush_interval_s
                if now >= deadline:
                    break
                self._cond.wait(deadline - now)
            elif self._closing:
                return None
            else:
                deadline = None
                self._cond.wait()
        count = min(self._batch_size, len(self._queue))
        batch = [self._queue.popleft() for _ in range(count)]
        self._inflight_first = batch[0][0]
        self._inflight_size = count
        return batch

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    batch = self._next_batch()
                    if batch is None:
                        lost = len(self._queue)
                        self._queue.clear()
                        self._dropped += lost
                        self._cond.notify_all()
                        return
                written = self._write(batch)
                with self._cond:
                    self._inflight_first = None
                    self._inflight_size = 0
                    self._written += written
                    self._dropped += len(batch) - written
                    if written:
                        self._batches += 1
                    recovered = self._overflowing and len(self._queue) <= self._max_queue // 2
                    episode = self._episode_dropped
                    if recovered:
                        self._overflowing = False
                        self._episode_dropped = 0
                    self._cond.notify_all()
                if recovered:
                    logger.info("analytics queue recovered after dropping %d records", episode)
        except BaseException:
            logger.exception("analytics writer thread crashed")
            with self._cond:
                self._cond.notify_all()
            raise

    def _write(self, batch: Sequence[tuple[int, DecisionRecord]]) -> int:
        """Inserts ``batch`` in one executemany, retrying with backoff; returns rows written.

        Connection errors are retried until close() gives up. Any other error is retried a
        few times, then the rows are inserted one by one so a single bad row cannot take its
        whole batch (or, by blocking the queue, every later record) down with it.
        """
        rows = [_row(record) for _, record in batch]
        delay = self._backoff_s
        permanent_failures = 0
        while True:
            try:
                self._ensure_tables()
                with self._engine.begin() as conn:
                    conn.execute(_decisions.insert(), rows)
                return len(rows)
            except Exception as exc:
                reason = self._note_error(exc)
                # A dropped table shows up as a non-connection error: re-check next attempt.
                self._tables_ready = False
                permanent_failures = 0 if _is_transient(exc) else permanent_failures + 1
                if permanent_failures >= _MAX_PERMANENT_FAILURES:
                    return self._write_one_by_one(rows, reason)
                logger.warning(
                    "analytics write of %d records to %s failed (%s); retrying in %.2fs",
                    len(rows),
                    self._safe_url,
                    reason,
                    delay,
                )
            if not self._backoff(delay):
                return 0
            delay = min(delay * 2, self._backoff_max_s)

    def _write_one_by_one(self, rows: Sequence[dict[str, Any]], reason: str) -> int:
        written = 0
        for row in rows:
            try:
                with self._engine.begin() as conn:
                    conn.execute(_decisions.insert(), row)
                written += 1
            except Exception as exc:
                logger.error(
                    "analytics record %r cannot be written (%s); dropping it",
                    row["request_id"],
                    self._note_error(exc),
                )
        if written < len(rows):
            logger.error(
                "analytics batch failed %d times (%s); wrote %d of its %d records one by one",
                _MAX_PERMANENT_FAILURES,
                reason,
                written,
                len(rows),
            )
        return written

    def _backoff(self, delay: float) -> bool:
        """Waits ``delay`` seconds or until flush()/close() asks for a retry; False: give up."""
        deadline = time.monotonic() + delay
        with self._cond:
            self._retry_now = False
            while not (self._abandon or self._retry_now):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._retry_now = False
            return not self._abandon

    def _note_error(self, exc: BaseException) -> str:
        """Counts a failed attempt and returns a one-line description of it."""
        # SQLAlchemy's message repeats the SQL and every bound parameter: keep the driver's.
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        lines = str(cause).strip().splitlines()
        reason = f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        with self._cond:
            self._errors += 1
            self._last_error = reason
        return reason

    def _ensure_tables(self) -> None:
        if self._tables_ready:
            return
        with self._schema_lock:
            if not self._tables_ready:
                _metadata.create_all(self._engine, checkfirst=True)
                self._tables_ready = True

    # ---- queries ---------------------------------------------------------------------

    def _connect_for_query(self, since: float | None) -> Connection:
        if since is not None:
            _check_finite("since", since)
        with self._cond:
            if not self._started:
                raise RuntimeError("the analytics store is not started; call start() first")
            if self._closed:
                raise RuntimeError("the analytics store is closed")
        self._ensure_tables()
        return self._engine.connect()

    def cost_analysis(
        self, since: float | None = None, budget_limit: float | None = None
    ) -> dict[str, Any]:
        """Spend since ``since`` (epoch seconds; None: all time), overall and per model.

        A request's cost is its actual cost where known, else its estimate; rejected
        requests cost nothing. ``recommendations`` holds plain sentences derived from the
        figures.
        """
        if budget_limit is not None:
            _check_finite("budget_limit", budget_limit)
            if budget_limit <= 0:
                raise ValueError(f"budget_limit must be > 0 (got {budget_limit!r})")
        t = _decisions
        spent = sa.func.coalesce(t.c.cost_actual, t.c.cost_estimate)
        known = t.c.cost_actual.is_not(None)
        query = (
            sa.select(
                t.c.model,
                t.c.status,
                t.c.success,
                sa.func.count().label("n"),
                sa.func.coalesce(sa.func.sum(spent), 0.0).label("cost"),
                sa.func.count(t.c.cost_actual).label("n_actual"),
                sa.func.coalesce(sa.func.sum(t.c.cost_actual), 0.0).label("actual"),
                sa.func.coalesce(
                    sa.func.sum(sa.case((known, t.c.cost_estimate), else_=0.0)), 0.0
                ).label("estimate_of_actual"),
            )
            .where(*self._since(since))
            .group_by(t.c.model, t.c.status, t.c.success)
        )
        with self._connect_for_query(since) as conn:
            groups = conn.execute(query).all()

        requests = rejected = failed_requests = n_actual = 0
        total = failed_cost = actual = estimate_of_actual = 0.0
        models: dict[str | None, list[float]] = {}  # model -> [requests, cost]
        for row in groups:
            if row.status == "rejected":
                rejected += row.n
                continue
            cost = float(row.cost)
            requests += row.n
            total += cost
            n_actual += row.n_actual
            actual += float(row.actual)
            estimate_of_actual += float(row.estimate_of_actual)
            if row.status == "failed" or row.success is False:
                failed_requests += row.n
                failed_cost += cost
            entry = models.setdefault(row.model, [0, 0.0])
            entry[0] += row.n
            entry[1] += cost
        per_model = [
            {
                "model": model,
                "requests": int(n),
                "total_cost": cost,
                "cost_per_request": _ratio(cost, n),
                "share": _ratio(cost, total),
            }
            for model, (n, cost) in sorted(
                models.items(), key=lambda item: (-item[1][1], item[0] is None, item[0] or "")
            )
        ]
        used_pct = None if budget_limit is None else total / budget_limit * 100.0
        recommendations = _cost_recommendations(
            requests=requests,
            rejected=rejected,
            total=total,
            per_model=per_model,
            budget_limit=budget_limit,
            used_pct=used_pct,
            failed_requests=failed_requests,
            failed_cost=failed_cost,
            n_actual=n_actual,
            actual=actual,
            estimate_of_actual=estimate_of_actual,
        )
        return {
            "since": since,
            "total_cost": total,
            "requests": requests,
            "rejected": rejected,
            "cost_per_request": _ratio(total, requests),
            "failed_requests": failed_requests,
            "failed_cost": failed_cost,
            "per_model": per_model,
            "budget_limit": budget_limit,
            "budget_used_pct": used_pct,
            "recommendations": recommendations,
        }

    def performance(self, since: float | None = None) -> dict[str, Any]:
        """Decision counts, outcomes and latency percentiles since ``since`` (None: all time).

        Percentiles use the nearest-rank method; figures with no data are None.
        ``decisions_per_second`` is the decision count over the span from the first to
        the last decision covered.
        """
        t = _decisions
        where = self._since(since)
        ok = sa.case((t.c.success == sa.true(), 1), else_=0)
        totals_query = sa.select(
            sa.func.count().label("n"),
            sa.func.avg(t.c.decision_latency_ms).label("mean_decision"),
            sa.func.min(t.c.created_at).label("first"),
            sa.func.max(t.c.created_at).label("last"),
            sa.func.count(t.c.success).label("n_outcome"),
            sa.func.coalesce(sa.func.sum(ok), 0).label("n_ok"),
            sa.func.count(t.c.upstream_latency_ms).label("n_upstream"),
            sa.func.avg(t.c.upstream_latency_ms).label("mean_upstream"),
        ).where(*where)
        status_query = sa.select(t.c.status, sa.func.count()).where(*where).group_by(t.c.status)
        api_query = sa.select(t.c.api, sa.func.count()).where(*where).group_by(t.c.api)
        model_query = (
            sa.select(
                t.c.model,
                sa.func.count().label("n"),
                sa.func.count(t.c.success).label("n_outcome"),
                sa.func.coalesce(sa.func.sum(ok), 0).label("n_ok"),
                sa.func.avg(t.c.upstream_latency_ms).label("mean_upstream"),
            )
            .where(*where, t.c.model.is_not(None))
            .group_by(t.c.model)
            .order_by(t.c.model)
        )
        with self._connect_for_query(since) as conn, conn.begin():
            totals = conn.execute(totals_query).one()
            statuses = {status: int(n) for status, n in conn.execute(status_query)}
            per_api = {api: int(n) for api, n in conn.execute(api_query)}
            model_rows = conn.execute(model_query).all()
            decision_pct = _percentiles(
                conn, t.c.decision_latency_ms, where, int(totals.n), (50, 95, 99)
            )
            upstream_pct = _percentiles(
                conn, t.c.upstream_latency_ms, where, int(totals.n_upstream), (50, 99)
            )

        decisions = int(totals.n)
        period = (
            float(totals.last) - float(totals.first) if decisions else 0.0
        )  # first..last decision
        return {
            "since": since,
            "decisions": decisions,
            **{status: statuses.get(status, 0) for status in sorted(DECISION_STATUSES)},
            "success_rate": (
                int(totals.n_ok) / int(totals.n_outcome) if int(totals.n_outcome) else None
            ),
            "decision_latency_ms": {
                "p50": decision_pct[50],
                "p95": decision_pct[95],
                "p99": decision_pct[99],
                "mean": None if totals.mean_decision is None else float(totals.mean_decision),
            },
            "upstream_latency_ms": {
                "p50": upstream_pct[50],
                "p99": upstream_pct[99],
                "mean": None if totals.mean_upstream is None else float(totals.mean_upstream),
            },
            "per_api": dict(sorted(per_api.items())),
            "per_model": [
                {
                    "model": row.model,
                    "requests": int(row.n),
                    "success_rate": int(row.n_ok) / int(row.n_outcome) if row.n_outcome else None,
                    "mean_upstream_latency_ms": (
                        None if row.mean_upstream is None else float(row.mean_upstream)
                    ),
                }
                for row in model_rows
            ],
            "period_s": period,
            "decisions_per_second": decisions / period if period > 0 else None,
        }

    @staticmethod
    def _since(since: float | None) -> list[sa.ColumnElement[bool]]:
        return [] if since is None else [_decisions.c.created_at >= float(since)]


def _sqlite_on_connect(dbapi_connection: Any, _record: object) -> None:
    # WAL lets the query threads read while the writer commits; NORMAL sync is safe in WAL.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def _percentiles(
    conn: Connection,
    column: sa.Column[Any],
    where: Iterable[sa.ColumnElement[bool]],
    count: int,
    percents: Sequence[int],
) -> dict[int, float | None]:
    """Nearest-rank percentiles of ``column`` over ``count`` non-null rows, in one query."""
    if count == 0:
        return dict.fromkeys(percents)
    # Rank ceil(p / 100 * count), in integer arithmetic so 95 % of 20 is exactly rank 19.
    ranks = {p: max(1, -(-p * count // 100)) for p in percents}
    rank = sa.func.row_number().over(order_by=column).label("rank")
    ranked = sa.select(column.label("value"), rank).where(*where, column.is_not(None)).subquery()
    values: Mapping[int, float] = {
        int(r): float(v)
        for r, v in conn.execute(
            sa.select(ranked.c.rank, ranked.c.value).where(ranked.c.rank.in_(set(ranks.values())))
        )
    }
    return {p: values.get(r) for p, r in ranks.items()}


def _cost_recommendations(
    *,
    requests: int,
    rejected: int,
    total: float,
    per_model: list[dict[str, Any]],
    budget_limit: float | None,
    used_pct: float | None,
    failed_requests: int,
    failed_cost: float,
    n_actual: int,
    actual: float,
    estimate_of_actual: float,
) -> list[str]:
    """Plain-sentence advice drawn from the cost figures, most urgent first."""
    if requests == 0:
        if rejected:
            return [
                f"No requests have been routed yet ({rejected} rejected), so there is no "
                "spend to analyse."
            ]
        return ["No routing decisions recorded yet; cost analysis starts once requests are routed."]
    advice: list[str] = []
    if budget_limit is not None and used_pct is not None and used_pct >= _BUDGET_WARN_PCT:
        if used_pct >= 100.0:
            advice.append(
                f"Spend of {_money(total)} is {used_pct:.1f}% of the {_money(budget_limit)} "
                "budget limit: the budget is exhausted; raise the limit or move traffic to "
                "cheaper models."
            )
        else:
            advice.append(
                f"Spend of {_money(total)} is {used_pct:.1f}% of the {_money(budget_limit)} "
                f"budget limit (over {_BUDGET_WARN_PCT:.0f}%); move cost-insensitive traffic "
                "to cheaper models before the budget runs out."
            )
    named = [m for m in per_model if m["model"] is not None and m["requests"] > 0]
    if len(named) >= 2:
        dearest = max(named, key=lambda m: (m["cost_per_request"], m["model"]))
        cheapest = min(named, key=lambda m: (m["cost_per_request"], m["model"]))
        if dearest["cost_per_request"] > cheapest["cost_per_request"]:
            times = (
                f"{dearest['cost_per_request'] / cheapest['cost_per_request']:.1f}x"
                if cheapest["cost_per_request"] > 0
                else "far more than"
            )
            advice.append(
                f"Model '{dearest['model']}' has the highest cost per request "
                f"({_money(dearest['cost_per_request'])}, {times} '{cheapest['model']}' at "
                f"{_money(cheapest['cost_per_request'])}) and takes "
                f"{dearest['share'] * 100:.1f}% of spend; route cost-insensitive requests to "
                "cheaper models."
            )
    elif len(named) == 1 and total > 0:
        only = named[0]
        advice.append(
            f"All routed spend goes to model '{only['model']}' "
            f"({_money(only['cost_per_request'])} per request); a cheaper model in the fleet "
            "would give the router a cost option."
        )
    if failed_cost > 0:
        advice.append(
            f"{failed_requests} failed request{'' if failed_requests == 1 else 's'} still cost "
            f"{_money(failed_cost)} "
            f"({_ratio(failed_cost, total) * 100:.1f}% of spend); investigate the failing "
            "upstreams or let their circuit breakers open sooner."
        )
    if n_actual and estimate_of_actual > 0:
        bias = actual / estimate_of_actual - 1.0
        if abs(bias) > _ESTIMATE_BIAS:
            direction = "above" if bias > 0 else "below"
            advice.append(
                f"Actual costs run {abs(bias) * 100:.1f}% {direction} the estimates over "
                f"{n_actual} requests; update the model prices so budget checks admit the "
                "right traffic."
            )
    if not advice:
        advice.append(
            f"No cost issues found across {requests} requests: spend is within budget and "
            "no model stands out."
        )
    return advice
