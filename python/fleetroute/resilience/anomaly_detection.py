"""Fleet-relative anomaly detection on per-endpoint latency and error rate.

Each endpoint keeps a sliding window of its last ``window`` observations. A periodic
:meth:`AnomalyDetector.evaluate` reduces every window to two numbers, the median
latency and the error fraction, and compares each endpoint with the rest of the fleet
using the Iglewicz & Hoaglin modified z-score, which is robust to the very outliers it
is looking for::

    z = 0.6745 * (x - median) / MAD                      when MAD > 0
    z = (x - median) / (1.253314 * MeanAD)               when MAD == 0 < MeanAD
    (no z: nothing is an outlier)                        when MAD == MeanAD == 0

where MAD is the median absolute deviation from the fleet median and MeanAD the mean
absolute deviation. Only the high side counts: a fast or error-free endpoint is fine.
Because a very uniform fleet has a tiny MAD, a large z alone is not enough; a latency
anomaly also needs ``median >= min_latency_ratio * fleet median`` and an error anomaly
``error rate - fleet median >= min_error_rate_delta``.

:meth:`AnomalyDetector.observe` sits on the per-request path and is O(1); the numpy work
happens only in :meth:`AnomalyDetector.evaluate`.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetroute.clock import Clock, monotonic_clock
from fleetroute.validation import positive_int

__all__ = ["ERROR_RATE", "LATENCY", "Anomaly", "AnomalyDetector"]

logger = logging.getLogger(__name__)

#: Metric name of a latency anomaly.
LATENCY = "latency"
#: Metric name of an error-rate anomaly.
ERROR_RATE = "error_rate"

# Constants of the modified z-score (Iglewicz & Hoaglin, 1993): 0.6745 is the 0.75
# quantile of the standard normal, 1.253314 is sqrt(pi / 2), MeanAD's scale for a normal.
_MAD_SCALE = 0.6745
_MEANAD_SCALE = 1.253314
# Absorbs rounding in the guard comparisons, e.g. 0.15 - 0.10 < 0.05 in binary floats.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One endpoint deviating on one metric.

    ``detected_at`` is the clock time of the evaluation that first flagged this
    endpoint on this metric; it stays fixed while the anomaly is ongoing, whereas
    ``value``, ``baseline`` and ``score`` are those of the latest evaluation.
    """

    endpoint_id: str
    #: :data:`LATENCY` or :data:`ERROR_RATE`.
    metric: str
    #: The endpoint's metric: median latency in seconds, or error fraction.
    value: float
    #: The fleet median of the same metric.
    baseline: float
    #: The robust (modified) z-score.
    score: float
    detected_at: float


class _Window:
    """An endpoint's last observations, with a running failure count for O(1) updates."""

    __slots__ = ("failures", "latencies", "successes")

    def __init__(self, size: int) -> None:
        self.latencies: deque[float] = deque(maxlen=size)
        self.successes: deque[bool] = deque(maxlen=size)
        self.failures = 0


def _require_real(name: str, value: object, low: float, high: float, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be {rule} (got {value!r})")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{name} must be {rule} (got {value!r})")
    return number


def _robust_z(values: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64] | None]:
    """Returns the median of ``values`` and their modified z-scores (None if undefined)."""
    median = float(np.median(values))
    deviation = values - median
    absolute = np.abs(deviation)
    mad = float(np.median(absolute))
    if mad > 0:
        return median, _MAD_SCALE * deviation / mad
    mean_ad = float(np.mean(absolute))
    if mean_ad > 0:
        return median, deviation / (_MEANAD_SCALE * mean_ad)
    return median, None


