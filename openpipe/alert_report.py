"""The HTML alert report: per patient, the alerts, the readings around them and a small chart.

Queries live in sql/reports/; rendering (`svg_chart`, `render_report`) is pure. The
alert_report asset (openpipe_dagster/assets/reports.py) writes the page.
"""

import html
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import jinja2
import psycopg
from markupsafe import Markup
from psycopg.rows import dict_row

from flink_jobs.health_sql import windowed_metrics
from openpipe.config import REPO_ROOT, Settings

_SQL = {
    name: (REPO_ROOT / "sql" / "reports" / f"{name}.sql").read_text()
    for name in ("alert_batch", "newest_alert", "report_readings", "alert_history")
}
_TEMPLATE = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True
).get_template("alert_report.html.j2")
EPOCH = "1970-01-01T00:00:00+00:00"
HISTORY_DAYS = 7

#: A cursor key: (ingested_at, device_id, alert_type, window_start), ISO text for datetimes.
CursorKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class AlertRule:
    alert_type: str
    event_metric: str  # the wearable_readings.metric the alert is about
    field: str  # the column holding its value
    label: str


def alert_rules(settings: Settings) -> dict[str, AlertRule]:
    """alert_type -> the reading metric and field behind it (from the Flink job's rules)."""
    return {
        m.alert_type: AlertRule(m.alert_type, m.event_metric, m.field, m.field.replace("_", " "))
        for m in windowed_metrics(settings)
    }


def encode_key(key: CursorKey) -> str:
    """A cursor key as sensor-cursor text."""
    return json.dumps(list(key))


def decode_key(text: str | None) -> CursorKey | None:
    """The cursor key stored by `encode_key` (None for an empty cursor)."""
    return tuple(json.loads(text)) if text else None


def key_of(row: dict) -> CursorKey:
    """The cursor key of an alert row."""
    return (
        row["ingested_at"].isoformat(),
        row["device_id"],
        row["alert_type"],
        row["window_start"].isoformat(),
    )


def fetch_alerts(
    conn: psycopg.Connection,
    *,
    after: CursorKey,
    through: CursorKey | None,
    patients: list[str],
    limit: int,
) -> list[dict]:
    """Alerts after `after` up to `through` (inclusive), in cursor order."""
    through = through or (None, None, None, None)
    params = {
        "after_at": after[0],
        "after_device": after[1],
        "after_type": after[2],
        "after_window": after[3],
        "through_at": through[0],
        "through_device": through[1],
        "through_type": through[2],
        "through_window": through[3],
        "patients": patients,
        "limit": limit,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_SQL["alert_batch"], params).fetchall()


def newest_alert_key(conn: psycopg.Connection, patients: list[str]) -> CursorKey | None:
    """The cursor key of the newest alert (of `patients`, or of all), or None without alerts."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_SQL["newest_alert"], {"patients": patients}).fetchone()
    return key_of(row) if row else None


@dataclass
class Series:
    """The readings of one device and alert type around that patient's alerts."""

    patient_id: str
    device_id: str
    rule: AlertRule
    alerts: list[dict] = field(default_factory=list)
    points: list[tuple[datetime, float]] = field(default_factory=list)

    def span(self, context: timedelta) -> tuple[datetime, datetime]:
        return (
            min(a["window_start"] for a in self.alerts) - context,
            max(a["window_end"] for a in self.alerts) + context,
        )


def fetch_series(conn: psycopg.Connection, alerts: list[dict], settings: Settings) -> list[Series]:
    """One series per (patient, device, alert type), with the readings around its alerts."""
    rules = alert_rules(settings)
    context = timedelta(minutes=settings.analytics.report_context_minutes)
    grouped: dict[tuple, Series] = {}
    for alert in alerts:
        rule = rules.get(alert["alert_type"])
        if rule is None:
            continue  # an alert type the rules do not know: listed, not charted
        key = (alert["patient_id"], alert["device_id"], rule.alert_type)
        grouped.setdefault(key, Series(alert["patient_id"], alert["device_id"], rule))
        grouped[key].alerts.append(alert)
    series = list(grouped.values())
    if not series:
        return []
    spans = [s.span(context) for s in series]
    params = {
        "devices": [s.device_id for s in series],
        "metrics": [s.rule.event_metric for s in series],
        "los": [lo for lo, _ in spans],
        "his": [hi for _, hi in spans],
    }
    with conn.cursor(row_factory=dict_row) as cur:
        for row in cur.execute(_SQL["report_readings"], params):
            target = series[row["position"] - 1]
            value = row[target.rule.field]
            if value is not None:
                target.points.append((row["event_time"], value))
    return series


