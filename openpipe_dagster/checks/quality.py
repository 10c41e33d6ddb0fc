"""Standalone asset checks: fault detection, sink freshness and the bad-data rate per topic.

They look at live tables and Kafka (not at one partition), run on the quality-check
schedule, and are not blocking: no asset is built from their targets in the same run.
"""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
from confluent_kafka import TopicPartition

from openpipe.config import Settings
from openpipe.events import FAMILIES
from openpipe.sinks import SINKS, SinkSpec
from openpipe_dagster.assets.topics import topic_asset_key
from openpipe_dagster.checks.scoring import (
    bad_rate_band,
    expected_bad_rate,
    pending_lag,
    score_fault_detection,
)
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource

RAW_SPECS = {spec.family: spec for spec in SINKS.values() if spec.family}
FRESHNESS_GROUP = "openpipe-analytics-freshness"


def _since(settings: Settings) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=settings.analytics.check_window_minutes)


# event_time bounds the scan to recent partitions: a valid event is at most
# validation.max_age_hours older than its Kafka time.
RAW_WINDOW = (
    "kafka_topic = ANY(%(topics)s) AND ingested_at >= %(since)s "
    "AND event_time >= %(since)s::timestamptz - %(max_age)s::interval"
)


def _has_injected_fault_column(conn: psycopg.Connection, table: str) -> bool:
    return bool(
        conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s AND column_name = 'injected_fault'",
            (table,),
        ).fetchone()
    )


def build_fault_detection_check(
    topics: dict[str, str] | None = None, asset: dg.AssetKey | str = "dead_letters"
) -> dg.AssetChecksDefinition:
    """Precision and recall of rejection per invalid fault kind over family -> topic."""

    @dg.asset_check(
        asset=asset,
        name="fault_detection_precision_recall",
        description=(
            "Scores the validator against the simulator's ground truth (openpipe-fault header, "
            "kept in dead_letters.injected_fault) over the last analytics.check_window_minutes: "
            "per invalid kind, precision = dead letters labelled with the kind that carried it, "
            "recall = rejected / injected. Both must be 1.0, and no clean, late or duplicate "
            "message may be dead-lettered. Recall needs raw tables that keep injected_fault."
        ),
    )
    def _check(postgres: PostgresResource, settings_resource: SettingsResource):
        settings = settings_resource.settings
        by_family = topics or {f: getattr(settings.kafka.topics, f) for f in FAMILIES}
        params = {
            "topics": list(by_family.values()),
            "since": _since(settings),
            "max_age": timedelta(hours=settings.validation.max_age_hours),
        }
        with postgres.connect(autocommit=True) as conn:
            dead = conn.execute(
                "SELECT injected_fault, error_kind, count(*) FROM dead_letters "
                "WHERE kafka_topic = ANY(%(topics)s) AND received_at >= %(since)s "
                "GROUP BY 1, 2",
                params,
            ).fetchall()
            accepted: dict[str, int] | None = {}
            for family in by_family:
                table = RAW_SPECS[family].table
                if not _has_injected_fault_column(conn, table):
                    accepted = None
                    break
                for kind, count in conn.execute(
                    f"SELECT injected_fault, count(*) FROM {table} WHERE {RAW_WINDOW} "
                    "AND injected_fault IS NOT NULL GROUP BY 1",
                    params,
                ):
                    accepted[kind] = accepted.get(kind, 0) + count
        scores, false_rejections = score_fault_detection(dead, accepted)
        failing = sorted(k for k, s in scores.items() if not s.ok)
        passed = not failing and false_rejections == 0
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                "every invalid kind rejected with precision and recall 1.0"
                if passed
                else f"kinds below 1.0: {failing or 'none'}; false rejections: {false_rejections}"
            ),
            metadata={
                "dead_letters": sum(c for *_, c in dead),
                "false_rejections": false_rejections,
                "recall_measured": accepted is not None,
                "failing_kinds": dg.MetadataValue.json(failing),
                "by_kind": dg.MetadataValue.json(
                    {
                        k: {
                            "rejected": s.rejected,
                            "labelled": s.labelled,
                            "accepted": s.accepted,
                            "precision": s.precision,
                            "recall": s.recall,
                        }
                        for k, s in scores.items()
                    }
                ),
            },
        )

    return _check


def oldest_pending_ages(
    kafka: KafkaResource, topic: str, start: dict[int, int], now_ms: int, timeout_s: float = 10
) -> dict[int, float]:
    """Seconds since Kafka received the first undrained message, per lagging partition."""
    consumer = kafka.consumer(FRESHNESS_GROUP)
    ages: dict[int, float] = {}
    try:
        consumer.assign([TopicPartition(topic, p, o) for p, o in start.items()])
        deadline = time.monotonic() + timeout_s
        while len(ages) < len(start) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() or message.partition() in ages:
                continue
            _, stamp = message.timestamp()
            ages[message.partition()] = max(0.0, (now_ms - stamp) / 1000)
            consumer.pause([TopicPartition(topic, message.partition())])
    finally:
        consumer.close()
    return ages


