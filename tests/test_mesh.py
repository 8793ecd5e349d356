"""Tests for ``fleetroute.mesh``: the TPU mesh adapter, on CPU.

A real ``(8, 4)`` mesh needs 32 devices. The pytest process keeps its single CPU
device, so those tests run this file as a script in a subprocess with 32 simulated
CPU devices (``--xla_force_host_platform_device_count``), or as two processes of 16
devices each joined by ``jax.distributed`` on loopback; the script checks what it
can itself and writes what it saw as JSON for the tests to assert on.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import mesh_utils

import fleetroute
from fleetroute.mesh import (
    PRESETS,
    DistributedInfo,
    MeshAdapter,
    MeshFallbackWarning,
    MeshShapeError,
    device_grid,
    feasible_shapes,
    from_tpu_config,
    initialize_distributed,
    preset_for_devices,
    slice_preset,
)
from fleetroute.moe.gating import switch_gating

SEED_TPU_CONFIG: dict[str, Any] = {
    "mesh_shape": (8, 4),  # TPU v4-32
    "memory_threshold_gb": 30,
    "latency_threshold_ms": 500,
    "enable_fallback": True,
    "fallback_device": "cpu",
}
GIB = 1 << 30
WORKER_TIMEOUT_S = 90


@jax.jit
def top1_gating(tokens: jax.Array, params: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Switch-style top-1 gating: each token goes to its most probable expert only.

    ``params["gate"]`` is ``(experts, d_model)``, ``params["w"]`` is
    ``(experts, d_model, d_out)``: the expert index leads, so both shard over the
    expert axis.
    """
    experts = params["gate"].shape[0]
    probs = jax.nn.softmax(tokens @ params["gate"].T, axis=-1)
    expert = jnp.argmax(probs, axis=-1)
    dispatch = jax.nn.one_hot(expert, experts, dtype=tokens.dtype)
    gate = jnp.sum(probs * dispatch, axis=-1)
    # Every expert's output is weighed by the one-hot dispatch: only the chosen counts.
    out = jnp.einsum("be,bd,edh->bh", dispatch * gate[:, None], tokens, params["w"])
    # Tokens per expert sums over the batch: a collective across the data axis (and
    # across processes in the distributed test).
    load = jnp.sum(dispatch, axis=0)
    return {"probs": probs, "expert": expert, "dispatch": dispatch, "out": out, "load": load}


@jax.jit
def project_switch_gating(
    tokens: jax.Array, params: Mapping[str, jax.Array]
) -> dict[str, jax.Array]:
    """``fleetroute.moe.gating.switch_gating`` on the router logits, with a capacity
    small enough that some tokens are dropped (token order decides which)."""
    logits = tokens @ params["gate"].T
    routing = switch_gating(logits, capacity_factor=0.75, check=False)
    return {
        "dispatch": routing.dispatch,
        "combine": routing.combine,
        "dropped": jnp.sum(routing.dropped),
    }


def gating_inputs(
    batch: int = 64, d_model: int = 16, experts: int = 8
) -> tuple[np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]]]:
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((batch, d_model), dtype=np.float32)
    params = {
        "gate": rng.standard_normal((experts, d_model), dtype=np.float32),
        "w": rng.standard_normal((experts, d_model, d_model), dtype=np.float32),
    }
    return tokens, params


def compare_gating(sharded: Mapping[str, Any], unsharded: Mapping[str, Any]) -> dict[str, float]:
    """Asserts the routing decisions are identical and the floats agree to rounding.

    Softmax sums and the expert contraction run across the expert shards, so XLA adds
    them in another order than the single-device run: equal up to float32 rounding.
    """
    for key in ("expert", "dispatch", "load"):
        np.testing.assert_array_equal(sharded[key], unsharded[key], err_msg=key)
    for key in ("probs", "out"):
        np.testing.assert_allclose(sharded[key], unsharded[key], rtol=1e-5, atol=1e-6)
    return {k: float(np.max(np.abs(sharded[k] - unsharded[k]))) for k in ("probs", "out")}


