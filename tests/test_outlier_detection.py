"""OutlierDetector: Envoy-style ejection on an injected ManualClock."""

from __future__ import annotations

import math

import pytest

from fleetroute.clock import ManualClock
from fleetroute.resilience.outlier_detection import Ejection, OutlierDetector


class Events:
    def __init__(self) -> None:
        self.log: list[tuple[str, str, Ejection | None]] = []

    def eject(self, endpoint: str, ejection: Ejection) -> None:
        self.log.append(("eject", endpoint, ejection))

    def restore(self, endpoint: str) -> None:
        self.log.append(("restore", endpoint, None))


def _detector(
    clock: ManualClock, hosts: int = 5, events: Events | None = None, **kwargs: object
) -> OutlierDetector:
    detector = OutlierDetector(
        clock=clock,
        on_eject=None if events is None else events.eject,
        on_restore=None if events is None else events.restore,
        **kwargs,  # type: ignore[arg-type]
    )
    for i in range(hosts):
        detector.add_endpoint(f"h{i}")
    return detector


def _serve(detector: OutlierDetector, endpoint: str, successes: int, failures: int) -> None:
    """Records interleaved outcomes so consecutive-error ejection never fires."""
    for i in range(successes + failures):
        detector.record(endpoint, success=i % (successes + failures) < successes)


# Consecutive errors ---------------------------------------------------------------------


def test_consecutive_errors_eject_at_once() -> None:
    clock = ManualClock(100.0)
    events = Events()
    detector = _detector(clock, events=events, consecutive_errors=3)
    detector.record("h0", False)
    detector.record("h0", False)
    detector.record("h0", True)  # resets the run
    detector.record("h0", False)
    detector.record("h0", False)
    assert not detector.is_ejected("h0")
    detector.record("h0", False)
    assert detector.is_ejected("h0")
    expected = Ejection("h0", "consecutive_errors", 100.0, 130.0)
    assert detector.ejected() == {"h0": expected}
    assert events.log == [("eject", "h0", expected)]
    assert detector.total_ejections == 1
    assert detector.ejection_count("h0") == 1
    assert not detector.is_ejected("h1")


def test_errors_while_ejected_do_not_extend_the_ejection() -> None:
    clock = ManualClock()
    detector = _detector(clock, consecutive_errors=2, base_ejection_time=30, interval=1000)
    detector.record("h0", False)
    detector.record("h0", False)
    for _ in range(10):
        detector.record("h0", False)
    assert detector.ejected()["h0"].until == 30.0
    assert detector.total_ejections == 1
    assert detector.ejection_count("h0") == 1


def test_restore_after_the_duration_via_poll() -> None:
    clock = ManualClock()
    events = Events()
    detector = _detector(clock, events=events, consecutive_errors=1, base_ejection_time=30)
    detector.record("h2", False)
    clock.advance(29.999)
    detector.poll()
    assert detector.is_ejected("h2")
    clock.advance(0.001)
    detector.poll()
    assert not detector.is_ejected("h2")
    assert detector.ejected() == {}
    assert [(kind, ep) for kind, ep, _ in events.log] == [("eject", "h2"), ("restore", "h2")]
    # Polling again restores nothing twice.
    clock.advance(100)
    detector.poll()
    assert len(events.log) == 2


def test_ejection_duration_grows_with_count_and_is_capped() -> None:
    clock = ManualClock()
    # A long interval: no decay between ejections.
    detector = _detector(
        clock,
        consecutive_errors=1,
        base_ejection_time=10,
        max_ejection_time=25,
        interval=10_000,
    )
    durations = []
    for _ in range(4):
        detector.record("h0", False)
        ejection = detector.ejected()["h0"]
        durations.append(ejection.until - ejection.ejected_at)
        clock.advance(ejection.until - clock())
        detector.poll()
        assert not detector.is_ejected("h0")
    assert durations == [10.0, 20.0, 25.0, 25.0]
    assert detector.ejection_count("h0") == 4


