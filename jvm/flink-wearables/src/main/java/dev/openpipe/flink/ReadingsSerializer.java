package dev.openpipe.flink;

import java.io.IOException;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Serializer of the {@link EventReadings} of a window's reading slot: the entry count, then
 * the event_id's 128 bits and the reading of each entry, with no class names or reflection
 * (the heap state is written whole in every checkpoint).
 */
public final class ReadingsSerializer extends TypeSerializerSingleton<EventReadings> {
    private static final long serialVersionUID = 3L;

    @Override
    public boolean isImmutableType() {
        return false;
    }

    @Override
    public EventReadings createInstance() {
        return new EventReadings();
    }

    @Override
    public EventReadings copy(EventReadings from) {
        return from.copy();
    }

    @Override
    public EventReadings copy(
            EventReadings from, EventReadings reuse) {
        return from.copy();
    }

    @Override
    public int getLength() {
        return -1;
    }

    @Override
    public void serialize(EventReadings record, DataOutputView target)
            throws IOException {
        target.writeInt(record.size);
        for (int i = 0; i < record.size; i++) {
            target.writeLong(record.ids[2 * i]);
            target.writeLong(record.ids[2 * i + 1]);
            target.writeDouble(record.readings[i]);
        }
    }

    @Override
    public EventReadings deserialize(DataInputView source) throws IOException {
        EventReadings readings = new EventReadings();
        int size = source.readInt();
        for (int i = 0; i < size; i++) {
            readings.put(source.readLong(), source.readLong(), source.readDouble());
        }
        return readings;
    }

    @Override
    public EventReadings deserialize(
            EventReadings reuse, DataInputView source) throws IOException {
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
    public TypeSerializerSnapshot<EventReadings> snapshotConfiguration() {
        return new Snapshot();
    }

    /** Serializer snapshot; the format has one version. */
    public static final class Snapshot
            extends SimpleTypeSerializerSnapshot<EventReadings> {
        public Snapshot() {
            super(ReadingsSerializer::new);
        }
    }
}
