"""Batch-time-optimising (BTO) scheduler: place deferrable inference requests into time
slots on endpoints so that predicted load plus scheduled work never exceeds capacity.

Model
-----
Time starts at ``now`` and is cut into slots of ``LoadForecast.slot_s`` seconds. For each
endpoint the forecast gives the background load (capacity units already in use) per slot
and the endpoint's capacity; a request holds ``cost_units`` units for ``size_s`` seconds
from its start. A placement is feasible when, in every slot the request overlaps,
``load[slot] + (peak concurrent scheduled units within the overlap) + cost_units <=
capacity``; it also has to start no earlier than ``earliest_start`` (and ``now``), finish
by its ``deadline`` (if any) and by the end of the optimisation window. Slots past the end
of a forecast repeat its last value.

Method
------
Interactive requests are placed first and never deferred: each starts at
``max(earliest_start, now)`` on the endpoint with room and the lowest resulting
utilisation, or is reported as unplaced. Deferrable requests then go through greedy *list
scheduling*: they are taken one at a time in an order given by the objective and each is
put at the best feasible (endpoint, start) pair; candidate starts are the request's
earliest start, every later slot boundary and every completion time of work already on
the endpoint.

* ``minimize_total_time``: higher priority first, then requests with deadlines in
  earliest-deadline-first order, then shortest-size-first (SPT); each goes to the
  placement with the earliest completion time (ECT).
* ``minimize_cost``: same order; each goes to the feasible placement with the lowest
  price (``cost_units`` x the slot prices weighted by overlap), ties broken by ECT.
* ``minimize_peak``: higher priority, then EDF, then largest work (size x units) first;
  each goes to the placement whose resulting peak utilisation (over the slots it
  occupies) is lowest, ties broken by ECT.

Guarantees, stated honestly
---------------------------
Every returned placement satisfies the capacity, earliest-start, deadline and window
constraints (by construction, and checked by the tests). Optimality is *not* claimed:
SPT is optimal for total completion time only on a single machine with all requests
available at once (Smith's rule); with release dates, deadlines and time-varying
capacity the problem is NP-hard and this is a heuristic. Graham's bounds for list
scheduling on identical machines (makespan within ``2 - 1/m`` of optimal for any order,
``4/3 - 1/(3m)`` for largest-first) motivate the orders but do not carry over to
background load and deadlines. A request refused here might have fitted under a
different order; such requests are reported with a reason rather than forced in.
:func:`dispatch_on_arrival` is the baseline the tests compare against: it starts each
request at its arrival on the least-utilised endpoint and models overload as processor
sharing (everything on an endpoint slows down by ``capacity / demand``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from fleetroute.durations import parse_duration
from fleetroute.validation import non_negative_number, positive_number

__all__ = [
    "OBJECTIVES",
    "DeferrableRequest",
    "LoadForecast",
    "Objective",
    "ScheduleResult",
    "ScheduledRequest",
    "UnplacedRequest",
    "dispatch_on_arrival",
    "optimize_request_scheduling",
    "reschedule",
    "schedule",
]

Objective = Literal["minimize_total_time", "minimize_cost", "minimize_peak"]
OBJECTIVES: tuple[str, ...] = ("minimize_total_time", "minimize_cost", "minimize_peak")
_EPS = 1e-9


@dataclass(frozen=True)
class DeferrableRequest:
    """One request to place: ``size_s`` is its estimated service time in seconds,
    ``cost_units`` the capacity units it holds while running. ``deadline`` (absolute
    time) is when it must be finished; ``interactive`` requests are never deferred."""

    id: str
    size_s: float
    earliest_start: float
    deadline: float | None = None
    priority: int = 0
    interactive: bool = False
    cost_units: float = 1

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"request id must be a non-empty string (got {self.id!r})")
        size = positive_number(f"request {self.id!r} size_s", self.size_s, "seconds")
        start = non_negative_number(
            f"request {self.id!r} earliest_start", self.earliest_start, "seconds"
        )
        positive_number(f"request {self.id!r} cost_units", self.cost_units)
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ValueError(f"request {self.id!r} priority must be an int (got {self.priority!r})")
        if not isinstance(self.interactive, bool):
            raise ValueError(
                f"request {self.id!r} interactive must be a bool (got {self.interactive!r})"
            )
        if self.deadline is not None:
            deadline = non_negative_number(f"request {self.id!r} deadline", self.deadline)
            if deadline < start + size - _EPS:
                raise ValueError(
                    f"request {self.id!r}: deadline {deadline} is before earliest_start "
                    f"{start} + size_s {size} = {start + size}"
                )


@dataclass(frozen=True)
class LoadForecast:
    """Predicted background load per endpoint and slot, with each endpoint's capacity.

    ``load[endpoint][k]`` is the load in slot ``k`` (``[k*slot_s, (k+1)*slot_s)`` after the
    schedule's ``now``); ``price`` is either one per-slot sequence shared by all endpoints
    or a per-endpoint mapping (default: 1.0 everywhere). Past its end a sequence repeats
    its last value."""

    capacity: Mapping[str, float]
    load: Mapping[str, Sequence[float]]
    slot_s: float = 60.0
    price: Sequence[float] | Mapping[str, Sequence[float]] | None = None

    def __post_init__(self) -> None:
        positive_number("slot_s", self.slot_s, "seconds")
        if not self.capacity:
            raise ValueError("capacity must name at least one endpoint")
        for name, cap in self.capacity.items():
            positive_number(f"capacity of {name!r}", cap)
        extra = sorted(set(self.load) - set(self.capacity))
        if extra:
            raise ValueError(f"load names endpoints without a capacity: {extra}")
        for name, series in self.load.items():
            for k, value in enumerate(series):
                non_negative_number(f"load of {name!r} in slot {k}", value)
        if isinstance(self.price, Mapping):
            for name, series in self.price.items():
                if name not in self.capacity:
                    raise ValueError(f"price names unknown endpoint {name!r}")
                _check_prices(f"price of {name!r}", series)
        elif self.price is not None:
            _check_prices("price", self.price)

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Endpoint names, in the capacity mapping's order."""
        return tuple(self.capacity)

    def load_at(self, endpoint: str, slot: int) -> float:
        """Predicted background load of ``endpoint`` in ``slot`` (0 without a forecast)."""
        return _at(self.load.get(endpoint, ()), slot, 0.0)

    def price_at(self, endpoint: str, slot: int) -> float:
        """Price per unit-slot of ``endpoint`` in ``slot``."""
        if self.price is None:
            return 1.0
        if isinstance(self.price, Mapping):
            return _at(self.price.get(endpoint, ()), slot, 1.0)
        return _at(self.price, slot, 1.0)

    def without(self, endpoints: Sequence[str]) -> LoadForecast:
        """This forecast with ``endpoints`` removed."""
        gone = set(endpoints)
        price: Sequence[float] | Mapping[str, Sequence[float]] | None = self.price
        if isinstance(self.price, Mapping):
            price = {k: v for k, v in self.price.items() if k not in gone}
        return LoadForecast(
            capacity={k: v for k, v in self.capacity.items() if k not in gone},
            load={k: v for k, v in self.load.items() if k not in gone},
            slot_s=self.slot_s,
            price=price,
        )


def _check_prices(what: str, series: Sequence[float]) -> None:
    for k, value in enumerate(series):
        non_negative_number(f"{what} in slot {k}", value)


def _at(series: Sequence[float], slot: int, default: float) -> float:
    if not series:
        return default
    return float(series[min(slot, len(series) - 1)])


@dataclass(frozen=True)
class ScheduledRequest:
    """A placement: ``id`` runs on ``endpoint`` from ``scheduled_time`` to
    ``completion_time``."""

    id: str
    scheduled_time: float
    endpoint: str
    completion_time: float


@dataclass(frozen=True)
class UnplacedRequest:
    """A request the scheduler could not place, and why."""

    id: str
    reason: str


@dataclass(frozen=True)
class ScheduleResult:
    """The placements (iterating yields them, in start order) and the unplaced requests."""

    scheduled: tuple[ScheduledRequest, ...]
    unplaced: tuple[UnplacedRequest, ...]
    objective: str
    now: float
    window_end: float
    forecast: LoadForecast
    requests: Mapping[str, DeferrableRequest] = field(repr=False)

    def __iter__(self) -> Iterator[ScheduledRequest]:
        return iter(self.scheduled)

    def __len__(self) -> int:
        return len(self.scheduled)

    @property
    def total_completion_time(self) -> float:
        """Sum of completion times of the placed requests, measured from ``now``."""
        return sum(s.completion_time - self.now for s in self.scheduled)

    @property
    def total_cost(self) -> float:
        """Sum of the placed requests' prices under the forecast."""
        return sum(
            _cost(self.forecast, s.endpoint, self.requests[s.id], s.scheduled_time, self.now)
            for s in self.scheduled
        )

    def peak_utilization(self) -> float:
        """Highest (background load + scheduled units) / capacity over endpoints and slots."""
        plan = _Plan(self.forecast, self.now)
        for s in self.scheduled:
            plan.add(s.endpoint, s.scheduled_time, s.completion_time, self.requests[s.id])
        return plan.peak()


class _Plan:
    """Scheduled intervals per endpoint, with the capacity arithmetic."""

    def __init__(self, forecast: LoadForecast, now: float) -> None:
        self.forecast = forecast
        self.now = now
        self.intervals: dict[str, list[tuple[float, float, float]]] = {
            e: [] for e in forecast.endpoints
        }

    def add(self, endpoint: str, start: float, end: float, request: DeferrableRequest) -> None:
        self.intervals.setdefault(endpoint, []).append((start, end, float(request.cost_units)))

    def slots(self, start: float, end: float) -> Iterator[tuple[int, float, float]]:
        """(slot, overlap start, overlap end) for each slot ``[start, end)`` touches."""
        slot_s = self.forecast.slot_s
        k = max(0, math.floor((start - self.now) / slot_s + _EPS))
        while True:
            a = max(start, self.now + k * slot_s)
            b = min(end, self.now + (k + 1) * slot_s)
            if a >= end - _EPS:
                return
            if b > a + _EPS:
                yield k, a, b
            k += 1

    def peak_units(self, endpoint: str, a: float, b: float) -> float:
        """Most scheduled units running at once on ``endpoint`` within ``[a, b)``."""
        events: list[tuple[float, float]] = []
        for s, e, u in self.intervals.get(endpoint, ()):
            if s < b - _EPS and e > a + _EPS:
                events.append((max(s, a), u))
                events.append((e, -u))
        events.sort()
        best = running = 0.0
        for _, delta in events:
            running += delta
            best = max(best, running)
        return best

    def peak_if(self, endpoint: str, start: float, end: float, units: float) -> float | None:
        """Peak utilisation over the slots touched if ``units`` ran in ``[start, end)``,
        or None if that would exceed capacity somewhere."""
        cap = float(self.forecast.capacity[endpoint])
        worst = 0.0
        for k, a, b in self.slots(start, end):
            used = self.forecast.load_at(endpoint, k) + self.peak_units(endpoint, a, b) + units
            if used > cap + _EPS:
                return None
            worst = max(worst, used / cap)
        return worst

    def peak(self) -> float:
        worst = 0.0
        for endpoint in self.forecast.endpoints:
            cap = float(self.forecast.capacity[endpoint])
            ends = [e for _, e, _ in self.intervals.get(endpoint, ())]
            horizon = max([self.now + self.forecast.slot_s, *ends])
            for k, a, b in self.slots(self.now, horizon):
                used = self.forecast.load_at(endpoint, k) + self.peak_units(endpoint, a, b)
                worst = max(worst, used / cap)
        return worst


def _cost(
    forecast: LoadForecast, endpoint: str, request: DeferrableRequest, start: float, now: float
) -> float:
    plan = _Plan(forecast, now)
    return float(request.cost_units) * sum(
        forecast.price_at(endpoint, k) * (b - a) / forecast.slot_s
        for k, a, b in plan.slots(start, start + float(request.size_s))
    )


def _order_key(objective: str) -> Callable[[DeferrableRequest], tuple[float, ...]]:
    def key(r: DeferrableRequest) -> tuple[float, ...]:
        deadline = math.inf if r.deadline is None else float(r.deadline)
        if objective == "minimize_peak":
            second = -float(r.size_s) * float(r.cost_units)
        else:
            second = float(r.size_s)
        return (-r.priority, deadline, second, float(r.earliest_start))

    return key


def _place(
    request: DeferrableRequest,
    plan: _Plan,
    objective: str,
    window_end: float,
    now: float,
) -> ScheduledRequest | str:
    """Best feasible placement of ``request`` under ``objective``, or the reason none."""
    forecast = plan.forecast
    size = float(request.size_s)
    units = float(request.cost_units)
    first = max(float(request.earliest_start), now)
    latest_end = window_end if request.deadline is None else min(window_end, request.deadline)
    if first + size > latest_end + _EPS:
        if request.deadline is not None and request.deadline < window_end:
            return f"cannot finish by its deadline {request.deadline} (now is {now})"
        return f"does not fit in the window ending at {window_end}"
    fitting = [e for e in forecast.endpoints if units <= float(forecast.capacity[e]) + _EPS]
    if not fitting:
        return f"cost_units {units} exceed every endpoint's capacity"
    best: tuple[tuple[float, ...], ScheduledRequest] | None = None
    for endpoint in fitting:
        if request.interactive:
            starts = [first]
        else:
            k0 = math.floor((first - now) / forecast.slot_s + _EPS) + 1
            bounds = (
                now + k * forecast.slot_s
                for k in range(k0, 1 + math.ceil((latest_end - now) / forecast.slot_s))
            )
            ends = (e for _, e, _ in plan.intervals.get(endpoint, ()) if e > first)
            starts = sorted({first, *bounds, *ends})
        for start in starts:
            end = start + size
            if end > latest_end + _EPS:
                break
            peak = plan.peak_if(endpoint, start, end, units)
            if peak is None:
                continue
            if objective == "minimize_cost":
                score: tuple[float, ...] = (_cost(forecast, endpoint, request, start, now), end)
            elif objective == "minimize_peak" or request.interactive:
                score = (peak, end)
            else:
                score = (end, peak)
            placed = ScheduledRequest(request.id, start, endpoint, end)
            if best is None or score < best[0]:
                best = (score, placed)
            if objective == "minimize_total_time" or request.interactive:
                break  # later starts on this endpoint only finish later
    if best is None:
        if request.interactive:
            return f"no endpoint has room at its earliest start {first}"
        limit = "its deadline" if request.deadline is not None else "the end of the window"
        return f"no endpoint has {units} free units for {size}s before {limit}"
    return best[1]


def _run(
    requests: Sequence[DeferrableRequest],
    forecast: LoadForecast,
    objective: str,
    window_end: float,
    now: float,
    plan: _Plan,
    kept: Sequence[ScheduledRequest] = (),
    unplaced: Sequence[UnplacedRequest] = (),
    known: Mapping[str, DeferrableRequest] | None = None,
) -> ScheduleResult:
    placed = list(kept)
    missing = list(unplaced)
    key = _order_key(objective)
    interactive = sorted((r for r in requests if r.interactive), key=lambda r: r.earliest_start)
    deferrable = sorted((r for r in requests if not r.interactive), key=key)
    for request in [*interactive, *deferrable]:
        outcome = _place(request, plan, objective, window_end, now)
        if isinstance(outcome, str):
            missing.append(UnplacedRequest(request.id, outcome))
        else:
            plan.add(outcome.endpoint, outcome.scheduled_time, outcome.completion_time, request)
            placed.append(outcome)
    placed.sort(key=lambda s: (s.scheduled_time, s.endpoint, s.id))
    all_requests = dict(known or {})
    all_requests.update({r.id: r for r in requests})
    return ScheduleResult(
        scheduled=tuple(placed),
        unplaced=tuple(missing),
        objective=objective,
        now=now,
        window_end=window_end,
        forecast=forecast,
        requests=all_requests,
    )


def _check_common(requests: Sequence[DeferrableRequest], objective: str, now: float) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)} (got {objective!r})")
    non_negative_number("now", now, "seconds")
    seen: set[str] = set()
    for r in requests:
        if not isinstance(r, DeferrableRequest):
            raise ValueError(f"requests must be DeferrableRequest objects (got {r!r})")
        if r.id in seen:
            raise ValueError(f"duplicate request id {r.id!r}")
        seen.add(r.id)


