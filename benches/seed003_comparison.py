"""Seed 003 scenario: fleetroute side by side with the `intelligent-routing` baseline.

The scenario: 10,000 accelerators of capacity 100, then 100,000 requests
``Request(i, 1, 1)`` routed with one Python call ``router.route_request(req)`` each,
per strategy (round_robin, p2c, least_connections).

Both systems run the *same* timing harness (this file, ``--worker`` mode) in their own
interpreter: fleetroute in ``.venv``, ``intelligent-routing`` 0.1.0 from PyPI in a
separate ``.venv-baseline`` (created here if missing). Every round starts a fresh
subprocess and a fresh router; registration and building the request list are not
timed; the loop is ``for req in reqs: route(req)`` over a pre-built list with the bound
method in a local, timed with ``time.perf_counter`` and the cyclic GC off (as
``timeit`` does). Baseline and fleetroute rounds alternate (the order flips every
round), so drift on a noisy machine hits both alike; medians are reported.

In the same run, for fleetroute only: the per-call rate of ``route(cost=1,
priority=1)`` (and of ``route(1, 1)``, to show what keyword parsing costs), and
``route_batch`` with p2c on 1,000,000 requests over 10,000 accelerators of capacity
1,000 (nothing is refused; one untimed warm-up batch, then one timed batch per round;
released with ``release_batch`` in between).

Run: ``.venv/bin/python benches/seed003_comparison.py [--rounds 7] [--json PATH]``
(``make bench-compare``). Targets are reported as PASS/MISS, never asserted.
``--sweep`` instead times per-call ``route_request`` (round_robin, p2c) for both systems
on fleets of 100 to 100,000 accelerators, to separate the fixed cost of a Python call
from the part that grows once the accelerator records no longer fit in cache.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__: list[str] = []

ROOT = Path(__file__).resolve().parent.parent
BASELINE_VENV = ROOT / ".venv-baseline"
FLEETROUTE_VENV = ROOT / ".venv"
BASELINE_PACKAGE = "intelligent-routing==0.1.0"

STRATEGIES = ("round_robin", "p2c", "least_connections")
ACCELERATORS = 10_000
CAPACITY = 100
REQUESTS = 100_000
BATCH_REQUESTS = 1_000_000
BATCH_CAPACITY = 1_000
SWEEP_FLEETS = (100, 1_000, 10_000, 100_000)
SWEEP_CAPACITY = 1_000_000
SWEEP_STRATEGIES = ("round_robin", "p2c")

# Targets (reported, not asserted).
PER_CALL_TARGET = {"round_robin": 1.2, "p2c": 1.2, "least_connections": 20.0}
BATCH_RATE_TARGET = 50e6
BATCH_VS_PER_CALL_TARGET = 8.0


# --------------------------------------------------------------------------------------
# Worker side: runs inside the interpreter under test. Standard library only at import
# time, because the baseline venv has neither numpy nor fleetroute.
# --------------------------------------------------------------------------------------


def _timed_seed(
    module_name: str, strategy: str, accelerators: int, requests: int, capacity: int
) -> dict[str, Any]:
    """One round of the seed scenario; returns the rate and the number refused."""
    mod: Any = __import__(module_name)
    router = mod.Router(strategy)
    for i in range(accelerators):
        router.add_accelerator(mod.Accelerator(i, capacity))
    reqs = [mod.Request(i, 1, 1) for i in range(requests)]
    route = router.route_request
    refused = 0
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for req in reqs:
            if route(req) is None:
                refused += 1
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return {"rate": requests / elapsed, "seconds": elapsed, "refused": refused}


def _timed_route(
    strategy: str, accelerators: int, requests: int, positional: bool
) -> dict[str, Any]:
    """fleetroute's ``route(cost=1, priority=1)`` (or ``route(1, 1)``), once per request."""
    import fleetroute

    router = fleetroute.Router(strategy)
    for i in range(accelerators):
        router.add_accelerator(fleetroute.Accelerator(i, CAPACITY))
    route = router.route
    calls = range(requests)
    refused = 0
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        if positional:
            for _ in calls:
                if route(1, 1) is None:
                    refused += 1
        else:
            for _ in calls:
                if route(cost=1, priority=1) is None:
                    refused += 1
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return {"rate": requests / elapsed, "seconds": elapsed, "refused": refused}


