package dev.openpipe.flink;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.table.data.StringData;

/** A device's open windows in {@link HealthWindows}: usually one or two per event metric. */
final class OpenWindows {
    /** One window: its kind (event metric and length), start, patient and readings per slot. */
    static final class Window {
        final int kind;
        final long start;
        /** The largest patient_id of the window's readings, as Flink SQL's MAX orders text. */
        String patient;
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

        void offerPatient(StringData candidate) {
            if (candidate == null) {
                return;
            }
            String text = candidate.toString();
            if (patient == null || compareCodePoints(text, patient) > 0) {
                patient = text;
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

    Window find(int kind, long start) {
        for (Window window : windows) {
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

    /** Code point order, which is the byte order of UTF-8 that Flink SQL compares text in. */
    static int compareCodePoints(String a, String b) {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int x = a.codePointAt(i);
            int y = b.codePointAt(j);
            if (x != y) {
                return Integer.compare(x, y);
            }
            i += Character.charCount(x);
            j += Character.charCount(y);
        }
        return Integer.compare(a.length() - i, b.length() - j);
    }
}
