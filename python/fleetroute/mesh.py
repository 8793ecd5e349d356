"""The TPU mesh adapter: a JAX device mesh for seed 000's ``tpu_config``, as a fleet.

``MeshAdapter`` builds a ``jax.sharding.Mesh`` of ``mesh_shape`` (default ``(8, 4)``)
with named axes (default ``("data", "expert")``) from the devices present, in the
order of the physical topology (``mesh_utils.create_device_mesh``: on TPU, ICI
neighbours share the last, most communication-heavy axis). It

- says plainly when the shape does not fit the devices and lists the shapes that do
  (``MeshShapeError``), instead of failing deep inside JAX; a common case is asking
  ``(8, 4)`` of a ``v4-32``, which shows 16 megacore devices, not 32 (see
  ``fleetroute.mesh_presets``);
- falls back to a ``(1, 1)`` mesh on ``fallback_device`` with a
  ``MeshFallbackWarning`` when too few devices are present and fallback is enabled;
- registers every device in a Rust ``Router`` (one ``Accelerator`` per device, id =
  JAX device id) and keeps each device's mesh coordinates;
- shards a token batch over the data axis and expert parameters over the expert
  axis and runs a jit-compiled function on them (``run``);
- reads device memory where the platform reports it and marks devices above
  ``memory_threshold_gb`` unhealthy in the router (``check_memory``).

Multi-host slices run one process per host: call ``initialize_distributed`` first
in every process, then build the adapter; the mesh then spans all processes'
devices. The coordinator and process layout come from the arguments or from
``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0), ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID``; with none of them set, JAX detects them itself on Cloud TPU and
the clusters it knows (SLURM, Open MPI, ...).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

import jax
import numpy as np
from jax.experimental import mesh_utils, multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from fleetroute._native import Accelerator, Router
from fleetroute.mesh_presets import (
    PRESETS,
    SlicePreset,
    feasible_shapes,
    preset_for_devices,
    slice_preset,
)
from fleetroute.routers.base_router import TPU_CONFIG_DEFAULTS
from fleetroute.validation import positive_int, positive_number

__all__ = [
    "DEFAULT_AXIS_NAMES",
    "DEFAULT_MESH_SHAPE",
    "ENV_COORDINATOR_ADDRESS",
    "ENV_NUM_PROCESSES",
    "ENV_PROCESS_ID",
    "PRESETS",
    "DistributedInfo",
    "MemoryReporting",
    "MeshAdapter",
    "MeshFallbackWarning",
    "MeshShapeError",
    "SlicePreset",
    "device_grid",
    "feasible_shapes",
    "from_tpu_config",
    "initialize_distributed",
    "preset_for_devices",
    "slice_preset",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seed 000's mesh: a TPU v4-32 as its tpu_config describes it.
DEFAULT_MESH_SHAPE: tuple[int, int] = (8, 4)
#: Tokens split over the first axis, experts over the second.
DEFAULT_AXIS_NAMES: tuple[str, str] = ("data", "expert")

#: ``host:port`` of process 0's coordinator (JAX reads this one itself too).
ENV_COORDINATOR_ADDRESS = "JAX_COORDINATOR_ADDRESS"
#: How many processes (hosts) take part.
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
#: This process's index, 0 to ``JAX_NUM_PROCESSES - 1``.
ENV_PROCESS_ID = "JAX_PROCESS_ID"

_GIB = float(1 << 30)
# More shapes than this in a message hide the useful ones.
_SHAPES_SHOWN = 6


class MeshShapeError(ValueError):
    """The requested mesh shape does not fit the devices; ``feasible`` lists shapes
    that do (most balanced first)."""

    def __init__(
        self,
        message: str,
        *,
        mesh_shape: tuple[int, int],
        device_count: int,
        feasible: list[tuple[int, ...]],
    ) -> None:
        super().__init__(message)
        self.mesh_shape = mesh_shape
        self.device_count = device_count
        self.feasible = feasible


class MeshFallbackWarning(RuntimeWarning):
    """Too few devices for the mesh: the adapter runs on ``fallback_device``."""


class MemoryReporting(Protocol):
    """What ``check_memory`` reads of a device (a ``jax.Device`` is one)."""

    @property
    def id(self) -> int: ...

    def memory_stats(self) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class DistributedInfo:
    """This process's place in a multi-process run, after ``initialize_distributed``."""

    process_id: int
    num_processes: int
    local_device_count: int
    device_count: int


