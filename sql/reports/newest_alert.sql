-- The newest alert's cursor key (ingestion order), optionally among some patients: where a
-- report that skips a backlog ahead ends.
SELECT ingested_at, device_id, alert_type, window_start
FROM health_alerts
WHERE cardinality(%(patients)s::text[]) = 0 OR patient_id = ANY(%(patients)s::text[])
ORDER BY ingested_at DESC, device_id DESC, alert_type DESC, window_start DESC
LIMIT 1