def fetch_history(conn: psycopg.Connection, patients: list[str], now: datetime) -> list[dict]:
    """Daily alert counts of the patients from alert_rollup_daily."""
    since = (now - timedelta(days=HISTORY_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_SQL["alert_history"], {"patients": patients, "since": since}).fetchall()


def svg_chart(
    points: list[tuple[datetime, float]],
    threshold: float,
    alerts: list[tuple[datetime, datetime, float]],
    *,
    width: int = 640,
    height: int = 160,
) -> str:
    """An inline SVG line chart of readings, a dashed threshold line and the alert windows."""
    pad = 28
    times = [t for t, _ in points] + [t for a in alerts for t in a[:2]]
    values = [v for _, v in points] + [a[2] for a in alerts] + [threshold]
    if not times:
        return f'<svg width="{width}" height="{height}" role="img"></svg>'
    t0, t1 = min(times), max(times)
    low, high = min(values), max(values)
    span_t = (t1 - t0).total_seconds() or 1.0
    span_v = (high - low) or 1.0

    def x(t: datetime) -> float:
        return pad + (t - t0).total_seconds() / span_t * (width - 2 * pad)

    def y(v: float) -> float:
        return height - pad - (v - low) / span_v * (height - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for start, end, _ in alerts:
        parts.append(
            f'<rect x="{x(start):.1f}" y="{pad}" width="{max(1.0, x(end) - x(start)):.1f}" '
            f'height="{height - 2 * pad}" fill="#fde2e1"/>'
        )
    parts.append(
        f'<line x1="{pad}" x2="{width - pad}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
        'stroke="#c46a00" stroke-dasharray="4 3"/>'
    )
    if points:
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2f5bd3" stroke-width="1.5"/>')
    for start, end, value in alerts:
        mid = start + (end - start) / 2
        parts.append(f'<circle cx="{x(mid):.1f}" cy="{y(value):.1f}" r="3.5" fill="#b3261e"/>')
    parts.append(
        f'<text x="{pad}" y="14" font-size="11" fill="#667085">'
        f"{html.escape(f'{low:.0f} - {high:.0f}')} &#183; {t0:%H:%M} - {t1:%H:%M} UTC</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def render_report(
    alerts: list[dict],
    series: list[Series],
    history: list[dict],
    *,
    generated_at: datetime,
    window: str,
    context_minutes: int,
) -> str:
    """The report's HTML."""
    by_patient: dict[str, dict] = {}
    for alert in alerts:
        patient = by_patient.setdefault(
            alert["patient_id"],
            {"patient_id": alert["patient_id"], "alerts": [], "series": [], "history": []},
        )
        patient["alerts"].append(
            {
                **alert,
                "alert_time": f"{alert['alert_time']:%Y-%m-%d %H:%M:%S}",
                "window": f"{alert['window_start']:%H:%M:%S} - {alert['window_end']:%H:%M:%S}",
            }
        )
    for s in series:
        by_patient[s.patient_id]["series"].append(
            {
                "title": f"{s.rule.label} of device {s.device_id} ({s.rule.alert_type})",
                "svg": Markup(
                    svg_chart(
                        s.points,
                        s.alerts[0]["threshold"],
                        [
                            (a["window_start"], a["window_end"], a["observed_value"])
                            for a in s.alerts
                        ],
                    )
                ),
                "readings": len(s.points),
                "threshold": s.alerts[0]["threshold"],
            }
        )
    grouped_history: dict[str, list] = defaultdict(list)
    for row in history:
        grouped_history[row["patient_id"]].append({**row, "day": f"{row['day_start']:%Y-%m-%d}"})
    for patient_id, rows in grouped_history.items():
        if patient_id in by_patient:
            by_patient[patient_id]["history"] = rows
    return _TEMPLATE.render(
        generated_at=f"{generated_at:%Y-%m-%d %H:%M:%S} UTC",
        alert_count=len(alerts),
        patients=[by_patient[p] for p in sorted(by_patient)],
        window=window,
        context_minutes=context_minutes,
    )


def reports_dir(settings: Settings) -> Path:
    """Where reports are written (analytics.reports_dir, relative to the repository root)."""
    path = Path(settings.analytics.reports_dir)
    return path if path.is_absolute() else REPO_ROOT / path