def test_max_ejection_time_below_base_uses_base() -> None:
    clock = ManualClock()
    detector = _detector(clock, consecutive_errors=1, base_ejection_time=30, max_ejection_time=10)
    detector.record("h0", False)
    assert detector.ejected()["h0"].until == 30.0


# Decay ----------------------------------------------------------------------------------


def test_multiplier_decays_by_one_per_interval_in_service() -> None:
    clock = ManualClock()
    detector = _detector(
        clock, consecutive_errors=1, interval=10, base_ejection_time=25, max_ejection_time=1000
    )
    # Intervals end at 10, 20, 30, ... Ejections never end on an interval boundary.
    clock.advance(1)
    detector.record("h0", False)  # n = 1, until 26
    clock.advance(25)
    detector.record("h0", False)  # t = 26: restored, ejected again: n = 2, until 76
    clock.advance(50)
    detector.record("h0", False)  # t = 76: n = 3, until 151
    assert detector.ejected()["h0"] == Ejection("h0", "consecutive_errors", 76.0, 151.0)
    assert detector.ejection_count("h0") == 3
    counts = []
    for _ in range(5):  # t = 151 (restored), then ends at 160, 170, 180, 190
        clock.advance(151 - clock() if clock() < 151 else 10)
        detector.poll()
        counts.append(detector.ejection_count("h0"))
    assert counts == [3, 2, 1, 0, 0]


def test_intervals_spent_ejected_do_not_decay_even_between_polls() -> None:
    """Nothing polls while h0 is ejected; the intervals that ended during its ejection
    must still not count as time in service."""
    clock = ManualClock()
    detector = _detector(
        clock, consecutive_errors=1, interval=10, base_ejection_time=25, max_ejection_time=1000
    )
    clock.advance(1)
    detector.record("h0", False)
    clock.advance(25)
    detector.record("h0", False)
    clock.advance(50)
    detector.record("h0", False)  # t = 76: n = 3, until 151
    clock.advance(79)  # t = 155, one step: intervals 80..150 ended while ejected
    assert not detector.is_ejected("h0")
    assert detector.ejection_count("h0") == 3
    detector.record("h0", False)  # n = 4: 100 s
    assert detector.ejected()["h0"] == Ejection("h0", "consecutive_errors", 155.0, 255.0)


def test_a_long_idle_gap_decays_fully_and_keeps_the_interval_grid() -> None:
    clock = ManualClock()
    detector = _detector(
        clock, consecutive_errors=1, interval=10, base_ejection_time=25, max_ejection_time=1000
    )
    clock.advance(1)
    detector.record("h0", False)
    clock.advance(25)
    detector.record("h0", False)  # n = 2, until 76
    clock.advance(74)  # t = 100: restored at 76, in service at 80, 90, 100
    assert detector.ejection_count("h0") == 2  # ejection_count does not poll
    detector.poll()
    assert detector.ejection_count("h0") == 0
    clock.advance(1e7)  # a very long gap: handled without one step per interval
    detector.poll()
    assert detector.ejection_count("h0") == 0
    assert not detector.ejected()


def test_long_gap_with_a_restore_in_the_middle() -> None:
    clock = ManualClock()
    detector = _detector(
        clock, consecutive_errors=1, interval=10, base_ejection_time=25, max_ejection_time=1000
    )
    clock.advance(1)
    detector.record("h0", False)
    clock.advance(25)
    detector.record("h0", False)
    clock.advance(50)
    detector.record("h0", False)  # t = 76: n = 3, until 151
    clock.advance(104)  # t = 180: ended at 80..150 ejected, 160, 170, 180 in service
    detector.poll()
    assert detector.ejection_count("h0") == 0
    assert not detector.is_ejected("h0")


# Success rate -----------------------------------------------------------------------------


def _success_rate_detector(
    clock: ManualClock, hosts: int = 5, events: Events | None = None, **kwargs: object
) -> OutlierDetector:
    settings: dict[str, object] = {
        "consecutive_errors": 10_000,
        "interval": 10,
        "success_rate_minimum_hosts": 5,
        "success_rate_request_volume": 100,
        "success_rate_stdev_factor": 1.9,
    }
    settings.update(kwargs)
    return _detector(clock, hosts=hosts, events=events, **settings)


