-- Each report patient's daily alert counts from alert_rollup_daily (the last days).
SELECT patient_id, day_start, alert_type, alert_count, max_observed_value
FROM alert_rollup_daily
WHERE patient_id = ANY(%(patients)s::text[])
  AND day_start >= %(since)s
ORDER BY patient_id, day_start DESC, alert_type
