"""MoE gating: hand-worked paper examples, JAX against the numpy reference, and invariants."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.typing import NDArray

from fleetroute.moe import gating as g
from fleetroute.moe import losses
from fleetroute.moe import reference as ref

T, E = 24, 4  # one shape for the random cases, so each mode compiles once


def _logits(seed: int, tokens: int = T, experts: int = E) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    # A per-expert bias makes some experts popular, so capacity limits actually bite.
    bias = np.linspace(1.5, -1.0, experts)
    return rng.normal(size=(tokens, experts)) * 1.5 + bias


def _from_probs(
    probs: list[list[float]], offsets: list[float] | None = None
) -> NDArray[np.float64]:
    # softmax(log p + c) = p, and logsumexp(log p + c) = c: hand-friendly logits.
    logits = np.log(np.asarray(probs, dtype=np.float64))
    if offsets is not None:
        logits = logits + np.asarray(offsets, dtype=np.float64)[:, None]
    return logits


def _slots(dispatch: object) -> list[tuple[int, int, int]]:
    """(token, expert, slot) triples of a dispatch tensor."""
    return [(int(t), int(e), int(c)) for t, e, c in np.argwhere(np.asarray(dispatch))]


def _assert_token_choice_equal(out: g.TokenChoiceRouting, want: ref.TokenChoiceReference) -> None:
    assert out.dispatch.dtype == jnp.bool_
    assert out.combine.dtype == jnp.float32
    assert out.expert_index.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(out.dispatch), want.dispatch)
    np.testing.assert_array_equal(np.asarray(out.expert_index), want.expert_index)
    np.testing.assert_array_equal(np.asarray(out.expert_mask), want.expert_mask)
    np.testing.assert_array_equal(np.asarray(out.tokens_per_expert), want.tokens_per_expert)
    np.testing.assert_array_equal(np.asarray(out.dropped), want.dropped)
    np.testing.assert_allclose(np.asarray(out.combine), want.combine, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.gates), want.gates, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.router_probs), want.router_probs, rtol=0, atol=1e-6)
    assert float(out.aux_loss) == pytest.approx(want.aux_loss, rel=1e-5, abs=1e-7)
    assert float(out.z_loss) == pytest.approx(want.z_loss, rel=1e-5, abs=1e-7)


def _assert_expert_choice_equal(
    out: g.ExpertChoiceRouting, want: ref.ExpertChoiceReference
) -> None:
    np.testing.assert_array_equal(np.asarray(out.dispatch), want.dispatch)
    np.testing.assert_array_equal(np.asarray(out.token_index), want.token_index)
    np.testing.assert_array_equal(np.asarray(out.expert_mask), want.expert_mask)
    np.testing.assert_array_equal(np.asarray(out.tokens_per_expert), want.tokens_per_expert)
    np.testing.assert_array_equal(np.asarray(out.experts_per_token), want.experts_per_token)
    np.testing.assert_array_equal(np.asarray(out.dropped), want.dropped)
    np.testing.assert_allclose(np.asarray(out.combine), want.combine, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.router_probs), want.router_probs, rtol=0, atol=1e-6)
    assert float(out.aux_loss) == want.aux_loss == 0.0
    assert float(out.z_loss) == pytest.approx(want.z_loss, rel=1e-5, abs=1e-7)


# --------------------------------------------------------------------------- capacity


def test_capacity_formulas_by_hand() -> None:
    assert g.expert_capacity(4, 2, 1.0) == 2  # ceil(1 * 4 / 2)
    assert g.expert_capacity(5, 2, 1.0) == 3  # ceil(2.5)
    assert g.expert_capacity(4, 2, 0.5) == 1
    assert g.expert_capacity(4, 3, 0.75, k=2) == 2  # ceil(0.75 * 2 * 4 / 3) = ceil(2)
    assert g.expert_capacity(8, 4, 1.25, k=2) == 5
    # 1.1 * 100 / 11 is 10.000000000000002 in floats; the decimal value gives exactly 10.
    assert g.expert_capacity(100, 11, 1.1) == 10
    assert g.expert_capacity(1, 64, 0.01) == 1  # never below one slot
    assert g.expert_choice_capacity(4, 2, 1.0) == 2
    assert g.expert_choice_capacity(4, 2, 1.25) == 3  # round(2.5) rounds half up
    assert g.expert_choice_capacity(4, 3, 0.75) == 1
    assert g.expert_choice_capacity(4, 8, 0.1) == 1  # clamped up to 1
    assert g.expert_choice_capacity(4, 2, 3.0) == 4  # clamped down to T


def test_reference_capacity_agrees() -> None:
    for tokens in (1, 3, 7, 24, 100):
        for experts in (1, 2, 3, 11, 16):
            for factor in (0.1, 0.5, 1.0, 1.1, 1.25, 2.0, 3.3):
                for k in range(1, min(experts, 3) + 1):
                    assert g.expert_capacity(tokens, experts, factor, k=k) == ref.expert_capacity(
                        tokens, experts, factor, k=k
                    )
                assert g.expert_choice_capacity(
                    tokens, experts, factor
                ) == ref.expert_choice_capacity(tokens, experts, factor)


# --------------------------------------------------------------------------- hand-worked cases

# Four tokens, two experts: p(expert 0) = 0.9, 0.8, 0.6, 0.3, capacity ceil(1 * 4 / 2) = 2.
SWITCH_PROBS = [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]]
SWITCH_OFFSETS = [0.0, 1.0, 2.0, -1.0]  # logsumexp of each row
# f = (3/4, 1/4) by argmax; P = (2.6/4, 1.4/4) = (0.65, 0.35)
# aux = 0.01 * 2 * (0.75 * 0.65 + 0.25 * 0.35) = 0.02 * 0.575 = 0.0115
SWITCH_AUX = 0.0115
# z = 0.001 * mean(0, 1, 4, 1) = 0.0015
SWITCH_Z = 0.0015


def test_switch_hand_example_drops_later_tokens() -> None:
    logits = _from_probs(SWITCH_PROBS, SWITCH_OFFSETS)
    out = g.switch_gating(logits, capacity_factor=1.0)
    assert out.capacity == 2
    # Tokens 0, 1, 2 all want expert 0; the earlier two keep its slots, token 2 is dropped.
    assert _slots(out.dispatch) == [(0, 0, 0), (1, 0, 1), (3, 1, 0)]
    np.testing.assert_array_equal(np.asarray(out.expert_index), [[0], [0], [0], [1]])
    np.testing.assert_array_equal(np.asarray(out.dropped), [[False], [False], [True], [False]])
    assert int(out.num_dropped) == 1
    np.testing.assert_array_equal(np.asarray(out.tokens_per_expert), [2, 1])
    combine = np.asarray(out.combine)
    assert combine[0, 0, 0] == pytest.approx(0.9)
    assert combine[1, 0, 1] == pytest.approx(0.8)
    assert combine[3, 1, 0] == pytest.approx(0.7)
    assert combine[2].sum() == 0.0  # a dropped token contributes nothing
    assert float(out.aux_loss) == pytest.approx(SWITCH_AUX, rel=1e-6)
    assert float(out.z_loss) == pytest.approx(SWITCH_Z, rel=1e-5)
    want = ref.switch_gating(logits, capacity_factor=1.0)
    assert want.aux_loss == pytest.approx(SWITCH_AUX, rel=1e-6)
    assert want.z_loss == pytest.approx(SWITCH_Z, rel=1e-5)
    _assert_token_choice_equal(out, want)


def test_switch_hand_example_next_best() -> None:
    logits = _from_probs(SWITCH_PROBS, SWITCH_OFFSETS)
    out = g.switch_gating(logits, capacity=2, overflow="next_best")
    # Token 2 overflows expert 0 and takes expert 1's free slot, weighted by p_1 = 0.4.
    assert _slots(out.dispatch) == [(0, 0, 0), (1, 0, 1), (2, 1, 1), (3, 1, 0)]
    assert np.asarray(out.combine)[2, 1, 1] == pytest.approx(0.4)
    assert not np.asarray(out.dropped).any()
    np.testing.assert_array_equal(np.asarray(out.tokens_per_expert), [2, 2])
    np.testing.assert_array_equal(np.asarray(out.expert_index), [[0], [0], [0], [1]])
    # The loss counts the router's argmax, not where capacity sent the token.
    assert float(out.aux_loss) == pytest.approx(SWITCH_AUX, rel=1e-6)
    _assert_token_choice_equal(out, ref.switch_gating(logits, capacity=2, overflow="next_best"))


def test_switch_next_best_drops_only_when_every_expert_is_full() -> None:
    logits = _from_probs([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    out = g.switch_gating(logits, capacity_factor=0.5, overflow="next_best")  # C = 1
    assert out.capacity == 1
    # Token 0 takes expert 0; token 1 overflows to expert 1; then both experts are full.
    assert _slots(out.dispatch) == [(0, 0, 0), (1, 1, 0)]
    np.testing.assert_array_equal(np.asarray(out.dropped).ravel(), [False, False, True, True])
    _assert_token_choice_equal(
        out, ref.switch_gating(logits, capacity_factor=0.5, overflow="next_best")
    )


# Four tokens, three experts, k = 2, capacity ceil(0.75 * 2 * 4 / 3) = 2.
TOPK_PROBS = [[0.5, 0.3, 0.2], [0.6, 0.1, 0.3], [0.2, 0.5, 0.3], [0.4, 0.45, 0.15]]


@pytest.mark.parametrize("weights", ["softmax_topk", "renormalized", "probs"])
def test_top_k_hand_example_first_choices_first(weights: g.TopKWeights) -> None:
    logits = _from_probs(TOPK_PROBS)
    out = g.top_k_gating(logits, 2, capacity_factor=0.75, weights=weights)
    assert out.capacity == 2
    np.testing.assert_array_equal(np.asarray(out.expert_index), [[0, 1], [0, 2], [1, 2], [1, 0]])
    # First choices fill expert 0 (tokens 0, 1) and expert 1 (tokens 2, 3).  Only then do
    # second choices go, in token order: token 0 -> expert 1 is full (dropped although token 0
    # comes first), token 1 -> expert 2 slot 0, token 2 -> expert 2 slot 1, token 3 -> expert 0
    # is full (dropped).
    assert _slots(out.dispatch) == [
        (0, 0, 0),
        (1, 0, 1),
        (1, 2, 0),
        (2, 1, 0),
        (2, 2, 1),
        (3, 1, 1),
    ]
    np.testing.assert_array_equal(
        np.asarray(out.dropped), [[False, True], [False, False], [False, False], [False, True]]
    )
    np.testing.assert_array_equal(np.asarray(out.tokens_per_expert), [2, 2, 2])
    if weights == "probs":
        want_gates = [[0.5, 0.3], [0.6, 0.3], [0.5, 0.3], [0.45, 0.4]]
    else:  # both normalised forms are p_j / (p_a + p_b)
        want_gates = [[5 / 8, 3 / 8], [2 / 3, 1 / 3], [5 / 8, 3 / 8], [9 / 17, 8 / 17]]
    np.testing.assert_allclose(np.asarray(out.gates), want_gates, atol=1e-6)
    combine = np.asarray(out.combine)
    assert combine[1, 2, 0] == pytest.approx(want_gates[1][1], abs=1e-6)
    assert combine[0, 1].sum() == 0.0  # the dropped second choice has no weight
    assert combine[0, 0, 0] == pytest.approx(want_gates[0][0], abs=1e-6)  # and no renormalising
    # f by first choice = (2/4, 2/4, 0); P = (1.7, 1.35, 0.95) / 4
    # aux = 0.01 * 3 * (0.5 * 0.425 + 0.5 * 0.3375) = 0.0114375
    assert float(out.aux_loss) == pytest.approx(0.0114375, rel=1e-6)
    assert float(out.z_loss) == pytest.approx(0.0, abs=1e-9)  # rows of log p: logsumexp = 0
    want = ref.top_k_gating(logits, 2, capacity_factor=0.75, weights=weights)
    assert want.aux_loss == pytest.approx(0.0114375, rel=1e-6)
    _assert_token_choice_equal(out, want)


def test_expert_choice_hand_example() -> None:
    probs = [[0.6, 0.35, 0.05], [0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]
    logits = _from_probs(probs, [1.0, 0.0, 0.0, 0.0])
    out = g.expert_choice_gating(logits, capacity_factor=0.75)  # C = round(0.75 * 4 / 3) = 1
    assert out.capacity == 1
    # Expert 0's column (0.6, 0.2, 0.1, 0.3) and expert 1's (0.35, 0.3, 0.2, 0.3) both pick token
    # 0; expert 2's (0.05, 0.5, 0.7, 0.4) picks token 2.  Tokens 1 and 3 get no expert.
    np.testing.assert_array_equal(np.asarray(out.token_index), [[0], [0], [2]])
    assert _slots(out.dispatch) == [(0, 0, 0), (0, 1, 0), (2, 2, 0)]
    np.testing.assert_array_equal(np.asarray(out.experts_per_token), [2, 0, 1, 0])
    np.testing.assert_array_equal(np.asarray(out.dropped), [False, True, False, True])
    np.testing.assert_array_equal(np.asarray(out.tokens_per_expert), [1, 1, 1])
    combine = np.asarray(out.combine)
    assert combine[0, 0, 0] == pytest.approx(0.6)
    assert combine[0, 1, 0] == pytest.approx(0.35)
    assert combine[2, 2, 0] == pytest.approx(0.7)
    assert float(out.z_loss) == pytest.approx(0.001 * 1 / 4, rel=1e-5)  # logsumexp = (1, 0, 0, 0)
    _assert_expert_choice_equal(out, ref.expert_choice_gating(logits, capacity_factor=0.75))


def test_ties_go_to_the_lower_index() -> None:
    out = g.switch_gating(np.zeros((4, 2)))
    np.testing.assert_array_equal(np.asarray(out.expert_index).ravel(), [0, 0, 0, 0])
    assert _slots(out.dispatch) == [(0, 0, 0), (1, 0, 1)]
    chosen = g.expert_choice_gating(np.zeros((4, 2)))
    np.testing.assert_array_equal(np.asarray(chosen.token_index), [[0, 1], [0, 1]])


# --------------------------------------------------------------------------- JAX vs numpy


@pytest.mark.parametrize("overflow", ["drop", "next_best"])
@pytest.mark.parametrize("seed", range(4))
def test_switch_matches_reference(overflow: g.Overflow, seed: int) -> None:
    logits = _logits(seed)
    out = g.switch_gating(logits, overflow=overflow)
    _assert_token_choice_equal(out, ref.switch_gating(logits, overflow=overflow))


@pytest.mark.parametrize("seed", range(3))
def test_switch_jitter_matches_reference_given_the_same_noise(seed: int) -> None:
    logits = _logits(seed)
    key = jax.random.key(seed)
    eps = 0.2  # large enough that the noise changes some routing decisions
    noise = np.asarray(g.jitter_noise(key, (T, E), eps))
    assert noise.dtype == np.float32
    assert ((noise >= 1 - eps) & (noise <= 1 + eps)).all()
    out = g.switch_gating(logits, key=key, jitter_eps=eps)
    _assert_token_choice_equal(out, ref.switch_gating(logits, noise=noise))
    plain = g.switch_gating(logits)
    assert not np.allclose(np.asarray(out.router_probs), np.asarray(plain.router_probs))


def test_jitter_only_with_a_key() -> None:
    logits = _logits(7)
    plain = g.switch_gating(logits)
    # No key means inference: no noise, whatever eps says.
    same = g.switch_gating(logits, jitter_eps=0.5)
    np.testing.assert_array_equal(np.asarray(plain.combine), np.asarray(same.combine))
    # eps = 0 with a key is also noise-free.
    zero = g.switch_gating(logits, key=jax.random.key(1), jitter_eps=0.0)
    np.testing.assert_array_equal(np.asarray(plain.combine), np.asarray(zero.combine))
    # The same key gives the same draw; another key another draw.
    a = g.switch_gating(logits, key=jax.random.key(3))
    b = g.switch_gating(logits, key=jax.random.key(3))
    c = g.switch_gating(logits, key=jax.random.key(4))
    np.testing.assert_array_equal(np.asarray(a.router_probs), np.asarray(b.router_probs))
    assert not np.array_equal(np.asarray(a.router_probs), np.asarray(c.router_probs))


@pytest.mark.parametrize(
    ("k", "weights"),
    [(1, "probs"), (2, "softmax_topk"), (2, "renormalized"), (2, "probs"), (3, "softmax_topk")],
)
@pytest.mark.parametrize("seed", range(3))
def test_top_k_matches_reference(k: int, weights: g.TopKWeights, seed: int) -> None:
    logits = _logits(100 + seed)
    out = g.top_k_gating(logits, k, weights=weights)
    _assert_token_choice_equal(out, ref.top_k_gating(logits, k, weights=weights))


def test_top_k_jitter_matches_reference() -> None:
    logits = _logits(11)
    key = jax.random.key(11)
    noise = np.asarray(g.jitter_noise(key, (T, E), 0.1))
    out = g.top_k_gating(logits, 2, key=key, jitter_eps=0.1)
    _assert_token_choice_equal(out, ref.top_k_gating(logits, 2, noise=noise))


def test_top_k_weight_forms() -> None:
    logits = _logits(5)
    a = g.top_k_gating(logits, 2, weights="softmax_topk")
    b = g.top_k_gating(logits, 2, weights="renormalized")
    c = g.top_k_gating(logits, 2, weights="probs")
    # Mixtral's softmax over the top-k logits equals GShard's renormalised probabilities.
    np.testing.assert_allclose(np.asarray(a.gates), np.asarray(b.gates), atol=1e-6)
    np.testing.assert_allclose(np.asarray(a.gates).sum(axis=1), 1.0, atol=1e-6)
    assert (np.asarray(c.gates).sum(axis=1) < 1.0).all()
    np.testing.assert_array_equal(np.asarray(a.dispatch), np.asarray(c.dispatch))


def test_top_1_with_raw_probs_is_switch() -> None:
    logits = _logits(9)
    switch = g.switch_gating(logits)
    top1 = g.top_k_gating(logits, 1, weights="probs")
    for name in g.TokenChoiceRouting._fields:
        np.testing.assert_allclose(
            np.asarray(getattr(switch, name)), np.asarray(getattr(top1, name)), atol=1e-7
        )


@pytest.mark.parametrize("capacity_factor", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("seed", range(3))
def test_expert_choice_matches_reference(capacity_factor: float, seed: int) -> None:
    logits = _logits(200 + seed)
    out = g.expert_choice_gating(logits, capacity_factor=capacity_factor)
    want = ref.expert_choice_gating(logits, capacity_factor=capacity_factor)
    _assert_expert_choice_equal(out, want)


# --------------------------------------------------------------------------- invariants

SEEDS = range(40)


def _check_token_choice_invariants(out: g.TokenChoiceRouting, k: int) -> None:
    dispatch = np.asarray(out.dispatch)
    capacity = out.capacity
    per_expert = np.asarray(out.tokens_per_expert)
    assert (per_expert <= capacity).all()
    np.testing.assert_array_equal(per_expert, dispatch.sum(axis=(0, 2)))
    assert dispatch.sum(axis=0).max() <= 1  # a slot holds at most one token
    assert dispatch.sum(axis=2).max() <= 1  # a token holds at most one slot per expert
    # Occupied slots of each expert are a prefix 0..n-1: no holes.
    occupied = dispatch.any(axis=0)
    np.testing.assert_array_equal(occupied, np.arange(capacity)[None, :] < per_expert[:, None])
    # Every (token, choice) is either placed once or counted as dropped.
    dropped = np.asarray(out.dropped)
    assert dropped.shape == (T, k)
    assert per_expert.sum() + dropped.sum() == T * k
    np.testing.assert_array_equal(dispatch.sum(axis=(1, 2)), k - dropped.sum(axis=1))
    combine = np.asarray(out.combine)
    assert (combine[~dispatch] == 0).all()
    assert (combine[dispatch] > 0).all()


@pytest.mark.parametrize("capacity_factor", [0.5, 1.0])
def test_capacity_never_exceeded_switch_drop(capacity_factor: float) -> None:
    for seed in SEEDS:
        out = g.switch_gating(_logits(seed), capacity_factor=capacity_factor)
        _check_token_choice_invariants(out, 1)
        # Dropped tokens are the latest ones for their expert: every kept token comes first.
        expert = np.asarray(out.expert_index)[:, 0]
        dropped = np.asarray(out.dropped)[:, 0]
        for e in range(E):
            kept = np.flatnonzero((expert == e) & ~dropped)
            lost = np.flatnonzero((expert == e) & dropped)
            assert len(lost) == 0 or (len(kept) == out.capacity and kept.max() < lost.min())


@pytest.mark.parametrize("capacity_factor", [0.5, 1.0])
def test_next_best_never_exceeds_capacity_and_drops_only_when_full(
    capacity_factor: float,
) -> None:
    for seed in SEEDS:
        out = g.switch_gating(_logits(seed), capacity_factor=capacity_factor, overflow="next_best")
        _check_token_choice_invariants(out, 1)
        capacity = out.capacity
        per_expert = np.asarray(out.tokens_per_expert)
        dropped = int(out.num_dropped)
        # A token is dropped only once every expert is full, so exactly the surplus is dropped.
        assert dropped == max(0, T - E * capacity)
        if dropped:
            assert (per_expert == capacity).all()
        # Everyone whose first choice had room got it: next-best only takes overflow.
        drop_mode = g.switch_gating(_logits(seed), capacity_factor=capacity_factor)
        first = np.asarray(drop_mode.dispatch)
        assert (np.asarray(out.dispatch)[first]).all()


@pytest.mark.parametrize("k", [2, 3])
def test_capacity_never_exceeded_top_k(k: int) -> None:
    total_dropped = 0
    for seed in SEEDS:
        out = g.top_k_gating(_logits(seed), k)
        _check_token_choice_invariants(out, k)
        total_dropped += int(out.num_dropped)
        # Priority: a choice of rank j is dropped only if its expert was filled by choices of rank
        # <= j; so when any first choice is dropped, its expert holds only first choices.
        rank_of = np.full((T, E), -1)
        for j in range(k):
            rank_of[np.arange(T), np.asarray(out.expert_index)[:, j]] = j
        mask = np.asarray(out.expert_mask)
        dropped = np.asarray(out.dropped)
        for t, j in zip(*np.nonzero(dropped), strict=True):
            e = int(np.asarray(out.expert_index)[t, j])
            assert int(np.asarray(out.tokens_per_expert)[e]) == out.capacity
            assert (rank_of[mask[:, e], e] <= j).all()
    assert total_dropped > 0  # the biased logits do overflow some experts


def test_expert_choice_is_perfectly_balanced() -> None:
    for seed in SEEDS:
        out = g.expert_choice_gating(_logits(seed), capacity_factor=1.0)
        capacity = out.capacity
        assert capacity == T // E
        np.testing.assert_array_equal(np.asarray(out.tokens_per_expert), np.full(E, capacity))
        dispatch = np.asarray(out.dispatch)
        assert (dispatch.sum(axis=0) == 1).all()  # every slot of every expert is used once
        assert int(np.asarray(out.experts_per_token).sum()) == E * capacity
        # Each expert's picks are its top-C scores, best first.
        probs = np.asarray(out.router_probs)
        for e in range(E):
            picked = np.asarray(out.token_index)[e]
            scores = probs[picked, e]
            assert (np.diff(scores) <= 0).all()
            rest = np.delete(probs[:, e], picked)
            assert rest.max() <= scores.min()


# --------------------------------------------------------------------------- gradients


def _finite_difference(
    f: Callable[[NDArray[np.float64]], float], x: NDArray[np.float64], h: float = 1e-6
) -> NDArray[np.float64]:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (f(up) - f(down)) / (2 * h)
    return grad


@jax.jit
def _loss_gradients(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return (
        jax.grad(lambda v: losses.load_balancing_loss(v))(x),
        jax.grad(lambda v: losses.router_z_loss(v))(x),
    )


@jax.jit
def _router_gradients(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    # Under jit the logits are traced, so the eager finiteness check steps aside.
    switch = jax.grad(lambda v: g.switch_gating(v).aux_loss + g.switch_gating(v).z_loss)(x)
    top_k = jax.grad(lambda v: g.top_k_gating(v, 2).aux_loss)(x)
    expert_choice = jax.grad(lambda v: g.expert_choice_gating(v).z_loss)(x)
    combine = jax.grad(lambda v: jnp.sum(g.top_k_gating(v, 2).combine ** 2))(x)
    return switch, top_k, expert_choice, combine


@pytest.mark.parametrize("seed", range(2))
def test_aux_loss_gradients_match_finite_differences(seed: int) -> None:
    # float32-representable logits, so JAX and the float64 reference see the same input.
    logits = _logits(300 + seed, tokens=8, experts=4).astype(np.float32).astype(np.float64)
    x = jnp.asarray(logits, dtype=jnp.float32)
    aux_grad, z_grad = (np.asarray(a) for a in _loss_gradients(x))

    want = _finite_difference(lambda v: ref.load_balancing_loss(v), logits)
    np.testing.assert_allclose(aux_grad, want, rtol=1e-4, atol=1e-8)
    assert np.abs(want).max() > 1e-4  # not trivially zero
    want_z = _finite_difference(lambda v: ref.router_z_loss(v), logits)
    np.testing.assert_allclose(z_grad, want_z, rtol=1e-4, atol=1e-8)

    # The same gradients flow through the routers' outputs.
    switch, top_k, expert_choice, combine = (np.asarray(a) for a in _router_gradients(x))
    np.testing.assert_allclose(switch, aux_grad + z_grad, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(top_k, aux_grad, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(expert_choice, z_grad, rtol=1e-5, atol=1e-9)
    # The combine weights are differentiable too (through the gates).
    assert np.isfinite(combine).all()
    assert np.abs(combine).max() > 0


def test_eager_grad_through_a_router() -> None:
    # Eager jax.grad also hands the wrapper a tracer; the finiteness check must step aside.
    x = jnp.asarray(_logits(13, tokens=8, experts=4), dtype=jnp.float32)
    grad = jax.grad(lambda v: jnp.sum(g.expert_choice_gating(v).combine))(x)
    assert np.isfinite(np.asarray(grad)).all()
    assert np.abs(np.asarray(grad)).max() > 0


# --------------------------------------------------------------------------- pytree and jit


def test_outputs_are_pytrees_and_work_under_jit() -> None:
    logits = _logits(21)
    eager = g.switch_gating(logits, overflow="next_best")
    assert len(jax.tree_util.tree_leaves(eager)) == len(g.TokenChoiceRouting._fields)
    traced = jax.jit(lambda v: g.switch_gating(v, overflow="next_best"))(logits)
    assert isinstance(traced, g.TokenChoiceRouting)
    for a, b in zip(
        jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(traced), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_accepts_half_precision_and_integer_logits() -> None:
    out = g.expert_choice_gating(jnp.asarray(_logits(1), dtype=jnp.bfloat16))
    assert out.combine.dtype == jnp.float32
    assert out.router_probs.dtype == jnp.float32
    ints = g.switch_gating(np.array([[2, 0], [0, 1], [3, 1], [1, 1]]))
    np.testing.assert_array_equal(np.asarray(ints.expert_index).ravel(), [0, 1, 0, 0])


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "logits",
    [np.zeros(4), np.zeros((2, 2, 2)), np.zeros((0, 2)), np.zeros((2, 0))],
    ids=["rank1", "rank3", "no-tokens", "no-experts"],
)
def test_rejects_bad_shapes(logits: NDArray[np.float64]) -> None:
    with pytest.raises(ValueError, match="logits"):
        g.switch_gating(logits)
    with pytest.raises(ValueError, match="logits"):
        g.top_k_gating(logits, 1)
    with pytest.raises(ValueError, match="logits"):
        g.expert_choice_gating(logits)


def test_rejects_non_real_logits() -> None:
    with pytest.raises(ValueError, match="real"):
        g.switch_gating(np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="real"):
        g.switch_gating(np.ones((2, 2), dtype=np.complex64))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_rejects_non_finite_logits_unless_unchecked(bad: float) -> None:
    logits = _logits(0)
    logits[3, 1] = bad
    with pytest.raises(ValueError, match="non-finite"):
        g.switch_gating(logits)
    with pytest.raises(ValueError, match="non-finite"):
        g.top_k_gating(logits, 2)
    with pytest.raises(ValueError, match="non-finite"):
        g.expert_choice_gating(logits)
    # check=False trusts the caller: no error, garbage in, garbage out.
    out = g.switch_gating(logits, check=False)
    assert out.dispatch.shape == (T, E, out.capacity)


@pytest.mark.parametrize("k", [0, -1, E + 1, True, 1.5])
def test_rejects_bad_k(k: int) -> None:
    with pytest.raises(ValueError, match="k must"):
        g.top_k_gating(_logits(0), k)


@pytest.mark.parametrize("factor", [0.0, -1.0, math.nan, math.inf, True, "1"])
def test_rejects_bad_capacity_factor(factor: float) -> None:
    with pytest.raises(ValueError, match="capacity_factor"):
        g.switch_gating(_logits(0), capacity_factor=factor)
    with pytest.raises(ValueError, match="capacity_factor"):
        g.top_k_gating(_logits(0), 2, capacity_factor=factor)
    with pytest.raises(ValueError, match="capacity_factor"):
        g.expert_choice_gating(_logits(0), capacity_factor=factor)
    with pytest.raises(ValueError, match="capacity_factor"):
        g.expert_capacity(4, 2, factor)


def test_rejects_other_bad_arguments() -> None:
    logits = _logits(0)
    with pytest.raises(ValueError, match="overflow"):
        g.switch_gating(logits, overflow="reroute")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weights"):
        g.top_k_gating(logits, 2, weights="softmax")  # type: ignore[arg-type]
    for eps in (-0.1, 1.0, math.nan):
        with pytest.raises(ValueError, match="jitter_eps"):
            g.switch_gating(logits, jitter_eps=eps)
    with pytest.raises(ValueError, match="capacity"):
        g.switch_gating(logits, capacity=0)
    with pytest.raises(ValueError, match="capacity"):
        g.expert_choice_gating(logits, capacity=T + 1)
    with pytest.raises(ValueError, match="aux_loss_coef"):
        g.switch_gating(logits, aux_loss_coef=-1.0)
    with pytest.raises(ValueError, match="z_loss_coef"):
        g.expert_choice_gating(logits, z_loss_coef=math.nan)
    with pytest.raises(ValueError, match="num_tokens"):
        g.expert_capacity(0, 2, 1.0)