def check(condition: bool, message: str) -> None:
    """``assert`` that survives ``python -O`` in the worker."""
    if not condition:
        raise AssertionError(message)


# --- the worker: runs in a subprocess with many simulated devices -------------------


def ids(grid: Any) -> list[list[int]]:
    return [[int(d.id) for d in row] for row in grid]


def worker_single() -> dict[str, Any]:
    """One process, 32 CPU devices: mesh, errors, fallback, registration, gating."""
    devices = jax.devices()
    check(len(devices) == 32, f"expected 32 simulated devices, got {len(devices)}")
    facts: dict[str, Any] = {}

    adapter = MeshAdapter()
    facts["mesh_shape"] = dict(adapter.mesh.shape)
    facts["axis_names"] = list(adapter.mesh.axis_names)
    facts["mesh_ids"] = ids(adapter.mesh.devices)
    facts["topology_ids"] = ids(mesh_utils.create_device_mesh((8, 4), devices))
    facts["fallback_used"] = adapter.fallback_used

    config_adapter = from_tpu_config(fleetroute.BaseRouter(tpu_config=SEED_TPU_CONFIG).tpu_config)
    facts["from_tpu_config"] = {
        "shape": dict(config_adapter.mesh.shape),
        "memory_threshold_gb": config_adapter.memory_threshold_gb,
    }

    try:
        MeshAdapter((8, 4), devices=devices[:16], enable_fallback=False)
    except MeshShapeError as exc:
        facts["error16"] = {"message": str(exc), "feasible": [list(s) for s in exc.feasible]}
    try:
        MeshAdapter((4, 4))
    except MeshShapeError as exc:
        facts["error_too_many"] = str(exc)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fallback = MeshAdapter((8, 4), devices=devices[:16])
    facts["fallback16"] = {
        "warnings": [(w.category.__name__, str(w.message)) for w in caught],
        "used": fallback.fallback_used,
        "shape": dict(fallback.mesh.shape),
        "platform": fallback.devices[0].platform,
    }

    router = fleetroute.Router("least_connections")
    coordinates = adapter.register(router, capacity=8)
    facts["router_ids"] = sorted(int(i) for i in router.ids())
    facts["router_capacities"] = sorted({int(c) for c in router.capacities()})
    facts["coordinates"] = {str(k): list(v) for k, v in coordinates.items()}
    routed = [router.route() for _ in range(64)]
    facts["routed"] = routed

    tokens, params = gating_inputs()
    x = adapter.shard_tokens(tokens)
    w = adapter.shard_experts(params)
    facts["token_shard_shape"] = list(x.addressable_shards[0].data.shape)
    check(x.sharding == adapter.token_sharding, f"tokens placed as {x.sharding}")
    facts["token_spec"] = list(adapter.token_sharding.spec)
    facts["gate_shard_shape"] = list(w["gate"].addressable_shards[0].data.shape)
    facts["w_shard_shape"] = list(w["w"].addressable_shards[0].data.shape)
    sharded = adapter.to_host(adapter.run(top1_gating, tokens, params))
    unsharded = jax.tree.map(np.asarray, top1_gating(tokens, params))
    facts["gating_max_abs_diff"] = compare_gating(sharded, unsharded)
    facts["experts_used"] = sorted({int(e) for e in unsharded["expert"]})
    # The project's own Switch gating, capacity-limited, under the same sharding.
    switched = adapter.to_host(adapter.run(project_switch_gating, tokens, params))
    reference = jax.tree.map(np.asarray, project_switch_gating(tokens, params))
    facts["switch_dispatch_equal"] = bool(
        np.array_equal(switched["dispatch"], reference["dispatch"])
    )
    facts["switch_combine_max_abs_diff"] = float(
        np.max(np.abs(switched["combine"] - reference["combine"]))
    )
    facts["switch_dropped"] = int(reference["dropped"])
    try:
        adapter.shard_tokens(np.zeros((10, 4), np.float32))
    except ValueError as exc:
        facts["ragged_batch_error"] = str(exc)
    return facts


