"""The routing service: both seeds' HTTP APIs, the WebSocket feed, the OpenAI-compatible
proxy, Prometheus metrics, auth, analytics, shared state and the dashboard.

``create_app(config)`` builds the FastAPI application; ``load_config`` reads seed
004's YAML layout and environment variables; ``fleetroute serve`` runs it.
"""

from fleetroute.service.app import create_app
from fleetroute.service.config import ConfigError, ServiceConfig, load_config
from fleetroute.service.routing_service import RoutingService

__all__ = ["ConfigError", "RoutingService", "ServiceConfig", "create_app", "load_config"]
