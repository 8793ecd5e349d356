"""Cache-aware routing: prompts with shared prefixes go to the replica that served
them, unless the balance guard says the fleet is too uneven."""

from __future__ import annotations

import collections

import pytest

from fleetroute import Accelerator, Router

SYSTEM = "You are the support assistant of tenant {t}. Answer briefly and cite sources. " * 4


def pool(n: int = 4, **options: object) -> Router:
    router = Router("cache_aware", priority_reserve=0.0, **options)  # type: ignore[arg-type]
    router.add_accelerators([Accelerator(i, 1000) for i in range(n)])
    return router


def test_tenants_stick_to_their_replica() -> None:
    router = pool()
    homes = {t: router.route(prompt=SYSTEM.format(t=t) + "first question") for t in range(4)}
    assert sorted(homes.values()) == [0, 1, 2, 3], "first misses spread over the pool"
    for round_ in range(5):
        for t, home in homes.items():
            assert router.route(prompt=SYSTEM.format(t=t) + f"question {round_}") == home


def test_token_ids_and_bytes_work_too() -> None:
    router = pool(block_size=16)
    tokens = list(range(200))
    home = router.route(prompt=tokens)
    assert router.route(prompt=[*tokens, 7, 8, 9]) == home
    other = pool()
    text = SYSTEM.format(t=9).encode()
    assert other.route(prompt=text) == other.route(prompt=text + b" more")


def test_balance_guard_overrides_affinity() -> None:
    router = pool(n=2, balance_abs_threshold=8, balance_rel_threshold=1.5)
    prompt = SYSTEM.format(t=1)
    picks = collections.Counter(router.route(prompt=prompt) for _ in range(60))
    # Affinity alone would send all 60 to one replica; the guard splits the hot prefix.
    assert len(picks) == 2 and max(picks.values()) < 60


def test_removed_replica_is_forgotten() -> None:
    router = pool(n=3)
    home = router.route(prompt=SYSTEM.format(t=5))
    assert home is not None
    router.remove_accelerator(home)
    assert router.route(prompt=SYSTEM.format(t=5)) not in (home, None)


def test_misses_without_prompt_go_by_load_and_candidates_apply() -> None:
    router = pool(n=3)
    assert sorted(router.route() for _ in range(3)) == [0, 1, 2]  # type: ignore[type-var]
    assert {router.route(prompt=SYSTEM.format(t=t), candidates=[2]) for t in range(5)} == {2}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cache_threshold": 1.5}, "cache_threshold"),
        ({"balance_rel_threshold": 0.5}, "balance_rel_threshold"),
        ({"block_size": 0}, "block_size"),
        ({"max_prefix_blocks": 0}, "max_blocks"),
        ({"balance_abs_threshold": -1}, "balance_abs_threshold"),
    ],
)
def test_bad_configuration(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Router("cache_aware", **options)  # type: ignore[arg-type]


def test_bad_prompt_and_misplaced_options() -> None:
    router = pool()
    with pytest.raises(ValueError, match="prompt"):
        router.route(prompt=[1.5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="prompt"):
        router.route(prompt=[-1])
    with pytest.raises(ValueError, match="cache_aware only"):
        Router("p2c", block_size=16)
    assert router.loads().sum() == 0
