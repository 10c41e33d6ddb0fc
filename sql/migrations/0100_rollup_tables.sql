-- Time-partitioned rollups built by the Dagster analytics assets (openpipe_dagster.analytics).
-- Each rollup's unique key includes its bucket column, which is also the partitioning column
-- (`time_partitioned` marker, see 0001), so the same DDL works as a TimescaleDB hypertable.
-- An asset run replaces the rows of its partitions (DELETE + INSERT in one transaction);
-- computed_at says when.

CREATE TABLE IF NOT EXISTS health_metrics_hourly (
    hour_start      timestamptz      NOT NULL,
    patient_id      text             NOT NULL,
    metric          text             NOT NULL,
    reading_count   integer          NOT NULL,
    avg_value       double precision NOT NULL,
    min_value       double precision NOT NULL,
    max_value       double precision NOT NULL,
    p95_value       double precision NOT NULL,
    computed_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, metric, hour_start)
) /* time_partitioned(hour_start) */;

CREATE TABLE IF NOT EXISTS alert_rollup_daily (
    day_start           timestamptz      NOT NULL,
    patient_id          text             NOT NULL,
    alert_type          text             NOT NULL,
    alert_count         integer          NOT NULL,
    first_alert_at      timestamptz      NOT NULL,
    last_alert_at       timestamptz      NOT NULL,
    max_observed_value  double precision NOT NULL,
    computed_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, alert_type, day_start)
) /* time_partitioned(day_start) */;

CREATE TABLE IF NOT EXISTS restaurant_sales_hourly (
    hour_start        timestamptz      NOT NULL,
    restaurant_id     text             NOT NULL,
    city              text             NOT NULL,
    order_count       integer          NOT NULL,
    paid_orders       integer          NOT NULL,
    paid_revenue_inr  double precision NOT NULL,
    failed_payments   integer          NOT NULL,
    top_dishes        jsonb            NOT NULL,
    computed_at       timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, hour_start)
) /* time_partitioned(hour_start) */;

CREATE TABLE IF NOT EXISTS gps_vehicle_stats_hourly (
    hour_start      timestamptz      NOT NULL,
    vehicle_id      text             NOT NULL,
    route_id        text             NOT NULL,
    city            text             NOT NULL,
    point_count     integer          NOT NULL,
    distance_km     double precision NOT NULL,
    avg_speed_kmh   double precision NOT NULL,
    max_speed_kmh   double precision NOT NULL,
    stop_count      integer          NOT NULL,
    computed_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (vehicle_id, hour_start)
) /* time_partitioned(hour_start) */;
