"""The ``fleetroute`` command line: ``serve``, ``route``, ``bench`` and ``simulate``.

Each subcommand lives in one ``_add_<name>`` function that declares its arguments and
sets ``handler``; register it in ``_SUBCOMMANDS``. ``serve`` runs the routing service
(``fleetroute.service``); ``route`` asks a running service for one decision; ``bench``
load-tests a running service's routing endpoints; ``simulate`` runs the Rust
discrete-event simulation (``fleetroute._native.simulate``) and prints the same header
and table as ``cargo run --release``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from fleetroute._native import simulate

__all__ = ["main"]

Report = Mapping[str, Any]
Handler = Callable[[argparse.Namespace], int]
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# The table's columns: title and cell. The first column is left-aligned, the others
# right-aligned, two spaces apart: the layout of the Rust binary (src/sim/report.rs).
_COLUMNS: tuple[tuple[str, Callable[[Report], str]], ...] = (
    ("strategy", lambda r: str(r["strategy"])),
    ("done/s", lambda r: f"{r['throughput']:.1f}"),
    ("mean s", lambda r: f"{r['mean_time_in_system']:.3f}"),
    ("p50 s", lambda r: f"{r['p50_time_in_system']:.3f}"),
    ("p99 s", lambda r: f"{r['p99_time_in_system']:.3f}"),
    ("wait s", lambda r: f"{r['mean_wait']:.3f}"),
    ("rejected", lambda r: str(r["rejected"])),
    ("rej %", lambda r: f"{r['rejected_pct']:.2f}"),
    ("max/mean", lambda r: f"{r['max_over_mean']:.3f}"),
    ("load CV", lambda r: f"{r['load_cv']:.3f}"),
    ("decisions/s", lambda r: f"{r['decisions_per_second']:.0f}"),
)


def _header(report: Report) -> str:
    """The scenario description the binary prints above its table."""
    staleness = float(report["staleness"])
    if staleness > 0.0:
        loads = f"refreshed from the true loads every {staleness:.3f} s (staleness)"
    else:
        loads = "fresh (staleness 0)"
    return (
        "fleetroute simulation\n"
        f"  fleet:     {report['accelerators']} accelerators, {report['total_slots']} slots, "
        f"capacity {report['total_capacity']} (queue factor {report['queue_factor']:.2f})\n"
        f"  arrivals:  {report['requests']} per strategy, Poisson at "
        f"{report['arrival_rate']:.1f}/s (load factor {report['load_factor']:.2f})\n"
        f"  service:   Pareto shape {report['service_shape']:.2f}, mean 1 s; "
        "cost 1 per request\n"
        f"  loads:     {loads}\n"
        f"  measured:  after a {report['warmup'] * 100.0:.0f}% warm-up, seed {report['seed']}\n"
    )


def _table(reports: Sequence[Report]) -> str:
    """An aligned text table: a title row, a rule, one row per report."""
    rows = [[cell(r) for _, cell in _COLUMNS] for r in reports]
    widths = [
        max([len(title), *(len(row[i]) for row in rows)]) for i, (title, _) in enumerate(_COLUMNS)
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip() + "\n"

    out = line([title for title, _ in _COLUMNS])
    out += line(["-" * width for width in widths])
    return out + "".join(line(row) for row in rows)


def _csv(reports: Sequence[Report]) -> str:
    if not reports:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(reports[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(reports)
    return buffer.getvalue()


def _strategy_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _run_simulate(args: argparse.Namespace) -> int:
    try:
        reports: list[dict[str, Any]] = simulate(
            accelerators=args.accelerators,
            load_factor=args.load_factor,
            requests=args.requests,
            staleness=args.staleness,
            seed=args.seed,
            strategies=args.strategies,
            queue_factor=args.queue_factor,
            service_shape=args.service_shape,
        )
    except (ValueError, OverflowError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "json":
        sys.stdout.write(json.dumps(reports, indent=2) + "\n")
    elif args.format == "csv":
        sys.stdout.write(_csv(reports))
    else:
        sys.stdout.write(_header(reports[0]) + "\n" + _table(reports))
    return 0


def _add_simulate(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="compare routing strategies in a discrete-event simulation",
        description=(
            "Simulate an inference fleet behind fleetroute's router and compare "
            "strategies on the same Poisson arrivals (Pareto service, mean 1 s)."
        ),
    )
    parser.add_argument(
        "--accelerators", type=int, default=10_000, help="accelerators in the fleet"
    )
    parser.add_argument(
        "--load-factor", type=float, default=0.9, help="offered load as a share of the slots"
    )
    parser.add_argument(
        "--requests", type=int, default=1_000_000, help="arrivals simulated per strategy"
    )
    parser.add_argument(
        "--staleness",
        type=float,
        default=0.0,
        help="simulated seconds between refreshes of the load view decisions see",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of every random stream")
    parser.add_argument(
        "--strategies",
        type=_strategy_list,
        default=None,
        help="comma-separated strategies to compare (default: all)",
    )
    parser.add_argument(
        "--queue-factor",
        type=float,
        default=1.0,
        help="queue depth relative to the slots (capacity = slots x (1 + this))",
    )
    parser.add_argument(
        "--service-shape",
        type=float,
        default=2.2,
        help="Pareto shape of the service times (> 1; mean stays 1 s)",
    )
    parser.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="output format"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="accepted for parity with the binary (Python shows no progress bar)",
    )
    parser.set_defaults(handler=_run_simulate)


def _run_serve(args: argparse.Namespace) -> int:
    import asyncio

    from fleetroute.service.config import ConfigError, load_config
    from fleetroute.service.server import serve

    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides.setdefault("service", {})["host"] = args.host
    if args.port is not None:
        overrides.setdefault("service", {})["port"] = args.port
    if args.database_url is not None:
        overrides.setdefault("analytics", {})["database_url"] = args.database_url
    if args.redis_url is not None:
        overrides.setdefault("redis", {})["url"] = args.redis_url
    if args.no_auth:
        overrides.setdefault("auth", {})["enabled"] = False
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.no_auth:
        print(
            "WARNING: authentication is off: every client is admin. Use it on a laptop only.",
            file=sys.stderr,
        )
    demo = args.demo or config.fleet.demo
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, demo=demo, demo_traffic_rate=args.demo_traffic))
    return 0


def _add_serve(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the routing service (HTTP API, proxy, metrics, dashboard)",
        description=(
            "Run the routing service. Settings come from a YAML file (--config or "
            "FLEETROUTE_CONFIG, seed 004's layout; see config/routing-api.yaml), then the "
            "environment (ROUTING_API_PORT, LOAD_BALANCING_ALGORITHM, ...), then these "
            "options. --demo adds a demo fleet of stand-in model servers on loopback."
        ),
    )
    parser.add_argument("--config", default=None, help="YAML configuration file")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 9097)")
    parser.add_argument(
        "--demo", action="store_true", help="start with the demo fleet (stand-in backends)"
    )
    parser.add_argument(
        "--demo-traffic",
        type=float,
        default=0.0,
        metavar="RATE",
        help="with --demo, send RATE requests a second through the router (0: none)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="analytics store (default sqlite:///fleetroute-analytics.db; postgresql://...)",
    )
    parser.add_argument("--redis-url", default=None, help="share state with replicas via Redis")
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="turn authentication off (every client is admin; local use only)",
    )
    parser.set_defaults(handler=_run_serve)


def _client_headers(api_key: str | None) -> dict[str, str]:
    return {"X-API-Key": api_key} if api_key else {}


def _run_route(args: argparse.Namespace) -> int:
    import httpx

    url = args.url.rstrip("/")
    if args.data is not None:
        try:
            data = json.loads(args.data)
        except json.JSONDecodeError as err:
            print(f"error: --data is not JSON: {err}", file=sys.stderr)
            return 2
        path, body = "/api/v1/route", {"data": data}
        if args.strategy:
            body["routing_strategy"] = args.strategy
    else:
        path = "/routing/decide"
        body = {"request_type": args.type, "content": args.content}
        if args.budget is not None:
            body["budget"] = args.budget
    try:
        response = httpx.post(url + path, json=body, headers=_client_headers(args.api_key))
    except httpx.HTTPError as err:
        print(f"error: cannot reach {url}: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(response.json(), indent=2) + "\n")
    return 0 if response.is_success else 1


def _add_route(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "route",
        help="ask a running service for one routing decision",
        description=(
            "Ask a running service for a decision: seed 004's /routing/decide for text "
            "(--content), or seed 002's /api/v1/route for a service request (--data JSON)."
        ),
    )
    parser.add_argument("--url", default="http://127.0.0.1:9097", help="the service's URL")
    parser.add_argument("--api-key", default=None, help="API key (X-API-Key)")
    parser.add_argument("--content", default="Hello world", help="text of the request")
    parser.add_argument("--type", default="chat_completion", help="request type")
    parser.add_argument("--budget", type=float, default=None, help="max cost per request")
    parser.add_argument("--data", default=None, help="seed 002 request as JSON")
    parser.add_argument("--strategy", default=None, help="seed 002 strategy for --data")
    parser.set_defaults(handler=_run_route)


def _run_bench(args: argparse.Namespace) -> int:
    from fleetroute.service.load_test import LoadTestError, run_load_test

    try:
        report = run_load_test(
            args.url,
            requests=args.requests,
            concurrency=args.concurrency,
            batch=args.batch,
            strategy=args.strategy,
            api_key=args.api_key,
            progress=not args.quiet,
        )
    except LoadTestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for name, value in report.items():
            sys.stdout.write(f"{name:>18}: {value}\n")
    return 0


def _add_bench(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="load-test a running service's routing endpoint",
        description=(
            "Send requests to /api/v1/route (or /api/v1/route/batch with --batch) of a "
            "running service from concurrent connections; report routes per second and "
            "latency percentiles. For a heavier generator use wrk (benches/service_load.py)."
        ),
    )
    parser.add_argument("--url", default="http://127.0.0.1:9097", help="the service's URL")
    parser.add_argument("--api-key", default=None, help="API key (X-API-Key)")
    parser.add_argument("--requests", type=int, default=2_000, help="HTTP requests to send")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument(
        "--batch", type=int, default=0, help="routes per call via /api/v1/route/batch (0: single)"
    )
    parser.add_argument("--strategy", default=None, help="seed 002 strategy to route with")
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_bench)


# Every subcommand, as the function that adds its parser.
_SUBCOMMANDS: tuple[Callable[[SubParsers], None], ...] = (
    _add_serve,
    _add_route,
    _add_bench,
    _add_simulate,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetroute", description="Request routing for AI inference fleets."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit
    status. Invalid arguments exit through argparse with status 2."""
    args = _parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
