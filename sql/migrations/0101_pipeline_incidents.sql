-- Failed Dagster runs, recorded by the run-failure sensor (openpipe_dagster.analytics).
-- One row per run; a re-evaluated sensor tick changes nothing (run_id is the key).
-- Not time-partitioned: incidents are few and kept until someone deletes them.

CREATE TABLE IF NOT EXISTS pipeline_incidents (
    run_id          text        NOT NULL PRIMARY KEY,
    job_name        text        NOT NULL,
    failed_at       timestamptz NOT NULL,
    error_message   text        NOT NULL,
    failed_steps    text[]      NOT NULL DEFAULT '{}',
    run_tags        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS pipeline_incidents_failed_at_idx ON pipeline_incidents (failed_at DESC);
