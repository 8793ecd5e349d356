"""A provider (or model) a request can be sent to, and the catalogue a router starts
with when none is given."""

from __future__ import annotations

from dataclasses import dataclass

from fleetroute.scoring.provider_metrics import ProviderMetrics

__all__ = ["DEFAULT_CATALOGUE", "Provider"]


@dataclass(frozen=True, slots=True)
class Provider:
    """A routing target: ``name`` (unique), the ``model`` it serves (seed 001's
    ``TaskBasedRouter`` filters on it), an optional ``region`` and the capabilities it
    offers (for semantic matching)."""

    name: str
    model: str = ""
    region: str | None = None
    capabilities: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"provider name must be a non-empty string (got {self.name!r})")
        if not self.model:
            object.__setattr__(self, "model", self.name)
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))


def _entry(
    name: str, latency_ms: float, quality: float, price_in: float, price_out: float
) -> tuple[Provider, ProviderMetrics]:
    metrics = ProviderMetrics(
        name, latency_ms, quality, (price_in + price_out) / 2, 1.0, 0.0, price_in, price_out
    )
    return Provider(name), metrics


#: The models seed 001 names, with illustrative starting figures: latency (ms),
#: quality (0-1) and USD per 1,000 input / output tokens. They are priors for a router
#: that has observed nothing yet; real deployments pass their own providers and
#: prices, and the averages follow the observed responses.
DEFAULT_CATALOGUE: tuple[tuple[Provider, ProviderMetrics], ...] = (
    _entry("gpt-4", 900.0, 0.95, 0.03, 0.06),
    _entry("gpt-3.5", 400.0, 0.82, 0.0005, 0.0015),
    _entry("claude-opus", 1100.0, 0.94, 0.015, 0.075),
    _entry("claude-sonnet", 700.0, 0.92, 0.003, 0.015),
    _entry("claude-haiku", 300.0, 0.84, 0.00025, 0.00125),
    _entry("gemini-pro", 600.0, 0.88, 0.00125, 0.005),
)
