"""Active health checks against a real HTTP server on a loopback port.

Time is a ManualClock and the interval sleep is injected, so the only real waiting is
the 0.2 s client timeout in the timeout test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from fleetroute.clock import ManualClock
from fleetroute.resilience.health_check import HealthChecker, HealthStatus

TIMEOUT = 0.2  # the client timeout; long enough for a loopback answer, short to wait out


class ProbeServer(ThreadingHTTPServer):
    """Answers every GET with ``status``; or, with ``hang``, accepts and never answers."""

    # Join handler threads on close so no socket outlives the test.
    daemon_threads = False
    block_on_close = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ProbeHandler)
        self.status = 200
        self.hang = False
        self.barrier: threading.Barrier | None = None
        self.paths: list[str] = []
        self.seen = threading.Event()  # set when a request arrives
        self.release = threading.Event()  # ends every hanging request
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.paths)

    def record(self, path: str) -> None:
        with self._lock:
            self.paths.append(path)
        self.seen.set()


class ProbeHandler(BaseHTTPRequestHandler):
    server: ProbeServer

    def do_GET(self) -> None:
        srv = self.server
        srv.record(self.path)
        if srv.hang:
            srv.release.wait(10)
            return  # close the connection without a response
        if srv.barrier is not None:
            srv.barrier.wait(5)
        self.send_response(srv.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet


MakeServer = Callable[..., ProbeServer]


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    started: list[tuple[ProbeServer, threading.Thread]] = []

    def make(status: int = 200) -> ProbeServer:
        srv = ProbeServer()
        srv.status = status
        thread = threading.Thread(
            target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        started.append((srv, thread))
        return srv

    yield make
    for srv, thread in started:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def server(make_server: MakeServer) -> ProbeServer:
    return make_server()


def closed_port_url() -> str:
    # Bind then close: nothing listens there, so connecting is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run(make_coro: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await make_coro()

    asyncio.run(main())


def checker(targets: dict[str, str], **options: object) -> HealthChecker:
    options.setdefault("timeout", TIMEOUT)
    options.setdefault("clock", ManualClock())
    return HealthChecker(targets, **options)  # type: ignore[arg-type]


# -- thresholds and transitions ----------------------------------------------------------


def test_marks_down_after_exactly_n_failures_and_up_after_exactly_m_successes(
    server: ProbeServer,
) -> None:
    changes: list[tuple[str, bool]] = []
    server.status = 503

    async def scenario() -> None:
        async with checker(
            {"a": server.url},
            unhealthy_threshold=3,
            healthy_threshold=2,
            on_change=lambda eid, up: changes.append((eid, up)),
        ) as hc:
            assert await hc.check("a") is True
            assert await hc.check("a") is True
            assert hc.status("a").consecutive_failures == 2
            assert changes == []
            assert await hc.check("a") is False
            assert hc.is_healthy("a") is False
            assert changes == [("a", False)]
            # More failures while down are no new transition.
            assert await hc.check("a") is False
            assert hc.status("a").consecutive_failures == 4

            server.status = 200
            assert await hc.check("a") is False
            assert hc.status("a").consecutive_successes == 1
            assert hc.status("a").consecutive_failures == 0
            assert await hc.check("a") is True
            assert hc.is_healthy("a") is True
            assert await hc.check("a") is True
            assert changes == [("a", False), ("a", True)]

    run(scenario)
    assert server.requests == 7


def test_a_success_resets_the_failure_count(server: ProbeServer) -> None:
    async def scenario() -> None:
        async with checker({"a": server.url}, unhealthy_threshold=2) as hc:
            server.status = 500
            await hc.check("a")
            server.status = 200
            await hc.check("a")
            server.status = 500
            assert await hc.check("a") is True  # 1 failure since the success, not 2
            assert await hc.check("a") is False

    run(scenario)


def test_on_change_called_once_per_transition(server: ProbeServer) -> None:
    changes: list[tuple[str, bool]] = []

    async def scenario() -> None:
        async with checker(
            {"a": server.url},
            unhealthy_threshold=1,
            healthy_threshold=1,
            on_change=lambda eid, up: changes.append((eid, up)),
        ) as hc:
            for status, probes in ((503, 4), (200, 3), (503, 2), (200, 1)):
                server.status = status
                for _ in range(probes):
                    await hc.check("a")

    run(scenario)
    assert changes == [("a", False), ("a", True), ("a", False), ("a", True)]


def test_initially_unhealthy_needs_healthy_threshold_successes(server: ProbeServer) -> None:
    changes: list[tuple[str, bool]] = []

    async def scenario() -> None:
        async with checker(
            {"a": server.url},
            initially_healthy=False,
            healthy_threshold=3,
            on_change=lambda eid, up: changes.append((eid, up)),
        ) as hc:
            assert hc.is_healthy("a") is False
            assert [await hc.check("a") for _ in range(3)] == [False, False, True]

    run(scenario)
    assert changes == [("a", True)]


def test_transitions_are_logged(server: ProbeServer, caplog: pytest.LogCaptureFixture) -> None:
    server.status = 503

    async def scenario() -> None:
        async with checker({"a": server.url}, unhealthy_threshold=1, healthy_threshold=1) as hc:
            await hc.check("a")
            server.status = 200
            await hc.check("a")

    with caplog.at_level(logging.INFO, logger="fleetroute.health"):
        run(scenario)
    records = [r for r in caplog.records if r.name == "fleetroute.health"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO]
    assert "unhealthy" in records[0].getMessage()
    assert "HTTP 503" in records[0].getMessage()
    assert "healthy" in records[1].getMessage()


def test_a_failing_on_change_is_logged_and_checking_goes_on(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    bad, good = make_server(503), make_server(503)

    def explode(endpoint_id: str, healthy: bool) -> None:
        raise RuntimeError("listener broke")

    async def scenario() -> None:
        async with checker(
            {"a": bad.url, "b": good.url}, unhealthy_threshold=1, on_change=explode
        ) as hc:
            assert await hc.check_once() == {"a": False, "b": False}

    with caplog.at_level(logging.ERROR, logger="fleetroute.health"):
        run(scenario)
    assert sum("on_change callback failed" in r.getMessage() for r in caplog.records) == 2


# -- what counts as a failure --------------------------------------------------------------


def test_status_records_time_latency_and_error(server: ProbeServer) -> None:
    clock = ManualClock(100.0)

    async def scenario() -> None:
        async with checker({"a": server.url}, clock=clock) as hc:
            before = hc.status("a")
            assert before == HealthStatus("a", True, 0, 0, None, None, None)
            clock.advance(5.0)
            server.status = 503
            await hc.check("a")
            after = hc.status("a")
            assert after.last_checked == 105.0
            assert after.last_latency == 0.0  # a response arrived; the clock did not move
            assert after.last_error == "HTTP 503"
            assert (after.consecutive_failures, after.consecutive_successes) == (1, 0)
            server.status = 200
            await hc.check("a")
            assert hc.status("a").last_error is None
            assert hc.status("a").consecutive_successes == 1

    run(scenario)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_is_a_success(server: ProbeServer, status: int) -> None:
    server.status = status

    async def scenario() -> None:
        async with checker({"a": server.url}, unhealthy_threshold=1) as hc:
            assert await hc.check("a") is True
            assert hc.status("a").last_error is None

    run(scenario)


@pytest.mark.parametrize("status", [301, 304, 404, 429, 500, 503])
def test_non_2xx_is_a_failure(server: ProbeServer, status: int) -> None:
    server.status = status

    async def scenario() -> None:
        async with checker({"a": server.url}, unhealthy_threshold=1) as hc:
            assert await hc.check("a") is False
            assert hc.status("a").last_error == f"HTTP {status}"

    run(scenario)


def test_a_timeout_is_a_failure(server: ProbeServer) -> None:
    server.hang = True

    async def scenario() -> None:
        async with checker({"a": server.url}, unhealthy_threshold=1, timeout=TIMEOUT) as hc:
            assert await hc.check("a") is False
            status = hc.status("a")
            assert status.last_error == "timeout after 0.2 s"
            assert status.last_latency is None
            assert status.last_checked == 0.0

    run(scenario)
    assert server.requests == 1


def test_a_refused_connection_is_a_failure() -> None:
    async def scenario() -> None:
        async with checker({"a": closed_port_url()}, unhealthy_threshold=1) as hc:
            assert await hc.check("a") is False
            status = hc.status("a")
            assert status.last_error is not None
            assert status.last_error.startswith("connection refused: "), status.last_error
            assert status.last_latency is None

    run(scenario)


def test_probe_uses_path_and_tolerates_trailing_slash(server: ProbeServer) -> None:
    async def scenario() -> None:
        async with checker({"a": server.url + "/"}, path="/ready?deep=1") as hc:
            await hc.check("a")

    run(scenario)
    assert server.paths == ["/ready?deep=1"]


def test_default_path_is_health(server: ProbeServer) -> None:
    async def scenario() -> None:
        async with checker({"a": server.url}) as hc:
            await hc.check("a")

    run(scenario)
    assert server.paths == ["/health"]


# -- rounds --------------------------------------------------------------------------------


def test_check_once_probes_every_target(make_server: MakeServer) -> None:
    servers = {"a": make_server(200), "b": make_server(503), "c": make_server(200)}

    async def scenario() -> None:
        async with checker(
            {eid: srv.url for eid, srv in servers.items()}, unhealthy_threshold=1
        ) as hc:
            assert await hc.check_once() == {"a": True, "b": False, "c": True}
            assert [s.endpoint_id for s in hc.statuses()] == ["a", "b", "c"]
            assert [s.healthy for s in hc.statuses()] == [True, False, True]

    run(scenario)
    assert [srv.paths for srv in servers.values()] == [["/health"]] * 3


def test_check_once_probes_concurrently(make_server: MakeServer) -> None:
    # Each server answers only once all three requests are in flight at the same time;
    # probed one after another, every probe would time out instead.
    barrier = threading.Barrier(3)
    servers = [make_server() for _ in range(3)]
    for srv in servers:
        srv.barrier = barrier

    async def scenario() -> None:
        async with checker({str(i): srv.url for i, srv in enumerate(servers)}, timeout=5.0) as hc:
            assert await hc.check_once() == {"0": True, "1": True, "2": True}
            assert all(s.last_error is None for s in hc.statuses())

    run(scenario)


def test_check_once_with_no_targets() -> None:
    async def scenario() -> None:
        async with HealthChecker() as hc:
            assert await hc.check_once() == {}
            assert hc.statuses() == []

    run(scenario)


def test_run_loops_on_the_injected_sleep_until_stopped(server: ProbeServer) -> None:
    clock = ManualClock()
    slept: list[float] = []

    async def scenario() -> None:
        stop = asyncio.Event()

        async def sleep(seconds: float) -> None:
            slept.append(seconds)
            await clock.sleep(seconds)
            if len(slept) == 3:
                stop.set()

        async with checker({"a": server.url}, clock=clock, sleep=sleep, interval=30.0) as hc:
            await hc.run(stop)
            assert hc.status("a").last_checked == 60.0  # rounds at t = 0, 30, 60

    run(scenario)
    assert slept == [30.0, 30.0, 30.0]
    assert server.requests == 3


def test_run_with_manual_clock_sleep(server: ProbeServer) -> None:
    clock = ManualClock()

    async def scenario() -> None:
        stop = asyncio.Event()

        def on_change(endpoint_id: str, healthy: bool) -> None:
            stop.set()

        server.status = 503
        async with checker(
            {"a": server.url},
            clock=clock,
            sleep=clock.sleep,
            interval=10.0,
            unhealthy_threshold=3,
            on_change=on_change,
        ) as hc:
            await hc.run(stop)
            assert hc.is_healthy("a") is False

    run(scenario)
    assert server.requests == 3
    assert clock() == 20.0  # two intervals slept; the third round set the stop event


def test_stop_interrupts_the_interval_sleep(server: ProbeServer) -> None:
    cancelled: list[bool] = []

    async def scenario() -> None:
        stop = asyncio.Event()

        async def sleep_forever(seconds: float) -> None:
            stop.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        async with checker({"a": server.url}, sleep=sleep_forever) as hc:
            # Bounded so that a run() deaf to the event fails instead of hanging.
            await asyncio.wait_for(hc.run(stop), 5.0)

    run(scenario)
    assert server.requests == 1
    assert cancelled == [True]


def test_run_with_stop_already_set_does_nothing(server: ProbeServer) -> None:
    slept: list[float] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        stop.set()

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        async with checker({"a": server.url}, sleep=sleep) as hc:
            await hc.run(stop)

    run(scenario)
    assert server.requests == 0
    assert slept == []


def test_run_without_stop_runs_until_the_sleep_raises(server: ProbeServer) -> None:
    class Done(Exception):
        pass

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            raise Done

    async def scenario() -> None:
        async with checker({"a": server.url}, sleep=sleep, interval=1.5) as hc:
            await hc.run()

    with pytest.raises(Done):
        run(scenario)
    assert slept == [1.5, 1.5]
    assert server.requests == 2


# -- targets -------------------------------------------------------------------------------


def test_add_and_remove_target(make_server: MakeServer) -> None:
    first, second = make_server(503), make_server(200)

    async def scenario() -> None:
        async with checker({}, unhealthy_threshold=1) as hc:
            hc.add_target("a", first.url)
            assert await hc.check("a") is False
            hc.remove_target("a")
            assert hc.statuses() == []
            with pytest.raises(KeyError, match="'a'"):
                hc.is_healthy("a")
            # Re-adding starts from scratch.
            hc.add_target("a", second.url)
            assert hc.status("a") == HealthStatus("a", True, 0, 0, None, None, None)
            assert await hc.check_once() == {"a": True}

    run(scenario)
    assert (first.requests, second.requests) == (1, 1)


def test_duplicate_target_is_rejected_and_changes_nothing(server: ProbeServer) -> None:
    hc = checker({"a": server.url})
    with pytest.raises(ValueError, match="'a'"):
        hc.add_target("a", "http://127.0.0.1:1")
    assert hc.statuses() == [HealthStatus("a", True, 0, 0, None, None, None)]

    async def scenario() -> None:
        async with hc:
            await hc.check("a")

    run(scenario)
    assert server.requests == 1  # still probing the original URL


def test_unknown_target_raises_key_error_naming_it() -> None:
    hc = checker({})
    with pytest.raises(KeyError, match="'ghost'"):
        hc.remove_target("ghost")
    with pytest.raises(KeyError, match="'ghost'"):
        hc.is_healthy("ghost")
    with pytest.raises(KeyError, match="'ghost'"):
        hc.status("ghost")

    async def scenario() -> None:
        async with hc:
            with pytest.raises(KeyError, match="'ghost'"):
                await hc.check("ghost")

    run(scenario)


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:8000",
        "ftp://127.0.0.1:8000",
        "http://",
        "http://:8000",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:port",
        "http://127.0.0.1:8000/v1",
        "http://127.0.0.1:8000?x=1",
        "http://127.0.0.1:8000#frag",
        "http://user:pw@127.0.0.1:8000",
        "",
    ],
)
def test_bad_url_is_rejected_and_changes_nothing(url: str) -> None:
    hc = checker({"ok": "https://example.invalid:8443"})
    with pytest.raises(ValueError, match="base_url"):
        hc.add_target("x", url)
    assert [s.endpoint_id for s in hc.statuses()] == ["ok"]
    with pytest.raises(ValueError, match="base_url"):
        checker({"ok": "http://127.0.0.1:8000", "x": url})


def test_empty_endpoint_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="endpoint_id"):
        checker({}).add_target("", "http://127.0.0.1:8000")


def test_removing_a_target_mid_round_does_not_resurrect_it(
    make_server: MakeServer,
) -> None:
    slow, other = make_server(503), make_server(503)
    slow.hang = True
    changes: list[tuple[str, bool]] = []

    async def scenario() -> None:
        async with checker(
            {"a": slow.url},
            timeout=5.0,
            unhealthy_threshold=1,
            on_change=lambda eid, up: changes.append((eid, up)),
        ) as hc:
            single = asyncio.ensure_future(hc.check("a"))
            round_ = asyncio.ensure_future(hc.check_once())
            assert await asyncio.to_thread(slow.seen.wait, 5)
            hc.remove_target("a")
            hc.add_target("a", other.url)  # same id, new endpoint: must stay untouched
            slow.release.set()  # the hung requests now end without a response
            assert await single is False
            assert await round_ == {}
            assert hc.status("a") == HealthStatus("a", True, 0, 0, None, None, None)
            hc.remove_target("a")
            assert hc.statuses() == []

    run(scenario)
    assert changes == []
    assert other.requests == 0


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("interval", 0),
        ("interval", -1.0),
        ("interval", float("nan")),
        ("interval", float("inf")),
        ("interval", "30"),
        ("interval", True),
        ("timeout", 0.0),
        ("timeout", -0.5),
        ("timeout", float("nan")),
        ("timeout", float("inf")),
        ("timeout", None),
        ("unhealthy_threshold", 0),
        ("unhealthy_threshold", 1.5),
        ("unhealthy_threshold", True),
        ("unhealthy_threshold", "3"),
        ("healthy_threshold", 0),
        ("healthy_threshold", -2),
        ("healthy_threshold", 2.0),
        ("path", "health"),
        ("path", ""),
        ("path", None),
    ],
)
def test_bad_parameters_are_rejected_with_name_and_value(name: str, value: object) -> None:
    with pytest.raises(ValueError) as info:
        HealthChecker({"a": "http://127.0.0.1:8000"}, **{name: value})  # type: ignore[arg-type]
    message = str(info.value)
    assert name in message
    assert repr(value) in message


def test_defaults_follow_the_router_config() -> None:
    hc = HealthChecker({"a": "http://127.0.0.1:8000"})
    assert repr(hc) == (
        "HealthChecker(targets=1, healthy=1, interval=30, timeout=10, path='/health')"
    )


# -- lifecycle -----------------------------------------------------------------------------


def test_a_given_client_is_used_and_left_open(server: ProbeServer) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            async with checker({"a": server.url}, client=client) as hc:
                assert await hc.check("a") is True
            assert not client.is_closed

    run(scenario)
    assert server.requests == 1


def test_aclose_twice_and_reuse(server: ProbeServer) -> None:
    async def scenario() -> None:
        hc = checker({"a": server.url})
        await hc.aclose()  # nothing created yet
        assert await hc.check("a") is True
        await hc.aclose()
        await hc.aclose()
        assert await hc.check("a") is True  # a fresh client is made on demand
        await hc.aclose()

    run(scenario)
    assert server.requests == 2


def test_health_status_is_frozen() -> None:
    status = HealthStatus("a", True, 0, 0, None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.healthy = False  # type: ignore[misc]
