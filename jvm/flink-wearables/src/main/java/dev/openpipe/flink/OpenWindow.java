package dev.openpipe.flink;

import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.binary.BinaryStringData;

/**
 * One open window of a device in {@link HealthWindows}: its patient_id and the readings of
 * each reading slot (its kind and start are in its state key).
 */
public final class OpenWindow {
    /**
     * The largest patient_id of the window's readings, as Flink SQL's MAX orders text: by its
     * UTF-8 bytes, unsigned, which is code point order.
     */
    BinaryStringData patient;

    final EventReadings[] slots;

    public OpenWindow(int slots) {
        this.slots = new EventReadings[slots];
    }

    /** The readings of a slot, made empty on first use. */
    public EventReadings readings(int slot) {
        EventReadings readings = slots[slot];
        if (readings == null) {
            readings = new EventReadings();
            slots[slot] = readings;
        }
        return readings;
    }

    /** Keeps {@code candidate} if it is larger; a copy, as the input row is reused. */
    public void offerPatient(StringData candidate) {
        if (candidate == null) {
            return;
        }
        BinaryStringData text = (BinaryStringData) candidate;
        if (patient == null || text.compareTo(patient) > 0) {
            patient = text.copy();
        }
    }

    /** A copy sharing nothing mutable with this one (the patient_id text is never changed). */
    OpenWindow copy() {
        OpenWindow copy = new OpenWindow(slots.length);
        copy.patient = patient;
        for (int i = 0; i < slots.length; i++) {
            copy.slots[i] = slots[i] == null ? null : slots[i].copy();
        }
        return copy;
    }
}
