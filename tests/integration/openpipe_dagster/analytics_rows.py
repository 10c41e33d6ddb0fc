"""Row builders for the analytics integration tests: insert straight into the tables."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime

import orjson
import psycopg

from openpipe.rollups import ensure_window_partitions

TEST_TOPIC = "analytics-test"
TIME_TABLES = (
    "wearable_readings",
    "restaurant_orders",
    "gps_points",
    "health_metrics_1min",
    "health_metrics_10min",
    "health_alerts",
)


def ensure_days(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    """Make sure the time-partitioned source tables have (native) partitions for [start, end)."""
    for table in TIME_TABLES:
        ensure_window_partitions(conn, table, start, end)


# Readings arrive in the order they are inserted (the stream-vs-batch check reads it).
_READING_OFFSETS = itertools.count()


def insert_reading(
    conn: psycopg.Connection,
    *,
    device_id: str,
    patient_id: str,
    at: datetime,
    heart_rate: float | None = None,
    bp: tuple[float, float] | None = None,
    glucose: float | None = None,
    kafka_timestamp: datetime | None = None,
    topic: str = TEST_TOPIC,
) -> None:
    """One valid wearable reading (exactly one of heart_rate, bp, glucose)."""
    metric = "heart_rate" if heart_rate is not None else "blood_pressure" if bp else "blood_sugar"
    systolic, diastolic = bp or (None, None)
    conn.execute(
        "INSERT INTO wearable_readings (event_id, event_time, device_id, patient_id, metric, "
        "heart_rate_bpm, systolic_mmhg, diastolic_mmhg, glucose_mg_dl, kafka_topic, "
        "kafka_partition, kafka_offset, kafka_timestamp) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s)",
        (
            uuid.uuid4(),
            at,
            device_id,
            patient_id,
            metric,
            heart_rate,
            systolic,
            diastolic,
            glucose,
            topic,
            next(_READING_OFFSETS),
            kafka_timestamp or at,
        ),
    )


def insert_order_event(
    conn: psycopg.Connection,
    *,
    restaurant_id: str,
    order_id: str,
    at: datetime,
    order_status: str,
    payment_status: str,
    items: list[tuple[str, int, float]],
    city: str = "Mumbai",
) -> None:
    """One restaurant POS event (an order state change)."""
    total = sum(q * p for _, q, p in items)
    conn.execute(
        "INSERT INTO restaurant_orders (event_id, event_time, device_id, restaurant_id, city, "
        "order_id, table_number, order_status, payment_status, payment_method, items, "
        "total_inr, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp) "
        "VALUES (%s, %s, %s, %s, %s, %s, 1, %s, %s, 'upi', %s, %s, %s, 0, 0, %s)",
        (
            uuid.uuid4(),
            at,
            f"pos-{restaurant_id}",
            restaurant_id,
            city,
            order_id,
            order_status,
            payment_status,
            orjson.dumps(
                [{"dish_code": d, "quantity": q, "unit_price_inr": p} for d, q, p in items]
            ).decode(),
            total,
            TEST_TOPIC,
            at,
        ),
    )


def insert_gps_point(
    conn: psycopg.Connection,
    *,
    vehicle_id: str,
    at: datetime,
    lat: float,
    lon: float,
    speed_kmh: float,
) -> None:
    """One GPS fix."""
    conn.execute(
        "INSERT INTO gps_points (event_id, event_time, device_id, vehicle_id, route_id, city, "
        "lat, lon, speed_kmh, heading_deg, accuracy_m, kafka_topic, kafka_partition, "
        "kafka_offset, kafka_timestamp) "
        "VALUES (%s, %s, %s, %s, 'test_route', 'Mumbai', %s, %s, %s, 0, 5, %s, 0, 0, %s)",
        (uuid.uuid4(), at, f"gps-{vehicle_id}", vehicle_id, lat, lon, speed_kmh, TEST_TOPIC, at),
    )


def insert_alert(
    conn: psycopg.Connection,
    *,
    device_id: str,
    patient_id: str,
    alert_type: str,
    window_start: datetime,
    window_end: datetime,
    observed_value: float,
    threshold: float = 100.0,
    severity: str = "warning",
) -> None:
    """One health alert (alert_time = window_end)."""
    conn.execute(
        "INSERT INTO health_alerts (alert_time, window_start, window_end, device_id, patient_id, "
        "alert_type, observed_value, threshold, severity, kafka_topic, kafka_partition, "
        "kafka_offset) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0)",
        (
            window_end,
            window_start,
            window_end,
            device_id,
            patient_id,
            alert_type,
            observed_value,
            threshold,
            severity,
            TEST_TOPIC,
        ),
    )


def insert_window(
    conn: psycopg.Connection,
    table: str,
    *,
    device_id: str,
    patient_id: str,
    metric: str,
    window_start: datetime,
    window_end: datetime,
    count: int,
    avg: float,
    low: float,
    high: float,
) -> None:
    """One stream window row in health_metrics_1min / health_metrics_10min."""
    conn.execute(
        f"INSERT INTO {table} (window_start, window_end, device_id, patient_id, metric, "
        "reading_count, avg_value, min_value, max_value, kafka_topic, kafka_partition, "
        "kafka_offset) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0)",
        (
            window_start,
            window_end,
            device_id,
            patient_id,
            metric,
            count,
            avg,
            low,
            high,
            TEST_TOPIC,
        ),
    )


def delete_where(conn: psycopg.Connection, table: str, column: str, values: list[str]) -> None:
    """Delete this test's rows (by id column) from a table."""
    conn.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", (values,))
