"""Type stubs for ``fleetroute._native``, the Rust core's Python bindings.

Signatures follow the ``#[pyo3(signature = ...)]`` attributes in ``src/python/*.rs``.
Integer arguments that name an id, a capacity, a cost, a priority or a count must be
``>= 0`` (``ValueError`` otherwise); an unknown accelerator id raises ``KeyError``.
"""

from collections.abc import Iterable, Sequence
from typing import final

import numpy as np
import numpy.typing as npt

__all__ = [
    "STRATEGIES",
    "Accelerator",
    "CandidateSet",
    "KeyedTokenBucket",
    "Request",
    "Router",
    "TokenBucket",
    "__version__",
    "hash_key",
    "jump_hash",
    "simulate",
]

#: Every strategy name ``Router`` accepts, in the core's order.
STRATEGIES: list[str]
#: The crate version the extension was built from.
__version__: str

#: A routing key: an ``int`` in [-2**63, 2**64) is used as is (a negative one modulo
#: 2**64); a ``str`` (its UTF-8 bytes) or ``bytes`` is hashed with xxh3-64.
_Key = int | str | bytes

@final
class Accelerator:
    """An accelerator description; once registered, the properties read live."""

    def __new__(
        cls, id: int, capacity: int, weight: float = 1.0, healthy: bool = True
    ) -> Accelerator: ...
    @property
    def id(self) -> int: ...
    @property
    def capacity(self) -> int:
        """Live capacity once registered, else the value given."""
    @property
    def weight(self) -> float:
        """Live weight once registered, else the value given."""
    @property
    def healthy(self) -> bool:
        """Live health once registered, else the value given."""
    @property
    def current_load(self) -> int:
        """Load units in flight on this accelerator (0 before it is registered)."""

@final
class Request:
    """One request: id, cost (load units, >= 1) and priority (0 normal, >= 1 high)."""

    def __new__(cls, id: int, cost: int = 1, priority: int = 0) -> Request: ...
    @property
    def id(self) -> int: ...
    @property
    def cost(self) -> int: ...
    @property
    def priority(self) -> int: ...

@final
class CandidateSet:
    """Allowed accelerators resolved once against one router (``Router.candidate_set``);
    passing it as ``candidates`` costs O(1) per request instead of O(fleet)."""

    def __len__(self) -> int: ...
    def __contains__(self, acc_id: object, /) -> bool: ...
    def ids(self) -> list[int]:
        """The allowed accelerator ids, in the set's order (removed ones left out)."""

