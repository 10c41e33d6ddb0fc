package dev.openpipe.flink;

import java.math.BigDecimal;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.RuntimeExecutionMode;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.configuration.ExecutionOptions;
import org.apache.flink.metrics.Counter;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * The health job's windows, dedupe and alerts as one keyed operator (docs/architecture.md §5).
 *
 * <p>Input: the valid readings, one row per event ({@code event_id_high, event_id_low,
 * device_id, patient_id, metric, reading_1 .. reading_n, event_ts}), with event time as the
 * record timestamp and the source's watermarks. Per device it keeps the open tumbling windows
 * of each event metric and window length, each reading slot's readings by event_id (an
 * event counted once, its smallest reading if duplicates differ), and fires a window when
 * the watermark passes its end, as Flink SQL's window aggregate does: a record whose window
 * has already fired is late and left out.
 *
 * <p>Output: three tables, the short-window metrics, the long-window metrics and the alerts,
 * with the columns of §5 and times written as RFC 3339 UTC strings. Sums are exact
 * DECIMAL(24, 6) values (each reading rounded half-up to 6 places), and thresholds are
 * judged on them (sum above threshold x count), so an average at a threshold is judged the
 * same in any order of arrival.
 */
public final class HealthWindows extends KeyedProcessFunction<String, RowData, RowData>
        implements CheckpointedFunction {
    private static final long serialVersionUID = 1L;

    static final int EVENT_ID_HIGH = 0;
    static final int EVENT_ID_LOW = 1;
    static final int DEVICE_ID = 2;
    static final int PATIENT_ID = 3;
    static final int METRIC = 4;
    static final int FIRST_READING = 5;
    /** The input's first columns, at the positions above; the reading slots and event_ts follow. */
    static final List<String> INPUT_COLUMNS =
            List.of("event_id_high", "event_id_low", "device_id", "patient_id", "metric");

    static final DataType METRIC_ROW =
            DataTypes.ROW(
                    DataTypes.FIELD("window_start", DataTypes.STRING()),
                    DataTypes.FIELD("window_end", DataTypes.STRING()),
                    DataTypes.FIELD("device_id", DataTypes.STRING()),
                    DataTypes.FIELD("patient_id", DataTypes.STRING()),
                    DataTypes.FIELD("metric", DataTypes.STRING()),
                    DataTypes.FIELD("reading_count", DataTypes.BIGINT()),
                    DataTypes.FIELD("avg_value", DataTypes.DOUBLE()),
                    DataTypes.FIELD("min_value", DataTypes.DOUBLE()),
                    DataTypes.FIELD("max_value", DataTypes.DOUBLE()));
    static final DataType ALERT_ROW =
            DataTypes.ROW(
                    DataTypes.FIELD("alert_time", DataTypes.STRING()),
                    DataTypes.FIELD("window_start", DataTypes.STRING()),
                    DataTypes.FIELD("window_end", DataTypes.STRING()),
                    DataTypes.FIELD("device_id", DataTypes.STRING()),
                    DataTypes.FIELD("patient_id", DataTypes.STRING()),
                    DataTypes.FIELD("alert_type", DataTypes.STRING()),
                    DataTypes.FIELD("observed_value", DataTypes.DOUBLE()),
                    DataTypes.FIELD("threshold", DataTypes.DOUBLE()),
                    DataTypes.FIELD("severity", DataTypes.STRING()));

    private static final OutputTag<RowData> LONG_METRICS =
            new OutputTag<>("long-metrics", rowInfo(METRIC_ROW));
    private static final OutputTag<RowData> ALERTS = new OutputTag<>("alerts", rowInfo(ALERT_ROW));

    private static final DateTimeFormatter TIME_FORMAT =
            DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);

    private final HealthRules rules;
    /**
     * The device's open windows by {@link #windowKey} (which says their kind and start): one
     * entry read and written per reading.
     */
    private transient MapState<Long, OpenWindow> windows;
    /**
     * The watermark this subtask has judged lateness by (the last one it saw with a reading or
     * a timer), kept in checkpoints: after a restore the timer service's watermark starts from
     * nothing, and a reading replayed for a window that fired before the failure must stay
     * late, or its window would fire again, partial. Restored as the largest of the
     * subtasks' values: every subtask had received the same watermarks before the
     * checkpoint's barriers, so each had passed the largest one any of them saw; a subtask
     * with no device saw none, and the smallest value would have been nothing.
     */
    private transient long progress;
    private transient ListState<Long> progressState;
    private transient Counter lateDropped;
    /** The last two instants written as text, and their text (a window's start and end). */
    private transient long[] formattedMs;
    private transient StringData[] formatted;
    private transient int replace;

    /** Where event_ts is: after the reading slots (the record's timestamp too, when streaming). */
    private final int eventTimeField;
    /**
     * False in batch execution, where nothing is late: Flink then runs key after key and
     * fires each key's timers at its end, so a timer's time says nothing about the next key.
     */
    private final boolean streaming;

    HealthWindows(HealthRules rules, boolean streaming) {
        this.rules = rules;
        this.eventTimeField = FIRST_READING + rules.slots;
        this.streaming = streaming;
    }

    /**
     * The three output tables of the job from its readings table, built on {@code tEnv}.
     *
     * @param rulesSpec the rules, as {@link HealthRules#parse} reads them
     * @return short-window metrics, long-window metrics, alerts
     */
    public static Table[] apply(StreamTableEnvironment tEnv, Table readings, String rulesSpec) {
        HealthRules rules = HealthRules.parse(rulesSpec);
        List<String> expected = new ArrayList<>(INPUT_COLUMNS);
        for (int i = 1; i <= rules.slots; i++) {
            expected.add("reading_" + i);
        }
        expected.add("event_ts");
        List<String> columns = readings.getResolvedSchema().getColumnNames();
        if (!columns.equals(expected)) {
            throw new IllegalArgumentException(
                    "HealthWindows reads the columns " + expected + " by position; got " + columns);
        }
        boolean streaming =
                tEnv.getConfig().get(ExecutionOptions.RUNTIME_MODE) != RuntimeExecutionMode.BATCH;
        DataType rowType = readings.getResolvedSchema().toPhysicalRowDataType();
        DataStream<RowData> rows = tEnv.toDataStream(readings, rowType.bridgedTo(RowData.class));
        SingleOutputStreamOperator<RowData> windows =
                rows.keyBy(new DeviceKey(), Types.STRING)
                        .process(new HealthWindows(rules, streaming), rowInfo(METRIC_ROW))
                        .name("health-windows")
                        .uid("health-windows");
        return new Table[] {
            tEnv.fromDataStream(windows),
            tEnv.fromDataStream(windows.getSideOutput(LONG_METRICS)),
            tEnv.fromDataStream(windows.getSideOutput(ALERTS)),
        };
    }

    private static InternalTypeInfo<RowData> rowInfo(DataType type) {
        return InternalTypeInfo.of((RowType) type.getLogicalType());
    }

    /** The device_id, as a String that outlives the (reused) input row. */
    static final class DeviceKey implements KeySelector<RowData, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String getKey(RowData row) {
            return row.getString(DEVICE_ID).toString();
        }
    }

    @Override
    public void open(OpenContext context) {
        MapStateDescriptor<Long, OpenWindow> descriptor =
                new MapStateDescriptor<>(
                        "open-windows", LongSerializer.INSTANCE, new OpenWindowSerializer());
        windows = getRuntimeContext().getMapState(descriptor);
        rules.prepare();
        lateDropped = getRuntimeContext().getMetricGroup().counter("numLateRecordsDropped");
        formattedMs = new long[] {Long.MIN_VALUE, Long.MIN_VALUE};
        formatted = new StringData[2];
    }

    @Override
    public void initializeState(FunctionInitializationContext context) throws Exception {
        progressState =
                context.getOperatorStateStore()
                        .getUnionListState(new ListStateDescriptor<>("lateness-watermark", Types.LONG));
        progress = Long.MIN_VALUE;
        for (Long value : progressState.get()) { // empty unless restored
            progress = Math.max(progress, value);
        }
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) throws Exception {
        progressState.update(List.of(progress));
    }

    @Override
    public void processElement(RowData row, Context ctx, Collector<RowData> out) throws Exception {
        if (row.isNullAt(METRIC)
                || row.isNullAt(EVENT_ID_HIGH)
                || row.isNullAt(EVENT_ID_LOW)
                || row.isNullAt(eventTimeField)) {
            return;
        }
        HealthRules.EventMetric metric = rules.eventMetric(row.getString(METRIC));
        if (metric == null) {
            return;
        }
        long ts = row.getTimestamp(eventTimeField, 3).getMillisecond();
        if (streaming) {
            progress = Math.max(progress, ctx.timerService().currentWatermark());
        }
        long high = row.getLong(EVENT_ID_HIGH);
        long low = row.getLong(EVENT_ID_LOW);
        StringData patient = row.isNullAt(PATIENT_ID) ? null : row.getString(PATIENT_ID);
        for (HealthRules.WindowKind kind : metric.kinds) {
            long start = ts - Math.floorMod(ts, kind.sizeMs);
            long end = start + kind.sizeMs;
            if (end - 1 <= progress) {
                lateDropped.inc(); // its window has fired: Flink SQL's window aggregate drops it too
                continue;
            }
            long key = windowKey(kind, start);
            OpenWindow window = windows.get(key);
            if (window == null) {
                window = new OpenWindow(rules.slots);
                ctx.timerService().registerEventTimeTimer(end - 1);
            }
            window.offerPatient(patient);
            for (int slot : kind.slots) {
                int field = FIRST_READING + slot;
                if (!row.isNullAt(field)) {
                    window.readings(slot).put(high, low, row.getDouble(field));
                }
            }
            windows.put(key, window);
        }
    }

    /** A window's state key: its start and kind, one number (start is a multiple of its length). */
    private long windowKey(HealthRules.WindowKind kind, long start) {
        return start * rules.kinds.size() + kind.index;
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<RowData> out)
            throws Exception {
        if (streaming) {
            progress = Math.max(progress, timestamp); // the watermark has passed it
        }
        // The windows ending at this timer: of each kind, the one that starts a length earlier.
        StringData device = null;
        for (HealthRules.WindowKind kind : rules.kinds) {
            long start = timestamp + 1 - kind.sizeMs;
            if (Math.floorMod(start, kind.sizeMs) != 0) {
                continue;
            }
            long key = windowKey(kind, start);
            OpenWindow window = windows.get(key);
            if (window != null) {
                if (device == null) {
                    device = StringData.fromString(ctx.getCurrentKey());
                }
                fire(kind, start, window, device, ctx, out);
                windows.remove(key);
            }
        }
    }

    private void fire(
            HealthRules.WindowKind kind,
            long windowStart,
            OpenWindow window,
            StringData device,
            OnTimerContext ctx,
            Collector<RowData> out) {
        StringData start = time(windowStart);
        StringData end = time(windowStart + kind.sizeMs);
        StringData patient = window.patient;
        for (HealthRules.Rule rule : kind.rules) {
            EventReadings readings = window.readings(rule.slot);
            long count = readings.size;
            BigDecimal sum = count == 0 ? null : readings.sum();
            Double avg = sum == null ? null : sum.doubleValue() / count;
            GenericRowData metricRow =
                    GenericRowData.of(
                            start,
                            end,
                            device,
                            patient,
                            rule.metricName,
                            count,
                            avg,
                            count == 0 ? null : readings.min(),
                            count == 0 ? null : readings.max());
            if (rule.longWindow) {
                ctx.output(LONG_METRICS, metricRow);
            } else {
                out.collect(metricRow);
            }
            if (sum != null && rule.breached(sum, count)) {
                ctx.output(
                        ALERTS,
                        GenericRowData.of(
                                end,
                                start,
                                end,
                                device,
                                patient,
                                rule.alertType,
                                avg,
                                rule.threshold,
                                rules.severities[rule.severity(sum, count)]));
            }
        }
    }

    /** The RFC 3339 UTC text of an instant; windows of many devices end together, so cached. */
    private StringData time(long epochMs) {
        for (int slot = 0; slot < 2; slot++) {
            if (formattedMs[slot] == epochMs) {
                return formatted[slot];
            }
        }
        int slot = replace;
        replace ^= 1;
        formattedMs[slot] = epochMs;
        formatted[slot] = StringData.fromString(TIME_FORMAT.format(Instant.ofEpochMilli(epochMs)));
        return formatted[slot];
    }
}
