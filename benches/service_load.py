"""The routing service under load: wrk against a live ``fleetroute serve``.

Seed 002 claims 10,000+ routes per second at under 5 ms average routing latency. This
script measures what the HTTP service does end to end, with a real server and a real
load generator:

1. It starts a stand-in model server (``create_backend_app`` under uvicorn), then the
   service, each as its own subprocess: ``python -m fleetroute.cli serve --config <yaml>
   --port <free>``. The YAML (seed 004's layout plus fleetroute's sections) registers
   1,000 seed 002 services (capacity 100,000 each, so nothing is refused for capacity),
   decision leases of 1 s, batches of up to 1,000, authentication with one API key and
   a rate limit too high to refuse, analytics in a SQLite file, log level WARNING, health
   checks off, and one model whose single instance is the stand-in.
2. wrk (one thread) POSTs a fixed JSON body with ``X-API-Key`` to ``/api/v1/route``
   (``power_of_two``, then the default ``adaptive``) and to ``/api/v1/route/batch``
   (1,000 requests per call, ``power_of_two``; routes/s = calls/s x 1,000), at 1, 8 and
   32 connections, 10 s each after an untimed 2 s warm-up. A Lua ``done()`` hook prints
   wrk's counts and latency percentiles as JSON. Before each load the script waits
   until the previous load's leases have expired and their analytics rows are written.
3. Baselines in the same run at the same connection counts: ``GET /health`` of the
   bare stand-in (FastAPI + uvicorn, one tiny handler: the floor of one Python ASGI
   request on this machine) and ``GET /health`` of the service.
4. Proxy overhead: ``POST /v1/chat/completions`` (non-streaming, small body) straight
   to the stand-in, then through the service's proxy, at the same connection counts.
5. Memory: the service's ``VmRSS`` when up and idle, and its ``VmHWM`` (peak RSS) after
   every load. Target: under 300 MB with the 1,000-service fleet.

Around each measurement the script reads the CPU time of the server process
(``/proc/<pid>/stat``, every thread) and of wrk (``RUSAGE_CHILDREN``), and for the
routing endpoints the mean decision time the service itself observed (its
``moe_routing_latency_ms`` histogram). CPU per call shows what one request costs the
service; a server near 1.0 core while throughput stops growing with more connections is
bound by its one event loop.

``--profile`` then starts the service once more (built as ``fleetroute serve`` builds it:
``load_config``, ``create_app``, uvicorn) with cProfile switched on by a signal for the
measured window only, for ``/api/v1/route`` (both strategies), ``/api/v1/route/batch``
and the proxy, and prints the event loop's time grouped by package and the top
functions. cProfile inflates call-heavy code; read its shares, not its absolute times.

wrk, the service and (for the proxy rows) the stand-in share the machine's cores: the
figures are what this machine does with the load generator on board. Nothing asserts;
targets print PASS or MISS.

Run: ``.venv/bin/python benches/service_load.py [--runs 2] [--duration 10] [--warmup 2]
[--connections 1,8,32] [--json PATH] [--profile]``. Needs ``wrk`` on ``PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from fleetroute.service.auth import hash_api_key

__all__: list[str] = []

SERVICES = 1_000
BATCH = 1_000
TARGET_ROUTES_PER_S = 10_000.0
TARGET_LATENCY_MS = 5.0
TARGET_RSS_MB = 300.0
API_KEY = "bench-key-not-a-secret"
MODEL = "bench-model"
START_DEADLINE_S = 120.0
QUIET_DEADLINE_S = 60.0
MIB_PER_MB = 1.048576

#: One seed 002 request, as clients send it.
ROUTE_DATA: dict[str, Any] = {
    "type": "inference",
    "data": {"input": [0.1, 0.2, 0.3]},
    "priority": 0.8,
    "complexity": 0.5,
}
CHAT_BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "hello there, how are you"}],
    "max_tokens": 8,
}

ROUTE_P2C = "POST /api/v1/route power_of_two"
ROUTE_ADAPTIVE = "POST /api/v1/route adaptive (default)"
BATCH_P2C = f"POST /api/v1/route/batch x{BATCH:,} power_of_two"
HEALTH_BARE = "GET /health, bare stand-in (floor)"
HEALTH_SERVICE = "GET /health, the service"
CHAT_DIRECT = "POST /v1/chat/completions, direct"
CHAT_PROXY = "POST /v1/chat/completions, via proxy"
ROUTING = (ROUTE_P2C, ROUTE_ADAPTIVE, BATCH_P2C)

# wrk's Lua hooks: a fixed request, then wrk's own summary as one JSON line.
_LUA = """\
local f = assert(io.open([[{body}]], "rb"))
local body = f:read("*a")
f:close()
wrk.method = "{method}"
if #body > 0 then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"mean_us":%.1f,"p50_us":%.1f,"p90_us":%.1f,' ..
    '"p99_us":%.1f,"max_us":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""

