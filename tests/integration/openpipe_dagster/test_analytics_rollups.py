"""Each rollup materializes one partition from inserted rows with exact values; backfills work."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta

import dagster as dg
import pytest
from analytics_rows import (
    delete_where,
    ensure_days,
    insert_alert,
    insert_gps_point,
    insert_order_event,
    insert_reading,
    insert_window,
)
from psycopg.rows import dict_row

from openpipe.config import load_settings
from openpipe_dagster.assets.rollups import build_rollup_assets

pytestmark = pytest.mark.integration
health_metrics_hourly, restaurant_sales_hourly, gps_vehicle_stats_hourly, alert_rollup_daily = (
    build_rollup_assets(load_settings())
)
M = timedelta(minutes=1)


def hour_key(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%d-%H:%M")


def rows(db, table: str, column: str, value: str) -> list[dict]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT * FROM {table} WHERE {column} = %s ORDER BY 1, 2, 3", (value,)
        ).fetchall()


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    phi1, phi2 = math.radians(a[0]), math.radians(b[0])
    dphi, dlambda = phi2 - phi1, math.radians(b[1] - a[1])
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h)))


def test_health_metrics_hourly_one_partition(db, resources, tag, base_hour):
    hour, patient, device = base_hour, f"p-{tag}", f"w-{tag}"
    ensure_days(db, hour - timedelta(hours=1), hour + timedelta(hours=2))
    try:
        for i, bpm in enumerate([60, 70, 80, 90, 100]):
            insert_reading(
                db, device_id=device, patient_id=patient, at=hour + i * M, heart_rate=bpm
            )
        insert_reading(db, device_id=device, patient_id=patient, at=hour + 7 * M, bp=(120, 80))
        insert_reading(db, device_id=device, patient_id=patient, at=hour + 8 * M, bp=(130, 85))
        insert_reading(db, device_id=device, patient_id=patient, at=hour + 9 * M, glucose=100.5)
        # Outside the partition on both sides: must not count.
        insert_reading(db, device_id=device, patient_id=patient, at=hour - M, heart_rate=200)
        insert_reading(db, device_id=device, patient_id=patient, at=hour + 60 * M, heart_rate=200)

        # The stream's windows for the same readings, so the stream/batch check passes.
        windows = [("heart_rate", hour + i * M, bpm) for i, bpm in enumerate([60, 70, 80, 90, 100])]
        windows += [("bp_systolic", hour + 7 * M, 120), ("bp_diastolic", hour + 7 * M, 80)]
        windows += [("bp_systolic", hour + 8 * M, 130), ("bp_diastolic", hour + 8 * M, 85)]
        for metric, start, value in windows:
            insert_window(
                db,
                "health_metrics_1min",
                device_id=device,
                patient_id=patient,
                metric=metric,
                window_start=start,
                window_end=start + M,
                count=1,
                avg=value,
                low=value,
                high=value,
            )
        insert_window(
            db,
            "health_metrics_10min",
            device_id=device,
            patient_id=patient,
            metric="blood_sugar",
            window_start=hour,
            window_end=hour + 10 * M,
            count=1,
            avg=100.5,
            low=100.5,
            high=100.5,
        )

        result = dg.materialize(
            [health_metrics_hourly], partition_key=hour_key(hour), resources=resources
        )
        assert result.success
        [check] = result.get_asset_check_evaluations()
        assert check.passed, check.metadata
        assert check.metadata["windows_matching"].value == 10

        got = {r["metric"]: r for r in rows(db, "health_metrics_hourly", "patient_id", patient)}
        assert set(got) == {"heart_rate", "bp_systolic", "bp_diastolic", "blood_sugar"}
        expected = {
            "heart_rate": (5, 80.0, 60.0, 100.0, 98.0),
            "bp_systolic": (2, 125.0, 120.0, 130.0, 129.5),
            "bp_diastolic": (2, 82.5, 80.0, 85.0, 84.75),
            "blood_sugar": (1, 100.5, 100.5, 100.5, 100.5),
        }
        for metric, (count, avg, low, high, p95) in expected.items():
            row = got[metric]
            assert row["hour_start"] == hour
            assert row["reading_count"] == count
            assert row["avg_value"] == pytest.approx(avg)
            assert (row["min_value"], row["max_value"]) == (low, high)
            assert row["p95_value"] == pytest.approx(p95)

        # Idempotent: a second run replaces the rows instead of adding to them.
        assert dg.materialize(
            [health_metrics_hourly], partition_key=hour_key(hour), resources=resources
        ).success
        assert len(rows(db, "health_metrics_hourly", "patient_id", patient)) == 4
    finally:
        for table in (
            "wearable_readings",
            "health_metrics_1min",
            "health_metrics_10min",
            "health_metrics_hourly",
        ):
            delete_where(db, table, "patient_id", [patient])


def test_restaurant_sales_hourly_one_partition(db, resources, tag, base_hour):
    hour, restaurant = base_hour, f"r-{tag}"
    ensure_days(db, hour - timedelta(hours=1), hour + timedelta(hours=2))
    o1 = [("D001", 2, 100.0), ("D002", 1, 120.0)]  # 320
    o2 = [("D001", 1, 100.0), ("D003", 3, 30.0)]  # 190
    o3 = [("D009", 5, 20.0)]  # 100, placed the hour before
    events = [
        ("o3", hour - 10 * M, "placed", "pending", o3),
        ("o3", hour + 2 * M, "served", "paid", o3),
        ("o1", hour + 5 * M, "placed", "pending", o1),
        ("o2", hour + 10 * M, "placed", "pending", o2),
        ("o2", hour + 15 * M, "placed", "failed", o2),
        ("o1", hour + 20 * M, "served", "paid", o1),
        ("o2", hour + 25 * M, "served", "paid", o2),
        ("o1", hour + 40 * M, "closed", "paid", o1),  # still paid: not counted again
        ("o4", hour + 61 * M, "placed", "pending", o1),  # next hour
    ]
    try:
        for order, at, status, payment, items in events:
            insert_order_event(
                db,
                restaurant_id=restaurant,
                order_id=f"{order}-{tag}",
                at=at,
                order_status=status,
                payment_status=payment,
                items=items,
            )
        result = dg.materialize(
            [restaurant_sales_hourly], partition_key=hour_key(hour), resources=resources
        )
        assert result.success
        [row] = rows(db, "restaurant_sales_hourly", "restaurant_id", restaurant)
        assert row["hour_start"] == hour
        assert row["city"] == "Mumbai"
        assert row["order_count"] == 2
        assert row["paid_orders"] == 3
        assert row["paid_revenue_inr"] == pytest.approx(320 + 190 + 100)
        assert row["failed_payments"] == 1
        assert row["top_dishes"] == [
            {"dish_code": "D001", "quantity": 3},
            {"dish_code": "D003", "quantity": 3},
            {"dish_code": "D002", "quantity": 1},
        ]
    finally:
        delete_where(db, "restaurant_orders", "restaurant_id", [restaurant])
        delete_where(db, "restaurant_sales_hourly", "restaurant_id", [restaurant])


def test_gps_vehicle_stats_hourly_one_partition(db, resources, tag, base_hour):
    hour, vehicle = base_hour, f"v-{tag}"
    ensure_days(db, hour - timedelta(hours=1), hour + timedelta(hours=2))
    track = [
        (hour - 2 * M, (18.99, 72.8), 20.0),  # previous hour: its segment is not counted...
        (hour, (19.00, 72.8), 30.0),  # ...but the segment ending here is
        (hour + 1 * M, (19.01, 72.8), 40.0),
        (hour + 2 * M, (19.01, 72.8), 0.0),  # stop 1 starts
        (hour + 3 * M, (19.01, 72.8), 0.0),  # still stopped
        (hour + 4 * M, (19.02, 72.81), 50.0),
        (hour + 5 * M, (19.02, 72.81), 1.5),  # stop 2 (<= stop_speed_kmh)
        (hour + 61 * M, (19.5, 73.0), 80.0),  # next hour
    ]
    try:
        for at, (lat, lon), speed in track:
            insert_gps_point(db, vehicle_id=vehicle, at=at, lat=lat, lon=lon, speed_kmh=speed)
        result = dg.materialize(
            [gps_vehicle_stats_hourly], partition_key=hour_key(hour), resources=resources
        )
        assert result.success
        [row] = rows(db, "gps_vehicle_stats_hourly", "vehicle_id", vehicle)
        in_hour = track[1:7]
        distance = sum(haversine_km(a[1], b[1]) for a, b in itertools.pairwise(track[:7]))
        assert row["hour_start"] == hour
        assert row["point_count"] == 6
        assert row["distance_km"] == pytest.approx(distance, rel=1e-9)
        assert row["avg_speed_kmh"] == pytest.approx(sum(p[2] for p in in_hour) / 6)
        assert row["max_speed_kmh"] == 50.0
        assert row["stop_count"] == 2
        assert (row["route_id"], row["city"]) == ("test_route", "Mumbai")
    finally:
        delete_where(db, "gps_points", "vehicle_id", [vehicle])
        delete_where(db, "gps_vehicle_stats_hourly", "vehicle_id", [vehicle])


def test_alert_rollup_daily_one_partition(db, resources, tag, base_hour):
    day = base_hour.replace(hour=0)
    patient, device = f"p-{tag}", f"w-{tag}"
    ensure_days(db, day, day + timedelta(days=2))
    alerts = [
        ("elevated_heart_rate", day + timedelta(hours=1), 110.0),
        ("elevated_heart_rate", day + timedelta(hours=5), 120.0),
        ("elevated_heart_rate", day + timedelta(hours=3), 105.0),
        ("elevated_blood_sugar", day + timedelta(hours=10), 200.0),
        ("elevated_heart_rate", day + timedelta(days=1, hours=1), 300.0),  # next day
    ]
    try:
        for alert_type, end, value in alerts:
            insert_alert(
                db,
                device_id=device,
                patient_id=patient,
                alert_type=alert_type,
                window_start=end - M,
                window_end=end,
                observed_value=value,
            )
        result = dg.materialize(
            [alert_rollup_daily], partition_key=day.strftime("%Y-%m-%d"), resources=resources
        )
        assert result.success
        got = {r["alert_type"]: r for r in rows(db, "alert_rollup_daily", "patient_id", patient)}
        assert set(got) == {"elevated_heart_rate", "elevated_blood_sugar"}
        hr = got["elevated_heart_rate"]
        assert (hr["day_start"], hr["alert_count"]) == (day, 3)
        assert hr["first_alert_at"] == day + timedelta(hours=1)
        assert hr["last_alert_at"] == day + timedelta(hours=5)
        assert hr["max_observed_value"] == 120.0
        sugar = got["elevated_blood_sugar"]
        assert (sugar["alert_count"], sugar["max_observed_value"]) == (1, 200.0)
    finally:
        delete_where(db, "health_alerts", "patient_id", [patient])
        delete_where(db, "alert_rollup_daily", "patient_id", [patient])


def test_backfill_of_three_partitions_runs_once(db, resources, tag, base_hour):
    first = base_hour - timedelta(hours=3)
    vehicle = f"v-{tag}"
    ensure_days(db, first - timedelta(hours=1), first + timedelta(hours=4))
    try:
        for h in range(3):
            for i in range(h + 1):  # 1, 2 and 3 points in the three hours
                insert_gps_point(
                    db,
                    vehicle_id=vehicle,
                    at=first + timedelta(hours=h, minutes=30 + i),
                    lat=19.0 + i / 100,
                    lon=72.8,
                    speed_kmh=10.0 * (h + 1),
                )
        keys = [hour_key(first + timedelta(hours=h)) for h in range(3)]
        instance = dg.DagsterInstance.ephemeral()
        result = dg.materialize(
            [gps_vehicle_stats_hourly],
            resources=resources,
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
        assert result.success
        got = rows(db, "gps_vehicle_stats_hourly", "vehicle_id", vehicle)
        assert [(r["hour_start"], r["point_count"], r["max_speed_kmh"]) for r in got] == [
            (first + timedelta(hours=h), h + 1, 10.0 * (h + 1)) for h in range(3)
        ]
        # One run recorded a materialization for each of the three partitions.
        materialized = instance.get_materialized_partitions(gps_vehicle_stats_hourly.key)
        assert materialized == set(keys)
        assert len(instance.get_runs()) == 1
    finally:
        delete_where(db, "gps_points", "vehicle_id", [vehicle])
        delete_where(db, "gps_vehicle_stats_hourly", "vehicle_id", [vehicle])
