"""Spending limits for LLM calls, with pacing (seed 004's ``budget``).

A :class:`Budget` caps spend (USD) over a window: a day, a week, a month (30 days) or
any duration. Windows are consecutive fixed intervals from the budget's ``start``; at
each new window the settled spend goes back to 0.

A call is paid for in two steps. Before it, its worst-case cost (:meth:`Pricing.estimate`:
the prompt plus all of ``max_tokens``) is *reserved*, so concurrent calls cannot
together overrun the limit; a budget that cannot afford the reservation refuses it
(the hard cut-off). After it, the reservation is *settled* with the real cost from the
usage the provider reports, or *released* if the call never happened. A reservation
still open when a window ends carries over: it keeps counting against the new window
and, when settled, its cost is charged to the window it is settled in (the bill
arrives when the call completes).

A hard cut-off alone lets a busy morning spend the month's money. Pacing spreads it:
:meth:`Budget.pressure` is a signal in [0, 1] that stays 0 while spend follows the
even pace (``limit`` per ``window``) and rises as spend runs ahead of it, reaching 1
at the limit. The score stage turns pressure into a preference for cheaper models,
so traffic shifts toward them progressively and the budget lasts the window.

:class:`BudgetManager` applies a global budget, per-tenant and per-provider budgets
and the request's own ``budget`` cap together, reserving in all of them or none.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from fleetroute.clock import Clock, monotonic_clock
from fleetroute.durations import parse_duration
from fleetroute.validation import non_negative_number, positive_number

__all__ = [
    "DEFAULT_PACING_BAND",
    "NAMED_WINDOWS",
    "Budget",
    "BudgetExceeded",
    "BudgetManager",
    "Pricing",
    "Reservation",
    "Reservations",
]

#: Window names and their lengths in seconds (a month is 30 days: windows are fixed).
NAMED_WINDOWS: dict[str, float] = {
    "day": 86_400.0,
    "week": 7 * 86_400.0,
    "month": 30 * 86_400.0,
}

#: The pacing shortfall at which pressure reaches 1 (see :meth:`Budget.pressure`).
DEFAULT_PACING_BAND = 0.2

# Relative slack in the affordability test, so that sums of float costs that should
# exactly meet the limit (ten reservations of 0.1 against 1.0) are not refused.
_ROUNDING = 1e-9


def _tokens(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0 (got {value!r})")
    return value


def _window_seconds(window: str | float) -> float:
    if isinstance(window, str):
        named = NAMED_WINDOWS.get(window.strip().lower())
        if named is not None:
            return named
        try:
            return parse_duration(window, "window")
        except ValueError:
            raise ValueError(
                f"window {window!r} is not {', '.join(map(repr, NAMED_WINDOWS))} "
                "nor a duration such as '12h' or '2d'"
            ) from None
    return parse_duration(window, "window")


def _name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string (got {value!r})")
    return value


@dataclass(frozen=True, slots=True)
class Pricing:
    """A model's price in USD per 1,000 tokens, input and output priced apart."""

    input_per_1k: float
    output_per_1k: float

    def __post_init__(self) -> None:
        non_negative_number("input_per_1k", self.input_per_1k, "a price in USD")
        non_negative_number("output_per_1k", self.output_per_1k, "a price in USD")

    def estimate(self, prompt_tokens: int, max_tokens: int) -> float:
        """The most a call can cost: the prompt plus all ``max_tokens`` generated."""
        return self.cost(_tokens("prompt_tokens", prompt_tokens), _tokens("max_tokens", max_tokens))

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """What a call that used these tokens costs."""
        input_tokens = _tokens("input_tokens", input_tokens)
        output_tokens = _tokens("output_tokens", output_tokens)
        return (input_tokens * self.input_per_1k + output_tokens * self.output_per_1k) / 1000.0