def test_success_rate_ejects_the_outlier_at_the_end_of_the_interval() -> None:
    clock = ManualClock()
    events = Events()
    detector = _success_rate_detector(clock, events=events)
    for i in range(4):
        _serve(detector, f"h{i}", 100, 0)
    _serve(detector, "h4", 50, 50)  # rates 1,1,1,1,0.5: mean .9, stdev .2, cut .52
    clock.advance(9.9)
    detector.poll()
    assert detector.ejected() == {}
    clock.advance(0.1)
    detector.poll()
    assert detector.ejected() == {"h4": Ejection("h4", "success_rate", 10.0, 40.0)}
    assert [(kind, ep) for kind, ep, _ in events.log] == [("eject", "h4")]


def test_the_stdev_factor_sets_the_cut() -> None:
    clock = ManualClock()
    detector = _success_rate_detector(clock)
    for i in range(4):
        _serve(detector, f"h{i}", 100, 0)
    _serve(detector, "h4", 53, 47)  # .53: mean .906, stdev .188, cut .549: ejected
    clock.advance(10)
    assert detector.is_ejected("h4")

    clock2 = ManualClock()
    detector2 = _success_rate_detector(clock2, success_rate_stdev_factor=2.5)
    for i in range(4):
        _serve(detector2, f"h{i}", 100, 0)
    _serve(detector2, "h4", 53, 47)  # cut .906 - 2.5 * .188 = .436: kept
    clock2.advance(10)
    assert detector2.ejected() == {}


def test_no_success_rate_ejection_when_all_are_similar() -> None:
    clock = ManualClock()
    detector = _success_rate_detector(clock)
    for i, ok in enumerate([95, 90, 92, 93, 91]):
        _serve(detector, f"h{i}", ok, 100 - ok)
    clock.advance(10)
    assert detector.ejected() == {}


def test_no_success_rate_ejection_when_all_are_equally_bad() -> None:
    clock = ManualClock()
    detector = _success_rate_detector(clock)
    for i in range(5):
        _serve(detector, f"h{i}", 30, 70)
    clock.advance(10)
    assert detector.ejected() == {}


def test_no_success_rate_ejection_when_too_few_hosts_have_the_volume() -> None:
    clock = ManualClock()
    detector = _success_rate_detector(clock)
    for i in range(3):
        _serve(detector, f"h{i}", 100, 0)
    _serve(detector, "h3", 99, 0)  # one short of the volume: 4 hosts qualify, 5 needed
    _serve(detector, "h4", 10, 90)
    clock.advance(10)
    assert detector.ejected() == {}


def test_a_bad_host_below_the_volume_is_not_judged() -> None:
    clock = ManualClock()
    detector = _success_rate_detector(clock, hosts=6)
    for i in range(5):
        _serve(detector, f"h{i}", 100, 0)
    _serve(detector, "h5", 9, 90)
    clock.advance(10)
    assert detector.ejected() == {}


def test_success_rate_counts_reset_every_interval() -> None:
    clock = ManualClock()
    detector = _success_rate_detector(clock)
    for i in range(4):
        _serve(detector, f"h{i}", 60, 0)
    _serve(detector, "h4", 30, 30)
    clock.advance(10)
    for i in range(4):
        _serve(detector, f"h{i}", 60, 0)
    _serve(detector, "h4", 30, 30)
    clock.advance(10)
    # 120 calls each over two intervals, but never 100 within one.
    assert detector.ejected() == {}


