"""Tests of the analytics store on SQLite and on a real PostgreSQL server.

Every behaviour test runs twice, once per database: batching, flush and close semantics,
the bounded queue, the cost and performance queries on hand-made records with exact
expected figures, and recovery from a database that fails under the writer.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fleetroute.service.analytics import (
    DEFAULT_ANALYTICS_URL,
    AnalyticsStore,
    DecisionRecord,
)

from .postgres_server import PostgresServer, reset

__all__: list[str] = []

LOGGER = "fleetroute.service"

MakeStore = Callable[..., AnalyticsStore]


def rec(i: int = 0, **fields: Any) -> DecisionRecord:
    """A valid record numbered ``i``; ``fields`` override the defaults."""
    values: dict[str, Any] = {
        "request_id": f"r{i}",
        "timestamp": 1_700_000_000.0 + i,
        "api": "route",
        "client_id": "client-1",
        "strategy": "power_of_two",
        "model": "m",
        "target": "inst-1",
        "decision_latency_ms": 1.0,
        "cost_estimate": 0.01,
        "status": "routed",
    }
    values.update(fields)
    return DecisionRecord(**values)


def stored_request_ids(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT request_id FROM routing_decisions ORDER BY id"))
            return [row[0] for row in rows]
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'analytics.db'}"
    # The session's server (conftest.py); each test starts from an empty database.
    server: PostgresServer = request.getfixturevalue("postgres_server")
    reset(server.url)
    return server.url


@pytest.fixture
def make_store(db_url: str) -> Iterator[MakeStore]:
    """Builds stores on ``db_url`` (unless ``url=`` is given) and closes them all afterwards."""
    stores: list[AnalyticsStore] = []

    def make(**options: Any) -> AnalyticsStore:
        store = AnalyticsStore(options.pop("url", db_url), **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close(timeout=10)


@pytest.fixture
def inserts() -> Iterator[list[tuple[bool, int]]]:
    """(executemany, row count) of every INSERT into routing_decisions on any engine."""
    seen: list[tuple[bool, int]] = []

    def listener(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ROUTING_DECISIONS"):
            seen.append((executemany, len(parameters) if executemany else 1))

    sa.event.listen(Engine, "before_cursor_execute", listener)
    yield seen
    sa.event.remove(Engine, "before_cursor_execute", listener)


# ---- writing ----------------------------------------------------------------------------


def test_records_are_written_in_batches_one_executemany_each(
    make_store: MakeStore, inserts: list[tuple[bool, int]], db_url: str
) -> None:
    store = make_store(batch_size=100, flush_interval_s=60.0)
    store.start()
    for i in range(1050):
        store.record(rec(i))
    store.flush(timeout=30)
    # Ten full batches as the queue filled, then the flush took the remaining 50.
    assert store.batches_written == 11
    assert store.written_total == 1050
    assert inserts == [(True, 100)] * 10 + [(True, 50)]
    assert stored_request_ids(db_url) == [f"r{i}" for i in range(1050)]


def test_flush_waits_for_everything_recorded_before_it(make_store: MakeStore) -> None:
    store = make_store(batch_size=1000, flush_interval_s=60.0)
    store.start()
    for i in range(5):
        store.record(rec(i))
    # Below a batch and long before the interval: nothing is written yet.
    assert store.written_total == 0
    assert store.queue_depth == 5
    store.flush(timeout=30)
    assert store.written_total == 5
    assert store.queue_depth == 0
    assert store.batches_written == 1
    assert store.performance()["decisions"] == 5
    store.flush(timeout=30)  # nothing pending: returns at once
    assert store.batches_written == 1


def test_a_partial_batch_is_written_after_the_flush_interval(make_store: MakeStore) -> None:
    store = make_store(batch_size=1000, flush_interval_s=0.05)
    store.start()
    committed = threading.Event()

    def on_commit(conn: Any) -> None:
        committed.set()

    sa.event.listen(Engine, "commit", on_commit)
    try:
        for i in range(3):
            store.record(rec(i))
        # The writer commits on its own, with no flush() asking it to.
        assert committed.wait(timeout=10)
    finally:
        sa.event.remove(Engine, "commit", on_commit)
    store.flush(timeout=30)
    assert store.written_total == 3
    assert store.batches_written == 1


def test_close_writes_everything_and_a_new_store_sees_it(
    make_store: MakeStore, db_url: str
) -> None:
    store = make_store()
    store.start()
    for i in range(10_000):
        store.record(rec(i))
    store.close()
    assert store.written_total == 10_000
    assert store.dropped_total == 0
    assert store.queue_depth == 0

    reopened = make_store()
    reopened.start()
    assert reopened.performance()["decisions"] == 10_000
    assert len(set(stored_request_ids(db_url))) == 10_000


def test_records_from_many_threads_are_all_written(make_store: MakeStore) -> None:
    store = make_store(batch_size=250)
    store.start()

    def produce(worker: int) -> None:
        for i in range(2_000):
            store.record(rec(worker * 10_000 + i))

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.flush(timeout=30)
    assert store.written_total == 8_000
    assert store.performance()["decisions"] == 8_000


def test_a_full_queue_drops_the_oldest_and_warns_once(
    make_store: MakeStore, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(max_queue=4)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    # Not started yet, so the writer cannot drain the queue while it overflows.
    for i in range(10):
        store.record(rec(i))
    assert store.dropped_total == 6
    assert store.queue_depth == 4
    warnings = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(warnings) == 1
    store.start()
    store.flush(timeout=30)
    assert stored_request_ids(db_url) == ["r6", "r7", "r8", "r9"]
    assert store.written_total == 4


def test_record_after_close_raises_and_close_is_idempotent(make_store: MakeStore) -> None:
    store = make_store()
    store.start()
    store.record(rec(1))
    store.close()
    store.close()
    assert store.written_total == 1
    with pytest.raises(RuntimeError, match="closed"):
        store.record(rec(2))
    with pytest.raises(RuntimeError, match="closed"):
        store.performance()
    with pytest.raises(RuntimeError, match="closed"):
        store.start()


def test_lifecycle_misuse_is_refused(make_store: MakeStore) -> None:
    store = make_store()
    with pytest.raises(RuntimeError, match="not started"):
        store.flush()
    with pytest.raises(RuntimeError, match="not started"):
        store.cost_analysis()
    store.start()
    with pytest.raises(RuntimeError, match="already started"):
        store.start()


def test_a_dropped_table_is_recreated_by_the_writer(make_store: MakeStore, db_url: str) -> None:
    store = make_store(retry_backoff_s=0.01, retry_backoff_max_s=0.05)
    store.start()
    store.record(rec(1))
    store.flush(timeout=30)
    reset(db_url)
    store.record(rec(2))
    store.flush(timeout=30)
    assert stored_request_ids(db_url) == ["r2"]
    assert store.errors_total >= 1


def test_a_row_the_database_refuses_is_dropped_alone(
    make_store: MakeStore, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    store = make_store(retry_backoff_s=0.001, retry_backoff_max_s=0.002)
    store.start()
    # A lone surrogate cannot be encoded for either database: the batch fails every time.
    for record in (rec(1), rec(2, request_id="bad-\ud800"), rec(3)):
        store.record(record)
    store.flush(timeout=30)
    assert store.written_total == 2
    assert store.dropped_total == 1
    assert stored_request_ids(db_url) == ["r1", "r3"]
    assert any("cannot be written" in r.getMessage() for r in caplog.records if r.name == LOGGER)
    store.record(rec(4))
    store.flush(timeout=30)
    assert stored_request_ids(db_url) == ["r1", "r3", "r4"]


# ---- a failing database -----------------------------------------------------------------


def test_sqlite_unavailable_then_available_loses_nothing(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    folder = tmp_path / "not-yet"
    url = f"sqlite:///{folder / 'analytics.db'}"
    store = AnalyticsStore(url, retry_backoff_s=0.01, retry_backoff_max_s=0.05)
    try:
        store.start()  # logs; does not raise
        for i in range(3):
            store.record(rec(i))
        with pytest.raises(TimeoutError, match="3 records not yet written"):
            store.flush(timeout=0.3)
        assert store.errors_total >= 2
        assert store.last_error is not None and "unable to open database" in store.last_error
        folder.mkdir()
        store.flush(timeout=30)
        assert store.written_total == 3
        assert store.dropped_total == 0
    finally:
        store.close(timeout=10)
    assert stored_request_ids(url) == ["r0", "r1", "r2"]
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert any("unavailable at start" in m for m in messages)
    assert any("retrying" in m for m in messages)


def test_postgres_unavailable_then_available_loses_nothing(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    name = "fleetroute_late"
    url = postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    store = AnalyticsStore(url, retry_backoff_s=0.01, retry_backoff_max_s=0.05)
    try:
        store.start()
        for i in range(3):
            store.record(rec(i))
        with pytest.raises(TimeoutError):
            store.flush(timeout=0.3)
        assert store.errors_total >= 2
        with psycopg.connect(postgres_server.admin_conninfo(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        store.flush(timeout=30)
        assert store.written_total == 3
        store.close(timeout=10)
        assert stored_request_ids(url) == ["r0", "r1", "r2"]
    finally:
        store.close(timeout=10)
        with psycopg.connect(postgres_server.admin_conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert any("retrying" in r.getMessage() for r in caplog.records if r.name == LOGGER)


def test_close_gives_up_on_an_unreachable_server_and_counts_the_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with refused_port() as port:
        url = f"postgresql+psycopg://fleetroute@127.0.0.1:{port}/nothing"
        store = AnalyticsStore(url, retry_backoff_s=0.01, retry_backoff_max_s=0.05)
        store.start()
        for i in range(3):
            store.record(rec(i))
        store.close(timeout=0.2)
    assert store.written_total == 0
    assert store.dropped_total == 3
    assert store.errors_total >= 1
    assert any("not written" in r.getMessage() for r in caplog.records if r.name == LOGGER)
    with pytest.raises(RuntimeError):
        store.record(rec(4))


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port held bound but not listening, so connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


# ---- queries ----------------------------------------------------------------------------


def cost_records() -> list[DecisionRecord]:
    """Seven routed requests (two models and one service route) and one rejection."""
    return [
        # m-large: costs 0.05 (actual) + 0.03 (estimate only) + 0.01 (actual, failed).
        rec(1, model="m-large", status="completed", success=True, cost_estimate=0.02,
            cost_actual=0.05),
        rec(2, model="m-large", status="completed", success=True, cost_estimate=0.03),
        rec(3, model="m-large", status="failed", success=False, cost_estimate=0.02,
            cost_actual=0.01),
        # m-small: 0.01 each.
        rec(4, model="m-small", status="completed", success=True, cost_estimate=0.01,
            cost_actual=0.01),
        rec(5, model="m-small", cost_estimate=0.01),
        rec(6, model="m-small", cost_estimate=0.01),
        # A rejected request never ran: its estimate is not spend.
        rec(7, model=None, target=None, status="rejected", cost_estimate=0.05),
        # A service route (no model), free.
        rec(8, model=None, cost_estimate=0.0),
    ]  # fmt: skip


def load(store: AnalyticsStore, records: list[DecisionRecord]) -> None:
    for record in records:
        store.record(record)
    store.flush(timeout=30)


def test_cost_analysis_figures_and_recommendations(make_store: MakeStore) -> None:
    store = make_store()
    store.start()
    load(store, cost_records())
    report = store.cost_analysis(budget_limit=0.14)

    assert report["requests"] == 7
    assert report["rejected"] == 1
    assert report["total_cost"] == pytest.approx(0.12)
    assert report["cost_per_request"] == pytest.approx(0.12 / 7)
    assert report["failed_requests"] == 1
    assert report["failed_cost"] == pytest.approx(0.01)
    assert report["budget_limit"] == 0.14
    assert report["budget_used_pct"] == pytest.approx(0.12 / 0.14 * 100)
    per_model = report["per_model"]
    assert [m["model"] for m in per_model] == ["m-large", "m-small", None]
    assert [m["requests"] for m in per_model] == [3, 3, 1]
    assert [m["total_cost"] for m in per_model] == pytest.approx([0.09, 0.03, 0.0])
    assert [m["cost_per_request"] for m in per_model] == pytest.approx([0.03, 0.01, 0.0])
    assert [m["share"] for m in per_model] == pytest.approx([0.75, 0.25, 0.0])

    budget, dearest, failed, estimates = report["recommendations"]
    assert budget.startswith("Spend of $0.1200 is 85.7% of the $0.1400 budget limit (over 80%)")
    assert dearest.startswith(
        "Model 'm-large' has the highest cost per request ($0.0300, 3.0x 'm-small' at "
        "$0.0100) and takes 75.0% of spend"
    )
    assert failed.startswith("1 failed request still cost $0.0100 (8.3% of spend)")
    # Actual 0.05 + 0.01 + 0.01 against estimates 0.02 + 0.02 + 0.01.
    assert estimates.startswith("Actual costs run 40.0% above the estimates over 3 requests")


def test_cost_analysis_since_and_an_exhausted_budget(make_store: MakeStore) -> None:
    store = make_store()
    store.start()
    load(store, cost_records())
    report = store.cost_analysis(since=rec(4).timestamp, budget_limit=0.025)
    # Records 4..8: three m-small requests (0.03) and the free service route.
    assert report["requests"] == 4
    assert report["rejected"] == 1
    assert report["total_cost"] == pytest.approx(0.03)
    assert report["budget_used_pct"] == pytest.approx(120.0)
    assert report["recommendations"][0].startswith(
        "Spend of $0.0300 is 120.0% of the $0.0250 budget limit: the budget is exhausted"
    )
    assert report["recommendations"][1].startswith("All routed spend goes to model 'm-small'")
    assert len(report["recommendations"]) == 2


def test_cost_analysis_without_issues_says_so(make_store: MakeStore) -> None:
    store = make_store()
    store.start()
    load(store, [rec(i, model=f"m{i % 2}", cost_estimate=0.01) for i in range(4)])
    report = store.cost_analysis(budget_limit=1.0)
    assert report["budget_used_pct"] == pytest.approx(4.0)
    assert report["recommendations"] == [
        "No cost issues found across 4 requests: spend is within budget and no model stands out."
    ]


def test_empty_store_answers_with_zeros(make_store: MakeStore) -> None:
    store = make_store()
    store.start()
    cost = store.cost_analysis(budget_limit=10.0)
    assert cost["total_cost"] == 0.0
    assert cost["requests"] == 0
    assert cost["cost_per_request"] == 0.0
    assert cost["per_model"] == []
    assert cost["budget_used_pct"] == 0.0
    assert cost["recommendations"] == [
        "No routing decisions recorded yet; cost analysis starts once requests are routed."
    ]
    assert store.cost_analysis()["budget_used_pct"] is None

    perf = store.performance()
    assert perf["decisions"] == 0
    assert (perf["routed"], perf["rejected"], perf["completed"], perf["failed"]) == (0, 0, 0, 0)
    assert perf["success_rate"] is None
    assert perf["decision_latency_ms"] == {"p50": None, "p95": None, "p99": None, "mean": None}
    assert perf["upstream_latency_ms"] == {"p50": None, "p99": None, "mean": None}
    assert perf["per_api"] == {}
    assert perf["per_model"] == []
    assert perf["decisions_per_second"] is None


def performance_records() -> list[DecisionRecord]:
    """Twenty decisions, 0.5 s apart, with decision latencies 1..20 ms in shuffled order."""
    records = []
    for i in range(20):
        if i < 2:
            status, model, success = "rejected", None, None
        elif i < 6:
            status, model, success = "routed", "a" if i % 2 == 0 else "b", None
        elif i < 16:
            status, model, success = "completed", "a" if i % 2 == 0 else "b", True
        else:
            status, model, success = "failed", "a" if i % 2 == 0 else "b", False
        records.append(
            rec(
                i,
                timestamp=1000.0 + i * 0.5,
                api="batch" if i % 3 == 0 else "route",
                model=model,
                status=status,
                success=success,
                decision_latency_ms=float(i + 1),
                upstream_latency_ms=float(i * 10) if success is not None else None,
            )
        )
    random.Random(7).shuffle(records)
    return records


def test_performance_figures(make_store: MakeStore) -> None:
    store = make_store()
    store.start()
    load(store, performance_records())
    perf = store.performance()
    assert perf["decisions"] == 20
    assert (perf["routed"], perf["rejected"], perf["completed"], perf["failed"]) == (4, 2, 10, 4)
    assert perf["success_rate"] == pytest.approx(10 / 14)
    # Nearest rank over 1..20: p50 is rank 10, p95 rank 19, p99 rank 20.
    assert perf["decision_latency_ms"] == {"p50": 10.0, "p95": 19.0, "p99": 20.0, "mean": 10.5}
    # Upstream latencies 60, 70, ..., 190: p50 is rank 7 of 14, p99 rank 14.
    assert perf["upstream_latency_ms"] == {"p50": 120.0, "p99": 190.0, "mean": 125.0}
    assert perf["per_api"] == {"batch": 7, "route": 13}
    assert perf["per_model"] == [
        {"model": "a", "requests": 9, "success_rate": pytest.approx(5 / 7),
         "mean_upstream_latency_ms": 120.0},
        {"model": "b", "requests": 9, "success_rate": pytest.approx(5 / 7),
         "mean_upstream_latency_ms": 130.0},
    ]  # fmt: skip
    assert perf["period_s"] == 9.5
    assert perf["decisions_per_second"] == pytest.approx(20 / 9.5)


def test_performance_since(make_store: MakeStore) -> None:
    store = make_store()
    store.start()
    load(store, performance_records())
    perf = store.performance(since=1005.0)
    # Decisions 10..19: latencies 11..20, six completed and four failed.
    assert perf["decisions"] == 10
    assert (perf["completed"], perf["failed"]) == (6, 4)
    assert perf["decision_latency_ms"]["p50"] == 15.0
    assert perf["decision_latency_ms"]["p99"] == 20.0
    assert perf["period_s"] == 4.5


# ---- configuration and bad input --------------------------------------------------------


def test_sqlite_runs_in_wal_mode(tmp_path: Any) -> None:
    path = tmp_path / "wal.db"
    with AnalyticsStore(f"sqlite:///{path}") as store:
        store.record(rec(1))
        store.flush(timeout=30)
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()
    assert DEFAULT_ANALYTICS_URL == "sqlite:///fleetroute-analytics.db"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("request_id", "", ValueError),
        ("timestamp", float("nan"), ValueError),
        ("api", "stream", ValueError),
        ("status", "done", ValueError),
        ("model", 3, TypeError),
        ("decision_latency_ms", -1.0, ValueError),
        ("cost_estimate", float("inf"), ValueError),
        ("cost_actual", -0.5, ValueError),
        ("success", 1, TypeError),
        ("tokens_in", -3, ValueError),
        ("tokens_out", 2.5, ValueError),
        ("tokens_out", 2**31, ValueError),
        ("upstream_latency_ms", "fast", TypeError),
    ],
)
def test_bad_records_name_the_field(field: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=field):
        rec(1, **{field: value})


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_queue": -1}, "max_queue"),
        ({"flush_interval_s": 0.0}, "flush_interval_s"),
        ({"retry_backoff_s": 2.0, "retry_backoff_max_s": 1.0}, "retry_backoff_s"),
        ({"url": ""}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "nosuchdb://x/y"}, "url"),
    ],
)
def test_bad_store_options_name_the_field(options: dict[str, Any], field: str) -> None:
    url = options.pop("url", "sqlite://")
    with pytest.raises(ValueError, match=field):
        AnalyticsStore(url, **options)


def test_bad_arguments_leave_the_store_unchanged(tmp_path: Any) -> None:
    with AnalyticsStore(f"sqlite:///{tmp_path / 'a.db'}") as store:
        with pytest.raises(TypeError, match="DecisionRecord"):
            store.record({"request_id": "x"})  # type: ignore[arg-type]
        assert store.queue_depth == 0
        with pytest.raises(ValueError, match="budget_limit"):
            store.cost_analysis(budget_limit=0.0)
        with pytest.raises(ValueError, match="since"):
            store.performance(since=float("nan"))
        with pytest.raises(ValueError, match="timeout"):
            store.flush(timeout=-1.0)
        store.record(rec(1))
        store.flush(timeout=30)
        assert store.written_total == 1


def test_passwords_stay_out_of_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with refused_port() as port:
        store = AnalyticsStore(
            f"postgresql+psycopg://user:s3cret@127.0.0.1:{port}/db",
            retry_backoff_s=0.01,
            retry_backoff_max_s=0.02,
        )
        store.start()
        store.close(timeout=0.1)
    assert caplog.records
    assert all("s3cret" not in r.getMessage() for r in caplog.records)