class BudgetExceeded(RuntimeError):
    """A budget cannot afford a call: ``budget`` names it, ``needed`` is the amount
    asked for and ``remaining`` what the budget had left."""

    def __init__(self, budget: str, needed: float, remaining: float) -> None:
        super().__init__(f"{budget} cannot afford {needed:g} (remaining {remaining:g})")
        self.budget = budget
        self.needed = needed
        self.remaining = remaining

    def __reduce__(self) -> tuple[type[BudgetExceeded], tuple[str, float, float]]:
        return (type(self), (self.budget, self.needed, self.remaining))


class Reservation:
    """Money held by one budget for one call until it is settled or released.

    Made by :meth:`Budget.reserve`; each is settled or released once, by its budget."""

    __slots__ = ("_amount", "_budget", "_state")

    def __init__(self, budget: Budget, amount: float) -> None:
        self._budget = budget
        self._amount = amount
        self._state = "open"

    @property
    def budget(self) -> Budget:
        return self._budget

    @property
    def amount(self) -> float:
        """The amount held (the call's estimate)."""
        return self._amount

    @property
    def state(self) -> str:
        """``"open"``, ``"settled"`` or ``"released"``."""
        return self._state

    @property
    def open(self) -> bool:
        return self._state == "open"

    def __repr__(self) -> str:
        return f"Reservation({self._budget.name!r}, {self._amount!r}, {self._state})"


