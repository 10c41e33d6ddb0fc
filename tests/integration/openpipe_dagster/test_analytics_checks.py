"""Each data-quality check passes on clean data and fails on crafted bad data."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from analytics_rows import delete_where, ensure_days, insert_reading, insert_window
from confluent_kafka.admin import NewTopic

from openpipe.sinks import SINKS
from openpipe_dagster.checks.quality import (
    build_bad_rate_check,
    build_fault_detection_check,
    build_freshness_check,
)
from openpipe_dagster.checks.scoring import expected_bad_rate
from openpipe_dagster.checks.stream_batch import stream_batch_result

pytestmark = pytest.mark.integration
M = timedelta(minutes=1)


def run_check(check: dg.AssetChecksDefinition, resources: dict) -> dg.AssetCheckResult:
    """Invoke a check directly with only the resources it declares."""
    wanted = check.required_resource_keys
    return check(**{k: v for k, v in resources.items() if k in wanted})


def insert_dead_letters(db, topic: str, injected: str | None, error_kind: str, n: int) -> None:
    db.execute(
        "INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, raw_value, "
        "error_kind, error_detail, injected_fault, sink) "
        "SELECT %s, 0, coalesce((SELECT max(kafka_offset) + 1 FROM dead_letters "
        "WHERE kafka_topic = %s), 0) + g, 'x', %s, 'test', %s, 'analytics_test' "
        "FROM generate_series(0, %s - 1) AS g",
        (topic, topic, error_kind, injected, n),
    )


@pytest.fixture
def test_topic(db, tag):
    topic = f"analytics-test-{tag}"
    yield topic
    db.execute("DELETE FROM dead_letters WHERE kafka_topic = %s", (topic,))
    db.execute("DELETE FROM wearable_readings WHERE kafka_topic = %s", (topic,))


def test_fault_detection_check(db, resources, test_topic):
    check = build_fault_detection_check({"wearables": test_topic}, asset="dead_letters")
    insert_dead_letters(db, test_topic, "malformed_json", "malformed_json", 3)
    insert_dead_letters(db, test_topic, "out_of_range", "out_of_range", 2)
    clean = run_check(check, resources)
    assert clean.passed, clean.metadata
    by_kind = clean.metadata["by_kind"].value
    assert by_kind["malformed_json"]["precision"] == 1.0
    assert by_kind["malformed_json"]["rejected"] == 3

    # A clean message rejected, and a wrong_type fault labelled missing_field.
    insert_dead_letters(db, test_topic, None, "out_of_range", 1)
    insert_dead_letters(db, test_topic, "wrong_type", "missing_field", 1)
    bad = run_check(check, resources)
    assert not bad.passed
    assert bad.severity == dg.AssetCheckSeverity.ERROR
    assert bad.metadata["false_rejections"].value == 1
    by_kind = bad.metadata["by_kind"].value
    assert by_kind["out_of_range"]["precision"] == pytest.approx(2 / 3)
    assert by_kind["missing_field"]["precision"] == 0.0
    assert "missing_field" in bad.metadata["failing_kinds"].value


def test_bad_rate_check(db, resources, test_topic, settings):
    now = datetime.now(UTC)
    ensure_days(db, now - timedelta(hours=1), now + timedelta(hours=1))
    check = build_bad_rate_check("wearables", dg.AssetKey("analytics_test_topic"), test_topic)
    expected = expected_bad_rate(settings.devices.wearables)
    total = 2000
    dead = round(total * expected)
    db.execute(
        "INSERT INTO wearable_readings (event_id, event_time, device_id, patient_id, metric, "
        "heart_rate_bpm, kafka_topic, kafka_partition, kafka_offset) "
        "SELECT gen_random_uuid(), %s, 'w-rate', 'p-rate', 'heart_rate', 70, %s, 0, g "
        "FROM generate_series(1, %s) AS g",
        (now - M, test_topic, total - dead),
    )
    insert_dead_letters(db, test_topic, "malformed_json", "malformed_json", dead)
    clean = run_check(check, resources)
    assert clean.passed, clean.description
    assert clean.metadata["judged"].value is True
    assert clean.metadata["observed_rate"].value == pytest.approx(dead / total)

    insert_dead_letters(db, test_topic, "malformed_json", "malformed_json", 300)
    bad = run_check(check, resources)
    assert not bad.passed, bad.description
    assert bad.metadata["observed_rate"].value > bad.metadata["band_high"].value


def test_freshness_check(db, resources, tag, settings):
    kafka = resources["kafka"]
    topic, sink = f"analytics-fresh-{tag}", f"analytics_test_{tag}"
    admin = kafka.admin()
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    try:
        old_ms = int((time.time() - 10 * settings.analytics.freshness_bound_s) * 1000)
        producer = kafka.producer()
        for i in range(3):
            producer.produce(topic, key=b"k", value=f"m{i}".encode(), timestamp=old_ms + i)
        assert producer.flush(30) == 0
        check = build_freshness_check(SINKS["wearable_readings"], sink=sink, topic=topic)

        db.execute(
            "INSERT INTO sink_offsets (sink, kafka_topic, kafka_partition, next_offset) "
            "VALUES (%s, %s, 0, 3)",
            (sink, topic),
        )
        caught_up = run_check(check, resources)
        assert caught_up.passed, caught_up.description
        assert caught_up.metadata["lag_seconds"].value == 0.0

        db.execute("UPDATE sink_offsets SET next_offset = 1 WHERE sink = %s", (sink,))
        stale = run_check(check, resources)
        assert not stale.passed
        assert stale.severity == dg.AssetCheckSeverity.WARN
        assert stale.metadata["lag_messages"].value == 2
        assert stale.metadata["lag_seconds"].value > settings.analytics.freshness_bound_s
    finally:
        db.execute("DELETE FROM sink_offsets WHERE sink = %s", (sink,))
        admin.delete_topics([topic])


def test_stream_batch_check(db, settings, tag, base_hour):
    hour = base_hour + timedelta(hours=1)
    patient, device = f"p-{tag}", f"w-{tag}"
    ensure_days(db, hour - timedelta(hours=1), hour + timedelta(hours=2))
    delay = timedelta(seconds=settings.flink.watermark_delay_seconds)
    try:
        for i, bpm in enumerate([70.0, 80.0]):
            insert_reading(
                db,
                device_id=device,
                patient_id=patient,
                at=hour + 10 * M + i * 20 * M / 60,
                heart_rate=bpm,
            )
        # A late reading: Kafka got it long after its window closed; the stream left it out.
        insert_reading(
            db,
            device_id=device,
            patient_id=patient,
            at=hour + 10 * M + 50 * M / 60,
            heart_rate=200.0,
            kafka_timestamp=hour + 11 * M + delay + 5 * M,
        )
        insert_window(
            db,
            "health_metrics_1min",
            device_id=device,
            patient_id=patient,
            metric="heart_rate",
            window_start=hour + 10 * M,
            window_end=hour + 11 * M,
            count=2,
            avg=75.0,
            low=70.0,
            high=80.0,
        )
        clean = stream_batch_result(db, settings, hour, hour + timedelta(hours=1))
        assert clean.passed, clean.metadata
        assert clean.metadata["late_events"].value == 1
        assert clean.metadata["windows_explained_by_late_events"].value == 1

        # Sent on time but buffered (a broker outage): it reached the partition behind a
        # newer reading of another device that had moved the watermark past its window.
        other = f"w2-{tag}"
        insert_reading(db, device_id=device, patient_id=patient, at=hour + 30 * M, heart_rate=60.0)
        insert_reading(
            db, device_id=other, patient_id=patient, at=hour + 31 * M + delay, heart_rate=61.0
        )
        buffered = hour + 30 * M + 30 * M / 60
        insert_reading(db, device_id=device, patient_id=patient, at=buffered, heart_rate=99.0)
        for who, minute, bpm in ((device, 30, 60.0), (other, 31, 61.0)):
            insert_window(
                db,
                "health_metrics_1min",
                device_id=who,
                patient_id=patient,
                metric="heart_rate",
                window_start=hour + minute * M,
                window_end=hour + (minute + 1) * M,
                count=1,
                avg=bpm,
                low=bpm,
                high=bpm,
            )
        reordered = stream_batch_result(db, settings, hour, hour + timedelta(hours=1))
        assert reordered.passed, reordered.metadata
        assert reordered.metadata["late_events"].value == 2
        assert reordered.metadata["windows_explained_by_late_events"].value == 2

        # A window the stream got wrong (count and average) with no late events to explain it.
        insert_reading(db, device_id=device, patient_id=patient, at=hour + 20 * M, heart_rate=90.0)
        insert_window(
            db,
            "health_metrics_1min",
            device_id=device,
            patient_id=patient,
            metric="heart_rate",
            window_start=hour + 20 * M,
            window_end=hour + 21 * M,
            count=2,
            avg=95.0,
            low=90.0,
            high=100.0,
        )
        bad = stream_batch_result(db, settings, hour, hour + timedelta(hours=1))
        assert not bad.passed
        assert bad.metadata["windows_mismatched"].value == 1
        [sample] = bad.metadata["mismatch_sample"].value
        assert (sample["batch_count"], sample["stream_count"]) == (1, 2)
    finally:
        for table in ("wearable_readings", "health_metrics_1min"):
            delete_where(db, table, "patient_id", [patient])
