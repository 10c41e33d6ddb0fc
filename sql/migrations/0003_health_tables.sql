-- Flink window results (docs/architecture.md §5), upserted by the sinks. Each unique key includes the
-- window start, which is also the partitioning column. The Kafka coordinates are those
-- of the latest message that changed the row.

CREATE TABLE IF NOT EXISTS health_metrics_1min (
    window_start    timestamptz      NOT NULL,
    window_end      timestamptz      NOT NULL,
    device_id       text             NOT NULL,
    patient_id      text             NOT NULL,
    metric          text             NOT NULL,
    reading_count   integer          NOT NULL,
    avg_value       double precision NOT NULL,
    min_value       double precision NOT NULL,
    max_value       double precision NOT NULL,
    kafka_topic     text             NOT NULL,
    kafka_partition integer          NOT NULL,
    kafka_offset    bigint           NOT NULL,
    ingested_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, metric, window_start)
) /* time_partitioned(window_start) */;

CREATE TABLE IF NOT EXISTS health_metrics_10min (
    window_start    timestamptz      NOT NULL,
    window_end      timestamptz      NOT NULL,
    device_id       text             NOT NULL,
    patient_id      text             NOT NULL,
    metric          text             NOT NULL,
    reading_count   integer          NOT NULL,
    avg_value       double precision NOT NULL,
    min_value       double precision NOT NULL,
    max_value       double precision NOT NULL,
    kafka_topic     text             NOT NULL,
    kafka_partition integer          NOT NULL,
    kafka_offset    bigint           NOT NULL,
    ingested_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, metric, window_start)
) /* time_partitioned(window_start) */;

CREATE TABLE IF NOT EXISTS health_alerts (
    alert_time      timestamptz      NOT NULL,
    window_start    timestamptz      NOT NULL,
    window_end      timestamptz      NOT NULL,
    device_id       text             NOT NULL,
    patient_id      text             NOT NULL,
    alert_type      text             NOT NULL,
    observed_value  double precision NOT NULL,
    threshold       double precision NOT NULL,
    severity        text             NOT NULL,
    kafka_topic     text             NOT NULL,
    kafka_partition integer          NOT NULL,
    kafka_offset    bigint           NOT NULL,
    ingested_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, alert_type, window_start)
) /* time_partitioned(window_start) */;

CREATE INDEX IF NOT EXISTS health_alerts_time_idx ON health_alerts (alert_time DESC);
