"""Seed 003's Python Quick Start, unchanged except the import line."""

from __future__ import annotations

import fleetroute as intelligent_routing


def test_quick_start_runs_unchanged(capsys: object) -> None:
    # Create accelerators
    acc1 = intelligent_routing.Accelerator(1, 100)
    acc2 = intelligent_routing.Accelerator(2, 100)

    # Initialize router with a strategy ("round_robin", "least_connections", "p2c")
    router = intelligent_routing.Router("p2c")
    router.add_accelerator(acc1)
    router.add_accelerator(acc2)

    # Route a request
    req = intelligent_routing.Request(1, 10, 1)
    acc_id = router.route_request(req)

    if acc_id is not None:
        print(f"Routed to accelerator {acc_id}")

    assert acc_id in (1, 2)
    assert acc1.current_load + acc2.current_load == 10


def test_every_seed_strategy_name_is_accepted() -> None:
    for name in ("round_robin", "least_connections", "p2c"):
        router = intelligent_routing.Router(name)
        router.add_accelerator(intelligent_routing.Accelerator(1, 100))
        assert router.route_request(intelligent_routing.Request(1, 10, 1)) == 1
