"""`fleetroute simulate` and `fleetroute.simulate` from Python."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import fleetroute
from fleetroute.cli import main

SMALL = ["--accelerators", "200", "--requests", "20000", "--seed", "7"]


def test_simulate_returns_one_report_per_strategy() -> None:
    reports = fleetroute.simulate(
        accelerators=200, requests=20_000, strategies=["p2c", "random"], seed=7
    )
    assert [r["strategy"] for r in reports] == ["p2c", "random"]
    p2c, random = reports
    assert p2c["completed"] > 0 and p2c["rejected"] == 0
    assert p2c["mean_time_in_system"] < random["mean_time_in_system"]
    assert fleetroute.simulate(accelerators=200, requests=20_000, strategies=["p2c"], seed=7)[0][
        "p99_time_in_system"
    ] == pytest.approx(p2c["p99_time_in_system"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"load_factor": 0.0}, "load_factor"),
        ({"accelerators": 0}, "accelerators"),
        ({"staleness": -1.0}, "staleness"),
        ({"strategies": ["fastest"]}, "fastest"),
    ],
)
def test_bad_simulation_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fleetroute.simulate(requests=100, **kwargs)  # type: ignore[arg-type]


def test_cli_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", *SMALL, "--strategies", "p2c", "--format", "json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert reports[0]["strategy"] == "p2c"
    assert reports[0]["accelerators"] == 200


def test_cli_table_and_csv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", *SMALL, "--strategies", "round_robin,p2c"]) == 0
    table = capsys.readouterr().out
    assert "round_robin" in table and "p99" in table
    assert main(["simulate", *SMALL, "--strategies", "p2c", "--format", "csv"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.startswith("strategy,") and row.startswith("p2c,")


def test_cli_rejects_bad_options_by_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fleetroute.cli", "simulate", "--load-factor", "-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "load_factor" in result.stderr
