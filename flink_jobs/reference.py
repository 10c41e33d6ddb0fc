"""A plain-Python model of the health-window job and crafted events, to check exact results.

`expected_outputs` judges each message with `openpipe.events.EventValidator`, dedupes by event_id per
window and applies the same window and alert rules, but knows nothing about watermarks:
feed it streams without late events (or drop those yourself) and compare sets of rows.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

from flink_jobs.health_sql import windowed_metrics
from openpipe.config import Settings
from openpipe.events import EventValidator, format_event_time, parse_event_time


def accepted(validator: EventValidator, value: bytes | None, kafka_ms: int) -> dict | None:
    """The event when the job lets this message into windows (what the sinks store), else None."""
    verdict = validator.validate("wearables", value, kafka_ms)
    if not verdict.ok:
        return None
    event = verdict.event
    if "\x00" in event["device_id"] or "\x00" in event["patient_id"]:
        return None  # the sinks dead-letter these (PostgreSQL text cannot hold NUL)
    return event


def wearable_event(
    device: str, metric: str, event_ms: int, *, event_id: str | None = None, **fields: object
) -> dict:
    """A wearable event (valid unless the caller breaks it); measurements as keywords."""
    return {
        "schema_version": 1,
        "event_id": event_id or str(uuid.uuid4()),
        "event_time": format_event_time(event_ms),
        "device_type": "wearable",
        "device_id": device,
        "patient_id": f"patient-{device}",
        "metric": metric,
        **fields,
    }


_SIX_PLACES = Decimal("0.000001")


def exact(value: float) -> Decimal:
    """A reading as the job sums it: the double's decimal form, rounded to 6 places."""
    return Decimal(repr(float(value))).quantize(_SIX_PLACES, rounding=ROUND_HALF_UP)


def severity(settings: Settings, total: Decimal, count: int, threshold: float) -> str:
    """The alert severity of a window, from its exact sum against threshold x ratio x count."""
    f = settings.flink
    limit = Decimal(repr(float(threshold)))
    if total >= limit * Decimal(repr(float(f.severity_critical_ratio))) * count:
        return "critical"
    if total >= limit * Decimal(repr(float(f.severity_high_ratio))) * count:
        return "high"
    return "warning"


def expected_outputs(
    settings: Settings, messages: Iterable[tuple[bytes | None, int]]
) -> dict[str, set[tuple]]:
    """Rows of health_metrics_1min / _10min / health_alerts for (value, kafka_ts_ms) pairs.

    Metric rows are (window_start, window_end, device_id, patient_id, metric, count, avg,
    min, max) and alert rows (alert_time, window_start, window_end, device_id, patient_id,
    alert_type, observed_value, threshold, severity), times as RFC 3339 strings.
    """
    validator = EventValidator(settings)
    rules = windowed_metrics(settings)
    # (metric, window_start_ms, device_id) -> event_id -> (patient_id, value)
    windows: dict[tuple[str, int, str], dict[str, tuple[str, float]]] = defaultdict(dict)
    for value, kafka_ms in messages:
        event = accepted(validator, value, kafka_ms)
        if event is None:
            continue
        event_ms = int(parse_event_time(event["event_time"]).timestamp() * 1000)
        for rule in rules:
            if rule.event_metric != event["metric"]:
                continue
            size_ms = rule.window_s * 1000
            start = event_ms - event_ms % size_ms
            key = (rule.metric, start, event["device_id"])
            # One event per UUID whatever its case, as the sinks dedupe (lowercased id).
            event_id = event["event_id"].lower()
            windows[key].setdefault(event_id, (event["patient_id"], event[rule.field]))
    out: dict[str, set[tuple]] = {"metrics_1min": set(), "metrics_10min": set(), "alerts": set()}
    by_metric = {rule.metric: rule for rule in rules}
    for (metric, start, device), readings in windows.items():
        rule = by_metric[metric]
        values = [float(v) for _, v in readings.values()]
        patient = max(p for p, _ in readings.values())
        total = sum((exact(v) for v in values), Decimal(0))
        avg = float(total) / len(values)
        window = (format_event_time(start), format_event_time(start + rule.window_s * 1000))
        row = (*window, device, patient, metric, len(values), avg, min(values), max(values))
        out["metrics_10min" if metric == "blood_sugar" else "metrics_1min"].add(row)
        limit = Decimal(repr(float(rule.threshold))) * len(values)
        breached = total > limit if rule.strict else total >= limit
        if breached:
            out["alerts"].add(
                (
                    window[1],
                    *window,
                    device,
                    patient,
                    rule.alert_type,
                    avg,
                    float(rule.threshold),
                    severity(settings, total, len(values), rule.threshold),
                )
            )
    return out
