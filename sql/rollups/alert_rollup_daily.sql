-- alert_rollup_daily for [start, end): per patient, alert type and UTC day (of
-- alert_time), how many alerts there were, the first and last, and the highest observed value.
INSERT INTO alert_rollup_daily (
    day_start, patient_id, alert_type, alert_count, first_alert_at, last_alert_at,
    max_observed_value
)
SELECT
    date_trunc('day', alert_time, 'UTC') AS day_start,
    patient_id,
    alert_type,
    count(*),
    min(alert_time),
    max(alert_time),
    max(observed_value)
FROM health_alerts
WHERE alert_time >= %(start)s
  AND alert_time < %(end)s
GROUP BY 1, 2, 3