# The service as ``fleetroute serve`` builds it, with cProfile switched on and off by
# SIGUSR1 and SIGUSR2 so that start-up stays out of the profile.
_PROFILED_SERVICE = """\
import cProfile, signal, sys
import uvicorn
from fleetroute.service.app import create_app
from fleetroute.service.config import load_config
out, path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
profile = cProfile.Profile()
def start(signum, frame):
    profile.enable()
def stop(signum, frame):
    profile.disable()
    profile.dump_stats(out)
signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
config = load_config(path, overrides={"service": {"port": port}})
uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port,
    log_level=config.performance.log_level.lower(), ws="websockets-sansio")).run()
"""


# -- results -----------------------------------------------------------------------------


@dataclass
class Load:
    """One wrk measurement and the CPU each process spent during it."""

    name: str
    connections: int
    routes_per_call: int
    calls_per_s: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    #: CPU time / wall time of the process under test (1.0 = one core busy).
    server_cpu: float
    #: The same for the stand-in behind the proxy (proxy rows), else 0.
    backend_cpu: float
    wrk_cpu: float
    #: Mean decision time the service observed per route (routing rows), else None.
    decision_ms: float | None = None

    @property
    def routes_per_s(self) -> float:
        return self.calls_per_s * self.routes_per_call

    @property
    def cpu_ms_per_call(self) -> float:
        return self.server_cpu / self.calls_per_s * 1000.0


@dataclass
class Run:
    """Every measurement of one run, with fresh processes."""

    loads: list[Load] = field(default_factory=list)
    rss_idle_mb: float = 0.0
    rss_after_mb: float = 0.0
    peak_rss_mb: float = 0.0
    #: The service's VmHWM (MiB) after the loads of each endpoint, in measurement order.
    peak_after: dict[str, float] = field(default_factory=dict)
    refused: dict[str, float] = field(default_factory=dict)
    loadavg_start: float = 0.0
    loadavg_end: float = 0.0

    def find(self, name: str, connections: int) -> Load:
        for load in self.loads:
            if load.name == name and load.connections == connections:
                return load
        raise KeyError(f"no measurement {name!r} at {connections} connections")


# -- processes ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{key} not in /proc/{pid}/status")


