package dev.openpipe.flink;

import java.time.Instant;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

/**
 * {@code OPENPIPE_PARSE_WEARABLE(value BYTES, rules STRING)}: the columns of the
 * {@code openpipe-wearable} format as one ROW, for sources that are not Kafka (tests
 * fed from values or files). Same parser, same verdicts.
 */
public final class ParseWearable extends ScalarFunction {
    private transient String spec;
    private transient WearableParser parser;

    @DataTypeHint(
            "ROW<valid BOOLEAN, event_id_high BIGINT, event_id_low BIGINT, device_id STRING,"
                    + " patient_id STRING, metric STRING, event_ts TIMESTAMP_LTZ(3),"
                    + " reading_1 DOUBLE, reading_2 DOUBLE>")
    public Row eval(byte[] value, String rules) {
        if (parser == null || !rules.equals(spec)) {
            parser = new WearableParser(WearableRules.parse(rules));
            spec = rules;
        }
        WearableParser.Decoded d = parser.decode(value);
        Instant time = d.hasTime ? Instant.ofEpochMilli(d.eventMs) : null;
        Double r1 = d.valid && d.readings.length > 0 && !Double.isNaN(d.readings[0]) ? d.readings[0] : null;
        Double r2 = d.valid && d.readings.length > 1 && !Double.isNaN(d.readings[1]) ? d.readings[1] : null;
        Long high = d.valid ? d.eventIdHigh : null;
        Long low = d.valid ? d.eventIdLow : null;
        return Row.of(d.valid, high, low, text(d.deviceId), text(d.patientId), text(d.metric),
                time, r1, r2);
    }

    private static String text(StringData s) {
        return s == null ? null : s.toString();
    }
}
