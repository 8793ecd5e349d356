"""The candidates and observe stages: who may receive requests, and what their
outcomes teach (circuit breakers, outlier ejection, active health checks, anomaly
detection, retries)."""

from fleetroute.resilience.anomaly_detection import Anomaly, AnomalyDetector
from fleetroute.resilience.availability import Availability, Unavailable
from fleetroute.resilience.circuit_breaker import BreakerSnapshot, BreakerState, CircuitBreaker
from fleetroute.resilience.health_check import HealthChecker, HealthStatus
from fleetroute.resilience.outlier_detection import Ejection, OutlierDetector
from fleetroute.resilience.retry import RetryPolicy, UpstreamError, is_retryable, status_of

__all__ = [
    "Anomaly",
    "AnomalyDetector",
    "Availability",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "Ejection",
    "HealthChecker",
    "HealthStatus",
    "OutlierDetector",
    "RetryPolicy",
    "Unavailable",
    "UpstreamError",
    "is_retryable",
    "status_of",
]
