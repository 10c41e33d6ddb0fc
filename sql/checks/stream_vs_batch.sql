-- Stream vs batch for the windows starting in [start, end): the 1- and 10-minute aggregates
-- recomputed from wearable_readings next to what the Flink job wrote to health_metrics_*.
-- A reading is late when Kafka received it after its window end plus the watermark delay;
-- the on-time aggregates leave late readings out, as the stream does.
WITH readings AS (
    SELECT
        r.device_id,
        r.patient_id,
        v.metric,
        v.value,
        date_bin(v.size, r.event_time, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS window_start,
        v.size,
        r.kafka_timestamp
    FROM wearable_readings AS r
    CROSS JOIN LATERAL (
        VALUES
            ('heart_rate', CASE WHEN r.metric = 'heart_rate' THEN r.heart_rate_bpm END,
                %(heart_rate_window)s::interval),
            ('bp_systolic', CASE WHEN r.metric = 'blood_pressure' THEN r.systolic_mmhg END,
                %(blood_pressure_window)s::interval),
            ('bp_diastolic', CASE WHEN r.metric = 'blood_pressure' THEN r.diastolic_mmhg END,
                %(blood_pressure_window)s::interval),
            ('blood_sugar', CASE WHEN r.metric = 'blood_sugar' THEN r.glucose_mg_dl END,
                %(blood_sugar_window)s::interval)
    ) AS v (metric, value, size)
    WHERE r.event_time >= %(start)s
      AND r.event_time < %(end)s::timestamptz + %(longest_window)s::interval
      AND v.value IS NOT NULL
),
flagged AS (
    SELECT
        *,
        coalesce(kafka_timestamp > window_start + size + %(watermark_delay)s::interval, false)
            AS late
    FROM readings
    WHERE window_start >= %(start)s AND window_start < %(end)s
),
batch AS (
    SELECT
        device_id,
        metric,
        window_start,
        count(*) AS all_count,
        avg(value) AS all_avg,
        min(value) AS all_min,
        max(value) AS all_max,
        count(*) FILTER (WHERE NOT late) AS on_time_count,
        avg(value) FILTER (WHERE NOT late) AS on_time_avg,
        min(value) FILTER (WHERE NOT late) AS on_time_min,
        max(value) FILTER (WHERE NOT late) AS on_time_max,
        count(*) FILTER (WHERE late) AS late_count
    FROM flagged
    GROUP BY 1, 2, 3
),
stream AS (
    SELECT device_id, metric, window_start, reading_count, avg_value, min_value, max_value
    FROM health_metrics_1min
    WHERE window_start >= %(start)s AND window_start < %(end)s
    UNION ALL
    SELECT device_id, metric, window_start, reading_count, avg_value, min_value, max_value
    FROM health_metrics_10min
    WHERE window_start >= %(start)s AND window_start < %(end)s
)
SELECT
    device_id,
    metric,
    window_start,
    coalesce(b.all_count, 0) AS all_count,
    b.all_avg,
    b.all_min,
    b.all_max,
    coalesce(b.on_time_count, 0) AS on_time_count,
    b.on_time_avg,
    b.on_time_min,
    b.on_time_max,
    coalesce(b.late_count, 0) AS late_count,
    coalesce(s.reading_count, 0) AS stream_count,
    s.avg_value AS stream_avg,
    s.min_value AS stream_min,
    s.max_value AS stream_max
FROM batch AS b
FULL JOIN stream AS s USING (device_id, metric, window_start)
ORDER BY window_start, device_id, metric