def _check_shape(mesh_shape: Sequence[int]) -> tuple[int, int]:
    shape = tuple(mesh_shape)
    if len(shape) != 2:
        raise ValueError(f"mesh_shape must be two positive ints (got {mesh_shape!r})")
    return positive_int("mesh_shape[0]", shape[0]), positive_int("mesh_shape[1]", shape[1])


def _check_axis_names(axis_names: Sequence[str]) -> tuple[str, str]:
    names = tuple(axis_names)
    if len(names) != 2 or not all(isinstance(n, str) and n for n in names) or names[0] == names[1]:
        raise ValueError(f"axis_names must be two distinct non-empty strings (got {axis_names!r})")
    return names[0], names[1]


def _describe_mismatch(
    shape: tuple[int, int], names: tuple[str, str], devices: Sequence[Any]
) -> tuple[str, list[tuple[int, ...]]]:
    """The plain-words reason ``shape`` does not fit ``devices``, and what would."""
    needed = math.prod(shape)
    count = len(devices)
    axes = ", ".join(f"{n}={s}" for n, s in zip(names, shape, strict=True))
    if count == 0:
        return f"mesh shape {shape} ({axes}) needs {needed} devices, but none are present", []
    platform = devices[0].platform
    message = (
        f"mesh shape {shape} ({axes}) needs {needed} devices, "
        f"but {count} {platform} device(s) are present"
    )
    preset = preset_for_devices(count)
    # The usual slip: sizing the mesh by the slice name, which counts TensorCores
    # (CPU devices stand in for a slice in tests and dry runs, so they get the hint).
    if preset is not None and needed == preset.tensor_cores and platform in ("tpu", "cpu"):
        message += (
            f" ({count} devices is a {preset.name} slice: its {preset.tensor_cores} TensorCores "
            f"run as {preset.devices} megacore devices, one per chip, on {preset.hosts} host(s))"
        )
    feasible = feasible_shapes(count)
    shown = ", ".join(str(s) for s in feasible[:_SHAPES_SHOWN])
    more = ", ..." if len(feasible) > _SHAPES_SHOWN else ""
    message += f"; shapes that fit {count} devices: {shown}{more}"
    if count > needed:
        message += f"; or pass devices= with {needed} of them"
    return message, feasible


def device_grid(mesh_shape: Sequence[int], devices: Sequence[Any]) -> np.ndarray[Any, Any]:
    """``devices`` arranged as ``mesh_shape`` in the order of the physical topology.

    On TPU the order follows the chips' torus coordinates, not the device ids, so the
    last axis runs along ICI neighbours; elsewhere it is the order given. A physical
    axis is split only when no mapping without a split exists.
    """
    shape = tuple(mesh_shape)
    if len({getattr(d, "slice_index", 0) for d in devices}) > 1:
        raise ValueError(
            "devices span several TPU slices; a multi-slice mesh needs "
            "jax.experimental.mesh_utils.create_hybrid_device_mesh"
        )
    try:
        return mesh_utils.create_device_mesh(shape, devices)
    except (ValueError, NotImplementedError):
        return mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)


