"""Contextual bandits (LinUCB, linear Thompson sampling, epsilon-greedy): convergence
on a seeded contextual workload, the Sherman-Morrison inverse, tie-breaking, arms,
features, rewards and validation."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from fleetroute.scoring.bandit import (
    ContextualBandit,
    EpsilonGreedy,
    FeatureEncoder,
    LinUCB,
    ThompsonSampling,
    featurize,
    reward,
)

TASKS = ("code", "chat", "math")
TIERS = ("free", "pro")
ARMS = ("small", "medium", "large")
# Expected reward of each arm per task: a different arm is best for each task.
MEANS = {
    "code": {"small": 0.3, "medium": 0.5, "large": 0.8},
    "chat": {"small": 0.7, "medium": 0.5, "large": 0.4},
    "math": {"small": 0.2, "medium": 0.75, "large": 0.6},
}
ENCODER = FeatureEncoder(TASKS, TIERS)


def play(bandit: ContextualBandit, rounds: int = 3000, seed: int = 1) -> tuple[float, float]:
    """Runs the workload; returns the share of optimal choices in the last 20% of
    rounds and the cumulative regret (expected reward lost to the best arm)."""
    rng = np.random.default_rng(seed)
    optimal: list[bool] = []
    regret = 0.0
    for _ in range(rounds):
        task = TASKS[rng.integers(len(TASKS))]
        tier = TIERS[rng.integers(len(TIERS))]
        context = ENCODER.encode(task, int(rng.integers(10, 5000)), tier)
        arm = bandit.select(context)
        means = MEANS[task]
        best = max(means.values())
        regret += best - means[arm]
        optimal.append(means[arm] == best)
        bandit.update(arm, context, means[arm] + rng.normal(0.0, 0.1))
    tail = optimal[int(0.8 * rounds) :]
    return sum(tail) / len(tail), regret


def test_linucb_converges_to_the_best_arm_per_task() -> None:
    share, regret = play(LinUCB(ARMS, ENCODER.dimension, alpha=1.0, rng=0))
    assert share >= 0.9, f"optimal share {share:.3f}, regret {regret:.1f}"
    # Picking at random would lose about 0.22 a round: about 670 over 3000 rounds.
    assert regret < 60, f"regret {regret:.1f}"


def test_thompson_sampling_converges_to_the_best_arm_per_task() -> None:
    share, regret = play(ThompsonSampling(ARMS, ENCODER.dimension, noise_std=0.2, rng=0))
    assert share >= 0.9, f"optimal share {share:.3f}, regret {regret:.1f}"
    assert regret < 60, f"regret {regret:.1f}"


def test_epsilon_greedy_converges_but_keeps_exploring() -> None:
    share, regret = play(EpsilonGreedy(ARMS, ENCODER.dimension, epsilon=0.1, rng=0))
    # 10% of traffic explores uniformly: at best 0.9 + 0.1/3 of choices are optimal.
    assert 0.85 <= share <= 0.98, f"optimal share {share:.3f}"
    _, linucb_regret = play(LinUCB(ARMS, ENCODER.dimension, rng=0))
    assert linucb_regret < regret, (linucb_regret, regret)


def test_regret_grows_sublinearly() -> None:
    _, early = play(LinUCB(ARMS, ENCODER.dimension, rng=3), rounds=1000, seed=5)
    _, total = play(LinUCB(ARMS, ENCODER.dimension, rng=3), rounds=4000, seed=5)
    # Four times the rounds cost far less than four times the regret.
    assert total < 2 * early, (early, total)


@pytest.mark.parametrize("ridge", [1.0, 0.1, 5.0])
def test_sherman_morrison_inverse_matches_the_direct_inverse(ridge: float) -> None:
    d = 8
    rng = np.random.default_rng(11)
    bandit = LinUCB(["a", "b"], d, ridge=ridge, rng=0)
    design = {"a": ridge * np.eye(d), "b": ridge * np.eye(d)}
    targets = {"a": np.zeros(d), "b": np.zeros(d)}
    for i in range(3000):
        arm = "a" if i % 3 else "b"
        x = rng.normal(size=d)
        r = float(rng.normal())
        bandit.update(arm, x, r)
        design[arm] += np.outer(x, x)
        targets[arm] += r * x
    for arm in ("a", "b"):
        np.testing.assert_allclose(
            bandit.inverse_design(arm), np.linalg.inv(design[arm]), rtol=0, atol=1e-9
        )
        np.testing.assert_allclose(
            bandit.theta(arm), np.linalg.solve(design[arm], targets[arm]), rtol=0, atol=1e-9
        )
    assert bandit.pulls() == {"a": 2000, "b": 1000}


def choices(make: Callable[[int], ContextualBandit], seed: int, n: int = 200) -> list[str]:
    bandit = make(seed)
    context = np.ones(bandit.dimension)
    return [bandit.select(context) for _ in range(n)]


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: LinUCB(["a", "b", "c", "d"], 3, rng=seed),
        lambda seed: EpsilonGreedy(["a", "b", "c", "d"], 3, epsilon=0.0, rng=seed),
    ],
    ids=["linucb", "epsilon_greedy"],
)
def test_ties_are_broken_at_random_and_reproducibly(
    make: Callable[[int], ContextualBandit],
) -> None:
    picked = choices(make, seed=7)
    counts = Counter(picked)
    # Untrained arms tie exactly: every arm is chosen, about equally.
    assert set(counts) == {"a", "b", "c", "d"}
    assert min(counts.values()) > 25, counts
    assert choices(make, seed=7) == picked
    assert choices(make, seed=8) != picked


def test_an_injected_generator_is_used() -> None:
    rng = np.random.default_rng(42)
    bandit = LinUCB(["a", "b"], 2, rng=rng)
    assert bandit.rng is rng


def test_allowed_restricts_the_choice() -> None:
    bandit = LinUCB(ARMS, 2, alpha=0.0, rng=0)
    context = np.array([1.0, 1.0])
    for _ in range(50):
        bandit.update("large", context, 1.0)
    assert bandit.select(context) == "large"
    assert bandit.select(context, allowed=["small", "medium"]) in {"small", "medium"}
    assert bandit.select(context, allowed={"medium"}) == "medium"
    with pytest.raises(KeyError, match="unknown arm 'huge'"):
        bandit.select(context, allowed=["huge"])
    with pytest.raises(ValueError, match="allowed is empty"):
        bandit.select(context, allowed=[])


def test_add_and_remove_arms() -> None:
    bandit = LinUCB(["a", "b"], 2, alpha=0.0, rng=0)
    context = np.array([1.0, 0.0])
    bandit.update("a", context, 1.0)
    assert bandit.select(context) == "a"
    bandit.remove_arm("a")
    assert bandit.arms == ["b"] and "a" not in bandit
    assert bandit.select(context) == "b"
    bandit.add_arm("a")  # back with the prior: nothing learned survives removal
    np.testing.assert_array_equal(bandit.theta("a"), np.zeros(2))
    np.testing.assert_array_equal(bandit.inverse_design("a"), np.eye(2))
    assert bandit.arms == ["b", "a"] and len(bandit) == 2
    with pytest.raises(ValueError, match="already exists"):
        bandit.add_arm("b")
    with pytest.raises(KeyError, match="unknown arm 'z'"):
        bandit.remove_arm("z")
    empty = LinUCB([], 2)
    with pytest.raises(ValueError, match="no arms"):
        empty.select(context)


def test_scores_and_expected_rewards() -> None:
    bandit = LinUCB(["a", "b"], 2, alpha=2.0, ridge=1.0, rng=0)
    x = np.array([1.0, 0.0])
    bandit.update("a", x, 0.5)
    # A_a = I + x xᵀ = diag(2, 1): θ = (0.25, 0), bonus 2·sqrt(1/2).
    scores = bandit.scores(x)
    assert scores["a"] == pytest.approx(0.25 + 2.0 * math.sqrt(0.5))
    assert scores["b"] == pytest.approx(2.0)
    assert bandit.expected_rewards(x) == pytest.approx({"a": 0.25, "b": 0.0})


def test_thompson_draws_around_the_posterior_mean() -> None:
    bandit = ThompsonSampling(["a"], 1, noise_std=0.5, ridge=1.0, rng=3)
    x = np.array([1.0])
    for _ in range(99):
        bandit.update("a", x, 0.6)
    # Posterior N(99·0.6/100, 0.25/100).
    draws = np.array([bandit.scores(x)["a"] for _ in range(4000)])
    assert draws.mean() == pytest.approx(0.594, abs=0.005)
    assert draws.std() == pytest.approx(0.05, rel=0.1)
    assert bandit.expected_rewards(x)["a"] == pytest.approx(0.594)


def test_epsilon_share_of_choices_explores_uniformly() -> None:
    bandit = EpsilonGreedy(["a", "b", "c", "d"], 1, epsilon=0.2, rng=5)
    x = np.array([1.0])
    bandit.update("a", x, 1.0)
    counts = Counter(bandit.select(x) for _ in range(10_000))
    # Each other arm gets epsilon / 4 of traffic; "a" the rest.
    for arm in ("b", "c", "d"):
        assert counts[arm] / 10_000 == pytest.approx(0.05, abs=0.01)
    assert counts["a"] / 10_000 == pytest.approx(0.85, abs=0.015)


def test_discount_keeps_estimates_and_widens_confidence() -> None:
    bandit = LinUCB(["a"], 2, alpha=1.0, rng=0)
    x = np.array([1.0, 0.5])
    for _ in range(20):
        bandit.update("a", x, 1.0)
    theta = bandit.theta("a")
    before = bandit.scores(x)["a"]
    bandit.discount(0.5)
    np.testing.assert_allclose(bandit.theta("a"), theta)
    assert bandit.scores(x)["a"] > before
    with pytest.raises(ValueError, match="factor"):
        bandit.discount(0.0)


def test_featurize_layout() -> None:
    x = featurize("chat", 1023, "pro", TASKS, TIERS, max_prompt_tokens=1023)
    # one-hot task (3) | one-hot tier (2) | log length | bias
    np.testing.assert_allclose(x, [0, 1, 0, 0, 1, 1.0, 1.0])
    assert FeatureEncoder(TASKS, TIERS).dimension == 7
    short = featurize("code", 0, "free", TASKS, TIERS)
    np.testing.assert_allclose(short, [1, 0, 0, 1, 0, 0.0, 1.0])
    mid = featurize("code", 362, "free", TASKS, TIERS)
    assert mid[5] == pytest.approx(math.log1p(362) / math.log1p(131_072))


def test_featurize_validation() -> None:
    with pytest.raises(ValueError, match="unknown task type 'poetry'"):
        featurize("poetry", 10, "pro", TASKS, TIERS)
    with pytest.raises(ValueError, match="unknown tier 'gold'"):
        featurize("chat", 10, "gold", TASKS, TIERS)
    lenient = featurize("poetry", 10, "gold", TASKS, TIERS, strict=False)
    np.testing.assert_array_equal(lenient[:5], np.zeros(5))
    with pytest.raises(ValueError, match="prompt_tokens"):
        featurize("chat", -1, "pro", TASKS, TIERS)
    with pytest.raises(ValueError, match="prompt_tokens"):
        featurize("chat", 2.5, "pro", TASKS, TIERS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duplicates"):
        featurize("chat", 1, "pro", ("chat", "chat"), TIERS)
    with pytest.raises(ValueError, match="task_types must be a sequence"):
        featurize("chat", 1, "pro", "chat", TIERS)
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        FeatureEncoder(TASKS, TIERS, max_prompt_tokens=0)


def test_reward() -> None:
    assert reward(0.9, 0.002, 1.5, cost_weight=10.0, latency_weight=0.2) == pytest.approx(
        0.9 - 0.02 - 0.3
    )
    assert reward(1.0, 0.0, 0.0) == 1.0
    with pytest.raises(ValueError, match="quality must be finite"):
        reward(math.nan, 0.0, 0.0)
    with pytest.raises(ValueError, match="cost must be >= 0"):
        reward(1.0, -1.0, 0.0)
    with pytest.raises(ValueError, match="latency_s must be >= 0"):
        reward(1.0, 0.0, -0.1)
    with pytest.raises(ValueError, match="cost_weight"):
        reward(1.0, 0.0, 0.0, cost_weight=math.inf)


def test_validation_names_the_problem() -> None:
    bandit = LinUCB(["a", "b"], 3, rng=0)
    with pytest.raises(ValueError, match=r"shape \(3,\) \(got shape \(2,\)\)"):
        bandit.select(np.ones(2))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        bandit.update("a", np.ones((3, 1)), 1.0)
    with pytest.raises(ValueError, match="context must be finite"):
        bandit.select(np.array([1.0, math.nan, 0.0]))
    with pytest.raises(ValueError, match="context must be a numeric vector"):
        bandit.select(["x", "y", "z"])
    with pytest.raises(ValueError, match="reward must be finite"):
        bandit.update("a", np.ones(3), math.nan)
    with pytest.raises(KeyError, match="unknown arm 'c'"):
        bandit.update("c", np.ones(3), 1.0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        LinUCB(["a"], 3, alpha=-0.1)
    with pytest.raises(ValueError, match="ridge must be > 0"):
        LinUCB(["a"], 3, ridge=0.0)
    with pytest.raises(ValueError, match="dimension must be an integer >= 1"):
        LinUCB(["a"], 0)
    with pytest.raises(ValueError, match="arms has duplicates"):
        LinUCB(["a", "a"], 3)
    with pytest.raises(ValueError, match="epsilon must be in"):
        EpsilonGreedy(["a"], 3, epsilon=1.5)
    with pytest.raises(ValueError, match="noise_std must be >= 0"):
        ThompsonSampling(["a"], 3, noise_std=-1.0)
    # A failed update changes nothing.
    assert bandit.pulls() == {"a": 0, "b": 0}
    np.testing.assert_array_equal(bandit.inverse_design("a"), np.eye(3))
