"""Score stage on a synthetic workload: what each routing policy buys in quality for
what it spends, with RouteLLM-style metrics (PGR, APGR, CPT) and a cost-quality plot.

The generating model (everything below is drawn from ``numpy.random.default_rng(seed)``,
so a seed fixes the stream, and every policy sees the *same* requests and, for a given
model, the *same* outcome: common random numbers):

* **Tasks.** Five task types drawn i.i.d. from a fixed mix: code_generation 25%,
  summarization 25%, creative_writing 10%, translation 15%, data_extraction 25%.
* **Lengths.** Prompt tokens ~ lognormal(ln m_p(task), 0.6) and output tokens ~
  lognormal(ln m_o(task), 0.5), rounded, clipped to [1, 16,000], with medians
  m_p / m_o = code 600 / 400, summarization 1,500 / 200, creative 150 / 600,
  translation 300 / 300, extraction 800 / 150. A request's output length is the same
  whichever model answers it.
* **Models.** Four, with prices in USD per 1,000 input / output tokens and a latency of
  ``(TTFT + output_tokens x per-token time) x lognormal(0, 0.25)``:

  ======  =========  ==========  ========  =============
  model   $ in / 1k  $ out / 1k  TTFT ms   ms per token
  ======  =========  ==========  ========  =============
  small   0.00015    0.0006      250       8
  medium  0.0008     0.004       350       12
  coder   0.001      0.002       500       15
  large   0.005      0.015       700       20
  ======  =========  ==========  ========  =============

* **Quality.** Each (task, model) pair has a mean quality q (table ``QUALITY_MEAN``);
  a response's quality is drawn from Beta(q·κ, (1-q)·κ) with κ = 12 (mean q, standard
  deviation about 0.08 at q = 0.85). ``large`` is the strongest model over the mix,
  ``small`` the cheapest; ``coder`` is a cheap specialist that beats ``large`` at code.
* **Cost** of a request on a model: ``(prompt x in + output x out) / 1000``.

Policies (one pass each over the stream, in order, learning online where they learn):

* fleetroute's ``ProviderScorer`` with per-task ``ProviderMetrics``: each task type has
  its own table of the four models, initialised from a calibration sample (40
  requests per (task, model), drawn from ``seed + 1``, so not the evaluation stream)
  and then updated online with ``ProviderMetrics.observe`` (EWMA, alpha 0.1) from every
  response the policy receives. Strategies ``cost`` (its default constraint: quality
  >= 0.8), ``quality``, ``latency``, ``balanced`` (0.4/0.3/0.3) and two other weight
  settings; a **weight sweep** (quality weight w, cost weight 1 - w, latency 0, for w
  from 0 to 1); and **budget pacing**: quality weights, a ``Budget`` whose limit is a
  fraction f of what always-``large`` spends on the stream, over a window the length
  of the stream (one request per second of a ``ManualClock``); its ``pressure()`` goes
  to ``choose`` before each request, each request reserves its worst-case estimate
  (``max_tokens`` = 2 x the task's median output) and settles its real cost. A
  reservation the budget refuses moves the request to the next cheaper model; one that
  no model can afford is refused (it counts as quality 0 and costs nothing).
* baselines: always-``large`` (strong), always-``small`` (weak), uniformly random over
  the four models, and RouteLLM's random router (``large`` with probability p, else
  ``small``, swept over p).
* if ``fleetroute.scoring.bandit.LinUCB`` is present: a learned router, LinUCB over
  the context of ``FeatureEncoder`` (task one-hot, one tier, log prompt length, bias),
  reward ``quality - λ·cost`` (``bandit.reward``, no latency term), alpha 1.0 and
  ridge 1.0 (the library's defaults), trained online on the same stream from scratch
  (its exploration is paid for in the results), swept over λ. It sees the prompt
  length but not the output length, which is unknown before the call.

Metrics. Mean quality, total cost, cost per 1,000 requests and mean latency over the
stream. With Q and C the mean quality and total cost of a policy, and the strong /
weak baselines measured on the same stream:

* PGR = (Q - Q_weak) / (Q_strong - Q_weak), the performance gap recovered (it can
  exceed 1: a policy may beat always-``large`` by using the specialist);
* strong share s = share of requests sent to ``large`` (RouteLLM's cost axis);
  cost share c = (C - C_weak) / (C_strong - C_weak) (the axis that also counts the
  middle models' prices);
* for a knob family (a sweep), the PGR curve on an axis x in {s, c} is the upper
  concave envelope of the family's points plus the anchors (0, 0) (all weak) and
  (1, 1) (all strong): every point on it is reachable by sending each request to one
  of two swept settings at random. APGR = the integral of that curve over x in
  [0, 1]; CPT(50%) = the smallest x at which it reaches PGR 0.5. The random router's
  curve is the diagonal: APGR 0.5, CPT(50%) = 50%.

The plot (``--plot PATH``; matplotlib with the Agg backend) shows mean quality against
cost per 1,000 requests, and PGR against cost share with each family's envelope.

Run: ``.venv/bin/python benches/cost_quality.py [--requests 20000] [--seed 7]
[--plot doc/figures/cost_quality.png] [--json PATH]``. The same seed gives the same
tables (and the same figure).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetroute.clock import ManualClock
from fleetroute.scoring.budget import Budget, BudgetExceeded, Reservation
from fleetroute.scoring.provider_metrics import LLMRequest, ProviderMetrics, Response
from fleetroute.scoring.provider_scoring import (
    Constraints,
    NoProvidersAvailable,
    ProviderScorer,
)

__all__: list[str] = []

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TASKS = ("code_generation", "summarization", "creative_writing", "translation", "data_extraction")
TASK_MIX = (0.25, 0.25, 0.10, 0.15, 0.25)
PROMPT_MEDIAN = (600, 1500, 150, 300, 800)
OUTPUT_MEDIAN = (400, 200, 600, 300, 150)
PROMPT_SIGMA = 0.6
OUTPUT_SIGMA = 0.5
MAX_TOKENS_CLIP = 16_000

MODELS = ("small", "medium", "coder", "large")
PRICE_IN = (0.00015, 0.0008, 0.001, 0.005)  # USD per 1,000 input tokens
PRICE_OUT = (0.0006, 0.004, 0.002, 0.015)  # USD per 1,000 output tokens
TTFT_MS = (250.0, 350.0, 500.0, 700.0)
MS_PER_TOKEN = (8.0, 12.0, 15.0, 20.0)
LATENCY_SIGMA = 0.25

#: Mean quality of each (task, model): rows follow TASKS, columns MODELS.
QUALITY_MEAN = (
    (0.45, 0.62, 0.88, 0.85),  # code_generation: the specialist wins
    (0.78, 0.85, 0.80, 0.90),  # summarization
    (0.55, 0.72, 0.60, 0.90),  # creative_writing: only large is good
    (0.70, 0.82, 0.75, 0.92),  # translation
    (0.80, 0.88, 0.86, 0.91),  # data_extraction: small is nearly enough
)
KAPPA = 12.0

WEAK, STRONG = MODELS.index("small"), MODELS.index("large")
#: A request the policy refused (a budget could not afford it): quality 0, no cost.
REFUSED = -1
CALIBRATION_PER_PAIR = 40

WEIGHT_SWEEP = tuple(round(0.1 * i, 1) for i in range(11))
BUDGET_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
RANDOM_MIX = tuple(round(0.1 * i, 1) for i in range(11))
LINUCB_LAMBDAS = (0.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
LINUCB_ALPHA = 1.0  # the library default


# --------------------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """A request stream and every model's outcome on every request."""

    task: list[int]
    prompt_tokens: list[int]
    output_tokens: list[int]
    quality: list[list[float]]  # [request][model]
    latency_ms: list[list[float]]
    cost: list[list[float]]

    def __len__(self) -> int:
        return len(self.task)


