"""The ``fleetroute`` command line.

Each subcommand lives in one ``_add_<name>`` function that declares its arguments and
sets ``handler``; register it in ``_SUBCOMMANDS``. ``simulate`` runs the Rust
discrete-event simulation (``fleetroute._native.simulate``) and prints the same
header and table as ``cargo run --release``.
"""

from __future__ import annotations

import argparse
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


# Every subcommand, as the function that adds its parser.
_SUBCOMMANDS: tuple[Callable[[SubParsers], None], ...] = (_add_simulate,)


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