def _cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of ``pid`` (every thread), 0 for None."""
    if pid is None:
        return 0.0
    # The command name may hold spaces; the fields after its closing parenthesis do not.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of stat
    return ticks / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _http(
    url: str,
    *,
    body: dict[str, Any] | None = None,
    key: str | None = None,
    timeout: float = 30.0,
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no output)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Processes:
    """The subprocesses of one run, logging into ``workdir``; ``close`` ends them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, argv: Sequence[str]) -> int:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        self._procs.append((proc, log))
        return proc.pid

    def _get(self, pid: int) -> tuple[subprocess.Popen[bytes], Path]:
        return next((proc, log) for proc, log in self._procs if proc.pid == pid)

    def wait_http(self, pid: int, url: str) -> None:
        """Polls ``url`` until it answers 200; fails at once if the process died."""
        proc, log = self._get(pid)
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{log.stem} exited with {proc.returncode}:\n{_tail(log)}")
            try:
                if _http(url, timeout=2.0)[0] == 200:
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.1)
        raise RuntimeError(f"{log.stem} did not answer {url} within {START_DEADLINE_S:g} s")

    def signal(self, pid: int, signum: int) -> None:
        proc, _ = self._get(pid)
        if proc.poll() is None:
            proc.send_signal(signum)

    def stop(self, pid: int, timeout: float = 30.0) -> None:
        """SIGTERM (the service drains its leases and flushes analytics), then SIGKILL."""
        proc, _ = self._get(pid)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        for proc, _ in reversed(self._procs):
            self.stop(proc.pid, timeout=15.0)


def _backend_argv(port: int) -> list[str]:
    code = (
        "import uvicorn\n"
        "from fleetroute.service.backend_stub import create_backend_app\n"
        f"uvicorn.run(create_backend_app('b1', model={MODEL!r}), host='127.0.0.1', "
        f"port={port}, log_level='warning')\n"
    )
    return [sys.executable, "-c", code]


def _service_config(workdir: Path, backend_port: int) -> Path:
    """The YAML the service starts from: seed 004's sections, then fleetroute's."""
    document: dict[str, Any] = {
        "service": {"name": "routing-api", "host": "127.0.0.1", "port": 9097, "workers": 1},
        # Health checks off: the stand-in is up for the whole run, and a checker would
        # only add background requests to the measurement.
        "load_balancing": {"enabled": False, "algorithm": "weighted_round_robin"},
        "cost_optimization": {"enabled": True, "budget_limit": 1000, "budget_window": "month"},
        "circuit_breaker": {"enabled": True, "failure_threshold": 5, "recovery_timeout": 60},
        "performance": {"max_retries": 3, "log_level": "WARNING"},
        "routing": {"default_strategy": "adaptive", "decision_lease_s": 1.0, "max_batch": BATCH},
        "auth": {
            "enabled": True,
            "api_keys": [{"name": "bench", "key_hash": hash_api_key(API_KEY), "scopes": ["route"]}],
            "client_rate_limit_per_minute": 1e9,
            "client_burst": 1e9,
        },
        "analytics": {"database_url": f"sqlite:///{workdir / 'analytics.db'}"},
        "fleet": {
            "services": [
                {
                    "service_id": f"svc-{i:04d}",
                    "service_type": "inference",
                    "endpoint": f"http://10.0.{i // 250}.{i % 250 + 1}:8000",
                    "capabilities": ["inference"],
                    "max_capacity": 100_000,
                }
                for i in range(SERVICES)
            ],
            # Free, so that the global budget never refuses a proxied request.
            "models": [
                {
                    "name": MODEL,
                    "cost_per_request": 0.0,
                    "instances": [
                        {"id": "b1", "url": f"http://127.0.0.1:{backend_port}", "capacity": 10_000}
                    ],
                }
            ],
        },
    }
    path = workdir / "routing-api.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _service_argv(config: Path, port: int) -> list[str]:
    return [
        sys.executable,
        *("-m", "fleetroute.cli", "serve", "--config", str(config), "--port", str(port)),
    ]


def _metric(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in (labels or {}).items()):
            total += float(match.group(3))
    return total


def _decisions(base: str) -> tuple[float, float]:
    """The service's decision-latency histogram: (sum in ms, count)."""
    text = _http(f"{base}/metrics")[1].decode()
    return (
        _metric(text, "moe_routing_latency_ms_sum"),
        _metric(text, "moe_routing_latency_ms_count"),
    )