def generate(n: int, seed: int) -> Workload:
    """``n`` requests from the generating model of the module docstring."""
    rng = np.random.default_rng(seed)
    task: IntArray = rng.choice(len(TASKS), size=n, p=np.asarray(TASK_MIX))
    prompt_median = np.asarray(PROMPT_MEDIAN, dtype=np.float64)[task]
    output_median = np.asarray(OUTPUT_MEDIAN, dtype=np.float64)[task]
    prompt = np.clip(
        np.rint(prompt_median * rng.lognormal(0.0, PROMPT_SIGMA, n)), 1, MAX_TOKENS_CLIP
    ).astype(np.int64)
    output = np.clip(
        np.rint(output_median * rng.lognormal(0.0, OUTPUT_SIGMA, n)), 1, MAX_TOKENS_CLIP
    ).astype(np.int64)
    q_mean = np.asarray(QUALITY_MEAN)[task]  # (n, models)
    quality = rng.beta(q_mean * KAPPA, (1.0 - q_mean) * KAPPA)
    base = np.asarray(TTFT_MS)[None, :] + output[:, None] * np.asarray(MS_PER_TOKEN)[None, :]
    latency = base * rng.lognormal(0.0, LATENCY_SIGMA, (n, len(MODELS)))
    cost = (
        prompt[:, None] * np.asarray(PRICE_IN)[None, :]
        + output[:, None] * np.asarray(PRICE_OUT)[None, :]
    ) / 1000.0
    return Workload(
        task=task.tolist(),
        prompt_tokens=prompt.tolist(),
        output_tokens=output.tolist(),
        quality=quality.tolist(),
        latency_ms=latency.tolist(),
        cost=cost.tolist(),
    )