def test_success_rate_with_fewer_minimum_hosts() -> None:
    clock = ManualClock()
    detector = _success_rate_detector(
        clock, hosts=3, success_rate_minimum_hosts=3, success_rate_request_volume=10
    )
    _serve(detector, "h0", 10, 0)
    _serve(detector, "h1", 10, 0)
    _serve(detector, "h2", 2, 8)  # mean .733, stdev .377, cut .017: .2 is kept
    clock.advance(10)
    assert detector.ejected() == {}

    clock2 = ManualClock()
    detector2 = _success_rate_detector(
        clock2,
        hosts=3,
        success_rate_minimum_hosts=3,
        success_rate_request_volume=10,
        success_rate_stdev_factor=1.0,
    )
    _serve(detector2, "h0", 10, 0)
    _serve(detector2, "h1", 10, 0)
    _serve(detector2, "h2", 2, 8)  # cut .733 - .377 = .356: .2 is ejected
    clock2.advance(10)
    assert detector2.ejected() == {"h2": Ejection("h2", "success_rate", 10.0, 40.0)}


# Ejection cap -----------------------------------------------------------------------------


def test_max_ejection_percent_caps_but_one_always_may_be_ejected() -> None:
    clock = ManualClock()
    detector = _detector(clock, hosts=5, consecutive_errors=1, max_ejection_percent=10)
    detector.record("h0", False)
    detector.record("h1", False)  # 2 of 5 = 40% > 10%: refused
    assert set(detector.ejected()) == {"h0"}
    assert detector.total_ejections == 1
    assert detector.ejection_count("h1") == 0
    assert detector.eject("h2") is False
    # Once h0 is back, another may go.
    clock.advance(30)
    detector.record("h1", False)
    assert set(detector.ejected()) == {"h1"}


def test_max_ejection_percent_zero_still_ejects_one() -> None:
    clock = ManualClock()
    detector = _detector(clock, hosts=3, consecutive_errors=1, max_ejection_percent=0)
    assert detector.eject("h0") is True
    assert detector.eject("h1") is False
    assert set(detector.ejected()) == {"h0"}


@pytest.mark.parametrize(("percent", "allowed"), [(10, 1), (19.9, 1), (20, 2), (50, 5), (100, 10)])
def test_max_ejection_percent_of_ten_hosts(percent: float, allowed: int) -> None:
    clock = ManualClock()
    detector = _detector(clock, hosts=10, max_ejection_percent=percent)
    results = [detector.eject(f"h{i}") for i in range(10)]
    assert results == [True] * allowed + [False] * (10 - allowed)
    assert len(detector.ejected()) == allowed


def test_success_rate_cap_keeps_the_worst() -> None:
    clock = ManualClock()
    detector = _success_rate_detector(
        clock, hosts=10, success_rate_stdev_factor=1.0, max_ejection_percent=10
    )
    for i in range(8):
        _serve(detector, f"h{i}", 100, 0)
    _serve(detector, "h8", 50, 50)
    _serve(detector, "h9", 30, 70)  # both below the cut (.636); the cap allows one
    clock.advance(10)
    assert set(detector.ejected()) == {"h9"}

    clock2 = ManualClock()
    detector2 = _success_rate_detector(
        clock2, hosts=10, success_rate_stdev_factor=1.0, max_ejection_percent=20
    )
    for i in range(8):
        _serve(detector2, f"h{i}", 100, 0)
    _serve(detector2, "h8", 50, 50)
    _serve(detector2, "h9", 30, 70)
    clock2.advance(10)
    assert set(detector2.ejected()) == {"h8", "h9"}


# Manual ejection, membership ------------------------------------------------------------------


def test_manual_eject() -> None:
    clock = ManualClock(7.0)
    events = Events()
    detector = _detector(clock, events=events, base_ejection_time=12)
    assert detector.eject("h1") is True
    assert detector.eject("h1") is False  # already ejected
    expected = Ejection("h1", "manual", 7.0, 19.0)
    assert detector.ejected() == {"h1": expected}
    assert events.log == [("eject", "h1", expected)]
    clock.advance(12)
    assert not detector.is_ejected("h1")
    assert events.log[-1] == ("restore", "h1", None)


