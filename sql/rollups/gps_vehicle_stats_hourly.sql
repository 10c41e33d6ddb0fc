-- gps_vehicle_stats_hourly for [start, end): per vehicle and UTC hour, the points,
-- the haversine distance travelled (km, Earth radius 6371.0088 km), the average and maximum
-- reported speed and the number of stops. Each segment belongs to the hour of its later
-- point and each stop to the hour of its first stopped point, so hours add up; the previous
-- point is looked up to the lookback (openpipe.rollups). A point is stopped at or below
-- analytics.stop_speed_kmh; a stop starts at a stopped point whose previous point was moving
-- (or that has no previous point).
WITH points AS (
    SELECT
        vehicle_id,
        route_id,
        city,
        event_time,
        speed_kmh,
        radians(lat) AS phi,
        radians(lon) AS lambda,
        lag(radians(lat)) OVER w AS prev_phi,
        lag(radians(lon)) OVER w AS prev_lambda,
        lag(speed_kmh) OVER w AS prev_speed
    FROM gps_points
    WHERE event_time >= %(start)s::timestamptz - %(lookback)s::interval
      AND event_time < %(end)s
    WINDOW w AS (PARTITION BY vehicle_id ORDER BY event_time, event_id)
),
segments AS (
    SELECT
        date_trunc('hour', event_time, 'UTC') AS hour_start,
        vehicle_id,
        route_id,
        city,
        event_time,
        speed_kmh,
        CASE WHEN prev_phi IS NULL THEN 0.0 ELSE
            2 * 6371.0088 * asin(least(1.0, sqrt(
                sin((phi - prev_phi) / 2) ^ 2
                + cos(prev_phi) * cos(phi) * sin((lambda - prev_lambda) / 2) ^ 2
            )))
        END AS segment_km,
        (speed_kmh <= %(stop_speed_kmh)s
            AND (prev_speed IS NULL OR prev_speed > %(stop_speed_kmh)s)) AS starts_stop
    FROM points
    WHERE event_time >= %(start)s
)
INSERT INTO gps_vehicle_stats_hourly (
    hour_start, vehicle_id, route_id, city, point_count, distance_km, avg_speed_kmh,
    max_speed_kmh, stop_count
)
SELECT
    hour_start,
    vehicle_id,
    (array_agg(route_id ORDER BY event_time DESC))[1],
    (array_agg(city ORDER BY event_time DESC))[1],
    count(*),
    sum(segment_km),
    avg(speed_kmh),
    max(speed_kmh),
    count(*) FILTER (WHERE starts_stop)
FROM segments
GROUP BY 1, 2
