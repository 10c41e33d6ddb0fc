package dev.openpipe.flink;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code OPENPIPE_PARSE_WEARABLE(value BYTES, rules STRING)}: the columns of the
 * {@code openpipe-wearable} format as one ROW, for sources that are not Kafka (tests
 * fed from values or files). Same parser, same verdicts, and the same row: built by
 * {@link WearableFormatFactory#row}.
 */
public final class ParseWearable extends ScalarFunction {
    private transient String spec;
    private transient WearableParser parser;
    private transient int[] columns;

    @DataTypeHint(
            value = "ROW<valid BOOLEAN, event_id_high BIGINT, event_id_low BIGINT, device_id STRING,"
                    + " patient_id STRING, metric STRING, event_ts TIMESTAMP_LTZ(3),"
                    + " reading_1 DOUBLE, reading_2 DOUBLE>",
            bridgedTo = RowData.class)
    public RowData eval(byte[] value, String rules) {
        if (parser == null || !rules.equals(spec)) {
            WearableRules parsed = WearableRules.parse(rules);
            parser = new WearableParser(parsed);
            spec = rules;
            String[] names = {"valid", "event_id_high", "event_id_low", "device_id", "patient_id",
                "metric", "event_ts", "reading_1", "reading_2"};
            columns = new int[names.length];
            for (int i = 0; i < names.length; i++) {
                columns[i] = WearableFormatFactory.column(names[i], parsed.readingSlots());
            }
        }
        return WearableFormatFactory.row(parser.decode(value), columns);
    }
}