def test_unknown_endpoints_raise_key_error() -> None:
    detector = _detector(ManualClock(), hosts=1)
    with pytest.raises(KeyError, match="nope"):
        detector.record("nope", True)
    with pytest.raises(KeyError, match="nope"):
        detector.eject("nope")
    with pytest.raises(KeyError, match="nope"):
        detector.ejection_count("nope")
    with pytest.raises(KeyError, match="nope"):
        detector.remove_endpoint("nope")
    assert not detector.is_ejected("nope")


def test_membership() -> None:
    detector = _detector(ManualClock(), hosts=2)
    assert "h0" in detector
    assert "h9" not in detector
    with pytest.raises(ValueError, match="already tracked"):
        detector.add_endpoint("h0")
    detector.remove_endpoint("h0")
    assert "h0" not in detector
    detector.add_endpoint("h0")
    assert detector.ejection_count("h0") == 0


def test_remove_an_ejected_endpoint() -> None:
    clock = ManualClock()
    events = Events()
    detector = _detector(clock, hosts=2, events=events, consecutive_errors=1)
    detector.record("h0", False)
    detector.remove_endpoint("h0")
    assert detector.ejected() == {}
    clock.advance(100)
    detector.poll()
    assert [kind for kind, _, _ in events.log] == ["eject"]  # no restore of a removed one
    # The slot freed by the removal counts toward the cap again.
    detector.record("h1", False)
    assert set(detector.ejected()) == {"h1"}


def test_re_added_endpoint_keeps_its_full_ejection() -> None:
    """An endpoint removed and added again must not be restored on the stale deadline
    of its earlier ejection."""
    clock = ManualClock()
    detector = _detector(clock, hosts=2, consecutive_errors=1, base_ejection_time=30)
    detector.record("h0", False)  # until 30
    clock.advance(5)
    detector.remove_endpoint("h0")
    detector.add_endpoint("h0")
    clock.advance(10)
    detector.record("h0", False)  # t = 15: until 45
    clock.advance(16)  # t = 31: past the stale deadline
    assert detector.is_ejected("h0")
    clock.advance(14)  # t = 45
    assert not detector.is_ejected("h0")


# Validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"consecutive_errors": 0}, "consecutive_errors"),
        ({"consecutive_errors": 1.5}, "consecutive_errors"),
        ({"consecutive_errors": True}, "consecutive_errors"),
        ({"interval": 0}, "interval"),
        ({"interval": -1}, "interval"),
        ({"interval": math.nan}, "interval"),
        ({"base_ejection_time": 0}, "base_ejection_time"),
        ({"base_ejection_time": math.inf}, "base_ejection_time"),
        ({"max_ejection_time": -3}, "max_ejection_time"),
        ({"max_ejection_time": "300s"}, "max_ejection_time"),
        ({"max_ejection_percent": -1}, "max_ejection_percent"),
        ({"max_ejection_percent": 100.5}, "max_ejection_percent"),
        ({"max_ejection_percent": math.nan}, "max_ejection_percent"),
        ({"max_ejection_percent": True}, "max_ejection_percent"),
        ({"success_rate_minimum_hosts": 0}, "success_rate_minimum_hosts"),
        ({"success_rate_request_volume": 0}, "success_rate_request_volume"),
        ({"success_rate_stdev_factor": 0}, "success_rate_stdev_factor"),
        ({"success_rate_stdev_factor": -1.9}, "success_rate_stdev_factor"),
        ({"success_rate_stdev_factor": math.nan}, "success_rate_stdev_factor"),
    ],
)
def test_validation_names_the_parameter(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        OutlierDetector(clock=ManualClock(), **kwargs)  # type: ignore[arg-type]


def test_defaults_are_envoys() -> None:
    detector = OutlierDetector(clock=ManualClock())
    assert detector.consecutive_errors == 5
    assert detector.interval == 10.0
    assert detector.base_ejection_time == 30.0
    assert detector.max_ejection_time == 300.0
    assert detector.max_ejection_percent == 10.0
    assert detector.success_rate_minimum_hosts == 5
    assert detector.success_rate_request_volume == 100
    assert detector.success_rate_stdev_factor == 1.9