class MeshAdapter:
    """A ``data`` x ``expert`` device mesh and its devices as a routing fleet."""

    def __init__(
        self,
        mesh_shape: Sequence[int] = DEFAULT_MESH_SHAPE,
        axis_names: Sequence[str] = DEFAULT_AXIS_NAMES,
        *,
        memory_threshold_gb: float = 30.0,
        fallback_device: str | None = "cpu",
        enable_fallback: bool = True,
        devices: Sequence[Any] | None = None,
    ) -> None:
        """Builds the mesh from ``devices`` (default: ``jax.devices()``, every
        process's devices once ``initialize_distributed`` ran).

        The shape must use exactly the devices given. With fewer present and
        ``enable_fallback``, the mesh is ``(1, 1)`` on the first ``fallback_device``
        device (a ``MeshFallbackWarning`` says why); otherwise ``MeshShapeError``.
        ``memory_threshold_gb`` is in GiB (2**30 bytes), the unit HBM is sold in.
        """
        self.mesh_shape = _check_shape(mesh_shape)
        self.axis_names = _check_axis_names(axis_names)
        self.memory_threshold_gb = positive_number("memory_threshold_gb", memory_threshold_gb)
        if not isinstance(enable_fallback, bool):
            raise ValueError(f"enable_fallback must be a bool (got {enable_fallback!r})")
        if fallback_device is not None and not (
            isinstance(fallback_device, str) and fallback_device
        ):
            raise ValueError(f"fallback_device must be a platform name (got {fallback_device!r})")
        self.enable_fallback = enable_fallback
        self.fallback_device = fallback_device
        pool = list(jax.devices() if devices is None else devices)
        if len({d.id for d in pool}) != len(pool):
            raise ValueError("devices must not repeat a device")
        needed = math.prod(self.mesh_shape)
        self.fallback_reason: str | None = None
        if len(pool) == needed:
            grid = device_grid(self.mesh_shape, pool)
        else:
            reason, feasible = _describe_mismatch(self.mesh_shape, self.axis_names, pool)
            if len(pool) > needed or not enable_fallback or fallback_device is None:
                raise MeshShapeError(
                    reason, mesh_shape=self.mesh_shape, device_count=len(pool), feasible=feasible
                )
            grid = np.array(self._fallback_devices(fallback_device)[:1]).reshape(1, 1)
            self.fallback_reason = reason
            warnings.warn(
                f"{reason}. Falling back to a (1, 1) mesh on {fallback_device}",
                MeshFallbackWarning,
                stacklevel=2,
            )
        # Auto axes keep jit's classic sharding propagation, so any function that runs
        # unsharded runs here too (Explicit axes would constrain the ops it may use).
        self.mesh = Mesh(grid, self.axis_names, axis_types=(AxisType.Auto, AxisType.Auto))
        self._coordinates: Mapping[int, tuple[int, int]] = MappingProxyType(
            {int(d.id): (int(i), int(j)) for (i, j), d in np.ndenumerate(grid)}
        )
        # Devices this adapter took out of service, so it only restores its own calls.
        self._memory_unhealthy: set[int] = set()

    @staticmethod
    def _fallback_devices(platform: str) -> list[Any]:
        try:
            return list(jax.devices(platform))
        except RuntimeError as exc:
            raise ValueError(f"fallback_device {platform!r} is not available: {exc}") from exc

    @property
    def fallback_used(self) -> bool:
        """Whether the mesh is the ``(1, 1)`` fallback instead of ``mesh_shape``."""
        return self.fallback_reason is not None

    @property
    def devices(self) -> list[Any]:
        """The mesh's devices, row by row (data index, then expert index)."""
        return list(self.mesh.devices.flat)

    @property
    def local_devices(self) -> list[Any]:
        """The mesh devices this process drives."""
        here = jax.process_index()
        return [d for d in self.devices if d.process_index == here]

    @property
    def coordinates(self) -> Mapping[int, tuple[int, int]]:
        """Device id -> (data index, expert index) in the mesh."""
        return self._coordinates

    @property
    def token_sharding(self) -> NamedSharding:
        """Leading (batch) dimension over the data axis, replicated over experts."""
        # PartitionSpec's constructor is unannotated in jax.
        return NamedSharding(self.mesh, PartitionSpec(self.axis_names[0]))  # type: ignore[no-untyped-call]

    def expert_sharding(self, ndim: int, expert_dim: int = 0) -> NamedSharding:
        """Dimension ``expert_dim`` of an ``ndim``-array over the expert axis."""
        if not -ndim <= expert_dim < ndim:
            raise ValueError(f"an array with {ndim} dimension(s) has no dimension {expert_dim}")
        spec: list[str | None] = [None] * ndim
        spec[expert_dim] = self.axis_names[1]
        return NamedSharding(self.mesh, PartitionSpec(*spec))  # type: ignore[no-untyped-call]

    def register(
        self, router: Router, capacity: int, *, weight: float = 1.0
    ) -> Mapping[int, tuple[int, int]]:
        """Adds one accelerator per mesh device to ``router`` (all or none) with
        ``capacity`` and ``weight``; returns device id -> mesh coordinates."""
        positive_int("capacity", capacity)
        positive_number("weight", weight)
        router.add_accelerators([Accelerator(int(d.id), capacity, weight) for d in self.devices])
        return self.coordinates

    def _place(self, x: Any, sharding: NamedSharding, dim: int, what: str) -> jax.Array:
        shape = tuple(np.shape(x))
        if not -len(shape) <= dim < len(shape):
            raise ValueError(f"{what} has shape {shape}: no dimension {dim} to shard")
        axis = sharding.spec[dim if dim >= 0 else len(shape) + dim]
        size = self.mesh.shape[axis]
        if shape[dim] % size:
            raise ValueError(
                f"{what} dimension {dim} has size {shape[dim]}, which does not split over "
                f"the {axis!r} axis of size {size}; pad it to a multiple of {size}"
            )
        if isinstance(x, jax.Array) and (
            not x.is_fully_addressable or not self.mesh.is_multi_process
        ):
            placed: jax.Array = jax.device_put(x, sharding)
            return placed
        # Host data, the same in every process: each process fills its own shards.
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    def shard_tokens(self, tokens: Any) -> jax.Array:
        """``tokens`` with the batch (first) dimension split over the data axis.

        In a multi-process run pass host data that is the same in every process, or
        a global ``jax.Array``.
        """
        return self._place(tokens, self.token_sharding, 0, "tokens")

    def shard_experts(self, expert_params: Any, expert_dim: int = 0) -> Any:
        """Every array in the pytree ``expert_params`` with dimension ``expert_dim``
        (the expert index) split over the expert axis."""

        def place(leaf: Any) -> jax.Array:
            sharding = self.expert_sharding(np.ndim(leaf), expert_dim)
            return self._place(leaf, sharding, expert_dim, "expert parameter")

        return jax.tree.map(place, expert_params)

    def run(
        self,
        fn: Callable[[jax.Array, Any], T],
        tokens: Any,
        expert_params: Any,
        *,
        expert_dim: int = 0,
    ) -> T:
        """``fn(tokens, expert_params)`` compiled for the mesh: tokens over the data
        axis, experts over the expert axis; XLA inserts the collectives, so the result
        equals the unsharded run. ``fn`` is jitted here unless it already is."""
        x = self.shard_tokens(tokens)
        params = self.shard_experts(expert_params, expert_dim)
        compiled = fn if hasattr(fn, "lower") else jax.jit(fn)
        # The mesh context lets fn name axes in with_sharding_constraint.
        with jax.set_mesh(self.mesh):
            return compiled(x, params)

    def to_host(self, tree: Any) -> Any:
        """The pytree's arrays as numpy arrays, whole in every process."""

        def fetch(leaf: Any) -> Any:
            if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
                return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
            return np.asarray(leaf)

        return jax.tree.map(fetch, tree)

    def check_memory(
        self, router: Router, devices: Iterable[MemoryReporting] | None = None
    ) -> dict[int, float | None]:
        """Reads ``memory_stats()["bytes_in_use"]`` of ``devices`` (default: this
        process's mesh devices) and returns device id -> GiB in use (None where the
        platform reports nothing, as on CPU).

        Devices above ``memory_threshold_gb`` are set unhealthy in ``router``; a device
        this adapter set unhealthy is set healthy again once it is back under.
        """
        report: dict[int, float | None] = {}
        for device in self.local_devices if devices is None else devices:
            try:
                stats = device.memory_stats()
            except RuntimeError:
                # Some backends raise instead of returning None: nothing is known.
                stats = None
            in_use = None if not stats or "bytes_in_use" not in stats else stats["bytes_in_use"]
            used = None if in_use is None else float(in_use) / _GIB
            report[device.id] = used
            if used is None:
                continue
            if used > self.memory_threshold_gb:
                router.set_healthy(device.id, False)
                if device.id not in self._memory_unhealthy:
                    logger.warning(
                        "device %d uses %.1f GiB > %.1f GiB: marked unhealthy",
                        device.id,
                        used,
                        self.memory_threshold_gb,
                    )
                self._memory_unhealthy.add(device.id)
            elif device.id in self._memory_unhealthy:
                router.set_healthy(device.id, True)
                self._memory_unhealthy.discard(device.id)
        return report

    def __repr__(self) -> str:
        shape = dict(self.mesh.shape)
        kind = f", fallback to {self.fallback_device}" if self.fallback_used else ""
        return f"MeshAdapter({shape}{kind})"


