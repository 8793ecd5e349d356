"""The routers the seeds name, each a composition of the stages (admission,
resilience, the Rust pick, observe), and the monitor over them."""

from fleetroute.routers.alert import Alert
from fleetroute.routers.base_router import BaseRouter, NoEndpointAvailable
from fleetroute.routers.endpoint import Endpoint
from fleetroute.routers.enhanced_router import EnhancedRouter
from fleetroute.routers.monitor import RouterMonitor
from fleetroute.routers.routing_result import RoutingResult

__all__ = [
    "Alert",
    "BaseRouter",
    "Endpoint",
    "EnhancedRouter",
    "NoEndpointAvailable",
    "RouterMonitor",
    "RoutingResult",
]
