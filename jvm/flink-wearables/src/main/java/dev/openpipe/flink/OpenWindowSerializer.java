package dev.openpipe.flink;

import java.io.IOException;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.table.data.binary.BinaryStringData;

/**
 * Serializer of an {@link OpenWindow}: its patient_id (its UTF-8 bytes) and each reading
 * slot's readings ({@link ReadingsSerializer}'s format).
 * {@code copy} is deep: the heap state backend copies an entry before it is changed while
 * a checkpoint is being written.
 */
public final class OpenWindowSerializer extends TypeSerializerSingleton<OpenWindow> {
    private static final long serialVersionUID = 1L;
    private static final ReadingsSerializer READINGS = new ReadingsSerializer();

    @Override
    public boolean isImmutableType() {
        return false;
    }

    @Override
    public OpenWindow createInstance() {
        return new OpenWindow(0);
    }

    @Override
    public OpenWindow copy(OpenWindow from) {
        return from.copy();
    }

    @Override
    public OpenWindow copy(OpenWindow from, OpenWindow reuse) {
        return from.copy();
    }

    @Override
    public int getLength() {
        return -1;
    }

    @Override
    public void serialize(OpenWindow window, DataOutputView target) throws IOException {
        target.writeBoolean(window.patient != null);
        if (window.patient != null) {
            byte[] bytes = window.patient.toBytes();
            target.writeInt(bytes.length);
            target.write(bytes);
        }
        target.writeInt(window.slots.length);
        for (EventReadings readings : window.slots) {
            target.writeBoolean(readings != null);
            if (readings != null) {
                READINGS.serialize(readings, target);
            }
        }
    }

    @Override
    public OpenWindow deserialize(DataInputView source) throws IOException {
        BinaryStringData patient = source.readBoolean() ? readText(source) : null;
        OpenWindow window = new OpenWindow(source.readInt());
        window.patient = patient;
        for (int s = 0; s < window.slots.length; s++) {
            if (source.readBoolean()) {
                window.slots[s] = READINGS.deserialize(source);
            }
        }
        return window;
    }

    private static BinaryStringData readText(DataInputView source) throws IOException {
        byte[] bytes = new byte[source.readInt()];
        source.readFully(bytes);
        return BinaryStringData.fromBytes(bytes);
    }

    @Override
    public OpenWindow deserialize(OpenWindow reuse, DataInputView source) throws IOException {
        return deserialize(source);
    }

    @Override
    public void copy(DataInputView source, DataOutputView target) throws IOException {
        serialize(deserialize(source), target);
    }

    @Override
    public TypeSerializerSnapshot<OpenWindow> snapshotConfiguration() {
        return new Snapshot();
    }

    /** Serializer snapshot; the format has one version. */
    public static final class Snapshot extends SimpleTypeSerializerSnapshot<OpenWindow> {
        public Snapshot() {
            super(OpenWindowSerializer::new);
        }
    }
}
