-- Rejected messages and the sinks' stored Kafka positions (docs/architecture.md §5, §6).
-- dead_letters is keyed by its Kafka coordinates so a replay from offset 0 adds nothing;
-- it is not time-partitioned (its natural key carries no time column).

CREATE TABLE IF NOT EXISTS dead_letters (
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    kafka_key       text,
    kafka_timestamp timestamptz,
    raw_value       bytea,
    error_kind      text        NOT NULL,
    error_detail    text        NOT NULL,
    injected_fault  text,
    sink            text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)
);

CREATE INDEX IF NOT EXISTS dead_letters_kind_idx ON dead_letters (error_kind, received_at DESC);

-- next_offset is the first offset not yet written; it only moves in the same
-- transaction as the rows and dead letters it covers.
CREATE TABLE IF NOT EXISTS sink_offsets (
    sink            text        NOT NULL,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, kafka_topic, kafka_partition)
);