class Budget:
    """One spending limit over a rolling-calendar window.

    ``window`` is ``"day"``, ``"week"``, ``"month"`` (30 days) or a duration
    (``"12h"``, ``"2d"``, seconds). Windows follow each other from ``start`` (the
    clock's reading at creation by default); a clock reading before ``start`` counts
    as the start of the first window. ``pacing_band`` shapes :meth:`pressure`.
    Thread-safe.
    """

    def __init__(
        self,
        limit: float,
        window: str | float = "month",
        *,
        clock: Clock = monotonic_clock,
        start: float | None = None,
        name: str = "budget",
        pacing_band: float = DEFAULT_PACING_BAND,
    ) -> None:
        self._limit = positive_number("limit", limit, "an amount in USD")
        self._window = _window_seconds(window)
        band = positive_number("pacing_band", pacing_band)
        if band > 1:
            raise ValueError(f"pacing_band must be in (0, 1] (got {pacing_band!r})")
        self._band = band
        self.name = _name("name", name)
        if start is None:
            start = clock()
        if isinstance(start, bool) or not isinstance(start, int | float):
            raise ValueError(f"start must be a clock reading in seconds (got {start!r})")
        if not math.isfinite(start):
            raise ValueError(f"start must be finite (got {start!r})")
        self._clock = clock
        self._start = float(start)
        self._index = 0  # the window the spend below belongs to
        self._spent = 0.0
        self._reserved = 0.0
        self._open = 0  # open reservations: at 0, _reserved is reset to exactly 0
        self._lock = threading.Lock()

    @property
    def limit(self) -> float:
        return self._limit

    @property
    def window_seconds(self) -> float:
        return self._window

    @property
    def pacing_band(self) -> float:
        return self._band

    @property
    def spent(self) -> float:
        """Settled spend in the current window."""
        with self._lock:
            self._roll()
            return self._spent

    @property
    def reserved(self) -> float:
        """Held by open reservations (those carried over from earlier windows included)."""
        with self._lock:
            self._roll()
            return self._reserved

    @property
    def remaining(self) -> float:
        """What can still be reserved in the current window (never below 0)."""
        with self._lock:
            self._roll()
            return max(0.0, self._limit - self._spent - self._reserved)

    @property
    def window_start(self) -> float:
        """The clock reading at which the current window began."""
        with self._lock:
            self._roll()
            return self._start + self._index * self._window

    def _roll(self) -> float:
        """Moves to the window the clock is in (resetting spend if it is a new one) and
        returns the elapsed fraction of that window, in [0, 1)."""
        offset = self._clock() - self._start
        if offset <= 0:
            return 0.0
        index = math.floor(offset / self._window)
        if index > self._index:
            self._index = index
            self._spent = 0.0
        elif index < self._index:  # a clock that steps back stays in the newest window
            return 0.0
        # Clamped: float division can land a hair outside [0, 1) at a window's edge.
        return min(max(offset / self._window - index, 0.0), math.nextafter(1.0, 0.0))

    def _affords(self, amount: float) -> bool:
        return self._spent + self._reserved + amount <= self._limit * (1.0 + _ROUNDING)

    def can_afford(self, amount: float) -> bool:
        """Whether ``spent + reserved + amount <= limit`` in the current window."""
        amount = non_negative_number("amount", amount, "an amount in USD")
        with self._lock:
            self._roll()
            return self._affords(amount)

    def reserve(self, amount: float) -> Reservation:
        """Holds ``amount`` (a call's estimate) or raises :class:`BudgetExceeded`."""
        amount = non_negative_number("amount", amount, "an amount in USD")
        with self._lock:
            self._roll()
            if not self._affords(amount):
                remaining = max(0.0, self._limit - self._spent - self._reserved)
                raise BudgetExceeded(self.name, amount, remaining)
            self._reserved += amount
            self._open += 1
            return Reservation(self, amount)

    def _check_open(self, reservation: object) -> Reservation:
        if not isinstance(reservation, Reservation):
            raise ValueError(f"expected a Reservation (got {type(reservation).__name__})")
        if reservation._budget is not self:
            raise ValueError(
                f"the reservation belongs to {reservation._budget.name!r}, not {self.name!r}"
            )
        if reservation._state != "open":
            raise ValueError(f"the reservation was already {reservation._state}")
        return reservation

    def _close(self, reservation: Reservation, state: str) -> None:
        reservation._state = state
        self._open -= 1
        # Exactly 0 with nothing open, so float residue cannot pile up over a month.
        self._reserved = max(0.0, self._reserved - reservation._amount) if self._open else 0.0

    def settle(self, reservation: Reservation, actual: float) -> None:
        """Replaces the reservation's estimate by the call's real cost. ``actual`` may
        exceed the estimate: it is recorded all the same, and spend can pass the limit."""
        actual = non_negative_number("actual", actual, "an amount in USD")
        with self._lock:
            self._check_open(reservation)
            self._roll()
            self._close(reservation, "settled")
            self._spent += actual

    def release(self, reservation: Reservation) -> None:
        """Gives the reservation back: the call never happened."""
        with self._lock:
            self._check_open(reservation)
            self._close(reservation, "released")

    def _pressure(self, elapsed: float) -> float:
        used = (self._spent + self._reserved) / self._limit
        if used <= elapsed:
            return 0.0
        if used >= 1.0:
            return 1.0
        # elapsed < used < 1, so 1 - elapsed > 0.
        shortfall = 1.0 - (1.0 - used) / (1.0 - elapsed)
        return min(1.0, shortfall / self._band)

    def pressure(self) -> float:
        """The pacing signal, in [0, 1].

        With ``u = (spent + reserved) / limit`` (the share of the budget used, open
        reservations included) and ``t`` the elapsed share of the window,

            shortfall = 1 - (1 - u) / (1 - t)
            pressure  = clamp(shortfall / pacing_band, 0, 1)

        ``(1 - u) / (1 - t)`` is the spend rate the rest of the budget allows over the
        rest of the window, relative to the even pace ``limit / window``; the shortfall
        is how much slower than the even pace spending must go from now on. So pressure
        is 0 while spend is on or under the even pace (``u <= t``), grows with spend
        (never decreasing as ``u`` rises), reaches 1 once spending must slow by
        ``pacing_band`` or more, and is 1 at or over the limit.

        A router that picks an expensive model with probability ``1 - pressure`` and a
        cheap one otherwise settles at a steady shortfall, at which the rest of the
        budget always covers the rest of the window, provided the cheap model alone
        spends at most ``1 - pacing_band`` of the even pace. A smaller band reacts
        more sharply; ``pacing_band=1`` gives the plain ratio ``(u - t) / (1 - t)``.
        """
        with self._lock:
            return self._pressure(self._roll())

    def snapshot(self) -> dict[str, float]:
        """The budget's state, read at once: limit, window (length, start, elapsed
        share), spend, reservations, remaining, used share and pressure."""
        with self._lock:
            elapsed = self._roll()
            return {
                "limit": self._limit,
                "window_seconds": self._window,
                "window_start": self._start + self._index * self._window,
                "elapsed_fraction": elapsed,
                "spent": self._spent,
                "reserved": self._reserved,
                "remaining": max(0.0, self._limit - self._spent - self._reserved),
                "used_fraction": (self._spent + self._reserved) / self._limit,
                "pressure": self._pressure(elapsed),
            }

    def __repr__(self) -> str:
        return f"Budget({self.name!r}, limit={self._limit!r}, window={self._window!r})"