@final
class Router:
    """Routes requests over a fleet of accelerators with one strategy."""

    def __new__(
        cls,
        strategy: str = "p2c",
        *,
        hash: str | None = None,
        load_bound: float | None = None,
        default_rtt: float | None = None,
        decay: float | None = None,
        cache_threshold: float | None = None,
        balance_abs_threshold: int | None = None,
        balance_rel_threshold: float | None = None,
        block_size: int | None = None,
        max_prefix_blocks: int | None = None,
        queue_weight: float | None = None,
        kv_cache_weight: float | None = None,
        prefix_weight: float | None = None,
        adapter_weight: float | None = None,
        kv_cache_limit: float | None = None,
        top_k: int | None = None,
        seed: int | None = None,
        priority_reserve: float = 0.1,
    ) -> Router: ...
    @property
    def strategy(self) -> str:
        """The strategy's canonical name."""
    @property
    def priority_reserve(self) -> float:
        """Share of every accelerator's capacity only priority >= 1 may use."""
    def __len__(self) -> int: ...
    def __contains__(self, key: int, /) -> bool: ...
    def add_accelerator(self, accelerator: Accelerator) -> None: ...
    def add_accelerators(self, accelerators: Sequence[Accelerator]) -> None:
        """Registers many accelerators in one step: all of them or none."""
    def add_fleet(
        self,
        ids: npt.ArrayLike,
        capacities: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> None:
        """Registers ``len(ids)`` accelerators from arrays, all or none."""
    def remove_accelerator(self, acc_id: int) -> None: ...
    def set_healthy(self, acc_id: int, healthy: bool) -> None: ...
    def set_capacity(self, acc_id: int, capacity: int) -> None: ...
    def set_weight(self, acc_id: int, weight: float) -> None: ...
    def accelerator(self, acc_id: int) -> Accelerator:
        """A live view of one registered accelerator."""
    def load(self, acc_id: int) -> int:
        """Load units in flight on ``acc_id`` now."""
    def route_request(self, request: Request) -> int | None:
        """Routes ``request`` (its id is the key for consistent hashing); the
        accelerator id that took it, or None."""
    def route(
        self,
        cost: int = 1,
        priority: int = 0,
        key: _Key | None = None,
        candidates: CandidateSet | Sequence[int] | npt.NDArray[np.bool_] | None = None,
        now: float | None = None,
        prompt: str | bytes | Sequence[int] | None = None,
        adapter: str | None = None,
    ) -> int | None:
        """Routes one request; the accelerator id that took its load, or None when
        no allowed accelerator can take it. ``candidates`` limits the choice: accelerator
        ids, or a boolean mask with one entry per registered accelerator in
        registration order (the order of ``ids()``). ``now`` (seconds, the caller's
        clock) is read by time-aware strategies (``peak_ewma``); ``prompt`` (text, bytes
        or token ids) by ``cache_aware`` and ``endpoint_picker``, and ignored by the
        others."""
    def candidate_set(
        self, candidates: CandidateSet | Sequence[int] | npt.NDArray[np.bool_]
    ) -> CandidateSet:
        """Resolves ``candidates`` (ids, kept in the order given, or a boolean mask in
        registration order) once, for many ``route`` calls."""
    def route_in_order(
        self,
        candidates: CandidateSet | Sequence[int] | npt.NDArray[np.bool_],
        cost: int = 1,
        priority: int = 0,
    ) -> int | None:
        """Routes to the first of ``candidates``, in their order, that can take the load:
        a strict preference order, blind to load except for the capacity check."""
    def route_joint(
        self,
        models: Sequence[tuple[float, Sequence[int]]],
        cost: int = 1,
        priority: int = 0,
        key: _Key | None = None,
        prompt: str | bytes | Sequence[int] | None = None,
        now: float | None = None,
        tolerance: float = 0.0,
        adapter: str | None = None,
    ) -> tuple[int, int] | None:
        """The joint decision: ``models`` lists ``(score, replica ids)``; models within
        ``tolerance`` of the best score count as equal and the one with the most room
        goes first; the replica is picked by the router's strategy. Returns ``(model
        index, accelerator id)``, or None when no replica of any model can take it."""
    def report_latency(self, acc_id: int, latency: float, now: float | None = None) -> None:
        """Feeds a finished request's latency (seconds) to ``peak_ewma``; other
        strategies check and ignore it."""
    def report_kv_utilisation(self, acc_id: int, utilisation: float) -> None:
        """Records a replica's reported KV-cache utilisation (0 to 1) for
        ``endpoint_picker``; other strategies check and ignore it."""
    def report_latencies(
        self, ids: npt.ArrayLike, latencies: Sequence[float], now: float | None = None
    ) -> None:
        """``report_latency`` for many replicas at once; all or none."""
    def report_kv_utilisations(self, ids: npt.ArrayLike, utilisations: Sequence[float]) -> None:
        """``report_kv_utilisation`` for many replicas at once; all or none."""
    def report_adapters(self, acc_id: int, adapters: Sequence[str]) -> None:
        """Records the LoRA adapters a replica reports loaded (replacing its last
        report), for ``endpoint_picker``; other strategies ignore it."""
    def latency_estimate(self, acc_id: int, now: float | None = None) -> float | None:
        """``peak_ewma``'s latency estimate (seconds) for ``acc_id``; None otherwise."""
    def release(self, acc_id: int, cost: int = 1) -> None: ...
    def route_batch(
        self,
        costs: npt.ArrayLike,
        keys: Iterable[_Key] | None = None,
        priority: int = 0,
        prompts: Iterable[str | bytes | Sequence[int]] | None = None,
        adapters: Sequence[str | None] | None = None,
    ) -> npt.NDArray[np.int64]:
        """Routes a batch with the GIL released; -1 where nothing fit."""
    def release_batch(self, ids: npt.ArrayLike, costs: npt.ArrayLike) -> None:
        """Releases a batch (-1 entries skipped), all or nothing."""
    def loads(self) -> npt.NDArray[np.int64]: ...
    def ids(self) -> npt.NDArray[np.int64]: ...
    def capacities(self) -> npt.NDArray[np.int64]: ...
    def accelerators(self) -> list[Accelerator]: ...
    def memory_bytes(self) -> int:
        """Bytes held by the accelerator arena and the strategy's index (total)."""

@final
class TokenBucket:
    """A lock-free GCRA token bucket: ``rate_per_s`` tokens per second, up to
    ``burst`` at once. ``now`` is the caller's clock in seconds; without it the
    bucket reads a monotonic clock started at its creation."""

    def __new__(cls, rate_per_s: float, burst: float) -> TokenBucket: ...
    def try_acquire(self, n: int = 1, now: float | None = None) -> bool: ...
    def try_acquire_retry_after(self, n: int = 1, now: float | None = None) -> float:
        """Seconds to wait before ``n`` tokens would be granted; 0.0 means granted
        now (and taken)."""
    def refund(self, n: int = 1) -> None:
        """Gives back ``n`` tokens of an earlier grant that went unused (never past
        ``burst``)."""
    @property
    def rate_per_s(self) -> float: ...
    @property
    def burst(self) -> float: ...

@final
class KeyedTokenBucket:
    """One GCRA bucket per key (int, str or bytes), all with the same rate and burst."""

    def __new__(cls, rate_per_s: float, burst: float) -> KeyedTokenBucket: ...
    def try_acquire(self, key: _Key, n: int = 1, now: float | None = None) -> bool: ...
    def try_acquire_retry_after(self, key: _Key, n: int = 1, now: float | None = None) -> float: ...
    def refund(self, key: _Key, n: int = 1) -> None:
        """Gives back ``n`` tokens to ``key``'s bucket from a grant that went unused."""
    def retain_active(self, now: float | None = None) -> int:
        """Drops keys whose bucket is full again (lossless); returns how many."""
    def __len__(self) -> int: ...
    @property
    def rate_per_s(self) -> float: ...
    @property
    def burst(self) -> float: ...

def jump_hash(key: _Key, buckets: int) -> int:
    """Lamping & Veach's jump consistent hash of ``key`` into ``range(buckets)``."""

def hash_key(key: _Key) -> int:
    """The 64-bit key the router uses for ``key`` (int kept, str/bytes hashed)."""

def simulate(
    accelerators: int = 10000,
    load_factor: float = 0.9,
    requests: int = 1000000,
    staleness: float = 0.0,
    seed: int = 42,
    strategies: Sequence[str] | None = None,
    queue_factor: float = 1.0,
    # 2.2 (DEFAULT_SERVICE_SHAPE in src/sim/config.rs). PyO3 writes a default given
    # as a constant path as `...` in the text signature, so `...` is what stubtest
    # can compare against.
    service_shape: float = ...,
) -> list[dict[str, object]]:
    """Runs the discrete-event simulation (GIL released) and returns one dict per
    strategy, keyed as ``StrategyReport::fields`` in src/sim/report.rs."""
