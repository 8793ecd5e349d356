"""The routers the seeds name, each a composition of the stages (admission,
resilience, scoring, the Rust pick, observe), and the monitor and analytics over them."""

from typing import Any

from fleetroute.routers.adaptive_router import AdaptiveRouter, AdaptiveRoutingResult
from fleetroute.routers.alert import Alert
from fleetroute.routers.base_router import BaseRouter, NoEndpointAvailable
from fleetroute.routers.bto_router import BTORouter, LoadPrediction
from fleetroute.routers.endpoint import Endpoint
from fleetroute.routers.enhanced_router import EnhancedRouter
from fleetroute.routers.intelligent_router import IntelligentRouter, TaskBasedRouter
from fleetroute.routers.model_fleet_router import ModelFleetRouter, ModelPlacement
from fleetroute.routers.monitor import RouterMonitor
from fleetroute.routers.router_analytics import RouterAnalytics
from fleetroute.routers.routing_result import RoutingResult
from fleetroute.routers.tts_router import TTSRouter, TTSRoutingResult

__all__ = [
    "AdaptiveRouter",
    "AdaptiveRoutingResult",
    "Alert",
    "BTORouter",
    "BaseRouter",
    "Endpoint",
    "EnhancedRouter",
    "IntelligentRouter",
    "LoadPrediction",
    "MoERouter",
    "ModelFleetRouter",
    "ModelPlacement",
    "NoEndpointAvailable",
    "RouterAnalytics",
    "RouterMonitor",
    "RoutingResult",
    "TTSRouter",
    "TTSRoutingResult",
    "TaskBasedRouter",
]


def __getattr__(name: str) -> Any:
    # MoERouter needs JAX; importing it only when asked keeps `import fleetroute` light.
    if name == "MoERouter":
        from fleetroute.routers.moe_router import MoERouter

        return MoERouter
    raise AttributeError(f"module 'fleetroute.routers' has no attribute {name!r}")
