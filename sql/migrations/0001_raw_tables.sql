-- Raw event tables (docs/architecture.md §5): one row per valid event, keyed by (event_id, time column)
-- so the same DDL works as a TimescaleDB hypertable or a native range-partitioned table.
-- The `time_partitioned(<column>)` marker after each CREATE TABLE tells the migration
-- runner which column the table is partitioned on; on the native path it becomes
-- `PARTITION BY RANGE (<column>)`, on the TimescaleDB path the table becomes a hypertable.

CREATE TABLE IF NOT EXISTS wearable_readings (
    event_id        uuid             NOT NULL,
    event_time      timestamptz      NOT NULL,
    device_id       text             NOT NULL,
    patient_id      text             NOT NULL,
    metric          text             NOT NULL,
    heart_rate_bpm  double precision,
    systolic_mmhg   double precision,
    diastolic_mmhg  double precision,
    glucose_mg_dl   double precision,
    kafka_topic     text             NOT NULL,
    kafka_partition integer          NOT NULL,
    kafka_offset    bigint           NOT NULL,
    kafka_timestamp timestamptz,
    ingested_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, event_time)
) /* time_partitioned(event_time) */;

CREATE INDEX IF NOT EXISTS wearable_readings_device_time_idx
    ON wearable_readings (device_id, event_time DESC);

CREATE TABLE IF NOT EXISTS restaurant_orders (
    event_id        uuid             NOT NULL,
    event_time      timestamptz      NOT NULL,
    device_id       text             NOT NULL,
    restaurant_id   text             NOT NULL,
    city            text             NOT NULL,
    order_id        text             NOT NULL,
    table_number    integer          NOT NULL,
    order_status    text             NOT NULL,
    payment_status  text             NOT NULL,
    payment_method  text,
    items           jsonb            NOT NULL,
    total_inr       double precision NOT NULL,
    kafka_topic     text             NOT NULL,
    kafka_partition integer          NOT NULL,
    kafka_offset    bigint           NOT NULL,
    kafka_timestamp timestamptz,
    ingested_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, event_time)
) /* time_partitioned(event_time) */;

CREATE INDEX IF NOT EXISTS restaurant_orders_restaurant_time_idx
    ON restaurant_orders (restaurant_id, event_time DESC);

CREATE TABLE IF NOT EXISTS gps_points (
    event_id        uuid             NOT NULL,
    event_time      timestamptz      NOT NULL,
    device_id       text             NOT NULL,
    vehicle_id      text             NOT NULL,
    route_id        text             NOT NULL,
    city            text             NOT NULL,
    lat             double precision NOT NULL,
    lon             double precision NOT NULL,
    speed_kmh       double precision NOT NULL,
    heading_deg     double precision NOT NULL,
    accuracy_m      double precision NOT NULL,
    kafka_topic     text             NOT NULL,
    kafka_partition integer          NOT NULL,
    kafka_offset    bigint           NOT NULL,
    kafka_timestamp timestamptz,
    ingested_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, event_time)
) /* time_partitioned(event_time) */;

CREATE INDEX IF NOT EXISTS gps_points_vehicle_time_idx
    ON gps_points (vehicle_id, event_time DESC);
