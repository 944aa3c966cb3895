"""BeaconTracker with an injected clock."""

from __future__ import annotations

from caclient._beacons import BeaconTracker

A = ("127.0.0.1", 5064)
B = ("127.0.0.1", 6064)


def steady(tracker: BeaconTracker, server: tuple[str, int], start_id: int, t0: float, n: int, period: float) -> float:
    t = t0
    for i in range(n):
        assert not tracker.observe(server, start_id + i, t) or i == 0
        t += period
    return t


def test_new_server_is_an_anomaly_then_steady_beacons_are_not() -> None:
    tr = BeaconTracker()
    assert tr.observe(A, 0, 0.0)
    for i in range(1, 20):
        assert not tr.observe(A, i, i * 15.0)
    assert tr.observe(B, 7, 300.0)  # another server appearing
    assert len(tr) == 2


def test_restart_detected_by_id_and_by_rhythm() -> None:
    tr = BeaconTracker()
    t = steady(tr, A, 100, 0.0, 10, 15.0)
    assert tr.observe(A, 0, t)  # ids start again from zero
    tr2 = BeaconTracker()
    t = steady(tr2, A, 100, 0.0, 10, 15.0)
    assert tr2.observe(A, 110, t - 15.0 + 0.5)  # much faster than the period


def test_duplicates_and_long_silence() -> None:
    tr = BeaconTracker()
    t = steady(tr, A, 0, 0.0, 10, 15.0)
    assert not tr.observe(A, 9, t)  # the same beacon again (two paths)
    assert tr.observe(A, 10, t + 100.0)  # back after being unreachable
    tr.forget(A)
    assert tr.observe(A, 11, t + 115.0)