def from_tpu_config(
    tpu_config: Mapping[str, Any] | None = None,
    *,
    axis_names: Sequence[str] = DEFAULT_AXIS_NAMES,
    devices: Sequence[Any] | None = None,
) -> MeshAdapter:
    """The adapter for a ``BaseRouter`` ``tpu_config`` (seed 000's keys; missing ones
    take ``TPU_CONFIG_DEFAULTS``). ``latency_threshold_ms`` is the router's concern
    and is not read here."""
    config = dict(tpu_config or {})
    unknown = set(config) - set(TPU_CONFIG_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown tpu_config key(s) {sorted(unknown)}; known: {sorted(TPU_CONFIG_DEFAULTS)}"
        )
    merged = {**TPU_CONFIG_DEFAULTS, **config}
    return MeshAdapter(
        merged["mesh_shape"],
        axis_names,
        memory_threshold_gb=merged["memory_threshold_gb"],
        fallback_device=merged["fallback_device"],
        enable_fallback=merged["enable_fallback"],
        devices=devices,
    )


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer (got {raw!r})") from None


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    initialization_timeout: int = 300,
) -> DistributedInfo:
    """Joins this process to a multi-process JAX run (one process per host).

    Call it in every process before any other JAX call. Arguments left None are read
    from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``;
    whatever is still unknown JAX detects on Cloud TPU and known clusters. A single
    process (``num_processes == 1``) needs no coordinator and starts none. Calling
    it again once initialized only reports.
    """
    address = coordinator_address or os.environ.get(ENV_COORDINATOR_ADDRESS) or None
    count = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    index = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    if count is not None:
        positive_int("num_processes", count)
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise ValueError(f"process_id must be an integer >= 0 (got {index!r})")
    if count is not None and index is not None and index >= count:
        raise ValueError(f"process_id {index} is out of range for {count} processes")
    positive_int("initialization_timeout", initialization_timeout)
    if not jax.distributed.is_initialized() and not (count == 1 and address is None):
        jax.distributed.initialize(
            coordinator_address=address,
            num_processes=count,
            process_id=index,
            local_device_ids=local_device_ids,
            initialization_timeout=initialization_timeout,
        )
    return DistributedInfo(
        process_id=jax.process_index(),
        num_processes=jax.process_count(),
        local_device_count=jax.local_device_count(),
        device_count=jax.device_count(),
    )
