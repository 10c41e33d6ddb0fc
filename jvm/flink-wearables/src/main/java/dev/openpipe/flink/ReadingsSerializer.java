package dev.openpipe.flink;

import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.types.StringValue;

/**
 * Serializer of the {@link DistinctEventStats} accumulator: the UUID entries (count, then
 * the event_id's 128 bits and the reading of each), then the event_ids that are not UUIDs (count, then
 * string and reading of each). It replaces Flink's Kryo fallback for the RAW type, which
 * wrote class names and went through reflection for every window, in every checkpoint (the
 * heap state is written whole each time) and wherever Flink moves an accumulator.
 */
public final class ReadingsSerializer extends TypeSerializerSingleton<DistinctEventStats.Readings> {
    private static final long serialVersionUID = 2L;

    @Override
    public boolean isImmutableType() {
        return false;
    }

    @Override
    public DistinctEventStats.Readings createInstance() {
        return new DistinctEventStats.Readings();
    }

    @Override
    public DistinctEventStats.Readings copy(DistinctEventStats.Readings from) {
        return from.copy();
    }

    @Override
    public DistinctEventStats.Readings copy(
            DistinctEventStats.Readings from, DistinctEventStats.Readings reuse) {
        return from.copy();
    }

    @Override
    public int getLength() {
        return -1;
    }

    @Override
    public void serialize(DistinctEventStats.Readings record, DataOutputView target)
            throws IOException {
        target.writeInt(record.size);
        for (int i = 0; i < record.size; i++) {
            target.writeLong(record.ids[2 * i]);
            target.writeLong(record.ids[2 * i + 1]);
            target.writeDouble(record.readings[i]);
        }
        Map<String, Double> others = record.others;
        target.writeInt(others == null ? 0 : others.size());
        if (others != null) {
            for (Map.Entry<String, Double> entry : others.entrySet()) {
                StringValue.writeString(entry.getKey(), target);
                target.writeDouble(entry.getValue());
            }
        }
    }

    @Override
    public DistinctEventStats.Readings deserialize(DataInputView source) throws IOException {
        DistinctEventStats.Readings readings = new DistinctEventStats.Readings();
        int size = source.readInt();
        for (int i = 0; i < size; i++) {
            readings.put(source.readLong(), source.readLong(), source.readDouble());
        }
        int others = source.readInt();
        if (others > 0) {
            readings.others = new HashMap<>(Math.max(16, (int) (others / 0.75f) + 1));
            for (int i = 0; i < others; i++) {
                readings.others.put(StringValue.readString(source), source.readDouble());
            }
        }
        return readings;
    }

    @Override
    public DistinctEventStats.Readings deserialize(
            DistinctEventStats.Readings reuse, DataInputView source) throws IOException {
        return deserialize(source);
    }

    @Override
    public void copy(DataInputView source, DataOutputView target) throws IOException {
        int size = source.readInt();
        target.writeInt(size);
        byte[] entries = new byte[size * 24]; // event_id (two longs) and reading each
        source.readFully(entries);
        target.write(entries);
        int others = source.readInt();
        target.writeInt(others);
        for (int i = 0; i < others; i++) {
            StringValue.copyString(source, target);
            target.writeDouble(source.readDouble());
        }
    }

    @Override
    public TypeSerializerSnapshot<DistinctEventStats.Readings> snapshotConfiguration() {
        return new Snapshot();
    }

    /** Serializer snapshot; the format has one version. */
    public static final class Snapshot
            extends SimpleTypeSerializerSnapshot<DistinctEventStats.Readings> {
        public Snapshot() {
            super(ReadingsSerializer::new);
        }
    }
}