class Reservations:
    """What :meth:`BudgetManager.reserve` holds for one call: a reservation in each
    applicable budget (none when no budget applies). Settled or released once."""

    __slots__ = ("_estimate", "_items", "_manager", "_state")

    def __init__(
        self, manager: BudgetManager, estimate: float, items: tuple[Reservation, ...]
    ) -> None:
        self._manager = manager
        self._estimate = estimate
        self._items = items
        self._state = "open"

    @property
    def estimate(self) -> float:
        return self._estimate

    @property
    def items(self) -> tuple[Reservation, ...]:
        return self._items

    @property
    def budgets(self) -> tuple[str, ...]:
        """The names of the budgets holding money for the call."""
        return tuple(r.budget.name for r in self._items)

    @property
    def state(self) -> str:
        """``"open"``, ``"settled"`` or ``"released"``."""
        return self._state

    @property
    def open(self) -> bool:
        return self._state == "open"

    def __repr__(self) -> str:
        return f"Reservations({self._estimate!r}, {list(self.budgets)}, {self._state})"


class BudgetManager:
    """Global, per-tenant and per-provider budgets applied together.

    A call is checked against the global budget, its tenant's and its provider's
    (those that are set) and against the request's own ``budget`` cap. Setting a
    budget that already exists replaces it with a fresh one (its spend so far is not
    carried); reservations held by the old one still settle or release against it.
    """

    def __init__(
        self, *, clock: Clock = monotonic_clock, pacing_band: float = DEFAULT_PACING_BAND
    ) -> None:
        self._clock = clock
        # Checked here so a bad band fails at construction, not at the first set_*.
        band = positive_number("pacing_band", pacing_band)
        if band > 1:
            raise ValueError(f"pacing_band must be in (0, 1] (got {pacing_band!r})")
        self._band = band
        self._global: Budget | None = None
        self._tenants: dict[str, Budget] = {}
        self._providers: dict[str, Budget] = {}
        self._lock = threading.Lock()  # guards the three tables, not the budgets

    def _budget(self, name: str, limit: float, window: str | float) -> Budget:
        return Budget(limit, window, clock=self._clock, name=name, pacing_band=self._band)

    def set_global(self, limit: float, window: str | float = "month") -> Budget:
        """Sets the budget every call counts against."""
        budget = self._budget("global budget", limit, window)
        with self._lock:
            self._global = budget
        return budget

    def set_tenant(self, tenant: str, limit: float, window: str | float = "month") -> Budget:
        """Sets ``tenant``'s budget."""
        tenant = _name("tenant", tenant)
        budget = self._budget(f"tenant {tenant!r} budget", limit, window)
        with self._lock:
            self._tenants[tenant] = budget
        return budget

    def set_provider(self, provider: str, limit: float, window: str | float = "month") -> Budget:
        """Sets ``provider``'s budget."""
        provider = _name("provider", provider)
        budget = self._budget(f"provider {provider!r} budget", limit, window)
        with self._lock:
            self._providers[provider] = budget
        return budget

    @property
    def global_budget(self) -> Budget | None:
        return self._global

    def tenant_budget(self, tenant: str) -> Budget | None:
        return self._tenants.get(tenant)

    def provider_budget(self, provider: str) -> Budget | None:
        return self._providers.get(provider)

    def budgets(self, provider: str | None = None, tenant: str | None = None) -> list[Budget]:
        """The budgets that apply to a call: global, the tenant's, the provider's."""
        with self._lock:
            found = [] if self._global is None else [self._global]
            if tenant is not None and tenant in self._tenants:
                found.append(self._tenants[tenant])
            if provider is not None and provider in self._providers:
                found.append(self._providers[provider])
        return found

    @staticmethod
    def _request_cap(estimate: float, request_budget: float | None) -> str | None:
        if request_budget is None:
            return None
        cap = non_negative_number("request_budget", request_budget, "an amount in USD")
        return f"request budget {cap:g} < estimate {estimate:g}" if cap < estimate else None

    def check(
        self,
        provider: str,
        tenant: str | None,
        estimate: float,
        request_budget: float | None = None,
    ) -> str | None:
        """None if the call fits the request's cap and every applicable budget can
        afford ``estimate``; else the reason: ``"request budget 0.01 < estimate 0.02"``
        or the refusing budget's name (``"global budget"``, ``"tenant 'acme' budget"``,
        ``"provider 'gpt-4' budget"``). Reserves nothing."""
        provider = _name("provider", provider)
        estimate = non_negative_number("estimate", estimate, "an amount in USD")
        reason = self._request_cap(estimate, request_budget)
        if reason is not None:
            return reason
        for budget in self.budgets(provider, tenant):
            if not budget.can_afford(estimate):
                return budget.name
        return None

    def reserve(
        self,
        provider: str,
        tenant: str | None,
        estimate: float,
        request_budget: float | None = None,
    ) -> Reservations:
        """Reserves ``estimate`` in every applicable budget, or in none: raises
        :class:`BudgetExceeded` naming the first that refuses (``"request budget"``,
        with the cap as ``remaining``, when the estimate is over the request's cap)."""
        provider = _name("provider", provider)
        estimate = non_negative_number("estimate", estimate, "an amount in USD")
        if self._request_cap(estimate, request_budget) is not None:
            raise BudgetExceeded("request budget", estimate, float(request_budget or 0.0))
        held: list[Reservation] = []
        try:
            for budget in self.budgets(provider, tenant):
                held.append(budget.reserve(estimate))
        except BaseException:
            for reservation in held:
                reservation.budget.release(reservation)
            raise
        return Reservations(self, estimate, tuple(held))

    def _check_open(self, reservations: object) -> Reservations:
        if not isinstance(reservations, Reservations):
            raise ValueError(f"expected Reservations (got {type(reservations).__name__})")
        if reservations._manager is not self:
            raise ValueError("the reservations were made by another BudgetManager")
        if reservations._state != "open":
            raise ValueError(f"the reservations were already {reservations._state}")
        for item in reservations._items:
            # One closed directly through its budget: refuse before changing any.
            if not item.open:
                raise ValueError(f"the reservation in {item.budget.name} was already {item.state}")
        return reservations

    def settle(self, reservations: Reservations, actual: float) -> None:
        """Charges the call's real cost to every budget that held money for it."""
        actual = non_negative_number("actual", actual, "an amount in USD")
        reservations = self._check_open(reservations)
        reservations._state = "settled"
        for reservation in reservations._items:
            reservation.budget.settle(reservation, actual)

    def release(self, reservations: Reservations) -> None:
        """Gives back what every budget held for a call that never happened."""
        reservations = self._check_open(reservations)
        reservations._state = "released"
        for reservation in reservations._items:
            reservation.budget.release(reservation)

    def pressure(self, provider: str | None = None, tenant: str | None = None) -> float:
        """The highest pressure among the applicable budgets (global, the tenant's,
        the provider's); 0 when none is set."""
        return max((b.pressure() for b in self.budgets(provider, tenant)), default=0.0)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Every budget's :meth:`Budget.snapshot`, by budget name."""
        with self._lock:
            everything = [self._global] if self._global is not None else []
            everything += [*self._tenants.values(), *self._providers.values()]
        return {b.name: b.snapshot() for b in everything}
