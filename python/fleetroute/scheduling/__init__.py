"""Time-shifting deferrable requests: the BTO scheduler places requests into forecast
load slots on endpoints without exceeding capacity (see :mod:`.scheduler`)."""

from __future__ import annotations

from fleetroute.scheduling.scheduler import (
    OBJECTIVES,
    DeferrableRequest,
    LoadForecast,
    Objective,
    ScheduledRequest,
    ScheduleResult,
    UnplacedRequest,
    dispatch_on_arrival,
    optimize_request_scheduling,
    reschedule,
    schedule,
)

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
