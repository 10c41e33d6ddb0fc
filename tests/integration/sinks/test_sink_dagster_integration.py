"""Integration: the lag sensor and the sink asset against the real Kafka and Postgres."""

import random
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from openpipe.config import DEFAULT_CONFIG_PATH
from openpipe.sinks import SINKS
from openpipe.sinks.samples import encode, wearable_event
from openpipe_dagster.assets.sinks import build_sink_assets
from openpipe_dagster.jobs import sink_job
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource
from openpipe_dagster.runs import SHARD_TAG, SINK_TAG
from openpipe_dagster.sensors.sinks import build_sink_sensor

pytestmark = pytest.mark.integration


@pytest.fixture
def resources(settings, make_topic, tmp_path):
    """Resources whose settings point the wearables sink at a fresh test topic."""
    topic = make_topic("dagster")
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["kafka"]["topics"]["wearables"] = topic
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(raw))
    db = settings.database
    return topic, {
        "settings_resource": SettingsResource(config_path=str(config)),
        "kafka": KafkaResource(bootstrap_servers=settings.kafka.bootstrap_servers),
        "postgres": PostgresResource(
            host=db.host, port=db.port, dbname=db.name, user=db.user, password=db.password
        ),
    }


def test_sensor_requests_a_session_on_lag_and_the_asset_drains_it(settings, resources, produce):
    topic, res = resources
    now = int(time.time() * 1000)
    rng = random.Random(4)
    produce(topic, [(b"k", encode(wearable_event(rng, now)), None) for _ in range(40)], now)
    spec = SINKS["wearable_readings"]
    sensor = build_sink_sensor(spec, sink_job(spec, settings), settings)
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=res) as context:
            tick = sensor(context)
        (request,) = tick.run_requests
        assert request.run_key.startswith("wearable_readings-s0-")
        assert request.tags[SHARD_TAG] == "0"
        with dg.build_sensor_context(instance=instance, resources=res, cursor=tick.cursor) as ctx:
            again = sensor(ctx)
        (same,) = again.run_requests
        assert same.run_key == request.run_key, "same offsets, same key: Dagster runs it once"

        result = dg.materialize(
            [build_sink_assets(settings)["wearable_readings"]],
            resources=res,
            instance=instance,
            run_config={"ops": {"wearable_readings": {"config": {"session_seconds": 3}}}},
        )
        assert result.success
        (event,) = result.get_asset_materialization_events()  # a short session: the final one
        metadata = event.materialization.metadata
        assert metadata["rows_written"].value == 40
        assert metadata["session_rows_written"].value == 40
        assert metadata["lag_after"].value == 0
        assert metadata["storage"].value in {"native", "timescaledb"}
        assert 0 <= metadata["freshness_p95_s"].value < 600

        with dg.build_sensor_context(instance=instance, resources=res) as context:
            caught_up = sensor(context)
        assert isinstance(caught_up, dg.SkipReason) or not caught_up.run_requests


def test_sensor_skips_without_connecting_while_a_session_runs(settings):
    """An in-flight session per shard: one run-storage query, no Kafka, no PostgreSQL."""
    spec = SINKS["wearable_readings"]
    sensor = build_sink_sensor(spec, sink_job(spec, settings), settings)
    unreachable = {
        "settings_resource": SettingsResource(),
        "kafka": KafkaResource(bootstrap_servers="127.0.0.1:1"),
        "postgres": PostgresResource(host="127.0.0.1", port=1, dbname="x", user="x", password="x"),
    }
    with dg.instance_for_test() as instance:
        instance.add_run(
            dg.DagsterRun(
                job_name="wearable_readings_sink_job",
                tags={SINK_TAG: spec.table, SHARD_TAG: "0"},
                status=dg.DagsterRunStatus.STARTED,
            )
        )
        started = time.monotonic()
        with dg.build_sensor_context(instance=instance, resources=unreachable) as context:
            tick = sensor(context)
        assert isinstance(tick, dg.SkipReason), tick
        assert "in flight" in tick.skip_message
        assert time.monotonic() - started < 5


def test_interval_materializations_are_logged_only_for_intervals_that_wrote(
    settings, resources, produce, tmp_path
):
    """1 s intervals over a 20 s session with two bursts: one per interval that wrote.

    The session is long enough that both bursts land in it even when its run starts
    slowly on busy cores (with 8 s, one CI run saw the bursts miss the session)."""
    topic, res = resources
    spec = SINKS["wearable_readings"]
    rng = random.Random(7)
    asset = build_sink_assets(settings)["wearable_readings"]
    raw = yaml.safe_load(Path(res["settings_resource"].config_path).read_text())
    raw["pipeline"]["materialization_interval_s"] = 1
    config = tmp_path / "one_second_intervals.yaml"
    config.write_text(yaml.safe_dump(raw))
    res = {**res, "settings_resource": SettingsResource(config_path=str(config))}

    def produce_twice() -> None:
        # Only once the session is draining (its run may take seconds to start here), so
        # that the two bursts fall in different intervals.
        wait_until_locked(settings, topic)
        for _ in range(2):
            now = int(time.time() * 1000)
            produce(topic, [(b"k", encode(wearable_event(rng, now)), None) for _ in range(25)], now)
            time.sleep(2.5)

    producer = threading.Thread(target=produce_twice)
    with dg.instance_for_test() as instance:
        producer.start()
        result = dg.materialize(
            [asset],
            resources=res,
            instance=instance,
            run_config={"ops": {spec.table: {"config": {"session_seconds": 20}}}},
        )
        producer.join()
    assert result.success
    events = result.get_asset_materialization_events()
    intervals = [e.materialization.metadata for e in events[:-1]]
    final = events[-1].materialization.metadata
    assert final["session_rows_written"].value == 50
    assert 2 <= len(intervals) <= 4, "one per 1 s interval with rows, of ~20 intervals"
    assert all(m["rows_written"].value > 0 for m in intervals), "no materialization when idle"
    assert sum(m["rows_written"].value for m in intervals) + final["rows_written"].value == 50


def wait_until_locked(settings, topic: str, timeout_s: float = 120) -> None:
    """Until a session holds the advisory lock of every partition of `topic`."""
    from openpipe.sinks.drain import lock_name
    from openpipe.storage import db
    from openpipe.storage.db import advisory_unlock, try_advisory_lock

    deadline = time.monotonic() + timeout_s
    with db.connect(settings, autocommit=True) as conn:
        while time.monotonic() < deadline:
            free = [
                p
                for p in range(settings.kafka.partitions)
                if try_advisory_lock(conn, lock_name("wearable_readings", topic, p))
            ]
            for p in free:
                advisory_unlock(conn, lock_name("wearable_readings", topic, p))
            if not free:
                return
            time.sleep(0.1)
    raise AssertionError("no session took the topic's locks")
