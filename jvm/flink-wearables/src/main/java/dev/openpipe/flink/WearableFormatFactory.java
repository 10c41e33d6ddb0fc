package dev.openpipe.flink;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.format.DecodingFormat;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.factories.DeserializationFormatFactory;
import org.apache.flink.table.factories.DynamicTableFactory;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.RowType;

/**
 * Format {@code openpipe-wearable}: each Kafka value is judged and decoded once by
 * {@link WearableParser}. The table's physical columns are picked by name from: valid
 * BOOLEAN, event_id_high and event_id_low BIGINT (the event_id UUID's 128 bits), device_id,
 * patient_id, metric STRING, event_ts TIMESTAMP_LTZ(3) (set whenever event_time parses,
 * valid or not, so the watermark moves as before) and reading_1..reading_n DOUBLE (the
 * metric's measurement fields in rule order); all but valid and event_ts are null unless
 * the value is valid. Option
 * {@code openpipe-wearable.rules} carries the spec of {@link WearableRules}.
 */
public final class WearableFormatFactory implements DeserializationFormatFactory {
    public static final String IDENTIFIER = "openpipe-wearable";
    static final ConfigOption<String> RULES =
            ConfigOptions.key("rules").stringType().noDefaultValue()
                    .withDescription("Validation rules spec, built by flink_jobs/health_sql.py");

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return Set.of(RULES);
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return new HashSet<>();
    }

    @Override
    public DecodingFormat<DeserializationSchema<RowData>> createDecodingFormat(
            DynamicTableFactory.Context context, ReadableConfig options) {
        String spec = options.get(RULES);
        WearableRules.parse(spec); // fail at planning time on a bad spec
        return new DecodingFormat<>() {
            @Override
            public DeserializationSchema<RowData> createRuntimeDecoder(
                    DynamicTableSource.Context ctx, DataType physicalDataType) {
                RowType rowType = (RowType) physicalDataType.getLogicalType();
                TypeInformation<RowData> produced = ctx.createTypeInformation(physicalDataType);
                return new WearableDeserializer(spec, rowType.getFieldNames(), produced);
            }

            @Override
            public ChangelogMode getChangelogMode() {
                return ChangelogMode.insertOnly();
            }
        };
    }

    /** Column name -> what it holds; readings are 100 + slot. */
    static int column(String name, int slots) {
        switch (name) {
            case "valid": return 0;
            case "event_id_high": return 1;
            case "event_id_low": return 2;
            case "device_id": return 3;
            case "patient_id": return 4;
            case "metric": return 5;
            case "event_ts": return 6;
            default:
                if (name.startsWith("reading_")) {
                    int slot = Integer.parseInt(name.substring(8)) - 1;
                    if (slot >= 0 && slot < slots) {
                        return 100 + slot;
                    }
                }
                throw new ValidationException(
                        "format " + IDENTIFIER + " has no column '" + name + "'; it offers valid, "
                                + "event_id_high, event_id_low, device_id, patient_id, metric, event_ts, reading_1.."
                                + "reading_" + slots);
        }
    }

    /** The decoded value as a row of {@code columns} (see {@link #column}), Flink's internal types. */
    static GenericRowData row(WearableParser.Decoded d, int[] columns) {
        GenericRowData row = new GenericRowData(columns.length);
        for (int i = 0; i < columns.length; i++) {
            row.setField(i, field(d, columns[i]));
        }
        return row;
    }

    private static Object field(WearableParser.Decoded d, int column) {
        switch (column) {
            case 0: return d.valid;
            case 1: return d.valid ? d.eventIdHigh : null;
            case 2: return d.valid ? d.eventIdLow : null;
            case 3: return d.deviceId;
            case 4: return d.patientId;
            case 5: return d.metric;
            case 6: return d.hasTime ? TimestampData.fromEpochMillis(d.eventMs) : null;
            default:
                double reading = d.readings[column - 100];
                return d.valid && !Double.isNaN(reading) ? reading : null;
        }
    }

    static final class WearableDeserializer implements DeserializationSchema<RowData> {
        private static final long serialVersionUID = 1L;
        private final String spec;
        private final List<String> names;
        private final TypeInformation<RowData> produced;
        private transient WearableParser parser;
        private transient int[] columns;

        WearableDeserializer(String spec, List<String> names, TypeInformation<RowData> produced) {
            this.spec = spec;
            this.names = names;
            this.produced = produced;
            int slots = WearableRules.parse(spec).readingSlots();
            for (String name : names) {
                column(name, slots); // fail at planning time on an unknown column
            }
        }

        @Override
        public void open(InitializationContext context) {
            WearableRules rules = WearableRules.parse(spec);
            parser = new WearableParser(rules);
            columns = new int[names.size()];
            for (int i = 0; i < columns.length; i++) {
                columns[i] = column(names.get(i), rules.readingSlots());
            }
        }

        @Override
        public RowData deserialize(byte[] message) {
            if (message == null) {
                return null; // a tombstone: no event, no time
            }
            return row(parser.decode(message), columns);
        }

        @Override
        public boolean isEndOfStream(RowData nextElement) {
            return false;
        }

        @Override
        public TypeInformation<RowData> getProducedType() {
            return produced;
        }
    }
}
