package dev.openpipe.flink;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.HashMap;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.types.Row;

/**
 * {@code OPENPIPE_EVENT_STATS(event_id, reading)}: count, exact sum, min and max of a
 * window's readings with each event_id counted once (its smallest reading if duplicates
 * differ). Deduping inside the window aggregate keeps one state entry and one timer per
 * device and window, where a GROUP BY event_id stage kept one per reading and a second
 * shuffle. The sum is of DECIMAL(24, 6) values rounded as Flink's CAST(DOUBLE AS DECIMAL)
 * rounds, so a window's average at a threshold is judged whatever the order of arrival.
 */
@FunctionHint(
        input = {@DataTypeHint("STRING"), @DataTypeHint("DOUBLE")},
        accumulator = @DataTypeHint(value = "RAW", bridgedTo = DistinctEventStats.Readings.class),
        output = @DataTypeHint(
                "ROW<reading_count BIGINT NOT NULL, reading_sum DECIMAL(24, 6), min_value DOUBLE,"
                        + " max_value DOUBLE>"))
public final class DistinctEventStats
        extends AggregateFunction<Row, DistinctEventStats.Readings> {

    /** Accumulator: event_id -> reading. */
    public static final class Readings implements java.io.Serializable {
        private static final long serialVersionUID = 1L;
        public HashMap<String, Double> byEvent = new HashMap<>();
    }

    @Override
    public Readings createAccumulator() {
        return new Readings();
    }

    public void accumulate(Readings acc, String eventId, Double reading) {
        if (eventId != null && reading != null) {
            acc.byEvent.merge(eventId, reading, Math::min);
        }
    }

    public void merge(Readings acc, Iterable<Readings> others) {
        for (Readings other : others) {
            other.byEvent.forEach((id, reading) -> acc.byEvent.merge(id, reading, Math::min));
        }
    }

    @Override
    public Row getValue(Readings acc) {
        BigDecimal sum = BigDecimal.ZERO.setScale(6);
        double min = Double.POSITIVE_INFINITY;
        double max = Double.NEGATIVE_INFINITY;
        for (double reading : acc.byEvent.values()) {
            sum = sum.add(BigDecimal.valueOf(reading).setScale(6, RoundingMode.HALF_UP));
            min = Math.min(min, reading);
            max = Math.max(max, reading);
        }
        long count = acc.byEvent.size();
        return count == 0
                ? Row.of(0L, null, null, null)
                : Row.of(count, sum, min, max);
    }
}
