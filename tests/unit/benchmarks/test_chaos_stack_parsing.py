"""Pure helpers of the harness's stack adapter: traffic sizing and daemon log counting."""

from datetime import UTC, datetime

from system_stack import daemon_errors, device_counts

LOG = (
    "\x1b[32m2026-11-27 12:38:19 +0000\x1b[0m - dagster.daemon.QueuedRunCoordinatorDaemon - "
    "\x1b[34mERROR\x1b[0m - \x1b[31mCaught an error dequeuing run 7fcca8a3-42f9-4481-8f33-f8a9aafb6b49\x1b[0m\n"
    "\x1b[32m2026-11-27 12:39:30 +0000\x1b[0m - dagster.daemon.QueuedRunCoordinatorDaemon - "
    "\x1b[34mERROR\x1b[0m - \x1b[31mCaught an error dequeuing run f5fec342-aebe-4d6a-9704-e342e0cad463\x1b[0m\n"
    "\x1b[32m2026-11-27 12:39:31 +0000\x1b[0m - dagster.daemon.SensorDaemon - "
    "\x1b[34mINFO\x1b[0m - Sensor x skipped\n"
    "\x1b[32m2026-11-27 11:00:00 +0000\x1b[0m - dagster.daemon.SensorDaemon - "
    "\x1b[34mERROR\x1b[0m - before the run\n"
    '  File "traceback line", line 1\n'
)


def test_daemon_errors_by_kind_since_the_start(tmp_path):
    log = tmp_path / "dagster-daemon.log"
    log.write_text(LOG)
    counts = daemon_errors(datetime(2026, 11, 27, 12, 0, tzinfo=UTC), log)
    assert counts == {"QueuedRunCoordinatorDaemon: Caught an error dequeuing run <run>": 2}


def test_device_counts_make_the_rate(settings):
    counts = device_counts(settings, 2000)
    w = settings.devices.wearables
    per_wearable = (
        1 / w.heart_rate_interval_s + 1 / w.blood_pressure_interval_s + 1 / w.blood_sugar_interval_s
    )
    rate = (
        counts["wearables"] * per_wearable
        + counts["gps"] / settings.devices.gps.interval_s
        + counts["restaurants"] / settings.devices.restaurants.order_interval_s
    )
    assert abs(rate - 2000) < 5
