package dev.openpipe.flink;

import java.io.IOException;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Serializer of the {@link DistinctEventStats} accumulator: the entry count, then the
 * event_id's 128 bits and the reading of each entry. It replaces Flink's Kryo fallback for
 * the RAW type, which wrote class names and went through reflection for every window, in
 * every checkpoint (the heap state is written whole each time) and wherever Flink moves
 * an accumulator.
 */
public final class ReadingsSerializer extends TypeSerializerSingleton<DistinctEventStats.Readings> {
    private static final long serialVersionUID = 3L;

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
    }

    @Override
    public DistinctEventStats.Readings deserialize(DataInputView source) throws IOException {
        DistinctEventStats.Readings readings = new DistinctEventStats.Readings();
        int size = source.readInt();
        for (int i = 0; i < size; i++) {
            readings.put(source.readLong(), source.readLong(), source.readDouble());
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
