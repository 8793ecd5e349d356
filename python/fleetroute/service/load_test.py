"""``fleetroute bench``: a small closed-loop load generator for the routing endpoints.

``concurrency`` connections each send their next request as soon as the last one
answered, until ``requests`` have been sent. Latency is measured per HTTP call; with
``batch`` each call routes that many requests through ``/api/v1/route/batch`` and the
routes per second count routes, not calls. It is a Python client, so on a small
machine it can be the bottleneck: wrk (``benches/service_load.py``) measures the
service itself.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import numpy as np
from tqdm import tqdm

__all__ = ["LoadTestError", "run_load_test"]

_REQUEST = {"type": "inference", "data": [0.1, 0.2, 0.3], "priority": 0.8, "complexity": 0.5}


class LoadTestError(RuntimeError):
    """The load test could not run (service unreachable, refused requests)."""


def run_load_test(
    url: str,
    *,
    requests: int = 2_000,
    concurrency: int = 16,
    batch: int = 0,
    strategy: str | None = None,
    api_key: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Runs the load test and returns its report."""
    for name, value in (("requests", requests), ("concurrency", concurrency)):
        if value < 1:
            raise LoadTestError(f"{name} must be >= 1 (got {value})")
    if batch < 0:
        raise LoadTestError(f"batch must be >= 0 (got {batch})")
    return asyncio.run(
        _run(url.rstrip("/"), requests, concurrency, batch, strategy, api_key, progress)
    )


async def _run(
    url: str,
    requests: int,
    concurrency: int,
    batch: int,
    strategy: str | None,
    api_key: str | None,
    progress: bool,
) -> dict[str, Any]:
    if batch:
        path = "/api/v1/route/batch"
        body: dict[str, Any] = {"requests": [_REQUEST] * batch}
    else:
        path = "/api/v1/route"
        body = {"data": _REQUEST}
    if strategy:
        body["routing_strategy"] = strategy
    headers = {"X-API-Key": api_key} if api_key else {}
    latencies: list[float] = []
    failures: dict[int, int] = {}
    remaining = requests
    bar = tqdm(total=requests, unit="call", disable=not progress, desc=path)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        try:
            probe = await client.get("/health")
        except httpx.HTTPError as exc:
            raise LoadTestError(f"cannot reach {url}: {exc}") from None
        if probe.status_code >= 500:
            raise LoadTestError(f"{url}/health answered {probe.status_code}")

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                response = await client.post(path, json=body)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    failures[response.status_code] = failures.get(response.status_code, 0) + 1
                bar.update(1)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    bar.close()
    if failures and sum(failures.values()) == requests:
        raise LoadTestError(f"every request failed: {failures} (check --api-key)")
    ms = np.asarray(latencies) * 1000.0
    routes = requests * (batch or 1)
    return {
        "endpoint": path,
        "calls": requests,
        "routes": routes,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "routes_per_s": round(routes / elapsed, 1),
        "calls_per_s": round(requests / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
        "errors": failures,
    }
