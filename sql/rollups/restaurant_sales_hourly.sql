-- restaurant_sales_hourly for [start, end). Every order state change is one event, so each
-- fact about an order is counted once, in the hour of the first event showing it (earlier
-- events are looked up a day back, so an order is never counted in two hours):
--   order_count       orders placed (first event with order_status `placed`);
--   paid_orders/_inr  orders whose payment became `paid`, and their total_inr;
--   failed_payments   orders whose payment first `failed`;
--   top_dishes        the analytics.top_dishes dishes with the most units in the orders placed.
WITH facts AS (
    SELECT
        o.restaurant_id,
        o.city,
        o.order_id,
        o.event_id,
        o.event_time,
        o.items,
        o.total_inr,
        f.fact
    FROM restaurant_orders AS o
    CROSS JOIN LATERAL (
        VALUES
            ('placed', o.order_status = 'placed'),
            ('paid', o.payment_status = 'paid'),
            ('failed', o.payment_status = 'failed')
    ) AS f (fact, holds)
    WHERE o.event_time >= %(start)s::timestamptz - %(lookback)s::interval
      AND o.event_time < %(end)s
      AND f.holds
),
firsts AS (
    SELECT DISTINCT ON (restaurant_id, order_id, fact)
        date_trunc('hour', event_time, 'UTC') AS hour_start,
        restaurant_id,
        city,
        order_id,
        fact,
        items,
        total_inr
    FROM facts
    ORDER BY restaurant_id, order_id, fact, event_time, event_id
),
in_window AS (
    SELECT * FROM firsts WHERE hour_start >= %(start)s
),
totals AS (
    SELECT
        hour_start,
        restaurant_id,
        max(city) AS city,
        count(*) FILTER (WHERE fact = 'placed') AS order_count,
        count(*) FILTER (WHERE fact = 'paid') AS paid_orders,
        coalesce(sum(total_inr) FILTER (WHERE fact = 'paid'), 0) AS paid_revenue_inr,
        count(*) FILTER (WHERE fact = 'failed') AS failed_payments
    FROM in_window
    GROUP BY 1, 2
),
dish_units AS (
    SELECT
        w.hour_start,
        w.restaurant_id,
        item ->> 'dish_code' AS dish_code,
        sum((item ->> 'quantity')::integer) AS quantity
    FROM in_window AS w
    CROSS JOIN LATERAL jsonb_array_elements(w.items) AS item
    WHERE w.fact = 'placed'
    GROUP BY 1, 2, 3
),
ranked AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY hour_start, restaurant_id ORDER BY quantity DESC, dish_code
        ) AS position
    FROM dish_units
),
top AS (
    SELECT
        hour_start,
        restaurant_id,
        jsonb_agg(
            jsonb_build_object('dish_code', dish_code, 'quantity', quantity) ORDER BY position
        ) AS top_dishes
    FROM ranked
    WHERE position <= %(top_dishes)s
    GROUP BY 1, 2
)
INSERT INTO restaurant_sales_hourly (
    hour_start, restaurant_id, city, order_count, paid_orders, paid_revenue_inr,
    failed_payments, top_dishes
)
SELECT
    t.hour_start,
    t.restaurant_id,
    t.city,
    t.order_count,
    t.paid_orders,
    t.paid_revenue_inr,
    t.failed_payments,
    coalesce(top.top_dishes, '[]'::jsonb)
FROM totals AS t
LEFT JOIN top USING (hour_start, restaurant_id)