def _quiesce(base: str) -> None:
    """Waits until every lease has expired and the analytics queue is written, so that
    one load's background work does not run during the next."""
    deadline = time.monotonic() + QUIET_DEADLINE_S
    while time.monotonic() < deadline:
        health = json.loads(_http(f"{base}/health")[1])
        metrics = _http(f"{base}/metrics")[1].decode()
        if health["open_leases"] == 0 and _metric(metrics, "fleetroute_analytics_queue_depth") == 0:
            return
        time.sleep(0.25)
    raise RuntimeError(f"the service did not go quiet within {QUIET_DEADLINE_S:g} s")


# -- wrk ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What wrk sends: a name for the tables, the URL, the body, the credentials."""

    name: str
    url: str
    body: dict[str, Any] | None
    key: str | None
    routes_per_call: int = 1


def _lua(workdir: Path, target: Target) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", target.name.lower()).strip("-")
    body = workdir / f"{slug}.json"
    body.write_bytes(b"" if target.body is None else json.dumps(target.body).encode())
    headers = "" if target.key is None else f'wrk.headers["X-API-Key"] = "{target.key}"'
    script = workdir / f"{slug}.lua"
    method = "GET" if target.body is None else "POST"
    script.write_text(_LUA.format(body=body, method=method, headers=headers))
    return script


def _wrk(script: Path, url: str, connections: int, duration_s: float) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--timeout", "30s"]
    argv += ["--latency", "-s", str(script), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 90)
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
            return result
    raise RuntimeError(f"wrk printed no summary (exit {done.returncode}):\n{done.stderr}")


def measure(
    workdir: Path,
    target: Target,
    connections: int,
    args: argparse.Namespace,
    server: int,
    *,
    backend: int | None = None,
    service_base: str | None = None,
) -> Load:
    """An untimed warm-up, then the measured wrk run, of one target. With
    ``service_base`` the service is let go quiet before each, and its decision
    histogram is read around the measured run."""
    script = _lua(workdir, target)
    if service_base is not None:
        _quiesce(service_base)
    _wrk(script, target.url, connections, args.warmup)
    before = (0.0, 0.0)
    if service_base is not None:
        _quiesce(service_base)
        before = _decisions(service_base)
    cpu0 = (_cpu_s(server), _cpu_s(backend), _children_cpu_s(), time.monotonic())
    raw = _wrk(script, target.url, connections, args.duration)
    cpu1 = (_cpu_s(server), _cpu_s(backend), _children_cpu_s(), time.monotonic())
    decision_ms = None
    if service_base is not None and target.name in ROUTING:
        after = _decisions(service_base)
        if after[1] > before[1]:
            decision_ms = (after[0] - before[0]) / (after[1] - before[1])
    wall = cpu1[3] - cpu0[3]
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    load = Load(
        name=target.name,
        connections=connections,
        routes_per_call=target.routes_per_call,
        calls_per_s=raw["requests"] / (raw["duration_us"] / 1e6),
        mean_ms=raw["mean_us"] / 1000.0,
        p50_ms=raw["p50_us"] / 1000.0,
        p99_ms=raw["p99_us"] / 1000.0,
        requests=raw["requests"],
        errors=errors,
        server_cpu=(cpu1[0] - cpu0[0]) / wall,
        backend_cpu=(cpu1[1] - cpu0[1]) / wall,
        wrk_cpu=(cpu1[2] - cpu0[2]) / wall,
        decision_ms=decision_ms,
    )
    print(
        f"  {load.name:<44} c={connections:<3} {load.calls_per_s:>8.0f} calls/s "
        f"{load.routes_per_s:>8.0f} routes/s  p50 {load.p50_ms:8.2f} ms  p99 "
        f"{load.p99_ms:8.2f} ms  CPU server {load.server_cpu:4.2f} wrk {load.wrk_cpu:4.2f}"
        f"  errors {errors}",
        file=sys.stderr,
        flush=True,
    )
    return load


# -- one run -----------------------------------------------------------------------------


