"""What the router knows of each provider (or model endpoint): seed 001's
``ProviderMetrics``, kept current from every observed response.

Latency and quality are exponentially weighted moving averages (seed 001 uses a
weight of 0.1 for the new observation; so does ``alpha`` here). Availability follows
seed 001's multiplicative rule (x0.95 on an error, x1.01 on a success, capped at 1),
which reacts fast to failures and recovers slowly. Prices are per 1,000 tokens, with
input and output priced apart where the provider does so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fleetroute.validation import non_negative_number

__all__ = ["LLMRequest", "ProviderMetrics", "Response", "estimate_tokens"]


_PRICE_FIELDS = frozenset({"cost_per_1k_tokens", "input_cost_per_1k", "output_cost_per_1k"})


def _fraction(name: str, value: object) -> float:
    number = non_negative_number(name, value)
    if number > 1:
        raise ValueError(f"{name} must be in [0, 1] (got {value!r})")
    return number


@dataclass
class ProviderMetrics:
    """Seed 001's record: ``ProviderMetrics(provider, avg_latency, quality_score,
    cost_per_1k_tokens, availability, current_load)``.

    ``avg_latency`` is in milliseconds; ``quality_score``, ``availability`` and
    ``current_load`` are in [0, 1]. ``cost_per_1k_tokens`` is the price when input and
    output cost the same; ``input_cost_per_1k`` / ``output_cost_per_1k`` override it.
    """

    provider: str
    avg_latency: float
    quality_score: float
    cost_per_1k_tokens: float
    availability: float = 1.0
    current_load: float = 0.0
    input_cost_per_1k: float | None = None
    output_cost_per_1k: float | None = None
    requests: int = field(default=0, compare=False)
    errors: int = field(default=0, compare=False)
    #: One price to rank by: the mean of the input and output prices per 1,000 tokens.
    blended_price: float = field(default=0.0, init=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.provider, str) or not self.provider:
            raise ValueError(f"provider must be a non-empty name (got {self.provider!r})")
        where = f"provider {self.provider!r}"
        self.avg_latency = non_negative_number(f"{where} avg_latency", self.avg_latency)
        self.quality_score = _fraction(f"{where} quality_score", self.quality_score)
        self.cost_per_1k_tokens = non_negative_number(
            f"{where} cost_per_1k_tokens", self.cost_per_1k_tokens
        )
        self.availability = _fraction(f"{where} availability", self.availability)
        self.current_load = _fraction(f"{where} current_load", self.current_load)
        for name in ("input_cost_per_1k", "output_cost_per_1k"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, non_negative_number(f"{where} {name}", value))

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name in _PRICE_FIELDS and hasattr(self, "output_cost_per_1k"):
            # Kept as a plain attribute: scoring reads it for every candidate.
            object.__setattr__(self, "blended_price", (self.input_price + self.output_price) / 2)

    @property
    def input_price(self) -> float:
        """USD per 1,000 input tokens."""
        price = self.input_cost_per_1k
        return self.cost_per_1k_tokens if price is None else price

    @property
    def output_price(self) -> float:
        """USD per 1,000 output tokens."""
        price = self.output_cost_per_1k
        return self.cost_per_1k_tokens if price is None else price

    def estimate_cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for a call of ``input_tokens`` in and ``output_tokens`` out."""
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1000.0

    def observe(self, response: Response, alpha: float = 0.1) -> None:
        """Folds one response into the averages (seed 001's ``update_metrics``)."""
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1] (got {alpha!r})")
        self.requests += 1
        if response.error:
            self.errors += 1
            self.availability *= 0.95
            return
        self.availability = min(1.0, self.availability * 1.01)
        if response.latency is not None:
            self.avg_latency += alpha * (response.latency - self.avg_latency)
        if response.quality_score is not None:
            self.quality_score += alpha * (response.quality_score - self.quality_score)


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One request to route: seed 001's ``LLMRequest("prompt")`` plus what routing
    may use: the expected output (``max_tokens``), a task type if the caller knows
    it, the tenant and tier, a per-request budget (USD), a region, and required
    capabilities."""

    prompt: str
    max_tokens: int = 256
    task_type: str | None = None
    tenant: str | None = None
    tier: str | None = None
    budget: float | None = None
    region: str | None = None
    capabilities: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise ValueError(f"prompt must be a string (got {type(self.prompt).__name__})")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise ValueError(f"max_tokens must be an integer >= 1 (got {self.max_tokens!r})")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be an integer >= 1 (got {self.max_tokens!r})")
        if self.budget is not None:
            non_negative_number("budget", self.budget)
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))

    @property
    def prompt_tokens(self) -> int:
        return estimate_tokens(self.prompt)


@dataclass(frozen=True, slots=True)
class Response:
    """What came back: latency in ms, an optional quality score in [0, 1] (a grader's
    or a user's), an error if the call failed, and the tokens actually used."""

    latency: float | None = None
    quality_score: float | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    def __post_init__(self) -> None:
        if self.latency is not None:
            non_negative_number("latency", self.latency)
        if self.quality_score is not None:
            _fraction("quality_score", self.quality_score)
        for name in ("input_tokens", "output_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0 (got {value!r})")


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` for pricing before the call: about four characters per token
    for English (OpenAI's rule of thumb), at least one."""
    return max(1, math.ceil(len(text) / 4))
