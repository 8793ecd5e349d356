"""State that every replica of the service must agree on: rate limits, budgets, breakers.

One replica can keep its token buckets, budget spend and circuit breakers in memory; two
replicas behind a load balancer cannot, or each would admit the full rate, spend the full
budget and trip its own breakers. :class:`StateStore` is the one interface the service uses
for that state, with three implementations:

- :class:`LocalStateStore`: in process, for one replica (and as the fallback below);
- :class:`RedisStateStore`: in Redis, one Lua script per operation, so every check-and-update
  is atomic across replicas, and time comes from the Redis server (``TIME``), so replicas
  with skewed clocks still share one clock;
- :class:`ResilientStateStore`: Redis first; when Redis is unreachable it serves from a
  local store (``degraded``) and tries Redis again every ``retry_interval_s``. A routing
  service that stops routing because its limiter's database is down has turned a degraded
  limit into an outage; while degraded each replica enforces the limits on its own.

The algorithms:

- **token buckets** are GCRA (the generic cell rate algorithm, as in the ``governor``
  crate): one number per key, the theoretical arrival time, so a Redis bucket is one
  string. A refusal says exactly when ``cost`` tokens will be there;
- **budgets** are fixed windows ``floor(now / window_s)``: a charge is admitted when the
  window's spend plus the amount stays within the limit, and refused charges leave the
  spend unchanged. ``adjust_budget`` settles an estimate against the actual cost;
- **breakers** are closed / open / half-open as in
  :mod:`fleetroute.resilience.circuit_breaker`: ``failure_threshold`` consecutive failures
  open one; after ``recovery_timeout_s`` at most ``half_open_limit`` trial calls are
  admitted (across all replicas); a trial success closes it, a trial failure re-opens it.
  Trials that never report back (their caller died) are given up ``trial_timeout_s``
  (default: ``recovery_timeout_s``) after the last one was admitted, so a breaker cannot
  stay half-open and full for ever. A success reported while open comes from a call sent
  before it opened and is ignored.

Redis keys start with ``prefix`` (``fleetroute:``) and expire once they carry nothing: a
bucket when it is full again, a budget at its window's end, a breaker after
``breaker_ttl_s`` without calls. The local store prunes the same entries.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from fleetroute.clock import Clock, monotonic_clock
from fleetroute.validation import non_negative_number, positive_int, positive_number

__all__ = [
    "DEFAULT_PREFIX",
    "BreakerPolicy",
    "BreakerStateName",
    "BreakerStatus",
    "BudgetCharge",
    "LocalStateStore",
    "RedisStateStore",
    "ResilientStateStore",
    "StateStore",
    "open_state_store",
]

_log = logging.getLogger(__name__)

#: The prefix of every Redis key this module writes.
DEFAULT_PREFIX = "fleetroute:"

#: The states of a breaker, as reported in :class:`BreakerStatus`.
BreakerStateName = Literal["closed", "open", "half_open"]

# Times are epoch seconds (about 1.7e9), where a double resolves about 2.4e-7 s; a wait
# shorter than this counts as none, so sleeping exactly ``retry_after`` always succeeds.
_TIME_SLACK_S = 1e-6
# Sums of decimal amounts round (ten charges of 0.1 add up to 0.9999999999999999); a
# charge that overshoots the limit by less than this still fits.
_BUDGET_SLACK = 1e-9
# The local store drops expired buckets and past budget windows once per this many calls.
_PRUNE_EVERY = 4096

_T = TypeVar("_T")


# Values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """How a breaker trips and recovers (seed 004's ``CIRCUIT_BREAKER_*`` settings).

    ``trial_timeout_s`` is how long half-open trials may go unanswered before they are
    given up and replaced; None means ``recovery_timeout_s``.
    """

    failure_threshold: int = 5
    recovery_timeout_s: float = 60.0
    half_open_limit: int = 3
    trial_timeout_s: float | None = None

    def __post_init__(self) -> None:
        positive_int("failure_threshold", self.failure_threshold)
        positive_number("recovery_timeout_s", self.recovery_timeout_s, "a number of seconds")
        positive_int("half_open_limit", self.half_open_limit)
        if self.trial_timeout_s is not None:
            positive_number("trial_timeout_s", self.trial_timeout_s, "a number of seconds")

    @property
    def trial_expiry_s(self) -> float:
        """Seconds after which unanswered half-open trials are given up."""
        return self.recovery_timeout_s if self.trial_timeout_s is None else self.trial_timeout_s


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """One breaker read at one instant; ``last_failure_time`` is in epoch seconds."""

    name: str
    state: BreakerStateName
    failure_count: int
    last_failure_time: float | None


@dataclass(frozen=True, slots=True)
class BudgetCharge:
    """The outcome of a charge: whether it fit, and the window's spend after it."""

    admitted: bool
    spent: float
    limit: float


@runtime_checkable
class StateStore(Protocol):
    """Rate limits, budgets and breakers shared by the replicas of the service."""

    backend: str

    @property
    def degraded(self) -> bool:
        """True when configured for Redis but serving from local state now."""
        ...

    async def acquire_tokens(
        self, key: str, *, rate_per_s: float, burst: float, cost: float = 1.0
    ) -> float | None:
        """Takes ``cost`` tokens from ``key``'s bucket: None when taken, otherwise the
        seconds (> 0) until they would be granted."""
        ...

    async def charge_budget(
        self, scope: str, amount: float, *, limit: float, window_s: float
    ) -> BudgetCharge:
        """Adds ``amount`` to the current window's spend if it stays within ``limit``."""
        ...

    async def adjust_budget(self, scope: str, delta: float, *, window_s: float) -> float:
        """Adds ``delta`` (either sign) to the current window's spend; returns the new
        spend, never below 0."""
        ...

    async def budget_spent(self, scope: str, *, window_s: float) -> float:
        """The current window's spend."""
        ...

    async def breaker_allow(self, name: str, policy: BreakerPolicy) -> bool:
        """Whether a call may go to ``name`` now (a half-open trial is taken if so)."""
        ...

    async def breaker_record(
        self, name: str, success: bool, policy: BreakerPolicy
    ) -> BreakerStatus:
        """Records a finished call to ``name`` and returns the breaker after it."""
        ...

    async def breaker_status(self, name: str, policy: BreakerPolicy) -> BreakerStatus:
        """The breaker of ``name`` now (closed for one never seen)."""
        ...

    async def close(self) -> None:
        """Releases connections; idempotent."""
        ...


# Argument checks ------------------------------------------------------------------------
# Every operation checks its arguments before touching state, so a bad call changes nothing.


def _name(argument: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{argument} must be a non-empty string (got {value!r})")
    return value


def _finite(argument: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{argument} must be a finite number (got {value!r})")
    return float(value)


def _bucket_args(key: str, rate_per_s: float, burst: float, cost: float) -> tuple[float, ...]:
    _name("key", key)
    rate = positive_number("rate_per_s", rate_per_s, "a number of tokens per second")
    size = positive_number("burst", burst, "a number of tokens")
    taken = positive_number("cost", cost, "a number of tokens")
    if taken > size:
        raise ValueError(
            f"cost ({cost!r}) exceeds burst ({burst!r}): the bucket never holds that many "
            "tokens, so the request could never be admitted"
        )
    return rate, size, taken


def _window(window_s: float) -> float:
    return positive_number("window_s", window_s, "a number of seconds")


def _policy(policy: object) -> BreakerPolicy:
    if not isinstance(policy, BreakerPolicy):
        raise ValueError(f"policy must be a BreakerPolicy (got {policy!r})")
    return policy


def _success(success: object) -> bool:
    if not isinstance(success, bool):
        raise ValueError(f"success must be a bool (got {success!r})")
    return success


def _log_transition(name: str, before: str, after: str) -> None:
    if before != "open" and after == "open":
        _log.warning("circuit breaker %s opened", name)
    elif before != "closed" and after == "closed":
        _log.info("circuit breaker %s closed", name)


# Local ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Breaker:
    state: BreakerStateName = "closed"
    failures: int = 0
    opened_at: float = 0.0
    last_failure: float | None = None
    trials: int = 0
    # When the last half-open trial was admitted (or half-open began).
    trial_at: float = 0.0

    def advance(self, policy: BreakerPolicy, now: float) -> None:
        """Applies the transitions that time alone causes."""
        if self.state == "open" and now - self.opened_at >= policy.recovery_timeout_s:
            self.state = "half_open"
            self.trials = 0
            self.trial_at = now
        if (
            self.state == "half_open"
            and self.trials >= policy.half_open_limit
            and now - self.trial_at >= policy.trial_expiry_s
        ):
            # The trials never reported back: give up on them and admit new ones.
            self.trials = 0

    def open(self, now: float) -> None:
        self.state = "open"
        self.opened_at = now
        self.trials = 0


class LocalStateStore:
    """The state of one process. ``clock`` gives epoch seconds (``last_failure_time`` is
    reported on that scale); tests pass a :class:`~fleetroute.clock.ManualClock`.

    Calls run on one event loop without awaiting inside, so each is atomic.
    """

    backend: str = "local"

    def __init__(self, clock: Clock = time.time) -> None:
        if not callable(clock):
            raise ValueError(f"clock must be a callable returning seconds (got {clock!r})")
        self._clock = clock
        # key -> theoretical arrival time (GCRA): the bucket is full once now reaches it.
        self._buckets: dict[str, float] = {}
        # (scope, window_s) -> (window index, spend in that window)
        self._budgets: dict[tuple[str, float], tuple[int, float]] = {}
        self._breakers: dict[str, _Breaker] = {}
        self._calls = 0

    @property
    def degraded(self) -> bool:
        return False

    @property
    def mode(self) -> str:
        """``"local"``: what the dashboard shows as the shared-state mode."""
        return "local"

    async def acquire_tokens(
        self, key: str, *, rate_per_s: float, burst: float, cost: float = 1.0
    ) -> float | None:
        rate, size, taken = _bucket_args(key, rate_per_s, burst, cost)
        now = self._tick()
        tat = max(self._buckets.get(key, now), now)
        new_tat = tat + taken / rate
        wait = new_tat - size / rate - now
        if wait > _TIME_SLACK_S:
            return wait
        self._buckets[key] = new_tat
        return None

    async def charge_budget(
        self, scope: str, amount: float, *, limit: float, window_s: float
    ) -> BudgetCharge:
        _name("scope", scope)
        charge = non_negative_number("amount", amount)
        cap = non_negative_number("limit", limit)
        window = _window(window_s)
        now = self._tick()
        index, spent = self._spend(scope, window, now)
        total = spent + charge
        if total > cap + _BUDGET_SLACK:
            return BudgetCharge(admitted=False, spent=spent, limit=cap)
        self._budgets[(scope, window)] = (index, total)
        return BudgetCharge(admitted=True, spent=total, limit=cap)

    async def adjust_budget(self, scope: str, delta: float, *, window_s: float) -> float:
        _name("scope", scope)
        change = _finite("delta", delta)
        window = _window(window_s)
        index, spent = self._spend(scope, window, self._tick())
        total = max(0.0, spent + change)
        self._budgets[(scope, window)] = (index, total)
        return total

    async def budget_spent(self, scope: str, *, window_s: float) -> float:
        _name("scope", scope)
        window = _window(window_s)
        return self._spend(scope, window, self._clock())[1]

    async def breaker_allow(self, name: str, policy: BreakerPolicy) -> bool:
        _name("name", name)
        _policy(policy)
        breaker = self._breakers.get(name)
        if breaker is None:
            return True
        now = self._clock()
        breaker.advance(policy, now)
        if breaker.state == "closed":
            return True
        if breaker.state == "open" or breaker.trials >= policy.half_open_limit:
            return False
        breaker.trials += 1
        breaker.trial_at = now
        return True

    async def breaker_record(
        self, name: str, success: bool, policy: BreakerPolicy
    ) -> BreakerStatus:
        _name("name", name)
        _success(success)
        _policy(policy)
        now = self._clock()
        breaker = self._breakers.get(name)
        if breaker is None:
            if success:
                return BreakerStatus(name, "closed", 0, None)
            breaker = self._breakers[name] = _Breaker()
        breaker.advance(policy, now)
        before = breaker.state
        if success:
            if breaker.state == "closed":
                breaker.failures = 0
            elif breaker.state == "half_open":
                breaker.state = "closed"
                breaker.failures = 0
                breaker.trials = 0
        else:
            breaker.last_failure = now
            if breaker.state == "closed":
                breaker.failures += 1
                if breaker.failures >= policy.failure_threshold:
                    breaker.open(now)
            elif breaker.state == "half_open":
                breaker.failures += 1
                breaker.open(now)
        _log_transition(name, before, breaker.state)
        return BreakerStatus(name, breaker.state, breaker.failures, breaker.last_failure)

    async def breaker_status(self, name: str, policy: BreakerPolicy) -> BreakerStatus:
        _name("name", name)
        _policy(policy)
        breaker = self._breakers.get(name)
        if breaker is None:
            return BreakerStatus(name, "closed", 0, None)
        breaker.advance(policy, self._clock())
        return BreakerStatus(name, breaker.state, breaker.failures, breaker.last_failure)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> LocalStateStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _spend(self, scope: str, window: float, now: float) -> tuple[int, float]:
        """The current window's index and spend."""
        index = math.floor(now / window)
        stored = self._budgets.get((scope, window))
        if stored is None or stored[0] != index:
            return index, 0.0
        return stored

    def _tick(self) -> float:
        """The time now; every ``_PRUNE_EVERY`` calls, drops entries that carry nothing."""
        now = self._clock()
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            self._buckets = {k: tat for k, tat in self._buckets.items() if tat > now}
            self._budgets = {
                k: v for k, v in self._budgets.items() if v[0] >= math.floor(now / k[1])
            }
        return now


# Redis ----------------------------------------------------------------------------------
# Floats cross between Lua and Redis as strings formatted with %.17g: Redis turns a Lua
# number reply into an integer and may print a number argument with fewer digits.

_LUA_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local function fmt(x) return string.format('%.17g', x) end
local function ms(seconds) return string.format('%d', math.max(1, math.ceil(seconds * 1000))) end
"""

# KEYS[1] bucket; ARGV rate, burst, cost, slack. Returns nil (taken) or the wait.
_LUA_ACQUIRE = (
    _LUA_NOW
    + """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
if tat == nil or tat < now then tat = now end
local new_tat = tat + cost / rate
local wait = new_tat - burst / rate - now
if wait > tonumber(ARGV[4]) then return fmt(wait) end
redis.call('SET', KEYS[1], fmt(new_tat), 'PX', ms(new_tat - now))
return false
"""
)

# The window's key is KEYS[1] plus the window index: the same hash tag, so the same slot.
_LUA_WINDOW = """
local window = tonumber(ARGV[1])
local index = math.floor(now / window)
local key = KEYS[1] .. ':' .. string.format('%d', index)
local ttl = ms((index + 1) * window - now)
local spent = tonumber(redis.call('GET', key) or '') or 0
"""

# ARGV window_s, amount, limit, slack. Returns {admitted 0/1, spend}.
_LUA_CHARGE = (
    _LUA_NOW
    + _LUA_WINDOW
    + """
local total = spent + tonumber(ARGV[2])
if total > tonumber(ARGV[3]) + tonumber(ARGV[4]) then return {0, fmt(spent)} end
redis.call('SET', key, fmt(total), 'PX', ttl)
return {1, fmt(total)}
"""
)

# ARGV window_s, delta. Returns the new spend.
_LUA_ADJUST = (
    _LUA_NOW
    + _LUA_WINDOW
    + """
local total = math.max(0, spent + tonumber(ARGV[2]))
redis.call('SET', key, fmt(total), 'PX', ttl)
return fmt(total)
"""
)

_LUA_SPENT = _LUA_NOW + _LUA_WINDOW + "return fmt(spent)\n"

# KEYS[1] breaker hash; ARGV threshold, recovery_s, half_open_limit, ttl_s, trial expiry_s.
# Loads the breaker and applies the transitions time alone causes (as _Breaker.advance).
_LUA_BREAKER = """
local threshold = tonumber(ARGV[1])
local recovery = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'state', 'failures', 'opened_at', 'last_failure',
                     'trials', 'trial_at')
local state = h[1] or 'closed'
local failures = tonumber(h[2] or '') or 0
local opened_at = tonumber(h[3] or '') or 0
local last_failure = h[4] or ''
local trials = tonumber(h[5] or '') or 0
local trial_at = tonumber(h[6] or '') or 0
local before = state
if state == 'open' and now - opened_at >= recovery then
  state = 'half_open'
  trials = 0
  trial_at = now
end
if state == 'half_open' and trials >= limit and now - trial_at >= tonumber(ARGV[5]) then
  trials = 0
end
local function save()
  redis.call('HSET', KEYS[1], 'state', state, 'failures', string.format('%d', failures),
             'opened_at', fmt(opened_at), 'last_failure', last_failure,
             'trials', string.format('%d', trials), 'trial_at', fmt(trial_at))
  redis.call('PEXPIRE', KEYS[1], ms(tonumber(ARGV[4])))
end
"""

# Returns 1 (allowed) or 0.
_LUA_BREAKER_ALLOW = (
    _LUA_NOW
    + _LUA_BREAKER
    + """
if state == 'closed' then return 1 end
if state == 'open' or trials >= limit then return 0 end
trials = trials + 1
trial_at = now
save()
return 1
"""
)

# ARGV[6] '1' for a success. Returns {state before, state after, failures, last failure}.
_LUA_BREAKER_RECORD = (
    _LUA_NOW
    + _LUA_BREAKER
    + """
if ARGV[6] == '1' then
  -- A success on a breaker never seen leaves nothing to store.
  if h[1] == false then return {before, state, 0, ''} end
  if state == 'half_open' then
    state = 'closed'
    trials = 0
  end
  -- While open the success is stale (sent before it opened) and changes nothing.
  if state == 'closed' then failures = 0 end
else
  last_failure = fmt(now)
  if state ~= 'open' then
    failures = failures + 1
    if state == 'half_open' or failures >= threshold then
      state = 'open'
      opened_at = now
      trials = 0
    end
  end
end
save()
return {before, state, failures, last_failure}
"""
)

_LUA_BREAKER_STATUS = _LUA_NOW + _LUA_BREAKER + "return {before, state, failures, last_failure}\n"


def _status(name: str, reply: Any) -> tuple[str, BreakerStatus]:
    """The state before the call and the status after, from a breaker script's reply."""
    before, state, failures, last_failure = reply
    status = BreakerStatus(
        name=name,
        state=state,
        failure_count=int(failures),
        last_failure_time=float(last_failure) if last_failure else None,
    )
    return str(before), status


class RedisStateStore:
    """The state in Redis at ``url``, shared by every replica that uses the same server
    and ``prefix``.

    Timeouts are short (``socket_timeout_s``) so a dead Redis costs a request a fraction
    of a second, not the client's default 5 s; a dropped connection is retried once on a
    fresh one (a server restart leaves stale connections in the pool), a timeout is not
    (the script may have run, and running it again would take tokens or charge twice).
    """

    backend: str = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout_s: float = 0.25,
        connect_timeout_s: float = 0.25,
        breaker_ttl_s: float = 86_400.0,
    ) -> None:
        _name("url", url)
        _name("prefix", prefix)
        timeout = positive_number("socket_timeout_s", socket_timeout_s, "a number of seconds")
        connect = positive_number("connect_timeout_s", connect_timeout_s, "a number of seconds")
        self.breaker_ttl_s = positive_number("breaker_ttl_s", breaker_ttl_s, "a number of seconds")
        try:
            self._client = Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=connect,
                retry=Retry(NoBackoff(), 1, (redis.exceptions.ConnectionError,)),
                decode_responses=True,
            )
        except ValueError as exc:
            raise ValueError(f"url {url!r} is not a Redis URL: {exc}") from exc
        self.url = url
        self.prefix = prefix
        self._acquire = self._client.register_script(_LUA_ACQUIRE)
        self._charge = self._client.register_script(_LUA_CHARGE)
        self._adjust = self._client.register_script(_LUA_ADJUST)
        self._spent = self._client.register_script(_LUA_SPENT)
        self._allow = self._client.register_script(_LUA_BREAKER_ALLOW)
        self._record = self._client.register_script(_LUA_BREAKER_RECORD)
        self._breaker = self._client.register_script(_LUA_BREAKER_STATUS)
        self._closed = False

    @property
    def degraded(self) -> bool:
        return False

    @property
    def mode(self) -> str:
        """``"redis"``: what the dashboard shows as the shared-state mode."""
        return "redis"

    async def acquire_tokens(
        self, key: str, *, rate_per_s: float, burst: float, cost: float = 1.0
    ) -> float | None:
        rate, size, taken = _bucket_args(key, rate_per_s, burst, cost)
        wait = await self._acquire(
            keys=[f"{self.prefix}bucket:{key}"], args=[rate, size, taken, _TIME_SLACK_S]
        )
        return None if wait is None else float(wait)

    async def charge_budget(
        self, scope: str, amount: float, *, limit: float, window_s: float
    ) -> BudgetCharge:
        _name("scope", scope)
        charge = non_negative_number("amount", amount)
        cap = non_negative_number("limit", limit)
        window = _window(window_s)
        admitted, spent = await self._charge(
            keys=[self._budget_key(scope, window)], args=[window, charge, cap, _BUDGET_SLACK]
        )
        return BudgetCharge(admitted=int(admitted) == 1, spent=float(spent), limit=cap)

    async def adjust_budget(self, scope: str, delta: float, *, window_s: float) -> float:
        _name("scope", scope)
        change = _finite("delta", delta)
        window = _window(window_s)
        total = await self._adjust(keys=[self._budget_key(scope, window)], args=[window, change])
        return float(total)

    async def budget_spent(self, scope: str, *, window_s: float) -> float:
        _name("scope", scope)
        window = _window(window_s)
        spent = await self._spent(keys=[self._budget_key(scope, window)], args=[window])
        return float(spent)

    async def breaker_allow(self, name: str, policy: BreakerPolicy) -> bool:
        _name("name", name)
        allowed = await self._allow(
            keys=[self._breaker_key(name)], args=self._breaker_args(_policy(policy))
        )
        return int(allowed) == 1

    async def breaker_record(
        self, name: str, success: bool, policy: BreakerPolicy
    ) -> BreakerStatus:
        _name("name", name)
        flag = "1" if _success(success) else "0"
        reply = await self._record(
            keys=[self._breaker_key(name)], args=[*self._breaker_args(_policy(policy)), flag]
        )
        before, status = _status(name, reply)
        _log_transition(name, before, status.state)
        return status

    async def breaker_status(self, name: str, policy: BreakerPolicy) -> BreakerStatus:
        _name("name", name)
        reply = await self._breaker(
            keys=[self._breaker_key(name)], args=self._breaker_args(_policy(policy))
        )
        return _status(name, reply)[1]

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()

    async def __aenter__(self) -> RedisStateStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _budget_key(self, scope: str, window: float) -> str:
        # Windows of different lengths are different budgets; the braces are a hash tag.
        return f"{self.prefix}budget:{{{scope}}}:{window!r}"

    def _breaker_key(self, name: str) -> str:
        return f"{self.prefix}breaker:{name}"

    def _breaker_args(self, policy: BreakerPolicy) -> list[float]:
        # Never let an open breaker expire back to closed before it may recover.
        ttl = max(self.breaker_ttl_s, 2 * policy.recovery_timeout_s, 2 * policy.trial_expiry_s)
        return [
            policy.failure_threshold,
            policy.recovery_timeout_s,
            policy.half_open_limit,
            ttl,
            policy.trial_expiry_s,
        ]


