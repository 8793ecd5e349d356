"""``RouterAnalytics``: seed 001's per-provider request, cost and latency tally."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ProviderReport", "RouterAnalytics"]


@dataclass(frozen=True, slots=True)
class ProviderReport:
    """One provider's totals."""

    provider: str
    requests: int
    total_cost: float
    avg_latency: float
    cost_per_request: float


class RouterAnalytics:
    """Counts requests, cost and latency per provider (seed 001's API:
    ``track_request`` and ``generate_report``). Latencies are kept as a running sum,
    not a list, so memory stays constant however many requests are tracked."""

    def __init__(self) -> None:
        self.requests_by_provider: dict[str, int] = {}
        self.total_cost: dict[str, float] = {}
        self._latency_sum: dict[str, float] = {}

    def track_request(self, provider: str, cost: float, latency: float) -> None:
        """Records one request to ``provider`` that cost ``cost`` USD and took
        ``latency`` ms."""
        if not isinstance(provider, str) or not provider:
            raise ValueError(f"provider must be a non-empty name (got {provider!r})")
        for name, value in (("cost", cost), ("latency", latency)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number (got {value!r})")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0 (got {value!r})")
        self.requests_by_provider[provider] = self.requests_by_provider.get(provider, 0) + 1
        self.total_cost[provider] = self.total_cost.get(provider, 0.0) + cost
        self._latency_sum[provider] = self._latency_sum.get(provider, 0.0) + latency

    def report(self) -> list[ProviderReport]:
        """Every provider's totals, in the order first seen."""
        out = []
        for provider, requests in self.requests_by_provider.items():
            cost = self.total_cost[provider]
            out.append(
                ProviderReport(
                    provider,
                    requests,
                    cost,
                    self._latency_sum[provider] / requests,
                    cost / requests,
                )
            )
        return out

    def generate_report(self) -> str:
        """Prints seed 001's report and returns the same text."""
        lines = ["", "📊 Router Performance Report", "=" * 50]
        for row in self.report():
            lines += [
                "",
                f"{row.provider}:",
                f"  Requests: {row.requests}",
                f"  Total Cost: ${row.total_cost:.2f}",
                f"  Avg Latency: {row.avg_latency:.0f}ms",
                f"  Cost/Request: ${row.cost_per_request:.4f}",
            ]
        text = "\n".join(lines)
        print(text)
        return text
