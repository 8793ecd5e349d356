"""BTO benchmarks on a documented synthetic diurnal trace.

**Trace.** Hourly fleet load over 7 weeks: ``100 + 30 sin(2 pi h / 24) + 10 sin(2 pi h /
168) - 25 on weekend hours + N(0, 3)`` (seed 7). The first 6 weeks train the models; the
7th is held out.

1. **Forecasts.** Seasonal naive (daily and weekly), Holt-Winters (24, 168) and the
   LSTM forecast the next 24 h from 7 daily origins in the held-out week (each model
   refitted on everything before its origin for the naive and Holt-Winters models; the
   LSTM is fitted once on the 6 weeks and given the newer observations through
   ``recent``). Reported: MAPE, and the coverage of the 80% and 95% intervals.
2. **Scheduling.** One day on 4 endpoints of capacity 100 whose background load follows
   the trace's first day (per endpoint, a quarter of the fleet load scaled to peak at
   85% of capacity), in 5-minute slots. 160 batch jobs (10-60 min, 10-25 units) arrive
   during the morning ramp (06:00-12:00), each with a deadline 16 h after arrival.
   Dispatch on arrival (processor sharing when overloaded) against the BTO scheduler
   (``minimize_total_time`` and ``minimize_peak``): total completion time, peak
   utilisation, deadline misses; a PNG of the fleet load over the day.

    .venv/bin/python benches/bto.py --plot doc/figures/bto_day.png
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

from fleetroute.forecasting import HoltWinters, LSTMForecaster, SeasonalNaive
from fleetroute.scheduling import (
    DeferrableRequest,
    LoadForecast,
    dispatch_on_arrival,
    schedule,
)

HOURS = 24 * 7 * 7
TRAIN = 24 * 7 * 6


def trace(seed: int = 7) -> np.ndarray[Any, np.dtype[np.float64]]:
    rng = np.random.default_rng(seed)
    h = np.arange(HOURS)
    weekend = ((h // 24) % 7) >= 5
    return (
        100
        + 30 * np.sin(2 * math.pi * h / 24)
        + 10 * np.sin(2 * math.pi * h / 168)
        - 25 * weekend
        + rng.normal(0, 3, HOURS)
    )


def forecasts(
    series: np.ndarray[Any, np.dtype[np.float64]],
) -> list[tuple[str, float, float, float]]:
    origins = [TRAIN + 24 * d for d in range(7)]
    lstm = LSTMForecaster(seed=0).fit(series[:TRAIN])
    rows = []
    for name in (
        "seasonal naive (24 h)",
        "seasonal naive (168 h)",
        "Holt-Winters (24, 168)",
        "LSTM",
    ):
        errors, cover80, cover95 = [], [], []
        for origin in origins:
            truth = series[origin : origin + 24]
            history = series[:origin]
            if name == "LSTM":
                f80 = lstm.forecast(24, 0.8, recent=history[TRAIN:] if origin > TRAIN else None)
                f95 = lstm.forecast(24, 0.95, recent=history[TRAIN:] if origin > TRAIN else None)
            else:
                model: Any = (
                    SeasonalNaive(24)
                    if "24 h" in name
                    else SeasonalNaive(168)
                    if "168" in name and "naive" in name
                    else HoltWinters((24, 168))
                )
                model.fit(history)
                f80, f95 = model.forecast(24, 0.8), model.forecast(24, 0.95)
            errors.append(np.mean(np.abs(f80.mean - truth) / truth))
            cover80.append(np.mean((truth >= f80.lower) & (truth <= f80.upper)))
            cover95.append(np.mean((truth >= f95.lower) & (truth <= f95.upper)))
        rows.append(
            (name, float(np.mean(errors)), float(np.mean(cover80)), float(np.mean(cover95)))
        )
    return rows


def scheduling(
    series: np.ndarray[Any, np.dtype[np.float64]], plot: str | None
) -> list[tuple[str, float, float, int]]:
    slot = 300.0
    slots = 24 * 12
    day = series[:24]
    fleet = np.repeat(day, 12)[:slots]
    per_endpoint = fleet / fleet.max() * 85.0  # peaks at 85% of capacity 100
    endpoints = [f"e{i}" for i in range(4)]
    forecast = LoadForecast(
        capacity=dict.fromkeys(endpoints, 100.0),
        load={e: per_endpoint.tolist() for e in endpoints},
        slot_s=slot,
    )
    rng = np.random.default_rng(11)
    jobs = []
    for i in range(160):
        arrival = float(rng.uniform(6, 12) * 3600)
        jobs.append(
            DeferrableRequest(
                f"job-{i}",
                size_s=float(rng.uniform(10, 60) * 60),
                earliest_start=arrival,
                deadline=arrival + 16 * 3600,
                cost_units=float(rng.integers(10, 26)),
            )
        )
    rows = []
    plans: dict[str, list[Any]] = {}
    baseline = dispatch_on_arrival(jobs, forecast)
    plans["dispatch on arrival"] = baseline
    for objective in ("minimize_total_time", "minimize_peak"):
        started = time.perf_counter()
        result = schedule(jobs, forecast, objective, window="24h")
        elapsed = time.perf_counter() - started
        plans[f"BTO {objective}"] = list(result.scheduled)
        print(
            f"BTO {objective}: {len(result.scheduled)} placed, "
            f"{len(result.unplaced)} unplaced, {elapsed:.1f} s"
        )
    by_id = {j.id: j for j in jobs}
    minutes = np.arange(24 * 60) * 60.0 + 30.0  # sample points, mid-minute
    background = per_endpoint[(minutes // slot).astype(int)]
    for name, plan in list(plans.items()):
        usage = np.tile(background, (4, 1))
        for s in plan:
            running = (minutes >= s.scheduled_time) & (minutes < s.completion_time)
            usage[endpoints.index(s.endpoint), running] += by_id[s.id].cost_units
        total = sum(s.completion_time - by_id[s.id].earliest_start for s in plan)
        misses = sum(1 for s in plan if s.completion_time > (by_id[s.id].deadline or math.inf))
        rows.append((name, total / 3600, float(usage.max() / 100.0), misses))
        plans[name] = [usage.sum(axis=0) / 400.0]
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        hours = minutes / 3600
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot(hours, background / 100.0, color="grey", label="background (forecast)")
        for name, (curve,) in (
            (n, plans[n])
            for n in ("dispatch on arrival", "BTO minimize_total_time", "BTO minimize_peak")
        ):
            ax.plot(hours, curve, label=name)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
        ax.set_xlabel("hour of day")
        ax.set_ylabel("fleet utilisation")
        ax.set_title("160 batch jobs arriving 06:00-12:00, with and without BTO")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot", default=None, help="write the day's load plot here (PNG)")
    args = parser.parse_args()
    series = trace()
    print("| model | MAPE, next 24 h | 80% interval coverage | 95% interval coverage |")
    print("|---|---:|---:|---:|")
    for name, mape, c80, c95 in forecasts(series):
        print(f"| {name} | {mape:.1%} | {c80:.2f} | {c95:.2f} |")
    print()
    rows = scheduling(series, args.plot)
    print()
    print("| plan | total time in system (job-hours) | peak utilisation | deadline misses |")
    print("|---|---:|---:|---:|")
    for name, total, peak, misses in rows:
        print(f"| {name} | {total:,.1f} | {peak:.2f} | {misses} |")


if __name__ == "__main__":
    main()