class AnomalyDetector:
    """Flags endpoints whose latency or error rate stands out from the fleet's.

    Only endpoints with at least ``min_samples`` observations take part, and nothing is
    flagged unless at least ``min_endpoints`` take part. :meth:`is_anomalous`,
    :meth:`anomalous` and :attr:`last_changes` report the last :meth:`evaluate`.
    Like the other policies, it is meant for one thread (or one event loop).
    """

    __slots__ = (
        "_anomalous",
        "_clock",
        "_last_changes",
        "_min_endpoints",
        "_min_error_rate_delta",
        "_min_latency_ratio",
        "_min_samples",
        "_onsets",
        "_threshold",
        "_window",
        "_windows",
    )

    def __init__(
        self,
        *,
        window: int = 100,
        threshold: float = 3.5,
        min_samples: int = 20,
        min_endpoints: int = 3,
        min_error_rate_delta: float = 0.05,
        min_latency_ratio: float = 1.5,
        clock: Clock = monotonic_clock,
    ) -> None:
        window = positive_int("window", window)
        min_samples = positive_int("min_samples", min_samples)
        if min_samples > window:
            raise ValueError(f"min_samples must be <= window ({window}) (got {min_samples!r})")
        min_endpoints = positive_int("min_endpoints", min_endpoints)
        threshold = _require_real("threshold", threshold, 0.0, math.inf, "finite and > 0")
        if threshold == 0:
            raise ValueError(f"threshold must be finite and > 0 (got {threshold!r})")
        min_error_rate_delta = _require_real(
            "min_error_rate_delta", min_error_rate_delta, 0.0, 1.0, "in [0, 1]"
        )
        min_latency_ratio = _require_real(
            "min_latency_ratio", min_latency_ratio, 1.0, math.inf, "finite and >= 1"
        )
        if not callable(clock):
            raise ValueError(f"clock must be callable (got {clock!r})")
        self._window = window
        self._threshold = threshold
        self._min_samples = min_samples
        self._min_endpoints = min_endpoints
        self._min_error_rate_delta = min_error_rate_delta
        self._min_latency_ratio = min_latency_ratio
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._anomalous: frozenset[str] = frozenset()
        # (endpoint_id, metric) -> time first flagged, for the anomalies now ongoing.
        self._onsets: dict[tuple[str, str], float] = {}
        self._last_changes: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())

    def observe(self, endpoint_id: str, latency: float, success: bool) -> None:
        """Records one request's outcome: ``latency`` in seconds, and whether it succeeded."""
        window = self._windows.get(endpoint_id)
        if window is None and (not isinstance(endpoint_id, str) or not endpoint_id):
            raise ValueError(f"endpoint_id must be a non-empty str (got {endpoint_id!r})")
        if not (latency.__class__ is float and 0.0 <= latency < math.inf) and (
            isinstance(latency, bool)
            or not isinstance(latency, (int, float))
            or not (math.isfinite(latency) and latency >= 0)
        ):
            raise ValueError(f"latency must be finite and >= 0 seconds (got {latency!r})")
        if success is not True and success is not False:
            raise ValueError(f"success must be a bool (got {success!r})")
        if window is None:
            window = self._windows.setdefault(endpoint_id, _Window(self._window))
        # The deque drops its oldest entry on append; keep the failure count in step.
        if len(window.successes) == self._window and not window.successes[0]:
            window.failures -= 1
        window.latencies.append(latency)
        window.successes.append(success)
        if not success:
            window.failures += 1

    def forget(self, endpoint_id: str) -> None:
        """Drops an endpoint's observations and anomaly state (it is not reported as recovered).

        Raises KeyError for an unknown endpoint.
        """
        if endpoint_id not in self._windows:
            raise KeyError(f"endpoint_id {endpoint_id!r} is not known")
        del self._windows[endpoint_id]
        self._anomalous = self._anomalous - {endpoint_id}
        for key in [key for key in self._onsets if key[0] == endpoint_id]:
            del self._onsets[key]

    def evaluate(self) -> list[Anomaly]:
        """Recomputes and returns the current anomalies, sorted by endpoint id then metric."""
        now = self._clock()
        snapshot = [
            (endpoint_id, list(window.latencies), window.failures / len(window.successes))
            for endpoint_id, window in self._windows.items()
            if len(window.successes) >= self._min_samples
        ]
        # (endpoint_id, metric) -> (value, baseline, score)
        found: dict[tuple[str, str], tuple[float, float, float]] = {}
        if len(snapshot) >= self._min_endpoints:
            ids = [endpoint_id for endpoint_id, _, _ in snapshot]
            latency = np.array([np.median(lat) for _, lat, _ in snapshot], dtype=np.float64)
            errors = np.array([rate for _, _, rate in snapshot], dtype=np.float64)
            self._flag(found, ids, LATENCY, latency)
            self._flag(found, ids, ERROR_RATE, errors)

        # An endpoint forgotten while we computed must not come back as anomalous.
        found = {key: v for key, v in found.items() if key[0] in self._windows}
        onsets = {key: self._onsets.get(key, now) for key in found}
        current = frozenset(endpoint_id for endpoint_id, _ in found)
        became = current - self._anomalous
        recovered = self._anomalous - current
        self._onsets = onsets
        self._anomalous = current
        self._last_changes = (became, recovered)

        for endpoint_id in sorted(became):
            metrics = sorted(metric for eid, metric in found if eid == endpoint_id)
            logger.warning("endpoint %s is anomalous (%s)", endpoint_id, ", ".join(metrics))
        for endpoint_id in sorted(recovered):
            logger.info("endpoint %s is no longer anomalous", endpoint_id)

        return [
            Anomaly(
                endpoint_id=endpoint_id,
                metric=metric,
                value=value,
                baseline=baseline,
                score=score,
                detected_at=onsets[(endpoint_id, metric)],
            )
            for (endpoint_id, metric), (value, baseline, score) in sorted(found.items())
        ]

    def _flag(
        self,
        found: dict[tuple[str, str], tuple[float, float, float]],
        ids: list[str],
        metric: str,
        values: npt.NDArray[np.float64],
    ) -> None:
        baseline, scores = _robust_z(values)
        if scores is None:
            return
        if metric == LATENCY:
            # Guard: on a very uniform fleet a few milliseconds can give a huge z.
            guard = values >= self._min_latency_ratio * baseline - _EPSILON
        else:
            guard = values - baseline >= self._min_error_rate_delta - _EPSILON
        for index in np.flatnonzero((scores > self._threshold) & guard):
            found[(ids[index], metric)] = (
                float(values[index]),
                baseline,
                float(scores[index]),
            )

    def is_anomalous(self, endpoint_id: str) -> bool:
        """Whether the last :meth:`evaluate` flagged ``endpoint_id``; False if unknown."""
        return endpoint_id in self._anomalous

    def anomalous(self) -> frozenset[str]:
        """The endpoints flagged by the last :meth:`evaluate`, on any metric."""
        return self._anomalous

    @property
    def last_changes(self) -> tuple[frozenset[str], frozenset[str]]:
        """(endpoints that became anomalous, endpoints that recovered) at the last evaluate."""
        return self._last_changes

    def sample_count(self, endpoint_id: str) -> int:
        """Observations held for ``endpoint_id`` (0 if unknown)."""
        window = self._windows.get(endpoint_id)
        return 0 if window is None else len(window.successes)

    def __repr__(self) -> str:
        return (
            f"AnomalyDetector(endpoints={len(self._windows)}, "
            f"anomalous={sorted(self._anomalous)!r}, threshold={self._threshold!r})"
        )
