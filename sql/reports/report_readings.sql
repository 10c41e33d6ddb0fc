-- Readings around alerts: for each requested (device, raw metric, [lo, hi)) span, the
-- device's readings of that metric, tagged with the span's position.
SELECT
    s.position, r.event_time, r.heart_rate_bpm, r.systolic_mmhg, r.diastolic_mmhg,
    r.glucose_mg_dl
FROM unnest(
    %(devices)s::text[], %(metrics)s::text[], %(los)s::timestamptz[], %(his)s::timestamptz[]
) WITH ORDINALITY AS s (device_id, metric, lo, hi, position)
JOIN wearable_readings AS r
  ON r.device_id = s.device_id
 AND r.metric = s.metric
 AND r.event_time >= s.lo
 AND r.event_time < s.hi
ORDER BY s.position, r.event_time
