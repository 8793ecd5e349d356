"""The score stage: which provider or model suits a request best (cost, quality,
latency, budgets, task and specialisation, semantic matching, learned routing)."""

from fleetroute.scoring.bandit import (
    ContextualBandit,
    EpsilonGreedy,
    FeatureEncoder,
    LinUCB,
    ThompsonSampling,
    featurize,
    reward,
)
from fleetroute.scoring.budget import Budget, BudgetExceeded, BudgetManager, Pricing
from fleetroute.scoring.encoders import Encoder, HashingEncoder, SentenceTransformerEncoder
from fleetroute.scoring.provider import DEFAULT_CATALOGUE, Provider
from fleetroute.scoring.provider_metrics import (
    LLMRequest,
    ProviderMetrics,
    Response,
    estimate_tokens,
)
from fleetroute.scoring.provider_scoring import (
    Constraints,
    NoProvidersAvailable,
    ProviderScorer,
    RoutingStrategy,
    Weights,
)
from fleetroute.scoring.semantic import CapabilityMatcher, EmbeddingRouter
from fleetroute.scoring.specialisation import DEFAULT_RULES, SpecialisationRules
from fleetroute.scoring.task_detection import (
    TASK_PREFERENCES,
    TaskDetection,
    TaskDetector,
    detect_task_type,
)

__all__ = [
    "DEFAULT_CATALOGUE",
    "DEFAULT_RULES",
    "TASK_PREFERENCES",
    "Budget",
    "BudgetExceeded",
    "BudgetManager",
    "CapabilityMatcher",
    "Constraints",
    "ContextualBandit",
    "EmbeddingRouter",
    "Encoder",
    "EpsilonGreedy",
    "FeatureEncoder",
    "HashingEncoder",
    "LLMRequest",
    "LinUCB",
    "NoProvidersAvailable",
    "Pricing",
    "Provider",
    "ProviderMetrics",
    "ProviderScorer",
    "Response",
    "RoutingStrategy",
    "SentenceTransformerEncoder",
    "SpecialisationRules",
    "TaskDetection",
    "TaskDetector",
    "ThompsonSampling",
    "Weights",
    "detect_task_type",
    "estimate_tokens",
    "featurize",
    "reward",
]
