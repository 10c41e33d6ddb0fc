"""Flink SQL for the health-window job, built from settings: validation, windows, alerts.

Everything here is a pure string builder. The validation predicate mirrors
`openpipe.events.EventValidator` for the wearables family so the job keeps out exactly
the readings the sinks dead-letter. JSON is read with JSON_QUERY(... WITH ARRAY WRAPPER),
whose text shows the JSON type of a field (`[95]` number, `["95"]` string), because
JSON_VALUE ... RETURNING DOUBLE throws on integers in Flink 2.2 and would fail the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from openpipe.config import Range, Settings
from openpipe.events import DEVICE_TYPES, METRIC_FIELDS, SCHEMA_VERSION

#: RFC 3339 as `openpipe.events` accepts it: seconds, optional 1-9 fraction digits, Z or offset.
_RFC3339 = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?"
    "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_WALL_CLOCK = "yyyy-MM-dd''T''HH:mm:ss"
#: How window bounds and alert times are written to the health-* topics (docs/architecture.md §5).
OUTPUT_TIME_FORMAT = "yyyy-MM-dd''T''HH:mm:ss.SSS''Z''"
#: Readings are summed as decimals of this type (6 decimal places; readings are < 10^6).
EXACT_TYPE = "DECIMAL(24, 6)"
#: Replacement character: Flink decodes invalid UTF-8 to it, orjson rejects such values.
_NOT_UTF8 = "CHR(65533)"


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


def _query(field: str, payload: str = "payload") -> str:
    return f"JSON_QUERY({payload}, '$.{field}' WITH ARRAY WRAPPER)"


def _text(field: str, payload: str = "payload") -> str:
    return f"JSON_VALUE({payload}, '$.{field}')"


def _is_string(field: str) -> str:
    return f"{_query(field)} LIKE '[\"%'"


def _number_value(field: str) -> str:
    """The field as DOUBLE when it is a JSON number (not a string, boolean or object), else NULL."""
    q = _query(field)
    return (
        f"CASE WHEN REGEXP({q}, '^\\[-?[0-9][-+.eE0-9]*\\]$') "
        f"THEN TRY_CAST(SUBSTRING({q} FROM 2 FOR CHAR_LENGTH({q}) - 2) AS DOUBLE) END"
    )


def _exact(expr: str) -> str:
    """A reading as an exact decimal, so window sums do not depend on the order of addition."""
    return f"CAST({expr} AS {EXACT_TYPE})"


def _within(expr: str, bounds: Range) -> str:
    return f"{expr} BETWEEN {_number(bounds.low)} AND {_number(bounds.high)}"


def event_time_sql(text: str) -> str:
    """TIMESTAMP(3) in UTC from an RFC 3339 string expression; NULL when it is not one.

    Python's fromisoformat rejects Feb 30 or 24:00, which Flink's TO_TIMESTAMP would roll
    over, so the wall clock must print back unchanged. Digits past milliseconds are cut.
    """
    clock = f"SUBSTRING({text} FROM 1 FOR 19)"
    wall = f"TO_TIMESTAMP({clock}, '{_WALL_CLOCK}')"
    millis = f"CAST(RPAD(COALESCE(REGEXP_EXTRACT({text}, '^.{{19}}\\.([0-9]{{1,3}})', 1), ''), 3, '0') AS INT)"
    offset_min = (
        f"CASE WHEN {text} LIKE '%Z' THEN 0 ELSE "
        f"(CASE WHEN SUBSTRING({text} FROM CHAR_LENGTH({text}) - 5 FOR 1) = '-' THEN -1 ELSE 1 END) * "
        f"(CAST(SUBSTRING({text} FROM CHAR_LENGTH({text}) - 4 FOR 2) AS INT) * 60 + "
        f"CAST(SUBSTRING({text} FROM CHAR_LENGTH({text}) - 1 FOR 2) AS INT)) END"
    )
    return (
        f"CASE WHEN REGEXP({text}, '{_RFC3339}') "
        f"AND DATE_FORMAT({wall}, '{_WALL_CLOCK}') = {clock} "
        f"THEN TIMESTAMPADD(MILLISECOND, {millis} - ({offset_min}) * 60000, {wall}) END"
    )


def event_time_column(payload: str = "payload") -> str:
    """The computed `event_ts` column of a source: the event's own time, NULL if unparseable."""
    return event_time_sql(_text("event_time", payload))