def schedule(
    requests: Sequence[DeferrableRequest],
    forecast: LoadForecast,
    objective: str = "minimize_total_time",
    window: str | float = "2h",
    now: float = 0.0,
) -> ScheduleResult:
    """Place ``requests`` on the forecast's endpoints within ``window`` after ``now``.

    Raises ValueError for an unknown objective, a window that is not a positive duration
    (``"2h"``, ``"30min"``, seconds), duplicate ids or a negative ``now``. Requests that
    cannot be placed are listed in ``ScheduleResult.unplaced`` with the reason."""
    _check_common(requests, objective, now)
    if not isinstance(forecast, LoadForecast):
        raise ValueError(f"forecast must be a LoadForecast (got {forecast!r})")
    window_s = parse_duration(window, "window")
    return _run(requests, forecast, objective, now + window_s, float(now), _Plan(forecast, now))


def reschedule(
    previous: ScheduleResult,
    removed_endpoints: Sequence[str] = (),
    forecast: LoadForecast | None = None,
    now: float | None = None,
) -> ScheduleResult:
    """Rebalance ``previous`` after ``removed_endpoints`` leave (and/or a new forecast).

    Placements on surviving endpoints stay where they are. Requests on a removed endpoint
    that have not started by ``now`` (default: ``previous.now``) are placed again with the
    previous objective, as are the previously unplaced ones; requests already running on a
    removed endpoint are reported as unplaced. The window end is kept."""
    when = previous.now if now is None else non_negative_number("now", now, "seconds")
    gone = set(removed_endpoints)
    unknown = gone - set(previous.forecast.endpoints)
    if unknown:
        raise ValueError(f"removed_endpoints names unknown endpoints: {sorted(unknown)}")
    new_forecast = (forecast or previous.forecast).without(sorted(gone))
    if not new_forecast.endpoints:
        raise ValueError("rescheduling needs at least one endpoint left")
    plan = _Plan(new_forecast, when)
    kept: list[ScheduledRequest] = []
    lost: list[UnplacedRequest] = []
    again: list[DeferrableRequest] = []
    for s in previous.scheduled:
        request = previous.requests[s.id]
        if s.endpoint not in gone:
            kept.append(s)
            plan.add(s.endpoint, s.scheduled_time, s.completion_time, request)
        elif s.scheduled_time < when - _EPS:
            lost.append(UnplacedRequest(s.id, f"was running on removed endpoint {s.endpoint!r}"))
        else:
            again.append(request)
    again.extend(previous.requests[u.id] for u in previous.unplaced if u.id in previous.requests)
    return _run(
        again,
        new_forecast,
        previous.objective,
        previous.window_end,
        when,
        plan,
        kept=kept,
        unplaced=lost,
        known=previous.requests,
    )


