"""Gating throughput: Switch top-1 over 1,000,000 tokens x 32 experts, JAX (jit) against
the numpy reference in the same run, and the neural gate's decisions per second.

Routing is per group of ``--group`` tokens (1,024 by default), as Switch Transformer and
GShard do: the dispatch tensor of one group is group x experts x capacity, so routing a
million tokens at once would need O(tokens^2) memory. JAX routes ``--chunk`` groups per
call with ``jax.vmap`` and returns the dispatch and combine tensors (forced with
``block_until_ready``); the reference, written with Python loops for clarity, routes a
sample of groups, and its rate is tokens per second over that sample. Medians over
rounds; compilation is excluded (one untimed warm-up call). CPU only unless JAX sees an
accelerator, whose name is printed.

    .venv/bin/python benches/moe_gating.py [--tokens 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import jax
import numpy as np

from fleetroute.moe import gating, reference
from fleetroute.moe.dynamic_moe import DynamicMoE


def _jax_rate(logits: np.ndarray[Any, Any], chunk: int, capacity_factor: float) -> float:
    route = jax.jit(
        jax.vmap(
            lambda x: _pair(gating.switch_gating(x, capacity_factor=capacity_factor, check=False))
        )
    )
    groups = logits.shape[0]
    device_logits = [jax.device_put(logits[i : i + chunk]) for i in range(0, groups, chunk)]
    jax.block_until_ready(route(device_logits[0]))  # compile
    start = time.perf_counter()
    for block in device_logits:
        jax.block_until_ready(route(block))
    elapsed = time.perf_counter() - start
    return groups * logits.shape[1] / elapsed


def _pair(r: gating.TokenChoiceRouting) -> tuple[jax.Array, jax.Array]:
    return r.dispatch, r.combine


def _reference_rate(logits: np.ndarray[Any, Any], sample: int, capacity_factor: float) -> float:
    start = time.perf_counter()
    for group in logits[:sample]:
        reference.switch_gating(group, capacity_factor=capacity_factor)
    elapsed = time.perf_counter() - start
    return sample * logits.shape[1] / elapsed


def _gate_rate(decisions: int) -> float:
    moe = DynamicMoE(num_experts=32, seed=1)
    requests = [{"input": f"question {i} about integrals"} for i in range(decisions)]
    result = moe.route(requests[0], ["mathematics"])
    moe.observe(result, 0.5)  # compile the gate's forward and update
    start = time.perf_counter()
    for request in requests:
        result = moe.route(request, ["mathematics", "reasoning"])
        moe.observe(result, 0.5)
    return decisions / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--experts", type=int, default=32)
    parser.add_argument("--group", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=16, help="groups per JAX call")
    parser.add_argument("--reference-groups", type=int, default=2)
    parser.add_argument("--capacity-factor", type=float, default=1.25)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    groups = args.tokens // args.group
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(groups, args.group, args.experts)).astype(np.float32)
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}: {jax.devices()[0]}")
    print(
        f"{groups * args.group:,} tokens x {args.experts} experts, groups of {args.group}, "
        f"capacity factor {args.capacity_factor}; {args.rounds} rounds"
    )
    jax_rates, ref_rates, gate_rates = [], [], []
    for _ in range(args.rounds):
        jax_rates.append(_jax_rate(logits, args.chunk, args.capacity_factor))
        ref_rates.append(_reference_rate(logits, args.reference_groups, args.capacity_factor))
        gate_rates.append(_gate_rate(args.decisions))
    jax_median, ref_median = statistics.median(jax_rates), statistics.median(ref_rates)
    print()
    print("| what | median | rounds |")
    print("|---|---:|---|")
    print(
        f"| JAX `switch_gating` (jit, vmap over groups) | {jax_median:,.0f} tokens/s | "
        + ", ".join(f"{r:,.0f}" for r in jax_rates)
        + " |"
    )
    print(
        f"| numpy reference `switch_gating` ({args.reference_groups} groups) | "
        f"{ref_median:,.0f} tokens/s | " + ", ".join(f"{r:,.0f}" for r in ref_rates) + " |"
    )
    print(
        f"| `DynamicMoE` route + observe (32 experts, top-2) | "
        f"{statistics.median(gate_rates):,.0f} decisions/s | "
        + ", ".join(f"{r:,.0f}" for r in gate_rates)
        + " |"
    )
    print()
    print(f"JAX / reference: {jax_median / ref_median:,.0f}x")
    print(f"1,000,000 tokens through JAX: {groups * args.group / jax_median:.2f} s")


if __name__ == "__main__":
    main()
