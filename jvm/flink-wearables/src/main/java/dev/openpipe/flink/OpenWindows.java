package dev.openpipe.flink;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.binary.BinaryStringData;

/** A device's open windows in {@link HealthWindows}: usually one or two per event metric. */
final class OpenWindows {
    /** One window: its kind (event metric and length), start, patient and readings per slot. */
    static final class Window {
        final int kind;
        final long start;
        /**
         * The largest patient_id of the window's readings, as Flink SQL's MAX orders text: by
         * its UTF-8 bytes, unsigned, which is code point order.
         */
        BinaryStringData patient;
        final EventReadings[] slots;

        Window(int kind, long start, int slots) {
            this.kind = kind;
            this.start = start;
            this.slots = new EventReadings[slots];
        }

        EventReadings readings(int slot) {
            EventReadings readings = slots[slot];
            if (readings == null) {
                readings = new EventReadings();
                slots[slot] = readings;
            }
            return readings;
        }

        /** Keeps {@code candidate} if it is larger; a copy, as the input row is reused. */
        void offerPatient(StringData candidate) {
            if (candidate == null) {
                return;
            }
            BinaryStringData text = (BinaryStringData) candidate;
            if (patient == null || text.compareTo(patient) > 0) {
                patient = text.copy();
            }
        }

        Window copy() {
            Window copy = new Window(kind, start, slots.length);
            copy.patient = patient;
            for (int i = 0; i < slots.length; i++) {
                copy.slots[i] = slots[i] == null ? null : slots[i].copy();
            }
            return copy;
        }
    }

    List<Window> windows = new ArrayList<>(2);

    /** The window of this kind and start, if open; the newest first, where readings go. */
    Window find(int kind, long start) {
        for (int i = windows.size() - 1; i >= 0; i--) {
            Window window = windows.get(i);
            if (window.kind == kind && window.start == start) {
                return window;
            }
        }
        return null;
    }

    Window add(int kind, long start, int slots) {
        Window window = new Window(kind, start, slots);
        windows.add(window);
        return window;
    }

    OpenWindows copy() {
        OpenWindows copy = new OpenWindows();
        for (Window window : windows) {
            copy.windows.add(window.copy());
        }
        return copy;
    }
}