def _route_targets(base: str) -> list[Target]:
    route = f"{base}/api/v1/route"
    return [
        Target(ROUTE_P2C, route, {"data": ROUTE_DATA, "routing_strategy": "power_of_two"}, API_KEY),
        Target(ROUTE_ADAPTIVE, route, {"data": ROUTE_DATA}, API_KEY),
        Target(
            BATCH_P2C,
            f"{base}/api/v1/route/batch",
            {"requests": [ROUTE_DATA] * BATCH, "routing_strategy": "power_of_two"},
            API_KEY,
            routes_per_call=BATCH,
        ),
    ]


def _check_routes(base: str) -> None:
    """One request of each kind is answered and routed before any load starts."""
    for target in _route_targets(base):
        status, body = _http(target.url, body=target.body, key=API_KEY)
        routed = status == 200 and (
            json.loads(body).get("routed") == BATCH
            if target.routes_per_call > 1
            else bool(json.loads(body)["selected_services"])
        )
        if not routed:
            raise RuntimeError(f"{target.name} answered {status}: {body[:300]!r}")
    status, body = _http(f"{base}/v1/chat/completions", body=CHAT_BODY, key=API_KEY)
    if status != 200 or json.loads(body).get("object") != "chat.completion":
        raise RuntimeError(f"/v1/chat/completions answered {status}: {body[:300]!r}")


def _start_pair(
    procs: Processes, workdir: Path, service_argv: Callable[[Path, int], list[str]]
) -> tuple[int, str, int, str]:
    """Starts the stand-in, then the service; returns (pid, URL) of each."""
    backend_port, service_port = _free_port(), _free_port()
    backend = procs.start("backend", _backend_argv(backend_port))
    backend_url = f"http://127.0.0.1:{backend_port}"
    procs.wait_http(backend, f"{backend_url}/health")
    config = _service_config(workdir, backend_port)
    service = procs.start("service", service_argv(config, service_port))
    base = f"http://127.0.0.1:{service_port}"
    procs.wait_http(service, f"{base}/health")
    return backend, backend_url, service, base


def one_run(index: int, args: argparse.Namespace) -> Run:
    run = Run(loadavg_start=os.getloadavg()[0])
    workdir = Path(tempfile.mkdtemp(prefix="fleetroute-service-load-"))
    procs = Processes(workdir)
    try:
        backend, backend_url, service, base = _start_pair(procs, workdir, _service_argv)
        health = json.loads(_http(f"{base}/health")[1])
        if health["services"] != SERVICES or health["instances"] != 1:
            raise RuntimeError(f"unexpected fleet: {health}")
        time.sleep(1.0)  # let start-up settle before reading the idle RSS
        run.rss_idle_mb = _status_mib(service, "VmRSS")
        _check_routes(base)
        print(f"run {index}: service up, idle RSS {run.rss_idle_mb:.1f} MiB", file=sys.stderr)
        # One endpoint at a time, so that the service's peak RSS can be read after each.
        floor = Target(HEALTH_BARE, f"{backend_url}/health", None, None)
        for connections in args.connections:
            run.loads.append(measure(workdir, floor, connections, args, backend))
        own = Target(HEALTH_SERVICE, f"{base}/health", None, None)
        proxied = Target(CHAT_PROXY, f"{base}/v1/chat/completions", CHAT_BODY, API_KEY)
        for target in [own, *_route_targets(base), proxied]:
            for connections in args.connections:
                if target is proxied:
                    direct = Target(
                        CHAT_DIRECT, f"{backend_url}/v1/chat/completions", CHAT_BODY, None
                    )
                    run.loads.append(measure(workdir, direct, connections, args, backend))
                run.loads.append(
                    measure(
                        workdir,
                        target,
                        connections,
                        args,
                        service,
                        backend=backend if target is proxied else None,
                        service_base=base,
                    )
                )
            run.peak_after[target.name] = _status_mib(service, "VmHWM")
        _quiesce(base)
        run.rss_after_mb = _status_mib(service, "VmRSS")
        run.peak_rss_mb = _status_mib(service, "VmHWM")
        metrics = _http(f"{base}/metrics")[1].decode()
        for api in ("route", "batch", "proxy"):
            run.refused[api] = _metric(
                metrics, "fleetroute_routing_decisions_total", {"api": api, "outcome": "rejected"}
            )
        run.refused["rate limited"] = _metric(metrics, "fleetroute_rate_limited_total")
        run.loadavg_end = os.getloadavg()[0]
        return run
    finally:
        procs.close()
        shutil.rmtree(workdir, ignore_errors=True)