# Redis with a local fallback ------------------------------------------------------------

# What an unreachable or unresponsive Redis raises (auth and loading errors are
# ConnectionErrors too); a script or argument error is a bug and propagates.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)


class ResilientStateStore:
    """Redis at ``url`` first, ``local`` while Redis is unreachable.

    The first failing call logs one warning, switches to ``local`` (``degraded``) and
    counts a failover; calls then go to ``local`` without touching the network, except
    one probe of Redis per ``retry_interval_s`` (on ``clock``); the first probe that
    succeeds switches back and counts a recovery. State written locally while degraded
    stays local: Redis was never told, and after recovery Redis's state rules again.
    """

    backend: str = "redis"

    def __init__(
        self,
        url: str,
        local: LocalStateStore,
        *,
        retry_interval_s: float = 5.0,
        clock: Clock = monotonic_clock,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout_s: float = 0.25,
        connect_timeout_s: float = 0.25,
    ) -> None:
        if not isinstance(local, LocalStateStore):
            raise ValueError(f"local must be a LocalStateStore (got {local!r})")
        self.retry_interval_s = positive_number(
            "retry_interval_s", retry_interval_s, "a number of seconds"
        )
        if not callable(clock):
            raise ValueError(f"clock must be a callable returning seconds (got {clock!r})")
        self._redis = RedisStateStore(
            url,
            prefix=prefix,
            socket_timeout_s=socket_timeout_s,
            connect_timeout_s=connect_timeout_s,
        )
        self._local = local
        self._clock = clock
        self._degraded = False
        self._retry_at = 0.0
        self.failovers = 0
        self.recoveries = 0

    @property
    def degraded(self) -> bool:
        return self._degraded

    @property
    def mode(self) -> str:
        """``"redis"``, or ``"degraded"`` while serving from local state."""
        return "degraded" if self._degraded else "redis"

    @property
    def redis(self) -> RedisStateStore:
        return self._redis

    @property
    def local(self) -> LocalStateStore:
        return self._local

    async def acquire_tokens(
        self, key: str, *, rate_per_s: float, burst: float, cost: float = 1.0
    ) -> float | None:
        return await self._call(
            lambda store: store.acquire_tokens(key, rate_per_s=rate_per_s, burst=burst, cost=cost)
        )

    async def charge_budget(
        self, scope: str, amount: float, *, limit: float, window_s: float
    ) -> BudgetCharge:
        return await self._call(
            lambda store: store.charge_budget(scope, amount, limit=limit, window_s=window_s)
        )

    async def adjust_budget(self, scope: str, delta: float, *, window_s: float) -> float:
        return await self._call(lambda store: store.adjust_budget(scope, delta, window_s=window_s))

    async def budget_spent(self, scope: str, *, window_s: float) -> float:
        return await self._call(lambda store: store.budget_spent(scope, window_s=window_s))

    async def breaker_allow(self, name: str, policy: BreakerPolicy) -> bool:
        return await self._call(lambda store: store.breaker_allow(name, policy))

    async def breaker_record(
        self, name: str, success: bool, policy: BreakerPolicy
    ) -> BreakerStatus:
        return await self._call(lambda store: store.breaker_record(name, success, policy))

    async def breaker_status(self, name: str, policy: BreakerPolicy) -> BreakerStatus:
        return await self._call(lambda store: store.breaker_status(name, policy))

    async def close(self) -> None:
        await self._redis.close()
        await self._local.close()

    async def __aenter__(self) -> ResilientStateStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(self, operation: Callable[[StateStore], Awaitable[_T]]) -> _T:
        probing = False
        if self._degraded:
            now = self._clock()
            if now < self._retry_at:
                return await operation(self._local)
            # This call is the probe; calls arriving while it runs stay local.
            probing = True
            self._retry_at = now + self.retry_interval_s
        try:
            result = await operation(self._redis)
        except _UNAVAILABLE as exc:
            self._retry_at = self._clock() + self.retry_interval_s
            if not self._degraded:
                self._degraded = True
                self.failovers += 1
                _log.warning(
                    "Redis at %s is unreachable (%s: %s); serving rate limits, budgets and "
                    "breakers from local state, retrying every %g s",
                    self._redis.url,
                    type(exc).__name__,
                    exc,
                    self.retry_interval_s,
                )
            return await operation(self._local)
        if probing and self._degraded:
            self._degraded = False
            self.recoveries += 1
            _log.warning("Redis at %s is reachable again; shared state is back", self._redis.url)
        return result


def open_state_store(
    redis_url: str | None,
    *,
    clock: Clock = time.time,
    retry_interval_s: float = 5.0,
    prefix: str = DEFAULT_PREFIX,
) -> StateStore:
    """The store for a service: local without ``redis_url``, else Redis with a local
    fallback (:class:`ResilientStateStore`). ``clock`` gives epoch seconds."""
    local = LocalStateStore(clock=clock)
    if redis_url is None:
        return local
    return ResilientStateStore(
        redis_url, local, retry_interval_s=retry_interval_s, clock=clock, prefix=prefix
    )