def watermark_sql(settings: Settings, rowtime: str = "event_ts", kafka_ts: str = "kafka_ts") -> str:
    """Watermark expression: never ahead of the Kafka timestamp, so a bad clock cannot rush it.

    An event stamped in the future (beyond max_future_seconds it is invalid anyway) moves
    the watermark only as far as its own send time minus the delay, like a correct event sent
    at that moment would. Rows without a parseable time do not move it at all.
    """
    delay_ms = settings.flink.watermark_delay_seconds * 1000
    return (
        f"TIMESTAMPADD(MILLISECOND, -{delay_ms}, "
        f"LEAST(COALESCE({rowtime}, TIMESTAMP '1970-01-01 00:00:00'), "
        f"CAST({kafka_ts} AS TIMESTAMP(3))))"
    )


def source_columns_sql(settings: Settings) -> str:
    """Computed columns and watermark shared by the Kafka source and the test sources."""
    return (
        f"event_ts AS {event_time_column()},\n  WATERMARK FOR event_ts AS {watermark_sql(settings)}"
    )


def _not_too_deep(max_depth: int) -> str:
    """False for a chain of more than `max_depth` opening brackets with no other bracket between.

    SQL has no JSON depth function; such a chain is how over-deep values are built. The
    regex runs only when the value holds that many brackets at all, so flat events pay
    for two REPLACEs.
    """
    brackets = "CHAR_LENGTH(payload) - CHAR_LENGTH(REPLACE(REPLACE(payload, '[', ''), '{', ''))"
    chain = f"([\\[{{][^\\[{{\\]}}]*){{{max_depth + 1}}}"
    return f"({brackets} <= {max_depth} OR NOT REGEXP(payload, '{chain}'))"


def valid_wearable_sql(settings: Settings) -> str:
    """WHERE predicate: the wearable reading is valid by the rules of `openpipe.events`.

    Approximated: JSON nesting depth (see `_not_too_deep`) and the size limit, counted in
    characters rather than bytes (the broker's own message size limit bounds it as well).
    """
    v = settings.validation
    ranges = {
        "heart_rate_bpm": v.heart_rate_bpm,
        "systolic_mmhg": v.systolic_mmhg,
        "diastolic_mmhg": v.diastolic_mmhg,
        "glucose_mg_dl": v.glucose_mg_dl,
    }
    metrics = ", ".join(_literal(m) for m in METRIC_FIELDS)
    metric_rules = []
    for metric, fields in METRIC_FIELDS.items():
        checks = [_within(_number_value(name), ranges[name]) for name in fields]
        if metric == "blood_pressure":
            checks.append(f"{_number_value('systolic_mmhg')} > {_number_value('diastolic_mmhg')}")
        metric_rules.append(f"({_text('metric')} = {_literal(metric)} AND {' AND '.join(checks)})")
    kafka_utc = "CAST(kafka_ts AS TIMESTAMP(3))"
    future_ms = v.max_future_seconds * 1000
    age_ms = v.max_age_hours * 3_600_000
    conditions = [
        "payload IS NOT NULL",
        f"CHAR_LENGTH(payload) <= {v.max_message_bytes}",
        f"POSITION({_NOT_UTF8} IN payload) = 0",
        "payload IS JSON OBJECT",
        f"{_query('schema_version')} = '[{SCHEMA_VERSION}]'",
        f"REGEXP({_text('event_id')}, '{_UUID}')",
        f"{_text('device_type')} = {_literal(DEVICE_TYPES['wearables'])}",
        f"{_is_string('device_id')} AND TRIM({_text('device_id')}) <> ''",
        f"{_is_string('patient_id')} AND TRIM({_text('patient_id')}) <> ''",
        # The sinks dead-letter ids with NUL (PostgreSQL text cannot hold it): keep them out too.
        f"POSITION(CHR(0) IN {_text('device_id')}) = 0",
        f"POSITION(CHR(0) IN {_text('patient_id')}) = 0",
        _not_too_deep(v.max_json_depth),
        f"{_text('metric')} IN ({metrics})",
        "(" + " OR ".join(metric_rules) + ")",
        "event_ts IS NOT NULL",
        f"(kafka_ts IS NULL OR (event_ts <= TIMESTAMPADD(MILLISECOND, {future_ms}, {kafka_utc}) "
        f"AND event_ts >= TIMESTAMPADD(MILLISECOND, -{age_ms}, {kafka_utc})))",
    ]
    return "\n  AND ".join(conditions)