# -- profiles ----------------------------------------------------------------------------


def _group(filename: str, function: str) -> str:
    """A package (or a kind of built-in) to add a function's own time to."""
    if filename == "~":
        if "posix.stat" in function:
            return "os.stat (import path scans)"
        if "urandom" in function:
            return "os.urandom (uuid4)"
        if "pydantic_core" in function:
            return "pydantic-core"
        if "socket" in function:
            return "socket calls"
        return "other built-ins"
    if filename.startswith("<frozen importlib"):
        return "import system (failed imports)"
    package = re.search(r"site-packages/([^/]+)", filename)
    if package is not None:
        return package.group(1).removesuffix(".py")
    if "/fleetroute/" in filename:
        return "fleetroute." + filename.split("/fleetroute/", 1)[1].removesuffix(".py").replace(
            "/", "."
        )
    return "stdlib " + Path(filename).stem


def _profile_table(path: Path, label: str, rows: int) -> list[str]:
    stats = pstats.Stats(str(path))
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = stats.stats  # type: ignore[attr-defined]
    shares: dict[str, float] = {}
    for (filename, _, function), (_, _, own, _, _) in raw.items():
        group = _group(filename, function)
        shares[group] = shares.get(group, 0.0) + own
    total = sum(shares.values()) or 1.0
    ours = sum(t for name, t in shares.items() if name.startswith("fleetroute."))
    lines = [
        f"{label}: own time of the event loop's functions by package "
        f"(fleetroute's own modules together: {ours / total:.0%})",
        "",
        "| package | share |",
        "|---|---:|",
    ]
    ranked = sorted(shares.items(), key=lambda item: item[1], reverse=True)[:rows]
    lines += [f"| {name} | {t / total:.1%} |" for name, t in ranked]
    top = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:rows]
    lines += ["", "| function (own time) | share |", "|---|---:|"]
    for (filename, line, function), (_, _, own, _, _) in top:
        where = function if filename == "~" else f"{Path(filename).name}:{line} {function}"
        lines.append(f"| `{where}` | {own / total:.1%} |")
    return lines


def _profiled_argv(out: Path) -> Callable[[Path, int], list[str]]:
    def argv(config: Path, port: int) -> list[str]:
        return [sys.executable, "-c", _PROFILED_SERVICE, str(out), str(config), str(port)]

    return argv


def profile(args: argparse.Namespace, rows: int = 12) -> list[str]:
    """cProfile of the service during one load each of route (both strategies), batch
    and proxy."""
    lines: list[str] = []
    for name in (ROUTE_P2C, ROUTE_ADAPTIVE, BATCH_P2C, CHAT_PROXY):
        workdir = Path(tempfile.mkdtemp(prefix="fleetroute-service-profile-"))
        procs = Processes(workdir)
        try:
            out = workdir / "service.prof"
            _, _, service, base = _start_pair(procs, workdir, _profiled_argv(out))
            targets = {t.name: t for t in _route_targets(base)}
            targets[CHAT_PROXY] = Target(
                CHAT_PROXY, f"{base}/v1/chat/completions", CHAT_BODY, API_KEY
            )
            target = targets[name]
            script = _lua(workdir, target)
            _wrk(script, target.url, 8, args.warmup)
            _quiesce(base)
            procs.signal(service, signal.SIGUSR1)
            raw = _wrk(script, target.url, 8, args.duration)
            procs.signal(service, signal.SIGUSR2)
            deadline = time.monotonic() + QUIET_DEADLINE_S
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # let the dump finish writing
            if not out.exists():
                raise RuntimeError(f"no profile written:\n{_tail(workdir / 'service.log')}")
            label = (
                f"{name}, 8 connections, {raw['requests']:,} calls in {args.duration:g} s "
                "under cProfile"
            )
            lines += [*_profile_table(out, label, rows), ""]
        finally:
            procs.close()
            shutil.rmtree(workdir, ignore_errors=True)
    return lines