def calibrate(seed: int) -> list[list[ProviderMetrics]]:
    """Per task, the four models' metrics from a calibration sample (not the stream)."""
    rng = np.random.default_rng(seed + 1)
    tables = []
    for t in range(len(TASKS)):
        row = []
        for m, name in enumerate(MODELS):
            q = QUALITY_MEAN[t][m]
            quality = rng.beta(q * KAPPA, (1.0 - q) * KAPPA, CALIBRATION_PER_PAIR)
            output = OUTPUT_MEDIAN[t] * rng.lognormal(0.0, OUTPUT_SIGMA, CALIBRATION_PER_PAIR)
            latency = (TTFT_MS[m] + output * MS_PER_TOKEN[m]) * rng.lognormal(
                0.0, LATENCY_SIGMA, CALIBRATION_PER_PAIR
            )
            row.append(
                ProviderMetrics(
                    name,
                    float(latency.mean()),
                    float(quality.mean()),
                    (PRICE_IN[m] + PRICE_OUT[m]) / 2,
                    input_cost_per_1k=PRICE_IN[m],
                    output_cost_per_1k=PRICE_OUT[m],
                )
            )
        tables.append(row)
    return tables


# --------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------


class Policy:
    """Picks a model index for request ``i`` and learns from the outcome."""

    def choose(self, wl: Workload, i: int) -> int:
        raise NotImplementedError

    def observe(self, wl: Workload, i: int, model: int) -> None:
        """Feedback after the response (default: none)."""


class Fixed(Policy):
    def __init__(self, model: int) -> None:
        self.model = model

    def choose(self, wl: Workload, i: int) -> int:
        return self.model


class UniformRandom(Policy):
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, wl: Workload, i: int) -> int:
        return self.rng.randrange(len(MODELS))


class RandomMix(Policy):
    """RouteLLM's random router: the strong model with probability ``p``."""

    def __init__(self, p: float, seed: int) -> None:
        self.p = p
        self.rng = random.Random(seed)

    def choose(self, wl: Workload, i: int) -> int:
        return STRONG if self.rng.random() < self.p else WEAK


