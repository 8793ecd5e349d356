"""TPU v4 slice presets and the mesh shapes a device count admits.

A slice is named after its TensorCores (``v4-32`` has 32), but JAX does not show
TensorCores: a v4 chip's two cores run as one *megacore* device. So a ``v4-32``
slice is 16 chips, 16 JAX devices, on 4 hosts of 4 chips each, and a mesh of shape
``(8, 4)`` (32 devices) does not fit it. ``SlicePreset`` does this arithmetic;
``feasible_shapes`` lists the shapes that do fit a device count.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fleetroute.validation import positive_int

__all__ = [
    "CHIPS_PER_HOST",
    "CORES_PER_CHIP",
    "PRESETS",
    "SlicePreset",
    "feasible_shapes",
    "preset_for_devices",
    "slice_preset",
]

#: TensorCores on one TPU v4 chip; JAX fuses them into one megacore device.
CORES_PER_CHIP = 2
#: TPU v4 chips attached to one host (one JAX process per host).
CHIPS_PER_HOST = 4


@dataclass(frozen=True)
class SlicePreset:
    """One TPU v4 slice: ``name`` (``"v4-32"``), its TensorCores and chip topology."""

    name: str
    tensor_cores: int
    #: Chips along the slice's x, y, z torus axes (Cloud TPU's ``AxBxC``).
    topology: tuple[int, int, int]

    def __post_init__(self) -> None:
        positive_int("tensor_cores", self.tensor_cores)
        if self.tensor_cores % CORES_PER_CHIP:
            raise ValueError(f"{self.name}: tensor_cores must be even (got {self.tensor_cores})")
        if math.prod(self.topology) != self.chips:
            raise ValueError(
                f"{self.name}: topology {self.topology} holds {math.prod(self.topology)} chips, "
                f"not {self.chips}"
            )

    @property
    def chips(self) -> int:
        """TPU chips: two TensorCores each."""
        return self.tensor_cores // CORES_PER_CHIP

    @property
    def hosts(self) -> int:
        """Hosts (JAX processes): four chips each, at least one."""
        return max(1, self.chips // CHIPS_PER_HOST)

    @property
    def devices(self) -> int:
        """JAX devices in the default megacore mode: one per chip."""
        return self.chips

    @property
    def devices_per_host(self) -> int:
        """JAX devices each process sees locally."""
        return self.devices // self.hosts

    def feasible_shapes(self, axes: int = 2) -> list[tuple[int, ...]]:
        """The mesh shapes with ``axes`` axes that use all of this slice's devices."""
        return feasible_shapes(self.devices, axes)


def _preset(cores: int, topology: tuple[int, int, int]) -> SlicePreset:
    return SlicePreset(f"v4-{cores}", cores, topology)


#: The TPU v4 slice shapes Cloud TPU offers, by name.
PRESETS: Mapping[str, SlicePreset] = MappingProxyType(
    {
        p.name: p
        for p in (
            _preset(8, (2, 2, 1)),
            _preset(16, (2, 2, 2)),
            _preset(32, (2, 2, 4)),
            _preset(64, (2, 4, 4)),
            _preset(128, (4, 4, 4)),
            _preset(256, (4, 4, 8)),
            _preset(512, (4, 8, 8)),
            _preset(1024, (8, 8, 8)),
            _preset(1536, (8, 8, 12)),
            _preset(2048, (8, 8, 16)),
            _preset(4096, (8, 16, 16)),
        )
    }
)


def slice_preset(name: str) -> SlicePreset:
    """The preset called ``name`` (``"v4-32"``); ``KeyError`` naming the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown TPU slice {name!r}; known: {', '.join(PRESETS)}") from None


def preset_for_devices(device_count: int) -> SlicePreset | None:
    """The slice whose megacore device count is ``device_count``, if any."""
    return next((p for p in PRESETS.values() if p.devices == device_count), None)


def feasible_shapes(device_count: int, axes: int = 2) -> list[tuple[int, ...]]:
    """Every ``axes``-axis mesh shape whose size is exactly ``device_count``.

    Most balanced first (smallest ratio of largest to smallest axis), then in
    ascending order: 16 devices give ``(4, 4), (2, 8), (8, 2), (1, 16), (16, 1)``.
    """
    positive_int("device_count", device_count)
    positive_int("axes", axes)
    divisors = [d for d in range(1, device_count + 1) if device_count % d == 0]
    shapes = [
        (*head, device_count // math.prod(head))
        for head in itertools.product(divisors, repeat=axes - 1)
        if device_count % math.prod(head) == 0
    ]
    return sorted(shapes, key=lambda s: (max(s) / min(s), s))