def worker_distributed() -> dict[str, Any]:
    """One of two processes with 16 CPU devices each; the layout comes from the
    ``JAX_*`` environment variables, as on a real multi-host slice."""
    info = initialize_distributed(initialization_timeout=60)
    try:
        adapter = MeshAdapter((8, 4))
        router = fleetroute.Router("p2c")
        coordinates = adapter.register(router, capacity=4)
        tokens, params = gating_inputs()
        sharded = adapter.to_host(adapter.run(top1_gating, tokens, params))
        # The reference runs on this process's first device only.
        unsharded = jax.tree.map(np.asarray, top1_gating(tokens, params))
        return {
            "info": vars(info),
            "mesh_shape": dict(adapter.mesh.shape),
            "mesh_ids": ids(adapter.mesh.devices),
            "mesh_processes": [[int(d.process_index) for d in row] for row in adapter.mesh.devices],
            "local_devices": len(adapter.local_devices),
            "router_size": len(router),
            "coordinates": len(coordinates),
            "memory": {str(k): v for k, v in adapter.check_memory(router).items()},
            "gating_max_abs_diff": compare_gating(sharded, unsharded),
        }
    finally:
        jax.distributed.shutdown()


def worker_main(mode: str, out: str) -> None:
    # As strict as the pytest run: a deprecation on the way fails the worker.
    warnings.simplefilter("error")
    workers: dict[str, Callable[[], dict[str, Any]]] = {
        "single": worker_single,
        "distributed": worker_distributed,
    }
    facts = workers[mode]()
    Path(out).write_text(json.dumps(facts))


# --- running the worker --------------------------------------------------------------


