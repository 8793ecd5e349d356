"""fleetroute: decides, for every AI inference request, where it goes.

The routing core is Rust (``fleetroute._native``): a lock-free accelerator registry
with live load counters and the selection strategies. This package re-exports it.
"""

from fleetroute._native import (
    STRATEGIES,
    Accelerator,
    CandidateSet,
    KeyedTokenBucket,
    Request,
    Router,
    TokenBucket,
    __version__,
    hash_key,
    jump_hash,
    simulate,
)

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
