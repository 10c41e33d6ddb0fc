package dev.openpipe.flink;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.Arrays;

/**
 * A window's readings of one reading slot, by event_id: each event_id counted once (its
 * smallest reading if duplicates differ), and the window's count, exact sum, min and max.
 * The event_id comes as its UUID's 128 bits (the format decodes them; every valid event has
 * a UUID), so one event is one event whatever the case of its hex digits, as the sinks count
 * it (they dedupe on the lowercased id). The sum is of DECIMAL(24, 6) values, each reading
 * rounded as Flink's CAST(DOUBLE AS DECIMAL) rounds it, so a window's average at a
 * threshold is judged the same whatever the order of arrival.
 *
 * <p>The entries are the event_id's 128 bits as two longs next to its reading in flat
 * arrays, found by a scan while the window holds few readings and by an open-addressing
 * index beyond. A window of a device then costs a few arrays on the heap instead of a map
 * node, a String and a boxed Double per reading, which the garbage collector had to trace.
 */
public final class EventReadings implements java.io.Serializable {
    private static final long serialVersionUID = 3L;
    /** Up to this many entries, a scan finds an event_id; beyond, the index. */
    static final int SCAN_LIMIT = 16;

    /** Entry i's event_id is ids[2i] (high bits), ids[2i + 1] (low bits). */
    long[] ids = new long[0];
    double[] readings = new double[0];
    int size;
    /** Open addressing, entry index + 1 per slot (0 = empty); null up to SCAN_LIMIT. */
    int[] index;

    /** Keeps the smaller reading when the event_id is already there. */
    public void put(long high, long low, double reading) {
        int found = find(high, low);
        if (found >= 0) {
            readings[found] = Math.min(readings[found], reading);
            return;
        }
        if (size == readings.length) {
            int capacity = Math.max(4, size * 2);
            ids = Arrays.copyOf(ids, 2 * capacity);
            readings = Arrays.copyOf(readings, capacity);
        }
        ids[2 * size] = high;
        ids[2 * size + 1] = low;
        readings[size] = reading;
        size++;
        if (index != null && 2 * size <= index.length) {
            insert(size - 1);
        } else if (size > SCAN_LIMIT) {
            rebuildIndex();
        }
    }

    private int find(long high, long low) {
        if (index == null) {
            for (int i = 0; i < size; i++) {
                if (ids[2 * i] == high && ids[2 * i + 1] == low) {
                    return i;
                }
            }
            return -1;
        }
        int mask = index.length - 1;
        for (int slot = hash(high, low) & mask; ; slot = (slot + 1) & mask) {
            int entry = index[slot] - 1;
            if (entry < 0) {
                return -1;
            }
            if (ids[2 * entry] == high && ids[2 * entry + 1] == low) {
                return entry;
            }
        }
    }

    private void rebuildIndex() {
        index = new int[Integer.highestOneBit(size) * 4];
        for (int i = 0; i < size; i++) {
            insert(i);
        }
    }

    private void insert(int entry) {
        int mask = index.length - 1;
        int slot = hash(ids[2 * entry], ids[2 * entry + 1]) & mask;
        while (index[slot] != 0) {
            slot = (slot + 1) & mask;
        }
        index[slot] = entry + 1;
    }

    private static int hash(long high, long low) {
        long h = (high ^ Long.rotateLeft(low, 29)) * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 32));
    }

    /** A copy sharing nothing mutable with this one. */
    EventReadings copy() {
        EventReadings copy = new EventReadings();
        copy.ids = Arrays.copyOf(ids, 2 * size);
        copy.readings = Arrays.copyOf(readings, size);
        copy.size = size;
        copy.index = index == null ? null : index.clone();
        if (copy.index != null && 2 * size > copy.index.length) {
            copy.rebuildIndex();
        }
        return copy;
    }

    /** The number of distinct event_ids. */
    public int size() {
        return size;
    }

    /** The smallest reading (+infinity when empty). */
    double min() {
        double min = Double.POSITIVE_INFINITY;
        for (int i = 0; i < size; i++) {
            min = Math.min(min, readings[i]);
        }
        return min;
    }

    /** The largest reading (-infinity when empty). */
    double max() {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < size; i++) {
            max = Math.max(max, readings[i]);
        }
        return max;
    }

    /** The exact DECIMAL(24, 6) sum: in millionths while every reading has a short form. */
    public BigDecimal sum() {
        long millionths = 0;
        for (int i = 0; i < size; i++) {
            long units = millionths(readings[i]);
            if (units == NOT_SHORT) {
                return decimalSum();
            }
            try {
                millionths = Math.addExact(millionths, units);
            } catch (ArithmeticException overflow) {
                return decimalSum();
            }
        }
        return BigDecimal.valueOf(millionths, 6);
    }

    private static final long NOT_SHORT = Long.MIN_VALUE;

    /**
     * The reading rounded to 6 decimal places HALF_UP, as a count m of millionths, when the
     * double closest to m / 10^6 is the reading. Then the decimal Java prints for it (which
     * parses back to it) is within one ulp of m / 10^6, and below 10^9 an ulp is under
     * 1.2e-7, so it rounds to m as BigDecimal.valueOf(reading).setScale(6, HALF_UP) does.
     * NOT_SHORT otherwise (more decimal places, 10^9 or more, NaN); decimalSum decides.
     */
    static long millionths(double reading) {
        if (!(Math.abs(reading) < 1e9)) {
            return NOT_SHORT;
        }
        long units = Math.round(reading * 1e6);
        return units / 1e6 == reading ? units : NOT_SHORT;
    }

    /** The sum as Flink's CAST(DOUBLE AS DECIMAL(24, 6)) rounds each reading. */
    private BigDecimal decimalSum() {
        BigDecimal sum = BigDecimal.ZERO.setScale(6);
        for (int i = 0; i < size; i++) {
            sum = sum.add(BigDecimal.valueOf(readings[i]).setScale(6, RoundingMode.HALF_UP));
        }
        return sum;
    }
}
