"""Flink SQL for the health-window job, built from settings: decoding, windows, alerts.

Everything here is a pure string builder. Each Kafka value is judged and decoded once, by
the `openpipe-wearable` format (jvm/flink-wearables), with the rules of
`openpipe.events.EventValidator` for the wearables family; this module hands it those rules
as one spec string (`wearable_rules`) and adds what needs the Kafka timestamp (the
event-time window of `validation`) in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from openpipe.config import Settings
from openpipe.events import DEVICE_TYPES, METRIC_FIELDS, SCHEMA_VERSION

#: How window bounds and alert times are written to the health-* topics (docs/architecture.md §5).
OUTPUT_TIME_FORMAT = "yyyy-MM-dd''T''HH:mm:ss.SSS''Z''"
#: Readings are summed as decimals of this type (6 decimal places; readings are < 10^6).
EXACT_TYPE = "DECIMAL(24, 6)"
#: The Kafka value format and the SQL function that judge and decode one wearable value.
WEARABLE_FORMAT = "openpipe-wearable"
PARSE_FUNCTION = "OPENPIPE_PARSE_WEARABLE"
PARSE_FUNCTION_CLASS = "dev.openpipe.flink.ParseWearable"
#: Per-window count, exact sum, min and max with each event_id once (jvm/flink-wearables).
STATS_FUNCTION = "OPENPIPE_EVENT_STATS"
STATS_FUNCTION_CLASS = "dev.openpipe.flink.DistinctEventStats"
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


def _number(value: float) -> str:
    """A DOUBLE literal that round-trips (no DECIMAL rounding of 99.95 and friends)."""
    return f"CAST({float(value)!r} AS DOUBLE)"


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
        threshold = Decimal(repr(float(r.threshold)))
        fields = (
            r.metric,
            r.event_metric,
            METRIC_FIELDS[r.event_metric].index(r.field),
            r.window_s * 1000,
            int(r.metric == LONG_WINDOW_METRIC),
            r.alert_type,
            repr(float(r.threshold)),
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

    A blood-pressure event stays one row: the window aggregate keeps the stats of each slot
    and its rows are split per measurement after it (`window_metrics_sql`), once per window
    instead of once per reading.
    """
    slots = ", ".join(f"reading_{i + 1}" for i in range(READING_SLOTS))
    return f"""
SELECT event_id_high, event_id_low, device_id, patient_id, metric, {slots}, event_ts
FROM {source} WHERE {valid_wearable_sql(settings)}"""


def window_metrics_sql(readings: str, rules: tuple[WindowedMetric, ...], window_s: int) -> str:
    """Tumbling event-time windows per device and metric; each event_id counted once.

    The aggregate groups by the events' metric and keeps one `STATS_FUNCTION` per reading
    slot the rules use (systolic and diastolic of one blood-pressure event side by side), so
    each event is shuffled once and deduped inside the window aggregate, with one state entry
    per device, event metric and window; each window's result is then unnested into a row
    per output metric.
    """
    slot = {r.metric: METRIC_FIELDS[r.event_metric].index(r.field) + 1 for r in rules}
    events = dict.fromkeys(r.event_metric for r in rules)
    stats = ",\n         ".join(
        f"{STATS_FUNCTION}(event_id_high, event_id_low, reading_{i}) AS stats_{i}"
        for i in sorted(set(slot.values()))
    )
    branches = " ".join(
        f"WHEN {_literal(event)} THEN ARRAY["
        + ", ".join(
            f"ROW({_literal(r.metric)}, stats_{slot[r.metric]})"
            for r in rules
            if r.event_metric == event
        )
        + "]"
        for event in events
    )
    names = ", ".join(_literal(e) for e in events)
    return f"""
SELECT window_start, window_end, device_id, patient_id, m.metric AS metric,
       m.stats.reading_count AS reading_count,
       CAST(m.stats.reading_sum AS DOUBLE) / m.stats.reading_count AS avg_value,
       m.stats.min_value AS min_value, m.stats.max_value AS max_value,
       m.stats.reading_sum AS reading_sum
FROM (
  SELECT window_start, window_end, device_id, metric AS event_metric,
         MAX(patient_id) AS patient_id,
         {stats}
  FROM TABLE(TUMBLE(TABLE {readings}, DESCRIPTOR(event_ts), INTERVAL '{window_s}' SECOND(9)))
  WHERE metric IN ({names})
  GROUP BY window_start, window_end, device_id, metric
) AS w
CROSS JOIN UNNEST(CASE event_metric {branches} END) AS m(metric, stats)"""


def _decimal(value: float) -> str:
    return f"CAST('{Decimal(repr(float(value)))}' AS {EXACT_TYPE})"


def alerts_sql(settings: Settings, metrics: str, rules: tuple[WindowedMetric, ...]) -> str:
    """Alert rows for the windows of `metrics` whose average breaches its threshold.

    `rules` are the metrics `metrics` holds: each comparison is generated code the
    TaskManager compiles when the job starts, so a window aggregate's output is judged
    by its own metrics' rules only. The comparisons use the exact decimal sum (sum >
    threshold x count), so a window whose average is exactly at a threshold is judged the
    same whatever order Flink added its readings in; a floating-point average can land
    either side of 100.0.
    """
    alert_type = " ".join(f"WHEN {_literal(r.metric)} THEN {_literal(r.alert_type)}" for r in rules)
    threshold = " ".join(f"WHEN {_literal(r.metric)} THEN {_number(r.threshold)}" for r in rules)
    breach = " OR ".join(
        f"(metric = {_literal(r.metric)} AND reading_sum {'>' if r.strict else '>='} "
        f"{_decimal(r.threshold)} * reading_count)"
        for r in rules
    )
    f = settings.flink

    def at_least(ratio: float) -> str:
        cases = " ".join(
            f"WHEN {_literal(r.metric)} THEN "
            f"CAST('{Decimal(repr(float(r.threshold))) * Decimal(repr(float(ratio)))}' AS "
            f"{EXACT_TYPE})"
            for r in rules
        )
        return f"reading_sum >= (CASE metric {cases} END) * reading_count"

    severity = (
        f"CASE WHEN {at_least(f.severity_critical_ratio)} THEN 'critical' "
        f"WHEN {at_least(f.severity_high_ratio)} THEN 'high' ELSE 'warning' END"
    )
    return f"""
SELECT window_end AS alert_time, window_start, window_end, device_id, patient_id, alert_type,
       avg_value AS observed_value, threshold, severity
FROM (
  SELECT window_start, window_end, device_id, patient_id, avg_value,
         CASE metric {alert_type} END AS alert_type,
         CASE metric {threshold} END AS threshold,
         {severity} AS severity
  FROM {metrics}
  WHERE {breach}
)"""


def formatted_times_sql(query: str, time_columns: tuple[str, ...], columns: tuple[str, ...]) -> str:
    """Project `columns`, writing the TIMESTAMP columns as RFC 3339 UTC strings."""
    items = [
        f"DATE_FORMAT({c}, '{OUTPUT_TIME_FORMAT}') AS {c}" if c in time_columns else c
        for c in columns
    ]
    return f"SELECT {', '.join(items)} FROM ({query})"