class Scored(Policy):
    """``ProviderScorer.choose`` over the request's task table, learning online."""

    def __init__(
        self,
        scorer: ProviderScorer,
        seed: int,
        pressure: Callable[[], float] | None = None,
    ) -> None:
        self.scorer = scorer
        self.tables = calibrate(seed)
        self.index = {name: m for m, name in enumerate(MODELS)}
        self.pressure = pressure
        self.no_provider = 0

    def request(self, wl: Workload, i: int) -> LLMRequest:
        t = wl.task[i]
        return LLMRequest("", max_tokens=2 * OUTPUT_MEDIAN[t], task_type=TASKS[t])

    def choose(self, wl: Workload, i: int) -> int:
        pressure = 0.0 if self.pressure is None else self.pressure()
        try:
            chosen = self.scorer.choose(self.tables[wl.task[i]], self.request(wl, i), pressure)
        except NoProvidersAvailable:
            self.no_provider += 1  # nothing meets the constraints: fall back to the strongest
            return STRONG
        return self.index[chosen.provider]

    def observe(self, wl: Workload, i: int, model: int) -> None:
        response = Response(
            latency=wl.latency_ms[i][model],
            quality_score=wl.quality[i][model],
            input_tokens=wl.prompt_tokens[i],
            output_tokens=wl.output_tokens[i],
        )
        self.tables[wl.task[i]][model].observe(response)


class Paced(Scored):
    """Quality-first scoring under a budget whose pacing pressure shifts to cost.

    Before each call the chosen model's worst-case cost is reserved; if the budget
    refuses it, the next cheaper models are tried in turn, and a request that no model
    can afford is refused (``REFUSED``). After the call the real cost is settled."""

    def __init__(self, limit: float, n: int, seed: int) -> None:
        self.clock = ManualClock(0.0)
        self.budget = Budget(limit, float(n), clock=self.clock, start=0.0, name="stream")
        super().__init__(
            ProviderScorer("quality", rng=random.Random(seed)), seed, self.budget.pressure
        )
        self.by_price = sorted(range(len(MODELS)), key=lambda m: PRICE_IN[m] + PRICE_OUT[m])
        self.reservation: Reservation | None = None
        self.refused = 0
        self.downgraded = 0

    def choose(self, wl: Workload, i: int) -> int:
        self.clock.advance(1.0)
        first = super().choose(wl, i)
        t = wl.task[i]
        cheaper = [
            m
            for m in self.by_price
            if PRICE_IN[m] + PRICE_OUT[m] < PRICE_IN[first] + PRICE_OUT[first]
        ]
        for m in [first, *reversed(cheaper)]:
            estimate = self.tables[t][m].estimate_cost(wl.prompt_tokens[i], 2 * OUTPUT_MEDIAN[t])
            try:
                self.reservation = self.budget.reserve(estimate)
            except BudgetExceeded:
                continue
            self.downgraded += m != first
            return m
        self.refused += 1
        return REFUSED

    def observe(self, wl: Workload, i: int, model: int) -> None:
        if model == REFUSED:
            return
        super().observe(wl, i, model)
        assert self.reservation is not None
        self.budget.settle(self.reservation, wl.cost[i][model])
        self.reservation = None


class LearnedLinUCB(Policy):
    """LinUCB over (task one-hot, tier, log prompt length, bias); reward q - λ·cost."""

    def __init__(self, lam: float, seed: int, bandit_module: Any) -> None:
        self.lam = lam
        self.encoder = bandit_module.FeatureEncoder(TASKS, ("standard",))
        self.bandit = bandit_module.LinUCB(
            list(MODELS), self.encoder.dimension, alpha=LINUCB_ALPHA, rng=seed
        )
        self.reward = bandit_module.reward
        self.index = {name: m for m, name in enumerate(MODELS)}
        self.contexts: dict[tuple[int, int], FloatArray] = {}

    def context(self, wl: Workload, i: int) -> FloatArray:
        key = (wl.task[i], wl.prompt_tokens[i])
        x = self.contexts.get(key)
        if x is None:
            x = self.encoder.encode(TASKS[key[0]], key[1], "standard")
            self.contexts[key] = x
        return x

    def choose(self, wl: Workload, i: int) -> int:
        return self.index[self.bandit.select(self.context(wl, i))]

    def observe(self, wl: Workload, i: int, model: int) -> None:
        r = self.reward(
            wl.quality[i][model], wl.cost[i][model], 0.0, cost_weight=self.lam, latency_weight=0.0
        )
        self.bandit.update(MODELS[model], self.context(wl, i), r)


