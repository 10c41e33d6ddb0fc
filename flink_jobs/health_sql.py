"""Flink SQL and rule specs for the health-window job, built from settings.

Everything here is a pure string builder. Each Kafka value is judged and decoded once, by
the `openpipe-wearable` format (jvm/flink-wearables), with the rules of
`openpipe.events.EventValidator` for the wearables family; this module hands it those rules
as one spec string (`wearable_rules`) and adds what needs the Kafka timestamp (the
event-time window of `validation`) in SQL. The windows, dedupe and alerts are one keyed
operator (`HealthWindows`, jvm/flink-wearables) that reads its rules from `health_rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from openpipe.config import Settings
from openpipe.events import DEVICE_TYPES, METRIC_FIELDS, SCHEMA_VERSION

#: The Kafka value format and the SQL function that judge and decode one wearable value.
WEARABLE_FORMAT = "openpipe-wearable"
PARSE_FUNCTION = "OPENPIPE_PARSE_WEARABLE"
PARSE_FUNCTION_CLASS = "dev.openpipe.flink.ParseWearable"
#: The metric of the long-window family (health-metrics-10min); the others are short.
LONG_WINDOW_METRIC = "blood_sugar"
#: Fields whose blank, missing or NUL-holding values make a wearable reading invalid.
_IDENTIFIERS = ("device_id", "patient_id")
#: Metrics whose first measurement must exceed the second (systolic above diastolic).
_EXCEEDS = {"blood_pressure": ("systolic_mmhg", "diastolic_mmhg")}
#: A reading slot per measurement field of the metric with the most (blood pressure: 2).
READING_SLOTS = max(len(fields) for fields in METRIC_FIELDS.values())
#: The columns the format decodes, in source order, with their SQL types.
DECODED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("valid", "BOOLEAN"),
    ("event_id_high", "BIGINT"),  # the event_id UUID's 128 bits (every valid event has one)
    ("event_id_low", "BIGINT"),
    ("device_id", "STRING"),
    ("patient_id", "STRING"),
    ("metric", "STRING"),
    # An instant, like the Kafka timestamp it is compared with: no time-zone conversion per
    # record (CAST(TIMESTAMP_LTZ AS TIMESTAMP) took ~9 % of the job's CPU).
    ("event_ts", "TIMESTAMP_LTZ(3)"),
    *((f"reading_{i + 1}", "DOUBLE") for i in range(READING_SLOTS)),
)


@dataclass(frozen=True, slots=True)
class WindowedMetric:
    """One output metric: its name, the event field it averages and the window length."""

    metric: str
    event_metric: str
    field: str
    window_s: int
    alert_type: str
    threshold: float
    strict: bool  # heart rate alerts on avg > threshold; the others on avg >= threshold


def windowed_metrics(settings: Settings) -> tuple[WindowedMetric, ...]:
    """The four window/alert rules of docs/architecture.md §5, with sizes and thresholds from config."""
    f, t = settings.flink, settings.flink.thresholds
    return (
        WindowedMetric(
            "heart_rate",
            "heart_rate",
            "heart_rate_bpm",
            f.heart_rate_window_s,
            "elevated_heart_rate",
            t.heart_rate_bpm,
            True,
        ),
        WindowedMetric(
            "bp_systolic",
            "blood_pressure",
            "systolic_mmhg",
            f.blood_pressure_window_s,
            "elevated_bp_systolic",
            t.systolic_mmhg,
            False,
        ),
        WindowedMetric(
            "bp_diastolic",
            "blood_pressure",
            "diastolic_mmhg",
            f.blood_pressure_window_s,
            "elevated_bp_diastolic",
            t.diastolic_mmhg,
            False,
        ),
        WindowedMetric(
            "blood_sugar",
            "blood_sugar",
            "glucose_mg_dl",
            f.blood_sugar_window_s,
            "elevated_blood_sugar",
            t.glucose_mg_dl,
            False,
        ),
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def wearable_rules(settings: Settings) -> str:
    """The rules spec the format and function read: limits, ids, metrics and their ranges.

    Ranges come from `validation` under the names of the measurement fields, the contract
    (metrics, device type, schema version) from `openpipe.events`.
    """
    v = settings.validation
    items = [
        f"max_bytes={v.max_message_bytes}",
        f"max_depth={v.max_json_depth}",
        f"schema_version={SCHEMA_VERSION}",
        f"device_type={DEVICE_TYPES['wearables']}",
        f"identifiers={','.join(_IDENTIFIERS)}",
    ]
    for metric, fields in METRIC_FIELDS.items():
        items.append(f"metric.{metric}={','.join(fields)}")
        for name in fields:
            bounds = getattr(v, name)
            items.append(f"range.{name}={float(bounds.low)!r},{float(bounds.high)!r}")
    items += [f"exceeds.{metric}={','.join(pair)}" for metric, pair in _EXCEEDS.items()]
    return ";".join(items)


def health_rules(settings: Settings) -> str:
    """The rules spec of the window operator (`HealthWindows`, jvm/flink-wearables).

    One `rule=` entry per output metric: its event metric and reading slot, window length,
    whether it is the long (10-minute) family, alert type and threshold, and the exact
    decimals its alert and severity are judged on, written here so that Java reads the
    same decimal the SQL literal had (the threshold's shortest repr, times each ratio).
    """
    f = settings.flink
    items = [f"slots={READING_SLOTS}"]
    for r in windowed_metrics(settings):
        shortest = repr(float(r.threshold))
        threshold = Decimal(shortest)
        fields = (
            r.metric,
            r.event_metric,
            METRIC_FIELDS[r.event_metric].index(r.field),
            r.window_s * 1000,
            int(r.metric == LONG_WINDOW_METRIC),
            r.alert_type,
            shortest,
            threshold,
            int(r.strict),
            threshold * Decimal(repr(float(f.severity_high_ratio))),
            threshold * Decimal(repr(float(f.severity_critical_ratio))),
        )
        items.append("rule=" + "|".join(str(x) for x in fields))
    return ";".join(items)


def decoded_columns_ddl() -> str:
    """The physical columns of a Kafka source in the `openpipe-wearable` format."""
    return ",\n  ".join(f"{name} {kind}" for name, kind in DECODED_COLUMNS)


def computed_columns_ddl(settings: Settings, value: str) -> str:
    """The same columns computed from a BYTES column (sources that are not Kafka: tests)."""
    call = f"{PARSE_FUNCTION}({value}, {_literal(wearable_rules(settings))})"
    return ",\n  ".join(f"{name} AS {call}.{name}" for name, _ in DECODED_COLUMNS)


def watermark_sql(settings: Settings, rowtime: str = "event_ts", kafka_ts: str = "kafka_ts") -> str:
    """Watermark expression: never ahead of the Kafka timestamp, so a bad clock cannot rush it.

    An event stamped in the future (beyond max_future_seconds it is invalid anyway) moves
    the watermark only as far as its own send time minus the delay, like a correct event sent
    at that moment would. Rows without a parseable time do not move it at all.
    """
    delay_ms = settings.flink.watermark_delay_seconds * 1000
    return (
        f"TIMESTAMPADD(MILLISECOND, -{delay_ms}, "
        f"LEAST(COALESCE({rowtime}, TO_TIMESTAMP_LTZ(0, 3)), {kafka_ts}))"
    )


def valid_wearable_sql(settings: Settings) -> str:
    """WHERE predicate: the format found the reading valid and its time is within the window

    of `validation` around the Kafka timestamp (max_future_seconds ahead, max_age_hours back).
    """
    v = settings.validation
    return (
        f"valid AND (kafka_ts IS NULL OR ("
        f"event_ts <= TIMESTAMPADD(MILLISECOND, {v.max_future_seconds * 1000}, kafka_ts) "
        f"AND event_ts >= TIMESTAMPADD(MILLISECOND, -{v.max_age_hours * 3_600_000}, kafka_ts)))"
    )


def readings_sql(settings: Settings, source: str) -> str:
    """The valid events, one row each, with their reading slots and event time.

    A blood-pressure event stays one row: the window operator keeps the readings of each
    slot and writes a row per measurement when the window fires. The column order is the
    operator's input contract (`HealthWindows`' field positions).
    """
    slots = ", ".join(f"reading_{i + 1}" for i in range(READING_SLOTS))
    return f"""
SELECT event_id_high, event_id_low, device_id, patient_id, metric, {slots}, event_ts
FROM {source} WHERE {valid_wearable_sql(settings)}"""
