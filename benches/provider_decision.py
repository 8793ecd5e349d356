"""Score-stage decision latency: ``ProviderScorer("balanced").choose`` over 20
providers, side by side with LiteLLM's ``Router`` routing decision over 20 deployments.

fleetroute side (``.venv``, in process): 20 ``ProviderMetrics`` drawn once from a fixed
seed (latency 200-3,000 ms, quality 0.60-0.95, input/output prices 0.1-30 USD per
million tokens, availability 0.96-1.0, so every provider is eligible) and one
``LLMRequest`` (a 64-character prompt, ``max_tokens=256``, no budget). Cases:

- ``choose``: ``ProviderScorer("balanced").choose(providers, request)``, the headline;
- ``choose+budget``: the same with ``request.budget`` set, so the affordability filter
  (a cost estimate per provider) runs too; 18 of the 20 providers remain;
- ``IntelligentRouter.route``: the router around the scorer (request check, the
  metrics dictionary, the name-to-provider lookup) on the same 20 providers;
- a breakdown, each in its own loop: ``score_lists`` (the scoring arithmetic on
  ready-made criterion lists), ``eligible`` (the constraint filter) and an empty call
  (what the harness costs per call).

LiteLLM side (``litellm`` pinned below, in its own virtual environment, created on
first use under ``target/``, which git ignores): ``litellm.Router`` with one model
group ``gpt-group`` of 20 deployments (``openai/mock-NN``, ``api_base`` on the
loopback discard port, a fake key, ``mock_response`` set, distinct input/output
prices per token). Each router first serves 40 mocked ``acompletion`` calls (no
network: ``mock_response`` short-circuits the HTTP call), so the latency and usage
trackers hold real data. Then, per strategy:

- ``await router.async_get_available_deployment(model="gpt-group", messages=[...],
  request_kwargs={})`` for ``simple-shuffle`` (LiteLLM's default),
  ``cost-based-routing`` and ``latency-based-routing``: the function
  ``Router.acompletion`` calls to pick a deployment (the proxy's path);
- ``router.get_available_deployment(model="gpt-group", messages=[...])``, the
  synchronous variant ``Router.completion`` uses, for ``simple-shuffle`` and
  ``latency-based-routing`` (it has no cost-based branch).

Nothing leaves the machine: only the routing-decision functions are timed, the warm-up
completions are mocked, every ``api_base`` is 127.0.0.1, ``LITELLM_LOCAL_MODEL_COST_MAP``
keeps LiteLLM from downloading its price map at import, and where ``unshare -n`` works
the LiteLLM worker runs in a fresh network namespace that has no interface but loopback.

Harness (the same for both sides, this file in ``--worker`` mode): every round starts
one fresh subprocess per side, the order of the two sides flips every round; in a
worker each case gets an untimed warm-up, then ``--batches`` timed loops of N calls
(``time.perf_counter_ns`` around the loop, the cyclic GC off, the bound method in a
local), and the round's figure is the median batch's mean per call. For the async
cases the loop runs inside one coroutine on one event loop (``await`` per call); the
tasks LiteLLM schedules per decision (a service-logger hook) are created inside the
timed loop and run after it, untimed. Medians over rounds are reported, with the ratio
of the medians and the median of per-round (paired) ratios.

Target (reported, not asserted): the ``balanced`` decision over 20 providers under
10 µs median.

Run: ``.venv/bin/python benches/provider_decision.py [--rounds 7] [--json PATH]``;
``--no-litellm`` times fleetroute alone (no install, no subprocess for LiteLLM).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__: list[str] = []

ROOT = Path(__file__).resolve().parent.parent
FLEETROUTE_VENV = ROOT / ".venv"
LITELLM_VENV = ROOT / "target" / "litellm-venv"
LITELLM_PACKAGE = "litellm==1.80.0"

PROVIDERS = 20
SEED = 2026
PROMPT = "Summarise the attached quarterly report in three short bullet points."[:64]
MAX_TOKENS = 256
MESSAGES = [{"role": "user", "content": PROMPT}]
WARM_COMPLETIONS = 40
TARGET_US = 10.0

#: Calls per timed batch: fleetroute decisions take microseconds, LiteLLM's hundreds.
FLEETROUTE_CALLS = 5_000
LITELLM_CALLS = 300

FLEETROUTE_CASES = (
    "choose",
    "choose+budget",
    "IntelligentRouter.route",
    "score_lists",
    "eligible",
    "empty call",
)
LITELLM_CASES = (
    ("async", "simple-shuffle"),
    ("async", "cost-based-routing"),
    ("async", "latency-based-routing"),
    ("sync", "simple-shuffle"),
    ("sync", "latency-based-routing"),
)
HEADLINE = "choose"

RESULT_MARK = "RESULT "


# --------------------------------------------------------------------------------------
# Worker side. Standard library only at import time: the LiteLLM environment has no
# fleetroute, the fleetroute environment has no LiteLLM.
# --------------------------------------------------------------------------------------


def _provider_specs() -> list[dict[str, Any]]:
    """The 20 providers (the same for both sides): a fixed draw from ``SEED``."""
    rng = random.Random(SEED)
    specs = []
    for i in range(PROVIDERS):
        price_in = rng.uniform(0.1, 15.0) / 1000.0  # USD per 1k tokens
        specs.append(
            {
                "name": f"p{i:02d}",
                "latency_ms": rng.uniform(200.0, 3000.0),
                "quality": rng.uniform(0.60, 0.95),
                "input_per_1k": price_in,
                "output_per_1k": price_in * rng.uniform(1.0, 4.0),
                "availability": rng.uniform(0.96, 1.0),
                "load": rng.uniform(0.0, 1.0),
            }
        )
    return specs


def _time_batches(call: Callable[[], object], calls: int, batches: int) -> list[float]:
    """Mean ns per call of each of ``batches`` loops of ``calls`` calls (GC off)."""
    for _ in range(max(100, calls // 10)):
        call()
    out = []
    rng = range(calls)
    for _ in range(batches):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for _ in rng:
                call()
            elapsed = time.perf_counter_ns() - start
        finally:
            gc.enable()
        out.append(elapsed / calls)
    return out


def _fleetroute_worker(batches: int) -> dict[str, Any]:
    from fleetroute.routers.intelligent_router import IntelligentRouter
    from fleetroute.scoring.provider import Provider
    from fleetroute.scoring.provider_metrics import LLMRequest, ProviderMetrics
    from fleetroute.scoring.provider_scoring import ProviderScorer

    def metrics() -> list[ProviderMetrics]:
        return [
            ProviderMetrics(
                s["name"],
                s["latency_ms"],
                s["quality"],
                (s["input_per_1k"] + s["output_per_1k"]) / 2,
                s["availability"],
                s["load"],
                input_cost_per_1k=s["input_per_1k"],
                output_cost_per_1k=s["output_per_1k"],
            )
            for s in _provider_specs()
        ]

    providers = metrics()
    request = LLMRequest(PROMPT, max_tokens=MAX_TOKENS, task_type="summarization")
    costs = sorted(p.estimate_cost(request.prompt_tokens, MAX_TOKENS) for p in providers)
    # A budget between the 18th and 19th cheapest estimate: 18 of 20 stay eligible.
    budget = (costs[17] + costs[18]) / 2
    budget_request = LLMRequest(
        PROMPT, max_tokens=MAX_TOKENS, task_type="summarization", budget=budget
    )
    scorer = ProviderScorer("balanced", rng=random.Random(SEED))
    router = IntelligentRouter(
        "balanced", providers=[(Provider(m.provider), m) for m in metrics()], seed=SEED
    )
    choose, route = scorer.choose, router.route
    chosen = {
        "choose": choose(providers, request).provider,
        "choose+budget": choose(providers, budget_request).provider,
        "IntelligentRouter.route": route(request).name,
        "score_lists": "-",
        "eligible": "-",
        "empty call": "-",
    }
    eligible_with_budget = len(scorer.eligible(providers, budget_request))
    quality = [m.quality_score for m in providers]
    cost = [m.blended_price for m in providers]
    latency = [m.avg_latency for m in providers]
    score_lists, eligible = scorer.score_lists, scorer.eligible

    def empty() -> None:
        return None

    cases: dict[str, Callable[[], object]] = {
        "choose": lambda: choose(providers, request),
        "choose+budget": lambda: choose(providers, budget_request),
        "IntelligentRouter.route": lambda: route(request),
        # Breakdown, each part in its own loop: the scoring arithmetic on ready lists,
        # the constraint filter (the public method; `choose` inlines the same test),
        # and what the harness itself costs per call (a lambda calling a no-op).
        "score_lists": lambda: score_lists(quality, cost, latency, 0.0),
        "eligible": lambda: eligible(providers, request),
        "empty call": lambda: empty(),
    }
    results = {
        name: _time_batches(cases[name], FLEETROUTE_CALLS, batches) for name in FLEETROUTE_CASES
    }
    import importlib.metadata as md

    return {
        "results": results,
        "chosen": chosen,
        "eligible_with_budget": eligible_with_budget,
        "version": md.version("fleetroute"),
    }


def _litellm_model_list() -> list[dict[str, Any]]:
    return [
        {
            "model_name": "gpt-group",
            "litellm_params": {
                "model": f"openai/mock-{s['name']}",
                "api_key": "sk-mock-not-a-key",
                "api_base": "http://127.0.0.1:9/v1",
                "mock_response": "ok",
                "input_cost_per_token": s["input_per_1k"] / 1000.0,
                "output_cost_per_token": s["output_per_1k"] / 1000.0,
            },
            "model_info": {"id": s["name"]},
        }
        for s in _provider_specs()
    ]


def _litellm_worker(batches: int) -> dict[str, Any]:
    import importlib.metadata as md

    import litellm

    litellm.suppress_debug_info = True
    results: dict[str, list[float]] = {}
    chosen: dict[str, str] = {}

    async def warm(router: Any) -> None:
        for _ in range(WARM_COMPLETIONS):
            response = await router.acompletion(model="gpt-group", messages=MESSAGES)
            assert response.choices[0].message.content == "ok"
        await asyncio.sleep(0.2)  # let the success callbacks record latency and usage

    async def time_async(router: Any, key: str) -> None:
        pick = router.async_get_available_deployment
        first = await pick(model="gpt-group", messages=MESSAGES, request_kwargs={})
        chosen[key] = first["model_info"]["id"]
        for _ in range(LITELLM_CALLS // 10):
            await pick(model="gpt-group", messages=MESSAGES, request_kwargs={})
        samples = []
        calls = range(LITELLM_CALLS)
        for _ in range(batches):
            await asyncio.sleep(0)  # run the hooks the previous batch scheduled
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter_ns()
                for _ in calls:
                    await pick(model="gpt-group", messages=MESSAGES, request_kwargs={})
                elapsed = time.perf_counter_ns() - start
            finally:
                gc.enable()
            samples.append(elapsed / LITELLM_CALLS)
        results[key] = samples
        await asyncio.sleep(0.05)

    # One event loop for every async step: LiteLLM binds internal queues to the first.
    loop = asyncio.new_event_loop()
    for mode, strategy in LITELLM_CASES:
        key = f"{mode} {strategy}"
        router = litellm.Router(model_list=_litellm_model_list(), routing_strategy=strategy)
        loop.run_until_complete(warm(router))
        if mode == "async":
            loop.run_until_complete(time_async(router, key))
            continue
        # Synchronous code, no running event loop: the direct caller's cost. (Under a
        # running loop LiteLLM's cooldown lookup also starts a thread per call.)
        sync_pick = router.get_available_deployment

        def pick_sync(pick: Any = sync_pick) -> object:
            return pick(model="gpt-group", messages=MESSAGES)

        chosen[key] = pick_sync()["model_info"]["id"]  # type: ignore[index]
        results[key] = _time_batches(pick_sync, LITELLM_CALLS, batches)
    loop.run_until_complete(asyncio.sleep(0.05))
    return {"results": results, "chosen": chosen, "version": md.version("litellm")}


# --------------------------------------------------------------------------------------
# Driver side.
# --------------------------------------------------------------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _ensure_litellm() -> Path:
    """Creates the LiteLLM environment (PyPI only) if it is missing or lacks LiteLLM."""
    python = _venv_python(LITELLM_VENV)
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
    want = LITELLM_PACKAGE.split("==")[1]
    if python.exists():
        proc = subprocess.run(probe, capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip() == want:
            return python
    print(f"creating {LITELLM_VENV.relative_to(ROOT)} with {LITELLM_PACKAGE} ...", file=sys.stderr)
    LITELLM_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", LITELLM_PACKAGE], check=True)
    return python


def _isolation_prefix() -> list[str]:
    """``unshare -n`` (a network namespace with only loopback) where it works."""
    try:
        ok = subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    except OSError:
        ok = False
    return ["unshare", "-n"] if ok else []


def _run_worker(python: Path, side: str, batches: int, prefix: list[str]) -> dict[str, Any]:
    cmd = [
        *prefix,
        str(python),
        str(Path(__file__).resolve()),
        "--worker",
        side,
        "--batches",
        str(batches),
    ]
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "NO_PROXY": "*",
    }
    for attempt in range(3):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode == 0:
            for line in reversed(proc.stdout.splitlines()):
                if line.startswith(RESULT_MARK):
                    result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
                    return result
        # A shared dev venv may be mid-reinstall (`make .venv/.native`): retry briefly.
        print(f"{side} worker failed (attempt {attempt + 1}), retrying", file=sys.stderr)
        time.sleep(5)
    raise RuntimeError(f"worker failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr}")


def _us(ns: float) -> str:
    return f"{ns / 1000:.2f} µs"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _drive(args: argparse.Namespace) -> int:
    med = statistics.median
    candidate = _venv_python(FLEETROUTE_VENV)
    ours = Path(args.fleetroute_python or (candidate if candidate.exists() else sys.executable))
    theirs = None if args.no_litellm else _ensure_litellm()
    prefix = _isolation_prefix()
    sides = ["fleetroute"] if theirs is None else ["fleetroute", "litellm"]
    per_round: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
    meta: dict[str, dict[str, Any]] = {}
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            if side == "fleetroute":
                res = _run_worker(ours, side, args.batches, [])
            else:
                assert theirs is not None
                res = _run_worker(theirs, side, args.batches, prefix)
            for case, samples in res["results"].items():
                per_round[side].setdefault(case, []).append(med(samples))
            meta[side] = {k: v for k, v in res.items() if k != "results"}
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    ours_rounds = per_round["fleetroute"]
    headline = ours_rounds[HEADLINE]
    lines = [
        f"Score-stage decision over {PROVIDERS} providers/deployments: {args.rounds} "
        f"interleaved rounds (fresh process per side per round), {args.batches} batches "
        f"per case per round; medians.",
        f"CPU: {_cpu_model()}, {os.cpu_count()} logical CPUs; Python "
        f"{platform.python_version()}; fleetroute {meta['fleetroute']['version']}"
        + ("" if theirs is None else f"; litellm {meta['litellm']['version']}")
        + ("; LiteLLM worker in a network namespace (unshare -n)" if theirs and prefix else "")
        + ".",
        "",
        "| fleetroute case | median per call | min round | max round | chosen |",
        "|---|---:|---:|---:|---|",
    ]
    for case in FLEETROUTE_CASES:
        xs = ours_rounds[case]
        lines.append(
            f"| `{case}` | {_us(med(xs))} | {_us(min(xs))} | {_us(max(xs))} "
            f"| {meta['fleetroute']['chosen'][case]} |"
        )
    verdict = "PASS" if med(headline) / 1000 < TARGET_US else "MISS"
    lines += [
        "",
        f"Target: `ProviderScorer('balanced').choose` over {PROVIDERS} providers < "
        f"{TARGET_US:g} µs median: {_us(med(headline))} -> **{verdict}**",
        f"(`choose+budget` keeps {meta['fleetroute']['eligible_with_budget']} of "
        f"{PROVIDERS} providers.)",
    ]
    summary: dict[str, Any] = {"fleetroute": ours_rounds, "meta": meta, "verdict": verdict}
    if theirs is not None:
        lit = per_round["litellm"]
        lines += [
            "",
            "| LiteLLM `Router` decision | strategy | median per call | min round | max round "
            "| ÷ fleetroute `choose` | paired-ratio median | chosen |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for mode, strategy in LITELLM_CASES:
            key = f"{mode} {strategy}"
            xs = lit[key]
            fn = (
                "await async_get_available_deployment"
                if mode == "async"
                else "get_available_deployment"
            )
            paired = med([x / y for x, y in zip(xs, headline, strict=True)])
            lines.append(
                f"| `{fn}` | {strategy} | {_us(med(xs))} | {_us(min(xs))} | {_us(max(xs))} "
                f"| {med(xs) / med(headline):.1f}x | {paired:.1f}x "
                f"| {meta['litellm']['chosen'][key]} |"
            )
        summary["litellm"] = lit
    print("\n".join(lines), flush=True)
    if args.json:
        summary["config"] = {
            "rounds": args.rounds,
            "batches": args.batches,
            "fleetroute_calls": FLEETROUTE_CALLS,
            "litellm_calls": LITELLM_CALLS,
            "providers": PROVIDERS,
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "network_namespace": bool(prefix),
        }
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per side")
    parser.add_argument("--batches", type=int, default=5, help="timed batches per case per round")
    parser.add_argument("--json", metavar="PATH", help="also write raw samples as JSON")
    parser.add_argument("--no-litellm", action="store_true", help="time fleetroute alone")
    parser.add_argument("--fleetroute-python", help="interpreter with fleetroute installed")
    parser.add_argument("--worker", choices=("fleetroute", "litellm"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker = _fleetroute_worker if args.worker == "fleetroute" else _litellm_worker
        print(RESULT_MARK + json.dumps(worker(args.batches)), flush=True)
        return 0
    return _drive(args)


if __name__ == "__main__":
    sys.exit(main())