def readings_sql(settings: Settings, source: str) -> str:
    """One row per valid measurement (a blood-pressure event gives two) with its event time.

    The fan-out is an UNNEST of the event's own measurements rather than a UNION of one
    query per metric, so each event is parsed and validated once, not once per metric.
    """
    branches = []
    for event_metric, fields in METRIC_FIELDS.items():
        rows = ", ".join(
            f"ROW({_literal(rule.metric)}, {rule.field})"
            for rule in windowed_metrics(settings)
            if rule.field in fields
        )
        branches.append(f"WHEN {_literal(event_metric)} THEN ARRAY[{rows}]")
    fields = ", ".join(
        f"{_number_value(name)} AS {name}" for names in METRIC_FIELDS.values() for name in names
    )
    return f"""
SELECT v.event_id, v.device_id, v.patient_id, m.metric, m.reading, v.event_ts
FROM (
  SELECT {_text("event_id")} AS event_id, {_text("device_id")} AS device_id,
         {_text("patient_id")} AS patient_id, {_text("metric")} AS event_metric, {fields},
         event_ts
  FROM {source}
  WHERE {valid_wearable_sql(settings)}
) AS v
CROSS JOIN UNNEST(CASE v.event_metric {" ".join(branches)} END) AS m(metric, reading)"""


def window_metrics_sql(readings: str, metrics: tuple[str, ...], window_s: int) -> str:
    """Tumbling event-time windows per device and metric; each event_id counted once."""
    names = ", ".join(_literal(m) for m in metrics)
    return f"""
SELECT window_start, window_end, device_id, MAX(patient_id) AS patient_id, metric,
       COUNT(*) AS reading_count,
       CAST(SUM({_exact("reading")}) AS DOUBLE) / COUNT(*) AS avg_value,
       MIN(reading) AS min_value, MAX(reading) AS max_value,
       SUM({_exact("reading")}) AS reading_sum
FROM (
  SELECT window_start, window_end, device_id, metric, event_id,
         MAX(patient_id) AS patient_id, MIN(reading) AS reading
  FROM TABLE(TUMBLE(TABLE {readings}, DESCRIPTOR(event_ts), INTERVAL '{window_s}' SECOND(9)))
  WHERE metric IN ({names})
  GROUP BY window_start, window_end, device_id, metric, event_id
)
GROUP BY window_start, window_end, device_id, metric"""


def _decimal(value: float) -> str:
    return f"CAST('{Decimal(repr(float(value)))}' AS {EXACT_TYPE})"


def alerts_sql(settings: Settings, metrics: str) -> str:
    """Alert rows for the windows whose average breaches its configured threshold.

    The comparisons use the exact decimal sum (sum > threshold x count), so a window whose
    average is exactly at a threshold is judged the same whatever order Flink added its
    readings in; a floating-point average can land either side of 100.0.
    """
    rules = windowed_metrics(settings)
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
