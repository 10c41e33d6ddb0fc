-- health_metrics_hourly for [start, end): per patient, metric and UTC hour, the count,
-- mean, extremes and 95th percentile of the readings in wearable_readings. Blood pressure
-- splits into the bp_systolic and bp_diastolic metrics, as in health_metrics_1min.
INSERT INTO health_metrics_hourly (
    hour_start, patient_id, metric, reading_count, avg_value, min_value, max_value, p95_value
)
SELECT
    date_trunc('hour', r.event_time, 'UTC') AS hour_start,
    r.patient_id,
    v.metric,
    count(*),
    avg(v.value),
    min(v.value),
    max(v.value),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY v.value)
FROM wearable_readings AS r
CROSS JOIN LATERAL (
    VALUES
        ('heart_rate', CASE WHEN r.metric = 'heart_rate' THEN r.heart_rate_bpm END),
        ('bp_systolic', CASE WHEN r.metric = 'blood_pressure' THEN r.systolic_mmhg END),
        ('bp_diastolic', CASE WHEN r.metric = 'blood_pressure' THEN r.diastolic_mmhg END),
        ('blood_sugar', CASE WHEN r.metric = 'blood_sugar' THEN r.glucose_mg_dl END)
) AS v (metric, value)
WHERE r.event_time >= %(start)s
  AND r.event_time < %(end)s
  AND v.value IS NOT NULL
GROUP BY 1, 2, 3