def _timed_batch(accelerators: int, requests: int) -> dict[str, Any]:
    """fleetroute's ``route_batch`` with p2c: one warm-up batch, then one timed batch."""
    import numpy as np

    import fleetroute

    router = fleetroute.Router("p2c")
    ids = np.arange(accelerators, dtype=np.int64)
    router.add_fleet(ids, np.full(accelerators, BATCH_CAPACITY, dtype=np.int64))
    costs = np.ones(requests, dtype=np.int64)
    warm = router.route_batch(costs, priority=1)
    router.release_batch(warm, costs)
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        out = router.route_batch(costs, priority=1)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    refused = int((out == -1).sum())
    router.release_batch(out, costs)
    if int(router.loads().sum()) != 0:
        raise RuntimeError("release_batch left load behind")
    return {"rate": requests / elapsed, "seconds": elapsed, "refused": refused}


def _worker(args: argparse.Namespace) -> None:
    if args.case == "seed":
        module = "intelligent_routing" if args.worker == "baseline" else "fleetroute"
        result = _timed_seed(module, args.strategy, args.accelerators, args.requests, args.capacity)
    elif args.case in ("route", "route_positional"):
        positional = args.case == "route_positional"
        result = _timed_route(args.strategy, args.accelerators, args.requests, positional)
    else:
        result = _timed_batch(args.accelerators, args.requests)
    print(json.dumps(result))