# -- report ------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _median(runs: Sequence[Run], name: str, conns: int, get: Callable[[Load], float]) -> float:
    return statistics.median(get(run.find(name, conns)) for run in runs)


def _load_table(runs: Sequence[Run], connections: Sequence[int]) -> list[str]:
    lines = [
        "| endpoint | conns | run | calls/s | routes/s | mean ms | p50 ms | p99 ms "
        "| decision ms in service | server CPU (cores) | server CPU ms per call | wrk CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in (HEALTH_BARE, HEALTH_SERVICE, *ROUTING):
        for conns in connections:
            for number, run in enumerate(runs, 1):
                load = run.find(name, conns)
                routes = _rate(load.routes_per_s) if name in ROUTING else "-"
                decision = "-" if load.decision_ms is None else f"{load.decision_ms:.3f}"
                lines.append(
                    f"| {name} | {conns} | {number} | {_rate(load.calls_per_s)} | {routes} "
                    f"| {load.mean_ms:.2f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | {decision} "
                    f"| {load.server_cpu:.2f} | {load.cpu_ms_per_call:.3f} | {load.wrk_cpu:.2f} |"
                )
    return lines


def _proxy_table(runs: Sequence[Run], connections: Sequence[int]) -> list[str]:
    lines = [
        "| conns | run | direct req/s | direct p50 / p99 ms | proxied req/s "
        "| proxied p50 / p99 ms | added p50 ms | throughput ratio | service CPU (cores) "
        "| service CPU ms per call | stand-in CPU (direct / proxied) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for conns in connections:
        for number, run in enumerate(runs, 1):
            direct, proxied = run.find(CHAT_DIRECT, conns), run.find(CHAT_PROXY, conns)
            lines.append(
                f"| {conns} | {number} | {_rate(direct.calls_per_s)} "
                f"| {direct.p50_ms:.2f} / {direct.p99_ms:.2f} | {_rate(proxied.calls_per_s)} "
                f"| {proxied.p50_ms:.2f} / {proxied.p99_ms:.2f} "
                f"| {proxied.p50_ms - direct.p50_ms:+.2f} "
                f"| {proxied.calls_per_s / direct.calls_per_s:.3f}x "
                f"| {proxied.server_cpu:.2f} | {proxied.cpu_ms_per_call:.2f} "
                f"| {direct.server_cpu:.2f} / {proxied.backend_cpu:.2f} |"
            )
    return lines


def _targets_table(runs: Sequence[Run], connections: Sequence[int]) -> list[str]:
    lines = [
        "| target (seed 002: 10,000+ routes/s, < 5 ms average) | measured, median of runs "
        "| verdict |",
        "|---|---|---|",
    ]
    for name in ROUTING:
        best = max(connections, key=lambda c: _median(runs, name, c, lambda x: x.routes_per_s))
        rate = _median(runs, name, best, lambda x: x.routes_per_s)
        mean = _median(runs, name, best, lambda x: x.mean_ms)
        lines.append(
            f"| {name}: >= {TARGET_ROUTES_PER_S:,.0f} routes/s | {_rate(rate)} routes/s "
            f"(best, at {best} conns) | {_verdict(rate >= TARGET_ROUTES_PER_S)} |"
        )
        low = min(connections)
        low_mean = _median(runs, name, low, lambda x: x.mean_ms)
        low_rate = _median(runs, name, low, lambda x: x.routes_per_s)
        at_best = "" if best == low else f"; {mean:.2f} ms at {best} conns"
        lines.append(
            f"| {name}: < {TARGET_LATENCY_MS:g} ms mean per call | {low_mean:.2f} ms at {low} "
            f"conn(s) ({_rate(low_rate)} routes/s){at_best} "
            f"| {_verdict(low_mean < TARGET_LATENCY_MS)} |"
        )
    peak = statistics.median(run.peak_rss_mb for run in runs)
    peaks = ", ".join(f"{run.peak_rss_mb:.1f}" for run in runs)
    lines.append(
        f"| peak RSS (VmHWM) of the service with {SERVICES:,} services < {TARGET_RSS_MB:g} MB "
        f"| {peak * MIB_PER_MB:.0f} MB = {peak:.1f} MiB (runs: {peaks} MiB) "
        f"| {_verdict(peak * MIB_PER_MB < TARGET_RSS_MB)} |"
    )
    return lines


def report(runs: Sequence[Run], args: argparse.Namespace) -> str:
    connections = args.connections
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    idle = ", ".join(f"{run.rss_idle_mb:.1f}" for run in runs)
    after = ", ".join(f"{run.rss_after_mb:.1f}" for run in runs)
    peak = ", ".join(f"{run.peak_rss_mb:.1f}" for run in runs)
    load = ", ".join(f"{run.loadavg_start:.1f} -> {run.loadavg_end:.1f}" for run in runs)
    refused = "; ".join(", ".join(f"{k} {v:g}" for k, v in run.refused.items()) for run in runs)
    errors = sum(load.errors for run in runs for load in run.loads)
    steps = "; ".join(
        f"{name} {statistics.median(run.peak_after[name] for run in runs):.1f} MiB"
        for name in runs[0].peak_after
    )
    lines = [
        f"Routing service under load, {stamp}: {len(runs)} run(s) with fresh processes; "
        f"{os.cpu_count()} CPUs shared by wrk -t1, the service and the stand-in; "
        f"Python {platform.python_version()}; {args.duration:g} s per measurement after a "
        f"{args.warmup:g} s warm-up; 1-minute load average per run (start -> end): {load}.",
        "",
        *_load_table(runs, connections),
        "",
        *_proxy_table(runs, connections),
        "",
        f"Service RSS per run: idle after start {idle} MiB; after the loads {after} MiB; "
        f"peak (VmHWM) {peak} MiB. Peak after each endpoint's loads, in order "
        f"(median of runs): {steps}. Refused by the service during the loads, per run: "
        f"{refused}. wrk errors and non-2xx answers, all loads: {errors}.",
        "",
        *_targets_table(runs, connections),
    ]
    return "\n".join(lines)


def _connections(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need connection counts >= 1, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n\n", 1)[0]
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument("--runs", type=int, default=2, help="runs, each with fresh processes")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed seconds before each")
    parser.add_argument(
        "--connections",
        type=_connections,
        default=[1, 8, 32],
        help="comma-separated wrk connection counts (default 1,8,32)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    parser.add_argument(
        "--profile", action="store_true", help="then profile route, batch and proxy (cProfile)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.duration <= 0 or args.warmup <= 0:
        parser.error("--runs must be >= 1, --duration and --warmup > 0")
    if shutil.which("wrk") is None:
        parser.error("wrk is not on PATH (Debian: apt-get install wrk)")
    runs = [one_run(index, args) for index in range(1, args.runs + 1)]
    print(report(runs, args), flush=True)
    if args.profile:
        print()
        print("\n".join(profile(args)))
    if args.json is not None:
        data = {
            "args": {k: v for k, v in vars(args).items() if k != "json"},
            "runs": [
                {
                    **asdict(run),
                    "loads": [{**asdict(x), "routes_per_s": x.routes_per_s} for x in run.loads],
                }
                for run in runs
            ],
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