def load_bandit() -> tuple[Any, str]:
    """``fleetroute.scoring.bandit`` if it offers what the learned router needs."""
    try:
        from fleetroute.scoring import bandit
    except ImportError as exc:
        return None, f"fleetroute.scoring.bandit not importable ({exc})"
    missing = [n for n in ("LinUCB", "FeatureEncoder", "reward") if not hasattr(bandit, n)]
    if missing:
        return None, f"fleetroute.scoring.bandit lacks {', '.join(missing)}"
    try:
        probe = LearnedLinUCB(1.0, 0, bandit)
        tiny = generate(3, 0)
        for i in range(3):
            probe.observe(tiny, i, probe.choose(tiny, i))
    except Exception as exc:  # the module is young: report, do not crash the benchmark
        return None, f"LinUCB not usable: {type(exc).__name__}: {exc}"
    return bandit, "LinUCB available"


# --------------------------------------------------------------------------------------
# Running and metrics
# --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    label: str
    family: str | None
    knob: float | None
    quality: float
    cost: float
    latency_ms: float
    shares: list[float]
    seconds: float
    notes: str = ""
    pgr: float = 0.0
    strong_share: float = 0.0
    cost_share: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def run(
    label: str, policy: Policy, wl: Workload, family: str | None = None, knob: float | None = None
) -> Outcome:
    n = len(wl)
    counts = [0] * len(MODELS)
    q_sum = c_sum = l_sum = 0.0
    start = time.perf_counter()
    choose, observe = policy.choose, policy.observe
    refused = 0
    for i in range(n):
        m = choose(wl, i)
        if m == REFUSED:
            refused += 1  # quality 0, nothing spent, no latency
        else:
            counts[m] += 1
            q_sum += wl.quality[i][m]
            c_sum += wl.cost[i][m]
            l_sum += wl.latency_ms[i][m]
        observe(wl, i, m)
    seconds = time.perf_counter() - start
    served = max(1, n - refused)
    outcome = Outcome(
        label, family, knob, q_sum / n, c_sum, l_sum / served, [c / n for c in counts], seconds
    )
    outcome.extra["refused"] = refused
    return outcome