# --------------------------------------------------------------------------------------
# Driver side.
# --------------------------------------------------------------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _ensure_baseline() -> Path:
    """Creates ``.venv-baseline`` with intelligent-routing 0.1.0 if it is missing."""
    python = _venv_python(BASELINE_VENV)
    probe = [str(python), "-c", "import intelligent_routing"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating {BASELINE_VENV} with {BASELINE_PACKAGE} ...", file=sys.stderr)
    subprocess.run(["python3", "-m", "venv", str(BASELINE_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", BASELINE_PACKAGE], check=True)
    return python


def _run_worker(
    python: Path,
    worker: str,
    case: str,
    strategy: str,
    n: int,
    requests: int,
    capacity: int = CAPACITY,
) -> Any:
    cmd = [
        str(python),
        str(Path(__file__).resolve()),
        "--worker",
        worker,
        "--case",
        case,
        "--strategy",
        strategy,
        "--accelerators",
        str(n),
        "--requests",
        str(requests),
        "--capacity",
        str(capacity),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    for attempt in range(3):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        # A shared dev venv may be mid-reinstall (`make .venv/.native`): retry briefly.
        print(f"worker failed (attempt {attempt + 1}), retrying", file=sys.stderr)
        time.sleep(5)
    raise RuntimeError(f"worker failed: {' '.join(cmd)}\n{proc.stderr}")


def _version(python: Path, module: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({module!r}))"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt_rate(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M/s"
    return f"{rate / 1e3:.1f} k/s"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _interpreters(args: argparse.Namespace) -> tuple[Path, Path]:
    baseline = _ensure_baseline()
    if args.fleetroute_python:
        return baseline, Path(args.fleetroute_python)
    candidate = _venv_python(FLEETROUTE_VENV)
    return baseline, candidate if candidate.exists() else Path(sys.executable)


def _sweep(args: argparse.Namespace) -> int:
    """Per-call route_request against fleet size, both systems, alternating rounds.

    Capacity is large (SWEEP_CAPACITY) so that even 100 accelerators take every request.
    It separates the per-call cost that does not depend on the fleet (the Python call)
    from the part that grows as the accelerator records stop fitting in cache.
    """
    baseline, ours = _interpreters(args)
    med = statistics.median
    print(
        f"Fleet-size sweep: {args.requests:,} route_request calls, capacity "
        f"{SWEEP_CAPACITY:,}, {args.rounds} alternating rounds, medians.\n"
    )
    print("| strategy | accelerators | baseline | fleetroute | ratio | paired-ratio median |")
    print("|---|---:|---:|---:|---:|---:|")
    for strategy in SWEEP_STRATEGIES:
        for n in SWEEP_FLEETS:
            rates: dict[str, list[float]] = {"baseline": [], "fleetroute": []}
            for r in range(args.rounds):
                order = ("baseline", "fleetroute") if r % 2 == 0 else ("fleetroute", "baseline")
                for who in order:
                    python = baseline if who == "baseline" else ours
                    res = _run_worker(
                        python, who, "seed", strategy, n, args.requests, SWEEP_CAPACITY
                    )
                    rates[who].append(float(res["rate"]))
            b, f = rates["baseline"], rates["fleetroute"]
            paired = med([x / y for x, y in zip(f, b, strict=True)])
            print(
                f"| {strategy} | {n:,} | {_fmt_rate(med(b))} | {_fmt_rate(med(f))} "
                f"| {med(f) / med(b):.2f}x | {paired:.2f}x |",
                flush=True,
            )
    return 0


def _drive(args: argparse.Namespace) -> int:
    baseline, ours = _interpreters(args)
    n, reqs, rounds = args.accelerators, args.requests, args.rounds

    seed: dict[str, dict[str, list[float]]] = {
        s: {"baseline": [], "fleetroute": []} for s in STRATEGIES
    }
    route: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    route_pos: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    batch: list[float] = []
    refused: dict[str, int] = {}

    def record(key: str, result: Any) -> float:
        refused[key] = refused.get(key, 0) + int(result["refused"])
        return float(result["rate"])

    for r in range(rounds):
        for strategy in STRATEGIES:
            order = ("baseline", "fleetroute") if r % 2 == 0 else ("fleetroute", "baseline")
            for who in order:
                python = baseline if who == "baseline" else ours
                res = _run_worker(python, who, "seed", strategy, n, reqs)
                seed[strategy][who].append(record(f"seed/{who}/{strategy}", res))
            res = _run_worker(ours, "fleetroute", "route", strategy, n, reqs)
            route[strategy].append(record(f"route/{strategy}", res))
            res = _run_worker(ours, "fleetroute", "route_positional", strategy, n, reqs)
            route_pos[strategy].append(record(f"route_positional/{strategy}", res))
        res = _run_worker(ours, "fleetroute", "batch", "p2c", n, args.batch_requests)
        batch.append(record("batch/p2c", res))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)

    med = statistics.median
    lines = [
        f"Seed 003 comparison: {n:,} accelerators x capacity {CAPACITY}, {reqs:,} "
        f"requests Request(i, 1, 1), {rounds} alternating rounds, medians.",
        f"CPU: {_cpu_model()}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}; "
        f"baseline intelligent-routing {_version(baseline, 'intelligent-routing')}; "
        f"fleetroute {_version(ours, 'fleetroute')}.",
        "",
        "| strategy | baseline route_request | fleetroute route_request | ratio "
        "| paired-ratio median | target | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    summary: dict[str, Any] = {"seed": {}, "route": {}, "route_positional": {}, "batch": {}}
    for strategy in STRATEGIES:
        b, f = seed[strategy]["baseline"], seed[strategy]["fleetroute"]
        ratio = med(f) / med(b)
        paired = med([x / y for x, y in zip(f, b, strict=True)])
        target = PER_CALL_TARGET[strategy]
        lines.append(
            f"| {strategy} | {_fmt_rate(med(b))} | {_fmt_rate(med(f))} | {ratio:.2f}x "
            f"| {paired:.2f}x | >= {target:g}x | {_verdict(ratio >= target)} |"
        )
        summary["seed"][strategy] = {
            "baseline_rates": b,
            "fleetroute_rates": f,
            "baseline_median": med(b),
            "fleetroute_median": med(f),
            "ratio": ratio,
            "paired_ratio_median": paired,
            "target": target,
            "pass": ratio >= target,
        }

    lines += [
        "",
        "fleetroute only, same run:",
        "",
        "| measurement | median | min | max | target | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for strategy in STRATEGIES:
        rates = route[strategy]
        lines.append(
            f"| route(cost=1, priority=1) {strategy} | {_fmt_rate(med(rates))} "
            f"| {_fmt_rate(min(rates))} | {_fmt_rate(max(rates))} | - | - |"
        )
        summary["route"][strategy] = {"rates": rates, "median": med(rates)}
    for strategy in STRATEGIES:
        rates = route_pos[strategy]
        lines.append(
            f"| route(1, 1) positional {strategy} | {_fmt_rate(med(rates))} "
            f"| {_fmt_rate(min(rates))} | {_fmt_rate(max(rates))} | - | - |"
        )
        summary["route_positional"][strategy] = {"rates": rates, "median": med(rates)}
    per_call_p2c = med(seed["p2c"]["fleetroute"])
    batch_med = med(batch)
    batch_ratio = batch_med / per_call_p2c
    lines += [
        f"| route_batch p2c, {args.batch_requests:,} over {n:,} (decisions/s) "
        f"| {_fmt_rate(batch_med)} | {_fmt_rate(min(batch))} | {_fmt_rate(max(batch))} "
        f"| >= {BATCH_RATE_TARGET / 1e6:g} M/s | {_verdict(batch_med >= BATCH_RATE_TARGET)} |",
        f"| route_batch p2c / per-call route_request p2c | {batch_ratio:.1f}x | - | - "
        f"| >= {BATCH_VS_PER_CALL_TARGET:g}x "
        f"| {_verdict(batch_ratio >= BATCH_VS_PER_CALL_TARGET)} |",
    ]
    summary["batch"] = {
        "rates": batch,
        "median": batch_med,
        "ratio_to_per_call_p2c": batch_ratio,
        "rate_target": BATCH_RATE_TARGET,
        "ratio_target": BATCH_VS_PER_CALL_TARGET,
        "pass_rate": batch_med >= BATCH_RATE_TARGET,
        "pass_ratio": batch_ratio >= BATCH_VS_PER_CALL_TARGET,
    }
    nonzero = {k: v for k, v in refused.items() if v}
    lines += ["", f"Refused requests (all rounds): {nonzero or 'none'}"]
    print("\n".join(lines), flush=True)

    if args.json:
        summary["config"] = {
            "accelerators": n,
            "capacity": CAPACITY,
            "requests": reqs,
            "batch_requests": args.batch_requests,
            "batch_capacity": BATCH_CAPACITY,
            "rounds": rounds,
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
        }
        summary["refused"] = refused
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per side")
    parser.add_argument("--accelerators", type=int, default=ACCELERATORS)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--batch-requests", type=int, default=BATCH_REQUESTS)
    parser.add_argument("--json", metavar="PATH", help="also write raw samples as JSON")
    parser.add_argument("--fleetroute-python", help="interpreter with fleetroute installed")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="instead: per-call route_request against fleet size (100 to 100,000)",
    )
    parser.add_argument("--capacity", type=int, default=CAPACITY, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=("baseline", "fleetroute"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--case", choices=("seed", "route", "route_positional", "batch"), help=argparse.SUPPRESS
    )
    parser.add_argument("--strategy", default="p2c", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    if args.sweep:
        return _sweep(args)
    return _drive(args)


if __name__ == "__main__":
    sys.exit(main())
