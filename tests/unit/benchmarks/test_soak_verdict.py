"""The soak verdict's rules and its plot (no stack needed)."""

from soak_verdict import (
    Sample,
    freshness_checks,
    lag_checks,
    memory_checks,
    plot,
    render_report,
    slope,
)


def _samples(lag, memory=lambda t: 100.0, n=60, rate=2000):
    return [
        Sample(
            t=30.0 * i,
            lags={"wearable_readings": lag(30.0 * i)},
            marks={"virtual-wearables": int(rate * 30 * i)},
            memory_mb={"kafka": memory(30.0 * i), "dagster run workers": 50.0 * (i % 3)},
            cpu_cores={"kafka": 0.2},
            freshness_p95={"wearable_readings": 4.0},
            checkpoint_ms=120.0,
            event_log_rows=1000 + i,
            runs={"SUCCESS": i},
        )
        for i in range(n)
    ]


def test_slope_of_a_line():
    assert abs(slope([(0, 1), (1, 3), (2, 5)]) - 2.0) < 1e-9
    assert slope([(0, 5)]) == 0.0


def test_steady_lag_is_bounded():
    checks = lag_checks(
        _samples(lambda t: 5000 + (t % 90)), {"wearable_readings": "virtual-wearables"}, 60
    )
    assert checks[0].passed, checks[0].detail


def test_growing_lag_is_not_bounded():
    checks = lag_checks(_samples(lambda t: 300 * t), {"wearable_readings": "virtual-wearables"}, 60)
    assert not checks[0].passed
    assert "trend" in checks[0].detail


def test_lag_never_measured_fails():
    checks = lag_checks(_samples(lambda t: None), {"wearable_readings": "virtual-wearables"}, 60)
    assert not checks[0].passed and checks[0].detail == "never measured"


def test_freshness_bound():
    checks = freshness_checks({"gps_points": 12.0, "wearable_readings": 31.0, "x": None}, 30)
    assert [c.passed for c in checks] == [True, False, False]


def test_memory_growth_over_ten_percent_fails_and_workers_can_be_excluded():
    samples = _samples(lambda t: 0, memory=lambda t: 100.0 + t / 60)  # +1 MiB per minute
    checks = memory_checks(samples, 600, exclude=("dagster run workers",))
    assert [c.name for c in checks] == ["memory kafka"]
    assert not checks[0].passed  # 110 MiB at 10 min -> ~129 MiB at 29.5 min
    flat = memory_checks(_samples(lambda t: 0), 600, exclude=("dagster run workers",))
    assert flat[0].passed


def test_report_and_plot(tmp_path):
    samples = _samples(lambda t: 100)
    png = tmp_path / "soak.png"
    plot(samples, png, {"wearable_readings": [(0.0, 3.0), (30.0, 4.0)]})
    assert png.stat().st_size > 10_000
    checks = freshness_checks({"gps_points": 12.0}, 30)
    text = render_report("Soak run t", "setup", checks, ["note"], png.name)
    assert "**Verdict: PASS**" in text and "![soak series](soak.png)" in text