def worker_env(device_count: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={device_count}"])
    env["JAX_PLATFORMS"] = "cpu"
    env.update(extra)
    return env


def run_worker(mode: str, out: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, mode, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"{mode} worker failed:\n{proc.stderr[-4000:]}"
    facts: dict[str, Any] = json.loads(out.read_text())
    return facts


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("mesh") / "single.json"
    return run_worker("single", out, worker_env(32))


def test_mesh_8x4_on_32_devices_has_named_axes_in_topology_order(single: dict[str, Any]) -> None:
    assert single["mesh_shape"] == {"data": 8, "expert": 4}
    assert single["axis_names"] == ["data", "expert"]
    assert single["fallback_used"] is False
    # The order JAX's topology-aware builder picks; on CPU that is the device order.
    assert single["mesh_ids"] == single["topology_ids"]
    assert single["mesh_ids"] == np.arange(32).reshape(8, 4).tolist()


def test_from_tpu_config_builds_the_seed_mesh(single: dict[str, Any]) -> None:
    assert single["from_tpu_config"] == {
        "shape": {"data": 8, "expert": 4},
        "memory_threshold_gb": 30.0,
    }


def test_8x4_on_16_devices_says_why_and_proposes_shapes(single: dict[str, Any]) -> None:
    error = single["error16"]
    assert error["feasible"][:3] == [[4, 4], [2, 8], [8, 2]]
    message = error["message"]
    assert "needs 32 devices, but 16 cpu device(s) are present" in message
    assert "(4, 4), (2, 8)" in message
    # Sizing a v4-32 mesh by its name counts TensorCores; the message says so.
    assert "v4-32" in message and "megacore" in message


def test_more_devices_than_the_shape_is_an_error_not_a_fallback(single: dict[str, Any]) -> None:
    message = single["error_too_many"]
    assert "needs 16 devices, but 32" in message
    assert "pass devices= with 16" in message


def test_too_few_devices_fall_back_to_cpu_with_a_warning(single: dict[str, Any]) -> None:
    fallback = single["fallback16"]
    assert [w[0] for w in fallback["warnings"]] == ["MeshFallbackWarning"]
    assert "Falling back to a (1, 1) mesh on cpu" in fallback["warnings"][0][1]
    assert fallback["used"] is True
    assert fallback["shape"] == {"data": 1, "expert": 1}
    assert fallback["platform"] == "cpu"


def test_registration_puts_every_device_in_the_router_with_coordinates(
    single: dict[str, Any],
) -> None:
    assert single["router_ids"] == list(range(32))
    assert single["router_capacities"] == [8]
    coordinates = {int(k): tuple(v) for k, v in single["coordinates"].items()}
    grid = single["mesh_ids"]
    assert coordinates == {grid[i][j]: (i, j) for i in range(8) for j in range(4)}
    # 64 unit requests over 32 devices of capacity 8, least connections: two each.
    routed = single["routed"]
    assert None not in routed
    assert sorted(routed) == sorted(list(range(32)) * 2)


def test_sharded_gating_equals_the_unsharded_run(single: dict[str, Any]) -> None:
    # 64 tokens over 8 data shards, 8 experts over 4 expert shards.
    assert single["token_spec"] == ["data"]
    assert single["token_shard_shape"] == [8, 16]
    assert single["gate_shard_shape"] == [2, 16]
    assert single["w_shard_shape"] == [2, 16, 16]
    # More than one expert chosen, or the comparison would prove little.
    assert len(single["experts_used"]) > 1
    assert all(diff < 1e-5 for diff in single["gating_max_abs_diff"].values())
    assert "does not split over the 'data' axis of size 8" in single["ragged_batch_error"]
    # The project's Switch gating: the same tokens kept and dropped, sharded or not.
    assert single["switch_dispatch_equal"]
    assert single["switch_combine_max_abs_diff"] < 1e-6
    assert single["switch_dropped"] > 0


def loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_two_processes_on_loopback_build_one_global_mesh(tmp_path: Path) -> None:
    try:
        port = loopback_port()
    except OSError as exc:
        pytest.skip(f"no loopback networking for the JAX coordinator: {exc}")
    procs = []
    for process_id in range(2):
        env = worker_env(
            16,
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            # JAX binds [::] by default; loopback only works without IPv6 too.
            JAX_COORDINATOR_BIND_ADDRESS=f"127.0.0.1:{port}",
            JAX_NUM_PROCESSES="2",
            JAX_PROCESS_ID=str(process_id),
        )
        out = tmp_path / f"process{process_id}.json"
        cmd = [sys.executable, __file__, "distributed", str(out)]
        procs.append(
            (
                subprocess.Popen(
                    cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
                ),
                out,
            )
        )
    results = []
    try:
        for proc, out in procs:
            _, stderr = proc.communicate(timeout=WORKER_TIMEOUT_S)
            assert proc.returncode == 0, f"distributed worker failed:\n{stderr[-4000:]}"
            results.append(json.loads(out.read_text()))
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for process_id, facts in enumerate(results):
        assert facts["info"] == {
            "process_id": process_id,
            "num_processes": 2,
            "local_device_count": 16,
            "device_count": 32,
        }
        assert facts["mesh_shape"] == {"data": 8, "expert": 4}
        assert facts["local_devices"] == 16
        # Every process registers the whole global fleet.
        assert facts["router_size"] == facts["coordinates"] == 32
        # Memory is read on local devices only; CPU reports none.
        assert len(facts["memory"]) == 16
        assert set(facts["memory"].values()) == {None}
        assert all(diff < 1e-5 for diff in facts["gating_max_abs_diff"].values())
    assert results[0]["mesh_ids"] == results[1]["mesh_ids"]
    # Hosts split the data axis; each host's devices hold whole expert rows.
    assert results[0]["mesh_processes"] == [[0] * 4] * 4 + [[1] * 4] * 4


# --- in-process tests: one CPU device ------------------------------------------------


def test_v4_32_preset_arithmetic() -> None:
    v4_32 = slice_preset("v4-32")
    assert (v4_32.tensor_cores, v4_32.chips, v4_32.devices, v4_32.hosts) == (32, 16, 16, 4)
    assert v4_32.devices_per_host == 4
    assert v4_32.topology == (2, 2, 4)
    assert v4_32.feasible_shapes() == [(4, 4), (2, 8), (8, 2), (1, 16), (16, 1)]
    assert preset_for_devices(16) is v4_32
    assert preset_for_devices(3) is None


def test_every_preset_is_consistent() -> None:
    assert {"v4-8", "v4-16", "v4-32", "v4-64", "v4-128"} <= set(PRESETS)
    for name, preset in PRESETS.items():
        assert name == f"v4-{preset.tensor_cores}"
        assert preset.chips == preset.tensor_cores // 2 == preset.devices
        assert int(np.prod(preset.topology)) == preset.chips
        assert preset.hosts == max(1, preset.chips // 4)
    v4_8 = slice_preset("v4-8")
    assert (v4_8.devices, v4_8.hosts) == (4, 1)
    with pytest.raises(KeyError, match="unknown TPU slice 'v5-8'"):
        slice_preset("v5-8")


def test_feasible_shapes() -> None:
    assert feasible_shapes(16) == [(4, 4), (2, 8), (8, 2), (1, 16), (16, 1)]
    assert feasible_shapes(32)[:2] == [(4, 8), (8, 4)]
    assert feasible_shapes(1) == [(1, 1)]
    assert feasible_shapes(7) == [(1, 7), (7, 1)]
    three = feasible_shapes(8, axes=3)
    assert three[0] == (2, 2, 2)
    assert all(int(np.prod(s)) == 8 for s in three)
    assert len(three) == len(set(three)) == 10
    for bad in (0, -4):
        with pytest.raises(ValueError, match="device_count"):
            feasible_shapes(bad)


@dataclass(frozen=True)
class FakeTpuDevice:
    """What the topology builder reads of a TPU device."""

    id: int
    coords: tuple[int, int, int]
    process_index: int
    core_on_chip: int = 0
    platform: str = "tpu"
    device_kind: str = "TPU v4"
    slice_index: int = 0


def fake_v4_32(seed: int) -> list[FakeTpuDevice]:
    """A v4-32 (2x2x4 chips, a 2x2 plane per host) with ids unrelated to position."""
    coords = [(x, y, z) for z in range(4) for y in range(2) for x in range(2)]
    ids = list(range(16))
    random.Random(seed).shuffle(ids)
    devices = [FakeTpuDevice(i, c, process_index=c[2]) for i, c in zip(ids, coords, strict=True)]
    random.Random(seed + 1).shuffle(devices)
    return devices


def test_device_grid_follows_the_physical_topology_not_the_ids() -> None:
    grid = device_grid((4, 4), fake_v4_32(seed=1))
    assert grid.shape == (4, 4)
    # Same chips, listed in another order and numbered otherwise: same placement.
    other = device_grid((4, 4), fake_v4_32(seed=2))
    assert [[d.coords for d in row] for row in grid] == [[d.coords for d in row] for row in other]
    # Each data row is one host's 2x2 plane: the expert axis stays on ICI neighbours.
    for row in grid:
        assert len({d.process_index for d in row}) == 1
        assert len({d.coords[2] for d in row}) == 1


def test_too_few_devices_fall_back_with_a_warning() -> None:
    with pytest.warns(MeshFallbackWarning, match=r"needs 32 devices, but 1 cpu device"):
        adapter = MeshAdapter(devices=jax.devices()[:1])
    assert adapter.fallback_used
    assert adapter.fallback_reason is not None
    assert dict(adapter.mesh.shape) == {"data": 1, "expert": 1}
    assert adapter.devices[0].platform == "cpu"
    assert adapter.coordinates == {adapter.devices[0].id: (0, 0)}
    tokens, params = gating_inputs(batch=8)
    sharded = adapter.to_host(adapter.run(top1_gating, tokens, params))
    compare_gating(sharded, jax.tree.map(np.asarray, top1_gating(tokens, params)))


def test_no_devices_at_all_fall_back() -> None:
    with pytest.warns(MeshFallbackWarning, match="none are present"):
        adapter = MeshAdapter((2, 2), devices=[])
    assert adapter.fallback_used


def test_seed_config_falls_back_on_one_device() -> None:
    config = fleetroute.BaseRouter(tpu_config=SEED_TPU_CONFIG).tpu_config
    with pytest.warns(MeshFallbackWarning, match="on cpu"):
        adapter = from_tpu_config(config, devices=jax.devices()[:1])
    assert adapter.memory_threshold_gb == 30.0


def test_without_fallback_too_few_devices_raise() -> None:
    with pytest.raises(MeshShapeError, match=r"shapes that fit 1 devices: \(1, 1\)") as info:
        MeshAdapter((8, 4), enable_fallback=False, devices=jax.devices()[:1])
    assert info.value.feasible == [(1, 1)]
    assert info.value.device_count == 1
    with pytest.raises(MeshShapeError):
        MeshAdapter((8, 4), fallback_device=None, devices=jax.devices()[:1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mesh_shape": (8,)}, "mesh_shape must be two"),
        ({"mesh_shape": (0, 4)}, r"mesh_shape\[0\]"),
        ({"axis_names": ("data", "data")}, "axis_names"),
        ({"memory_threshold_gb": 0}, "memory_threshold_gb"),
        ({"enable_fallback": "yes"}, "enable_fallback"),
        ({"fallback_device": "no-such-platform"}, "fallback_device 'no-such-platform'"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MeshAdapter(**{"devices": jax.devices()[:1], **kwargs})


def test_from_tpu_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown tpu_config key"):
        from_tpu_config({"mesh_shape": (1, 1), "mesh_axes": ("a", "b")})


def one_device_adapter() -> MeshAdapter:
    return MeshAdapter((1, 1), devices=jax.devices()[:1])


def test_registration_is_all_or_nothing() -> None:
    adapter = one_device_adapter()
    router = fleetroute.Router()
    assert adapter.register(router, capacity=5) == {adapter.devices[0].id: (0, 0)}
    assert router.accelerator(adapter.devices[0].id).capacity == 5
    with pytest.raises(ValueError, match="already registered"):
        adapter.register(router, capacity=5)
    assert len(router) == 1
    with pytest.raises(ValueError, match="capacity"):
        adapter.register(fleetroute.Router(), capacity=0)


@dataclass
class FakeMemoryDevice:
    """A device that reports its memory, as TPU and GPU devices do."""

    id: int
    bytes_in_use: int | None

    def memory_stats(self) -> dict[str, int] | None:
        if self.bytes_in_use is None:
            return None
        return {"bytes_in_use": self.bytes_in_use, "bytes_limit": 32 * GIB}


def test_memory_above_the_threshold_marks_the_device_unhealthy() -> None:
    adapter = one_device_adapter()
    router = fleetroute.Router()
    router.add_accelerators([fleetroute.Accelerator(i, 4) for i in range(4)])
    full = FakeMemoryDevice(0, 31 * GIB)
    fine = FakeMemoryDevice(1, 10 * GIB)
    silent = FakeMemoryDevice(2, None)
    report = adapter.check_memory(router, [full, fine, silent])
    assert report == {0: 31.0, 1: 10.0, 2: None}
    assert [router.accelerator(i).healthy for i in range(3)] == [False, True, True]
    # Back under the threshold: the adapter restores what it took out of service ...
    full.bytes_in_use = 5 * GIB
    adapter.check_memory(router, [full])
    assert router.accelerator(0).healthy
    # ... but not a device someone else took out.
    router.set_healthy(3, False)
    adapter.check_memory(router, [FakeMemoryDevice(3, 1 * GIB)])
    assert not router.accelerator(3).healthy


def test_memory_check_on_cpu_reads_nothing_and_changes_nothing() -> None:
    adapter = one_device_adapter()
    router = fleetroute.Router()
    adapter.register(router, capacity=2)
    device_id = adapter.devices[0].id
    assert adapter.check_memory(router) == {device_id: None}
    assert router.accelerator(device_id).healthy


def test_initialize_distributed_checks_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="num_processes"):
        initialize_distributed("127.0.0.1:1", num_processes=0, process_id=0)
    with pytest.raises(ValueError, match="out of range"):
        initialize_distributed("127.0.0.1:1", num_processes=2, process_id=2)
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES must be an integer"):
        initialize_distributed()


def test_initialize_distributed_single_process_starts_no_coordinator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    info = initialize_distributed(num_processes=1, process_id=0)
    assert info == DistributedInfo(0, 1, jax.local_device_count(), jax.device_count())
    assert not jax.distributed.is_initialized()


if __name__ == "__main__":
    worker_main(sys.argv[1], sys.argv[2])
