"""The type stubs of the native module (python/fleetroute/_native.pyi) match it.

mypy's stubtest imports ``fleetroute._native`` and compares every class, method,
property, parameter kind and default with the stub.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest


@pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy is not installed (pip install mypy); stubtest comes with it",
)
def test_native_stubs_match_the_extension() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "fleetroute._native"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
