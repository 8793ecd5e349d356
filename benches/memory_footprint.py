"""Memory footprint of a 100,000-accelerator registry, one fresh subprocess per case.

Each case starts a new interpreter, imports fleetroute and numpy, builds the id and
capacity arrays, then reads ``VmRSS`` from ``/proc/self/status`` and resets the peak
(``echo 5 > /proc/self/clear_refs``, Linux >= 4.0; if refused, the peak is the
process's lifetime peak). It then registers 100,000 accelerators and reads ``VmRSS``
and ``VmHWM`` again. Reported per case:

* RSS bytes per accelerator: (RSS after - RSS before) / 100,000. This counts everything
  the registry really holds: the arena, the id index, the strategy's index, plus any
  heap the allocator kept from temporary vectors.
* peak growth per accelerator: (VmHWM after - RSS before) / 100,000, the transient cost
  of registering (temporary copies of the inputs included).
* ``Router.memory_bytes() / 100,000``: arena + strategy index only, as the core counts it.
* the process's peak RSS (VmHWM), absolute.

Target: <= 256 bytes per accelerator of RSS growth for the registry (every strategy).
The consistent-hash rows also route once so the strategy builds its lookup table (ring or
Maglev); that table is reported for information, outside the registry target.

Run: ``.venv/bin/python benches/memory_footprint.py [--accelerators N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__: list[str] = []

ACCELERATORS = 100_000
TARGET_BYTES = 256
# (label, strategy, hash kind, registration method, route once to build tables)
CASES: list[tuple[str, str, str | None, str, bool]] = [
    ("p2c (add_fleet)", "p2c", None, "add_fleet", False),
    ("least_connections (add_fleet)", "least_connections", None, "add_fleet", False),
    ("round_robin (add_fleet)", "round_robin", None, "add_fleet", False),
    ("random (add_fleet)", "random", None, "add_fleet", False),
    ("weighted_round_robin (add_fleet)", "weighted_round_robin", None, "add_fleet", False),
    ("p2c (add_accelerator x 100k)", "p2c", None, "one_at_a_time", False),
    ("consistent_hash ring, table built", "consistent_hash", "ring", "add_fleet", True),
    ("consistent_hash maglev, table built", "consistent_hash", "maglev", "add_fleet", True),
]
REGISTRY_CASES = 6  # the first rows are the registry proper and carry the target


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _measure(strategy: str, hash_kind: str | None, method: str, route: bool, n: int) -> Any:
    """Runs in the fresh subprocess."""
    import gc

    import numpy as np

    import fleetroute

    ids = np.arange(n, dtype=np.int64)
    capacities = np.full(n, 100, dtype=np.int64)
    options: dict[str, Any] = {"hash": hash_kind} if hash_kind else {}
    accelerators = (
        [fleetroute.Accelerator(i, 100) for i in range(n)] if method == "one_at_a_time" else []
    )
    gc.collect()
    before = _status_kib("VmRSS")
    peak_reset = _reset_peak()
    router = fleetroute.Router(strategy, **options)
    if method == "add_fleet":
        router.add_fleet(ids, capacities)
    else:
        add = router.add_accelerator
        for acc in accelerators:
            add(acc)
        # The Python Accelerator objects existed before "before"; they are not the
        # registry's. (Each keeps a reference to the router, which is fine.)
    if route:
        router.route(key=1)
    gc.collect()
    after = _status_kib("VmRSS")
    peak = _status_kib("VmHWM")
    return {
        "rss_before_kib": before,
        "rss_after_kib": after,
        "vmhwm_kib": peak,
        "peak_reset": peak_reset,
        "memory_bytes": router.memory_bytes(),
        "registered": len(router),
    }


def _python() -> str:
    venv = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _run_case(case: tuple[str, str, str | None, str, bool], n: int) -> Any:
    _, strategy, hash_kind, method, route = case
    cmd = [
        _python(),
        str(Path(__file__).resolve()),
        "--worker",
        json.dumps([strategy, hash_kind, method, route]),
        "--accelerators",
        str(n),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed: {' '.join(cmd)}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fleetroute registry memory footprint")
    parser.add_argument("--accelerators", type=int, default=ACCELERATORS)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per case")
    parser.add_argument("--json", metavar="PATH", help="also write the samples as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n: int = args.accelerators
    if args.worker:
        strategy, hash_kind, method, route = json.loads(args.worker)
        print(json.dumps(_measure(strategy, hash_kind, method, route, n)))
        return 0

    med = statistics.median
    print(
        f"Registry of {n:,} accelerators; medians of {args.repeats} fresh processes per "
        f"case; target <= {TARGET_BYTES} B/accelerator (RSS growth).\n"
    )
    print(
        "| case | RSS growth B/acc | peak growth B/acc | memory_bytes()/n "
        "| peak RSS (VmHWM) MiB | target | verdict |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    results: dict[str, Any] = {}
    for index, case in enumerate(CASES):
        samples = [_run_case(case, n) for _ in range(args.repeats)]
        if any(s["registered"] != n for s in samples):
            raise RuntimeError(f"{case[0]}: registered {samples[0]['registered']}, not {n}")
        growth = med([(s["rss_after_kib"] - s["rss_before_kib"]) * 1024 / n for s in samples])
        peak = med([(s["vmhwm_kib"] - s["rss_before_kib"]) * 1024 / n for s in samples])
        core = med([s["memory_bytes"] / n for s in samples])
        hwm_mib = med([s["vmhwm_kib"] / 1024 for s in samples])
        in_target = index < REGISTRY_CASES
        target = f"<= {TARGET_BYTES}" if in_target else "(info)"
        verdict = ("PASS" if growth <= TARGET_BYTES else "MISS") if in_target else "-"
        print(
            f"| {case[0]} | {growth:.0f} | {peak:.0f} | {core:.0f} | {hwm_mib:.1f} "
            f"| {target} | {verdict} |"
        )
        results[case[0]] = {
            "samples": samples,
            "rss_growth_bytes_per_acc": growth,
            "peak_growth_bytes_per_acc": peak,
            "memory_bytes_per_acc": core,
            "vmhwm_mib": hwm_mib,
            "target_applies": in_target,
        }
    if not all(s["peak_reset"] for r in results.values() for s in r["samples"]):
        print("\nnote: /proc/self/clear_refs refused; peak growth uses the lifetime peak")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
