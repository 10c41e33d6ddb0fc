-- The alert-report sensor reads new alerts in ingestion order every 30 s
-- (sql/reports/alert_batch.sql, newest_alert.sql); without this index each read scanned
-- every partition of health_alerts (0.36 s at 400k alerts).

CREATE INDEX IF NOT EXISTS health_alerts_ingested_idx
    ON health_alerts (ingested_at, device_id, alert_type, window_start);