def dispatch_on_arrival(
    requests: Sequence[DeferrableRequest],
    forecast: LoadForecast,
    now: float = 0.0,
) -> list[ScheduledRequest]:
    """Baseline: each request starts at ``max(earliest_start, now)`` on the endpoint with
    the lowest utilisation at that moment, ignoring capacity. Completion times come from a
    processor-sharing model: while background load plus running units exceed capacity,
    every request on that endpoint progresses at ``capacity / demand`` of full speed."""
    _check_common(requests, "minimize_total_time", now)
    order = sorted(requests, key=lambda r: (max(float(r.earliest_start), now), r.id))
    assigned: dict[str, list[tuple[float, DeferrableRequest]]] = {e: [] for e in forecast.endpoints}
    slot_s = forecast.slot_s
    for r in order:
        t = max(float(r.earliest_start), now)
        k = math.floor((t - now) / slot_s + _EPS)

        def utilisation(e: str, t: float = t, k: int = k) -> float:
            running = sum(
                float(q.cost_units) for s, q in assigned[e] if s <= t < s + float(q.size_s)
            )
            return (forecast.load_at(e, k) + running) / float(forecast.capacity[e])

        endpoint = min(forecast.endpoints, key=utilisation)
        assigned[endpoint].append((t, r))
    out: list[ScheduledRequest] = []
    for endpoint, jobs in assigned.items():
        cap = float(forecast.capacity[endpoint])
        pending = sorted(jobs, key=lambda j: j[0])
        remaining: dict[str, float] = {}
        units: dict[str, float] = {}
        starts: dict[str, float] = {}
        t = now
        i = 0
        while i < len(pending) or remaining:
            if not remaining:
                t = max(t, pending[i][0])
            while i < len(pending) and pending[i][0] <= t + _EPS:
                s, q = pending[i]
                remaining[q.id] = float(q.size_s)
                units[q.id] = float(q.cost_units)
                starts[q.id] = s
                i += 1
            k = math.floor((t - now) / slot_s + _EPS)
            demand = forecast.load_at(endpoint, k) + sum(units[j] for j in remaining)
            rate = min(1.0, cap / demand) if demand > 0 else 1.0
            next_slot = now + (k + 1) * slot_s
            next_arrival = pending[i][0] if i < len(pending) else math.inf
            next_finish = t + min(remaining.values()) / rate
            step_end = min(next_slot, next_arrival, next_finish)
            for j in list(remaining):
                remaining[j] -= (step_end - t) * rate
                if remaining[j] <= _EPS * max(1.0, step_end):
                    del remaining[j]
                    out.append(ScheduledRequest(j, starts[j], endpoint, step_end))
            t = step_end
    out.sort(key=lambda s: (s.scheduled_time, s.endpoint, s.id))
    return out


def optimize_request_scheduling(
    current_requests: Sequence[DeferrableRequest],
    predicted_load: LoadForecast,
    optimization_window: str | float = "2h",
    objective: str = "minimize_total_time",
) -> list[dict[str, str | float]]:
    """Seed-000 entry point: :func:`schedule` as plain dicts with ``id``,
    ``scheduled_time``, ``endpoint`` and ``completion_time`` (unplaced requests are
    left out; call :func:`schedule` for the report)."""
    result = schedule(current_requests, predicted_load, objective, optimization_window)
    return [
        {
            "id": s.id,
            "scheduled_time": s.scheduled_time,
            "endpoint": s.endpoint,
            "completion_time": s.completion_time,
        }
        for s in result.scheduled
    ]
