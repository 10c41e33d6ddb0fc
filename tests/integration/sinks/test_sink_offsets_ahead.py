"""Integration (issue 16 item 1): stored offsets above the high watermark fail loudly, and
`reset-offsets` moves them as documented, with a dry run."""

import random
import subprocess
import sys
import threading
import time

import dagster as dg
import pytest
import yaml

from openpipe import kafka
from openpipe.config import DEFAULT_CONFIG_PATH, REPO_ROOT
from openpipe.sinks import SINKS, drain_topic
from openpipe.sinks.drain import OffsetsAheadOfTopic, SinkSession, lock_name
from openpipe.sinks.offsets import SinkBusy, run_reset
from openpipe.sinks.samples import encode, wearable_event
from openpipe.storage.db import try_advisory_lock
from openpipe_dagster.assets.sinks import build_sink_assets
from openpipe_dagster.jobs import sink_job
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource
from openpipe_dagster.sensors.reports import record_pipeline_incidents
from openpipe_dagster.sensors.sinks import build_sink_sensor

pytestmark = pytest.mark.integration
SINK = "wearable_readings"
DRY_LATEST = ("--to", "latest", "--dry-run")
CLI = (sys.executable, "-m", "openpipe.stack.cli")


def produce_events(produce, topic: str, n: int, seed: int) -> None:
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    produce(topic, [(b"k%d" % i, encode(wearable_event(rng, now)), None) for i in range(n)], now)


def drain(settings, connect, topic: str):
    return drain_topic(
        SINKS[SINK], settings, connect=connect, make_consumer=consumers(settings), topic=topic
    )


def offsets(connect, topic: str) -> dict[int, int]:
    with connect() as conn:
        return dict(
            conn.execute(
                "SELECT kafka_partition, next_offset FROM sink_offsets WHERE kafka_topic = %s",
                (topic,),
            ).fetchall()
        )


def marks(settings, topic: str) -> dict[int, tuple[int, int]]:
    consumer = kafka.make_consumer(settings.kafka.bootstrap_servers, "openpipe-sink-tests")
    try:
        return kafka.watermarks(consumer, topic)
    finally:
        consumer.close()


def push_ahead(connect, topic: str, partition: int, by: int = 1000) -> None:
    """What a recreated topic looks like to the sink: its stored offset is past the end."""
    with connect() as conn:
        conn.execute(
            "UPDATE sink_offsets SET next_offset = next_offset + %s "
            "WHERE kafka_topic = %s AND kafka_partition = %s",
            (by, topic, partition),
        )


@pytest.fixture
def ahead_topic(settings, connect, make_topic, produce):
    """A drained topic whose partition 0 has a stored offset 1000 past its high watermark."""
    topic = make_topic("ahead")
    produce_events(produce, topic, 60, seed=1)
    assert drain(settings, connect, topic).total_lag == 0
    push_ahead(connect, topic, 0)
    return topic


def test_a_drain_fails_saying_what_happened_and_what_to_do(settings, connect, ahead_topic):
    with pytest.raises(OffsetsAheadOfTopic) as failure:
        drain(settings, connect, ahead_topic)
    message = str(failure.value)
    assert "partition 0" in message and "above the topic's high watermark" in message
    assert f"openpipe sinks reset-offsets {SINK} --to earliest" in message
    assert "--dry-run" in message


def test_the_run_fails_once_without_retries_and_an_incident_is_recorded(
    settings, connect, ahead_topic, tmp_path
):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["kafka"]["topics"]["wearables"] = ahead_topic
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(raw))
    db = settings.database
    postgres = PostgresResource(
        host=db.host, port=db.port, dbname=db.name, user=db.user, password=db.password
    )
    resources = {
        "settings_resource": SettingsResource(config_path=str(config)),
        "kafka": KafkaResource(bootstrap_servers=settings.kafka.bootstrap_servers),
        "postgres": postgres,
    }
    spec = SINKS[SINK]
    sensor = build_sink_sensor(spec, sink_job(spec, settings), settings)
    with dg.instance_for_test() as instance:
        # The lag sensor sees no lag but offsets ahead: one run per stored state.
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            tick = sensor(context)
        (request,) = tick.run_requests
        assert "-ahead-" in request.run_key
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            (again,) = sensor(context).run_requests
        assert again.run_key == request.run_key

        result = dg.materialize(
            [build_sink_assets(settings)[SINK]],
            resources=resources,
            instance=instance,
            run_config={"ops": {SINK: {"config": {"session_seconds": 30}}}},
            raise_on_error=False,
        )
        assert not result.success
        (step_failure,) = [e for e in result.all_events if e.is_step_failure]
        assert "reset-offsets" in step_failure.step_failure_data.error.message
        restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
        assert restarts == [], "retrying cannot help: the run fails at once"

        run = instance.get_run_by_id(result.run_id)
        with dg.build_run_status_sensor_context(
            sensor_name="record_pipeline_incidents",
            dagster_event=result.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=run,
            resources={"postgres": postgres},
        ) as context:
            record_pipeline_incidents(context.for_run_failure())
    with connect() as conn:
        (incident,) = conn.execute(
            "SELECT error_message FROM pipeline_incidents WHERE run_id = %s", (result.run_id,)
        ).fetchone()
        conn.execute("DELETE FROM pipeline_incidents WHERE run_id = %s", (result.run_id,))
    assert "above the topic's high watermark" in incident and "reset-offsets" in incident


