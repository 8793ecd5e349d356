"""fleetroute: decides, for every AI inference request, where it goes.

The routing core is Rust (``fleetroute._native``): a lock-free accelerator registry
with live load counters and the selection strategies. On top of it sit Python
policies (``admission``, ``resilience``, ``scoring``) and the routers the seeds name
(``routers``); the most used names are re-exported here.
"""

import logging

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
from fleetroute.admission import Priority, ResponseCache, TieredRateLimiter
from fleetroute.clock import ManualClock
from fleetroute.resilience import (
    AnomalyDetector,
    CircuitBreaker,
    HealthChecker,
    OutlierDetector,
    RetryPolicy,
    UpstreamError,
)
from fleetroute.routers import (
    AdaptiveRouter,
    Alert,
    BaseRouter,
    BTORouter,
    Endpoint,
    EnhancedRouter,
    IntelligentRouter,
    ModelFleetRouter,
    NoEndpointAvailable,
    RouterAnalytics,
    RouterMonitor,
    RoutingResult,
    TaskBasedRouter,
    TTSRouter,
)
from fleetroute.scoring import (
    BudgetManager,
    LLMRequest,
    NoProvidersAvailable,
    ProviderMetrics,
    Response,
    RoutingStrategy,
)

# A library logs; the application decides where the records go.
logging.getLogger("fleetroute").addHandler(logging.NullHandler())

__all__ = [
    "STRATEGIES",
    "Accelerator",
    "AdaptiveRouter",
    "Alert",
    "AnomalyDetector",
    "BTORouter",
    "BaseRouter",
    "BudgetManager",
    "CandidateSet",
    "CircuitBreaker",
    "Endpoint",
    "EnhancedRouter",
    "HealthChecker",
    "IntelligentRouter",
    "KeyedTokenBucket",
    "LLMRequest",
    "ManualClock",
    "ModelFleetRouter",
    "NoEndpointAvailable",
    "NoProvidersAvailable",
    "OutlierDetector",
    "Priority",
    "ProviderMetrics",
    "Request",
    "Response",
    "ResponseCache",
    "RetryPolicy",
    "Router",
    "RouterAnalytics",
    "RouterMonitor",
    "RoutingResult",
    "RoutingStrategy",
    "TTSRouter",
    "TaskBasedRouter",
    "TieredRateLimiter",
    "TokenBucket",
    "UpstreamError",
    "__version__",
    "hash_key",
    "jump_hash",
    "simulate",
]
