-- The simulator's `openpipe-fault` header of each stored event, for scoring only (the
-- fault-detection check measures recall from it); NULL for clean events. No consumer
-- decides validity from it (docs/architecture.md §3).
ALTER TABLE wearable_readings ADD COLUMN IF NOT EXISTS injected_fault text;
ALTER TABLE restaurant_orders ADD COLUMN IF NOT EXISTS injected_fault text;
ALTER TABLE gps_points ADD COLUMN IF NOT EXISTS injected_fault text;
