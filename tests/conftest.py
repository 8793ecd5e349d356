"""Shared fixtures for the Python tests."""

from __future__ import annotations

import pytest

import fleetroute


@pytest.fixture
def small_fleet() -> list[fleetroute.Accelerator]:
    return [fleetroute.Accelerator(i, 10) for i in range(4)]