def build_freshness_check(
    spec: SinkSpec, sink: str | None = None, topic: str | None = None
) -> dg.AssetChecksDefinition:
    """Lag in seconds of `spec`'s sink: age of its oldest undrained message (0 when caught up)."""
    sink_name = sink or spec.table

    @dg.asset_check(
        asset=spec.table,
        name="sink_freshness",
        description=(
            f"Age of the oldest message of the {spec.topic_key} topic that the {sink_name} sink "
            "has not written yet (sink_offsets vs. Kafka high watermarks and message "
            "timestamps), at most analytics.freshness_bound_s."
        ),
    )
    def _check(
        kafka: KafkaResource, postgres: PostgresResource, settings_resource: SettingsResource
    ):
        settings = settings_resource.settings
        name = topic or spec.topic(settings)
        bound = settings.analytics.freshness_bound_s
        marks = kafka.high_watermarks(name)
        with postgres.connect(autocommit=True) as conn:
            stored = dict(
                conn.execute(
                    "SELECT kafka_partition, next_offset FROM sink_offsets "
                    "WHERE sink = %s AND kafka_topic = %s",
                    (sink_name, name),
                ).fetchall()
            )
        lag = pending_lag(marks, stored)
        behind = {p: stored.get(p, 0) for p, n in lag.items() if n > 0}
        now_ms = int(time.time() * 1000)
        ages = oldest_pending_ages(kafka, name, behind, now_ms) if behind else {}
        # A lagging partition whose message could not be read counts as over the bound.
        lag_s = max(
            [*ages.values(), *([float("inf")] if len(ages) < len(behind) else [])], default=0.0
        )
        passed = lag_s <= bound
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"lag {lag_s:.1f}s (bound {bound:.0f}s), {sum(lag.values())} messages",
            metadata={
                "lag_seconds": lag_s if lag_s != float("inf") else -1.0,
                "lag_messages": sum(lag.values()),
                "bound_seconds": bound,
                "lag_by_partition": dg.MetadataValue.json({str(p): n for p, n in lag.items()}),
            },
        )

    return _check


def build_bad_rate_check(
    family: str, asset: dg.AssetKey, topic: str | None = None
) -> dg.AssetChecksDefinition:
    """Dead letters / (rows + dead letters) of a device topic within the configured band."""
    spec = RAW_SPECS[family]

    @dg.asset_check(
        asset=asset,
        name="bad_data_rate_within_band",
        description=(
            f"Share of {family} messages dead-lettered over the last check window, against "
            f"devices.{family}.bad_data_probability times the invalid share of its fault_mix "
            "(duplicates are dropped, late events are valid), within analytics.bad_rate_sigmas "
            "binomial standard deviations. Skipped as passed below bad_rate_min_messages."
        ),
    )
    def _check(postgres: PostgresResource, settings_resource: SettingsResource):
        settings = settings_resource.settings
        name = topic or getattr(settings.kafka.topics, family)
        params = {
            "topics": [name],
            "since": _since(settings),
            "max_age": timedelta(hours=settings.validation.max_age_hours),
        }
        with postgres.connect(autocommit=True) as conn:
            (rows,) = conn.execute(
                f"SELECT count(*) FROM {spec.table} WHERE {RAW_WINDOW}", params
            ).fetchone()
            (dead,) = conn.execute(
                "SELECT count(*) FROM dead_letters WHERE kafka_topic = ANY(%(topics)s) "
                "AND received_at >= %(since)s",
                params,
            ).fetchone()
        messages = rows + dead
        expected = expected_bad_rate(getattr(settings.devices, family))
        low, high = bad_rate_band(expected, messages, settings.analytics.bad_rate_sigmas)
        observed = dead / messages if messages else 0.0
        enough = messages >= settings.analytics.bad_rate_min_messages
        passed = not enough or low <= observed <= high
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"only {messages} messages in the window; not judged"
                if not enough
                else f"bad-data rate {observed:.4f}, expected {expected:.4f} in [{low:.4f}, {high:.4f}]"
            ),
            metadata={
                "messages": messages,
                "dead_letters": dead,
                "observed_rate": observed,
                "expected_rate": expected,
                "band_low": low,
                "band_high": high,
                "judged": enough,
            },
        )

    return _check


def build_quality_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """All standalone checks: fault detection, a freshness check per sink, a bad-rate per topic."""
    return [
        build_fault_detection_check(),
        *(build_freshness_check(spec) for spec in SINKS.values()),
        *(
            build_bad_rate_check(f, topic_asset_key(getattr(settings.kafka.topics, f)))
            for f in FAMILIES
        ),
    ]
