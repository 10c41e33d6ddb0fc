-- The alerts of one report batch, in cursor order: (ingested_at, device_id, alert_type,
-- window_start) after the `after` key and up to the `through` key, optionally for some patients.
SELECT
    ingested_at, device_id, alert_type, window_start, window_end, alert_time, patient_id,
    observed_value, threshold, severity
FROM health_alerts
WHERE (ingested_at, device_id, alert_type, window_start)
      > (%(after_at)s::timestamptz, %(after_device)s::text, %(after_type)s::text,
         %(after_window)s::timestamptz)
  AND (%(through_at)s::timestamptz IS NULL
       OR (ingested_at, device_id, alert_type, window_start)
          <= (%(through_at)s::timestamptz, %(through_device)s::text, %(through_type)s::text,
              %(through_window)s::timestamptz))
  AND (cardinality(%(patients)s::text[]) = 0 OR patient_id = ANY(%(patients)s::text[]))
ORDER BY ingested_at, device_id, alert_type, window_start
LIMIT %(limit)s
