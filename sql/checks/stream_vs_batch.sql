-- Stream vs batch for the windows starting in [start, end): the 1- and 10-minute aggregates
-- recomputed from wearable_readings next to what the Flink job wrote to health_metrics_*.
-- A reading is late when Kafka got it after its window end plus the watermark delay, or
-- when its partition had already carried a reading that moved the watermark past its
-- window (readings buffered during a broker outage can arrive behind newer ones from
-- another producer). Late readings come last in their window's arrival order, and the
-- stream may have counted some of them (its watermark is the minimum over partitions), so
-- the check compares the stream with the first stream_count readings to arrive.
WITH arrived AS (
    -- The highest watermark time (event time, capped by the Kafka timestamp as in the job)
    -- the reading's partition had shown before it arrived.
    SELECT
        r.*,
        max(least(r.event_time, coalesce(r.kafka_timestamp, r.event_time))) OVER (
            PARTITION BY r.kafka_topic, r.kafka_partition
            ORDER BY r.kafka_offset
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS partition_high
    FROM wearable_readings AS r
    WHERE r.event_time >= %(start)s
      AND r.event_time < %(end)s::timestamptz + %(longest_window)s::interval
),
readings AS (
    SELECT
        r.device_id,
        r.patient_id,
        v.metric,
        v.value,
        date_bin(v.size, r.event_time, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS window_start,
        v.size,
        r.kafka_timestamp,
        r.kafka_partition,
        r.kafka_offset,
        r.partition_high
    FROM arrived AS r
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
    WHERE v.value IS NOT NULL
),
flagged AS (
    SELECT
        *,
        coalesce(kafka_timestamp > window_start + size + %(watermark_delay)s::interval, false)
        OR coalesce(
            partition_high - %(watermark_delay)s::interval
                >= window_start + size - interval '1 millisecond',
            false
        ) AS late,
        row_number() OVER (
            PARTITION BY device_id, metric, window_start ORDER BY kafka_partition, kafka_offset
        ) AS arrival
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
        max(arrival) FILTER (WHERE NOT late) AS last_on_time_arrival,
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
),
counted AS (
    -- The first stream_count readings to arrive: what the stream holds if it left out only
    -- late readings.
    SELECT
        f.device_id,
        f.metric,
        f.window_start,
        avg(f.value) AS counted_avg,
        min(f.value) AS counted_min,
        max(f.value) AS counted_max
    FROM flagged AS f
    JOIN stream AS s USING (device_id, metric, window_start)
    WHERE f.arrival <= s.reading_count
    GROUP BY 1, 2, 3
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
    coalesce(b.last_on_time_arrival, 0) AS last_on_time_arrival,
    coalesce(b.late_count, 0) AS late_count,
    coalesce(s.reading_count, 0) AS stream_count,
    s.avg_value AS stream_avg,
    s.min_value AS stream_min,
    s.max_value AS stream_max,
    c.counted_avg,
    c.counted_min,
    c.counted_max
FROM batch AS b
FULL JOIN stream AS s USING (device_id, metric, window_start)
LEFT JOIN counted AS c USING (device_id, metric, window_start)
ORDER BY window_start, device_id, metric