def envelope(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Upper concave envelope of ``points`` plus the anchors (0, 0) and (1, 1)."""
    pts = sorted({*points, (0.0, 0.0), (1.0, 1.0)})
    # For equal x keep the highest y.
    best: dict[float, float] = {}
    for x, y in pts:
        best[x] = max(y, best.get(x, -np.inf))
    pts = sorted(best.items())
    hull: list[tuple[float, float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # Drop the middle point if it lies on or below the chord (not concave).
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def apgr_cpt(points: Sequence[tuple[float, float]], level: float = 0.5) -> tuple[float, float]:
    """(APGR over x in [0, 1], CPT(level)) of the envelope of ``points``."""
    hull = envelope(points)
    xs = np.asarray([p[0] for p in hull])
    ys = np.asarray([p[1] for p in hull])
    grid = np.linspace(0.0, 1.0, 100_001)
    curve = np.interp(grid, xs, ys)
    area = float(np.sum((curve[1:] + curve[:-1]) * 0.5 * np.diff(grid)))
    reached = np.flatnonzero(curve >= level)
    cpt = float(grid[reached[0]]) if len(reached) else float("nan")
    return area, cpt


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _fmt_share(shares: list[float]) -> str:
    return " / ".join(f"{100 * s:.0f}" for s in shares)


def _knob(o: Outcome) -> str:
    if o.knob is None:
        return ""
    if o.family == "pacing":
        return f"f={o.knob:g}"
    if o.family == "LinUCB":
        return f"λ={o.knob:g}"
    if o.family == "random-mix":
        return f"p={o.knob:g}"
    return f"w={o.knob:g}"


def report(outcomes: list[Outcome], n: int) -> list[str]:
    lines = [
        "| policy | knob | mean quality | total cost | $ / 1k requests | mean latency "
        "| small / medium / coder / large % | strong share | cost share | PGR |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.label} | {_knob(o)} | {o.quality:.4f} | ${o.cost:.2f} "
            f"| ${1000 * o.cost / n:.3f} | {o.latency_ms:,.0f} ms | {_fmt_share(o.shares)} "
            f"| {100 * o.strong_share:.1f}% | {100 * o.cost_share:.1f}% | {o.pgr:.3f} |"
        )
    return lines


def plot(outcomes: list[Outcome], n: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    colours = {
        "weight sweep": "tab:blue",
        "pacing": "tab:green",
        "LinUCB": "tab:red",
        "random-mix": "tab:gray",
    }
    for family, colour in colours.items():
        members = sorted((o for o in outcomes if o.family == family), key=lambda o: o.cost_share)
        if not members:
            continue
        ax1.plot(
            [1000 * o.cost / n for o in members],
            [o.quality for o in members],
            "o-",
            color=colour,
            ms=4,
            lw=1.2,
            label=family,
        )
        pts = [(o.cost_share, o.pgr) for o in members]
        hull = envelope(pts)
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], "o", color=colour, ms=4)
        ax2.plot(
            [p[0] for p in hull], [p[1] for p in hull], "-", color=colour, lw=1.2, label=family
        )
    markers = ["s", "D", "^", "v", "P", "X", "*", "h", "<", ">"]
    fixed = [o for o in outcomes if o.family is None]
    for k, o in enumerate(fixed):
        style = {"color": "black", "ms": 7, "mfc": "none", "ls": "none"}
        name = o.label.replace("`", "")
        marker = markers[k % len(markers)]
        ax1.plot(1000 * o.cost / n, o.quality, marker=marker, label=name, **style)
        ax2.plot(o.cost_share, o.pgr, marker=marker, **style)
    ax1.set_xscale("log")
    ax1.set_xlabel("cost per 1,000 requests (USD, log scale)")
    ax1.set_ylabel("mean quality")
    ax1.set_title("quality against cost")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7, loc="lower right", ncol=2)
    ax2.axhline(0.5, color="gray", lw=0.6, ls=":")
    ax2.set_xlim(-0.02, 1.1)
    ax2.set_xlabel("cost share c = (C - C_small) / (C_large - C_small)")
    ax2.set_ylabel("PGR = (Q - Q_small) / (Q_large - Q_small)")
    ax2.set_title("PGR against cost share (lines: concave envelopes)")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plot", metavar="PNG", help="write the cost-quality figure here")
    parser.add_argument("--json", metavar="PATH", help="also write every outcome as JSON")
    parser.add_argument("--no-linucb", action="store_true", help="skip the learned router")
    args = parser.parse_args(argv)
    n, seed = args.requests, args.seed
    wl = generate(n, seed)

    outcomes: list[Outcome] = []

    def add(o: Outcome) -> Outcome:
        outcomes.append(o)
        print(f"  {o.label} {_knob(o)}: {o.seconds:.1f} s", file=sys.stderr, flush=True)
        return o

    def scorer(strategy: str, weights: dict[str, float] | None = None) -> ProviderScorer:
        return ProviderScorer(strategy, weights, rng=random.Random(seed))

    strong = add(run("always-large (strong)", Fixed(STRONG), wl))
    weak = add(run("always-small (weak)", Fixed(WEAK), wl))
    add(run("always-medium", Fixed(MODELS.index("medium")), wl))
    add(run("random (uniform)", UniformRandom(seed), wl))
    cost_policy = Scored(scorer("cost"), seed)
    add(
        run("`cost` (quality >= 0.8)", cost_policy, wl)
    ).notes = f"no provider: {cost_policy.no_provider}"
    add(run("`quality`", Scored(scorer("quality"), seed), wl))
    add(run("`latency`", Scored(scorer("latency"), seed), wl))
    add(run("`balanced` 0.4/0.3/0.3", Scored(scorer("balanced"), seed), wl))
    add(
        run(
            "`balanced` 0.6/0.3/0.1",
            Scored(scorer("balanced", {"quality": 0.6, "cost": 0.3, "latency": 0.1}), seed),
            wl,
        )
    )
    add(
        run(
            "`balanced` 0.2/0.6/0.2",
            Scored(scorer("balanced", {"quality": 0.2, "cost": 0.6, "latency": 0.2}), seed),
            wl,
        )
    )
    for w in WEIGHT_SWEEP:
        weights = {"quality": w, "cost": 1.0 - w, "latency": 0.0}
        policy = Scored(
            ProviderScorer(
                "balanced", weights, Constraints(min_quality=None), rng=random.Random(seed)
            ),
            seed,
        )
        add(run("weight sweep", policy, wl, "weight sweep", w))
    for f in BUDGET_FRACTIONS:
        paced = Paced(f * strong.cost, n, seed)
        o = add(run("pacing", paced, wl, "pacing", f))
        o.extra.update(limit=f * strong.cost, downgraded=paced.downgraded)
    for p in RANDOM_MIX:
        add(run("random-mix", RandomMix(p, seed), wl, "random-mix", p))
    bandit, bandit_note = (None, "skipped (--no-linucb)") if args.no_linucb else load_bandit()
    if bandit is not None:
        for lam in LINUCB_LAMBDAS:
            add(run("LinUCB", LearnedLinUCB(lam, seed, bandit), wl, "LinUCB", lam))

    q_gap = strong.quality - weak.quality
    c_gap = strong.cost - weak.cost
    for o in outcomes:
        o.pgr = (o.quality - weak.quality) / q_gap
        o.strong_share = o.shares[STRONG]
        o.cost_share = (o.cost - weak.cost) / c_gap

    lines = [
        f"Synthetic workload: {n:,} requests, seed {seed}; strong = large "
        f"(Q {strong.quality:.4f}, ${strong.cost:.2f}), weak = small "
        f"(Q {weak.quality:.4f}, ${weak.cost:.2f}). Learned router: {bandit_note}.",
        "",
        *report(outcomes, n),
        "",
        "| family | APGR (x = strong share) | CPT(50%) strong share "
        "| APGR (x = cost share) | CPT(50%) cost share | best PGR | at cost share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    families: dict[str, dict[str, float]] = {}
    for family in ("weight sweep", "pacing", "LinUCB", "random-mix"):
        members = [o for o in outcomes if o.family == family]
        if not members:
            continue
        a_s, cpt_s = apgr_cpt([(o.strong_share, o.pgr) for o in members])
        a_c, cpt_c = apgr_cpt([(o.cost_share, o.pgr) for o in members])
        top = max(members, key=lambda o: o.pgr)
        families[family] = {
            "apgr_strong_share": a_s,
            "cpt50_strong_share": cpt_s,
            "apgr_cost_share": a_c,
            "cpt50_cost_share": cpt_c,
        }
        lines.append(
            f"| {family} | {a_s:.3f} | {100 * cpt_s:.1f}% | {a_c:.3f} | {100 * cpt_c:.1f}% "
            f"| {top.pgr:.3f} | {100 * top.cost_share:.1f}% |"
        )
    notes = [f"{o.label}: {o.notes}" for o in outcomes if o.notes]
    notes += [
        f"pacing f={o.knob:g}: limit ${o.extra['limit']:.2f}, spent ${o.cost:.2f}, "
        f"downgraded by the budget {o.extra['downgraded']}, refused {o.extra['refused']}"
        for o in outcomes
        if o.family == "pacing"
    ]
    lines += ["", *notes]
    print("\n".join(lines), flush=True)

    if args.plot:
        title = (
            f"Synthetic workload, {n:,} requests (5 task types x 4 models), seed {seed}: "
            "fleetroute score stage, baselines" + (" and LinUCB" if bandit is not None else "")
        )
        plot(outcomes, n, Path(args.plot), title)
        print(f"figure: {args.plot}", file=sys.stderr)
    if args.json:
        payload = {
            "config": {"requests": n, "seed": seed, "bandit": bandit_note},
            "outcomes": [{k: v for k, v in vars(o).items()} for o in outcomes],
            "families": families,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
