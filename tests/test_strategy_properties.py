"""Property tests: any sequence of routes, releases and fleet changes keeps every
strategy's invariants (hypothesis stateful testing against a plain Python model)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fleetroute import Accelerator, Router

STRATEGIES = [
    ("round_robin", {}),
    ("least_connections", {}),
    ("p2c", {}),
    ("random", {}),
    ("weighted_round_robin", {}),
    ("consistent_hash", {"hash": "ring"}),
    ("consistent_hash", {"hash": "jump"}),
    ("consistent_hash", {"hash": "maglev", "load_bound": 1.5}),
    ("peak_ewma", {}),
    ("cache_aware", {}),
    ("endpoint_picker", {"top_k": 2}),
]


def machine_for(name: str, options: dict[str, object]) -> type[RuleBasedStateMachine]:
    class RouterModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.router = Router(name, seed=3, priority_reserve=0.0, **options)  # type: ignore[arg-type]
            self.capacity: dict[int, int] = {}
            self.healthy: dict[int, bool] = {}
            self.load: dict[int, int] = {}
            self.in_flight: list[tuple[int, int]] = []
            self.next_id = 0

        @rule(capacity=st.integers(1, 6), weight=st.sampled_from([1.0, 2.0, 3.5]))
        def add(self, capacity: int, weight: float) -> None:
            acc_id = self.next_id
            self.next_id += 1
            self.router.add_accelerator(Accelerator(acc_id, capacity, weight=weight))
            self.capacity[acc_id] = capacity
            self.healthy[acc_id] = True
            self.load[acc_id] = 0

        @precondition(lambda self: bool(self.capacity))
        @rule(data=st.data(), healthy=st.booleans())
        def set_health(self, data: st.DataObject, healthy: bool) -> None:
            acc_id = data.draw(st.sampled_from(sorted(self.capacity)))
            self.router.set_healthy(acc_id, healthy)
            self.healthy[acc_id] = healthy

        @precondition(lambda self: bool(self.capacity))
        @rule(data=st.data())
        def remove(self, data: st.DataObject) -> None:
            acc_id = data.draw(st.sampled_from(sorted(self.capacity)))
            self.router.remove_accelerator(acc_id)
            for table in (self.capacity, self.healthy, self.load):
                del table[acc_id]
            self.in_flight = [(a, c) for a, c in self.in_flight if a != acc_id]

        @rule(cost=st.integers(1, 3), key=st.integers(0, 20))
        def route(self, cost: int, key: int) -> None:
            acc_id = self.router.route(cost=cost, priority=1, key=key)
            fits = [
                a
                for a, cap in self.capacity.items()
                if self.healthy[a] and self.load[a] + cost <= cap
            ]
            if acc_id is None:
                assert not fits, f"{name} refused a request that fits on {fits}"
                return
            assert acc_id in fits, f"{name} chose {acc_id}, which could not take it"
            self.load[acc_id] += cost
            self.in_flight.append((acc_id, cost))

        @precondition(lambda self: bool(self.in_flight))
        @rule(data=st.data())
        def release(self, data: st.DataObject) -> None:
            index = data.draw(st.integers(0, len(self.in_flight) - 1))
            acc_id, cost = self.in_flight.pop(index)
            self.router.release(acc_id, cost)
            self.load[acc_id] -= cost

        @invariant()
        def loads_match_the_model(self) -> None:
            ids = self.router.ids().tolist()
            loads = self.router.loads().tolist()
            assert dict(zip(ids, loads, strict=True)) == self.load
            assert all(self.load[a] <= self.capacity[a] for a in self.load)

    RouterModel.__name__ = f"RouterModel_{name}_{'_'.join(map(str, options.values()))}"
    return RouterModel


for _name, _options in STRATEGIES:
    _machine = machine_for(_name, _options)
    _machine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
    globals()[f"Test{_machine.__name__}"] = _machine.TestCase