def test_reset_offsets_dry_run_changes_nothing(settings, connect, ahead_topic):
    before = offsets(connect, ahead_topic)
    out = subprocess.run(
        [*CLI, "sinks", "reset-offsets", SINK, "--topic", ahead_topic, *DRY_LATEST],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "dry run: nothing changed" in out
    high = marks(settings, ahead_topic)[0][1]
    assert f"{before[0]:>12} " in out and f"{high:>12}" in out, out
    assert offsets(connect, ahead_topic) == before


def test_reset_to_stored_max_lowers_only_the_partitions_ahead_and_new_messages_drain(
    settings, connect, produce, ahead_topic
):
    before = offsets(connect, ahead_topic)
    run_reset(*clients(settings, connect), SINK, ahead_topic, "stored-max", dry_run=False)
    after = offsets(connect, ahead_topic)
    assert after[0] == marks(settings, ahead_topic)[0][1] == before[0] - 1000
    assert {p: n for p, n in after.items() if p} == {p: n for p, n in before.items() if p}
    produce_events(produce, ahead_topic, 30, seed=2)
    result = drain(settings, connect, ahead_topic)
    assert result.rows_written == 30 and result.total_lag == 0, "nothing skipped after the reset"


def test_reset_to_earliest_rereads_without_new_rows_and_latest_skips(
    settings, connect, produce, ahead_topic
):
    clients_ = clients(settings, connect)
    run_reset(*clients_, SINK, ahead_topic, "earliest", dry_run=False)
    lows = {p: low for p, (low, _) in marks(settings, ahead_topic).items()}
    assert offsets(connect, ahead_topic) == lows
    assert drain(settings, connect, ahead_topic).rows_written == 0, "stored events stay single"
    produce_events(produce, ahead_topic, 20, seed=3)
    run_reset(*clients_, SINK, ahead_topic, "latest", dry_run=False)
    highs = {p: high for p, (_, high) in marks(settings, ahead_topic).items()}
    assert offsets(connect, ahead_topic) == highs
    assert drain(settings, connect, ahead_topic).messages == 0


def test_reset_refuses_while_a_session_holds_a_partition(settings, connect, ahead_topic):
    before = offsets(connect, ahead_topic)
    with connect() as holder:
        assert try_advisory_lock(holder, lock_name(SINK, ahead_topic, 1))
        with pytest.raises(SinkBusy, match="stop it first"):
            run_reset(*clients(settings, connect), SINK, ahead_topic, "latest", dry_run=False)
        run_reset(*clients(settings, connect), SINK, ahead_topic, "latest", dry_run=True)
    assert offsets(connect, ahead_topic) == before


def consumers(settings):
    """A consumer factory, as the sinks take it."""
    return lambda g: kafka.make_consumer(settings.kafka.bootstrap_servers, g)


def clients(settings, connect):
    return connect, consumers(settings)


def hold_every_lock(conn, settings, topic: str) -> None:
    """Take the sink's lock of every partition of `topic`, as a running predecessor holds them."""
    for p in range(settings.kafka.partitions):
        assert try_advisory_lock(conn, lock_name(SINK, topic, p))


def successor_session(settings, connect, topic: str, **kwargs) -> SinkSession:
    """A session that waits up to 60 s for a predecessor's locks, as at a handover."""
    return SinkSession(
        SINKS[SINK],
        settings,
        connect=connect,
        make_consumer=consumers(settings),
        topic=topic,
        lock_wait_s=60,
        **kwargs,
    )


def test_a_session_that_waited_for_its_predecessor_is_not_a_false_alarm(
    settings, connect, make_topic, produce
):
    """A successor reads the high watermarks again once it holds the locks. It used to
    compare the offsets its predecessor stored meanwhile with marks read before it waited,
    and failed with OffsetsAheadOfTopic at every busy handover (11 runs in a soak)."""
    topic = make_topic("handover")
    produce_events(produce, topic, 30, seed=2)
    assert drain(settings, connect, topic).total_lag == 0
    with connect() as predecessor:
        hold_every_lock(predecessor, settings, topic)
        outcome: dict[str, object] = {}

        def successor() -> None:
            session = successor_session(settings, connect, topic)
            try:
                with session:
                    outcome["marks"] = session.marks
            except Exception as exc:  # the assertion below shows it
                outcome["error"] = exc

        waiting = threading.Thread(target=successor)
        waiting.start()
        time.sleep(3)  # the successor has read the marks once and waits for the locks
        produce_events(produce, topic, 30, seed=3)
        # What the predecessor does with those: store them, up to the new high watermarks.
        with connect() as conn:
            for p, (_, high) in marks(settings, topic).items():
                conn.execute(
                    "UPDATE sink_offsets SET next_offset = %s "
                    "WHERE kafka_topic = %s AND kafka_partition = %s",
                    (high, topic, p),
                )
    waiting.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert {p: high for p, (_, high) in outcome["marks"].items()} == offsets(connect, topic)


def test_a_session_stopped_while_it_waits_for_the_locks_says_it_was_stopped(
    settings, connect, make_topic
):
    """A termination during a handover reaches the successor before it holds the locks:
    it ends at once, skipped, and reports the stop (it reported stopped_on_request False)."""
    topic = make_topic("stopwait")
    stop = threading.Event()
    with connect() as predecessor:
        hold_every_lock(predecessor, settings, topic)
        session = successor_session(settings, connect, topic, stop=stop)
        threading.Timer(1.0, stop.set).start()
        started = time.monotonic()
        with session:
            result = session.run(seconds=5)
    assert time.monotonic() - started < 10
    assert result.skipped_reason and "holds the lock" in result.skipped_reason
    assert result.stopped is True
