package dev.openpipe.flink;

import java.io.Serializable;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.table.data.StringData;

/**
 * The window and alert rules of {@link HealthWindows}, read from the spec the job builds
 * from settings (flink_jobs/health_sql.py, {@code health_rules}): entries separated by
 * {@code ;}, a {@code slots=N} entry (reading slots per event) and one {@code rule=} entry per
 * output metric with {@code |}-separated fields: metric, event metric, reading slot (from
 * 0), window length in ms, long window (1) or short (0), alert type, threshold as a double,
 * the threshold exact, strict (1: alert above the threshold; 0: at or above), and the exact
 * averages from which an alert is high and critical.
 */
final class HealthRules implements Serializable {
    private static final long serialVersionUID = 1L;

    /** One output metric: its window, its reading slot and its alert rule. */
    static final class Rule implements Serializable {
        private static final long serialVersionUID = 1L;
        private final String metric;
        private final String alert;
        /** The metric and alert type as Flink's text, made on the TaskManager ({@link #prepare}). */
        transient StringData metricName;
        transient StringData alertType;
        final int slot;
        final boolean longWindow;
        final double threshold;
        final BigDecimal thresholdExact;
        final boolean strict;
        final BigDecimal high;
        final BigDecimal critical;

        Rule(String[] f) {
            metric = f[0];
            slot = Integer.parseInt(f[2]);
            longWindow = f[4].equals("1");
            alert = f[5];
            threshold = Double.parseDouble(f[6]);
            thresholdExact = exact(f[7]);
            strict = f[8].equals("1");
            high = exact(f[9]);
            critical = exact(f[10]);
        }

        boolean breached(BigDecimal sum, long count) {
            int side = sum.compareTo(thresholdExact.multiply(BigDecimal.valueOf(count)));
            return strict ? side > 0 : side >= 0;
        }

        /** 0 critical, 1 high, 2 warning: the index into {@link #severities}. */
        int severity(BigDecimal sum, long count) {
            BigDecimal n = BigDecimal.valueOf(count);
            if (sum.compareTo(critical.multiply(n)) >= 0) {
                return 0;
            }
            return sum.compareTo(high.multiply(n)) >= 0 ? 1 : 2;
        }
    }

    /** The severities as Flink's text, made per operator instance ({@link #prepare}). */
    transient StringData[] severities;

    /** The windows of one event metric and length, and the rules they serve. */
    static final class WindowKind implements Serializable {
        private static final long serialVersionUID = 1L;
        final int index;
        final long sizeMs;
        final List<Rule> rules = new ArrayList<>();
        int[] slots = new int[0];

        WindowKind(int index, long sizeMs) {
            this.index = index;
            this.sizeMs = sizeMs;
        }

        void add(Rule rule) {
            rules.add(rule);
            for (int slot : slots) {
                if (slot == rule.slot) {
                    return;
                }
            }
            slots = java.util.Arrays.copyOf(slots, slots.length + 1);
            slots[slots.length - 1] = rule.slot;
        }
    }

    /** An event metric (heart_rate, ...) and its window kinds. */
    static final class EventMetric implements Serializable {
        private static final long serialVersionUID = 1L;
        private final String text;
        transient StringData name;
        final List<WindowKind> kinds = new ArrayList<>();

        EventMetric(String text) {
            this.text = text;
        }
    }

    /** Exact decimal of a spec value, as Flink's CAST(... AS DECIMAL(24, 6)) rounds it. */
    static BigDecimal exact(String text) {
        return new BigDecimal(text).setScale(6, RoundingMode.HALF_UP);
    }

    final int slots;
    final List<WindowKind> kinds;
    private final EventMetric[] metrics;

    private HealthRules(int slots, List<WindowKind> kinds, EventMetric[] metrics) {
        this.slots = slots;
        this.kinds = kinds;
        this.metrics = metrics;
    }

    /** Makes the text values Flink's rows carry (StringData is not Serializable). */
    void prepare() {
        severities =
                new StringData[] {
                    StringData.fromString("critical"),
                    StringData.fromString("high"),
                    StringData.fromString("warning")
                };
        for (EventMetric metric : metrics) {
            metric.name = StringData.fromString(metric.text);
        }
        for (WindowKind kind : kinds) {
            for (Rule rule : kind.rules) {
                rule.metricName = StringData.fromString(rule.metric);
                rule.alertType = StringData.fromString(rule.alert);
            }
        }
    }

    /** The event metric named {@code name}, or null if no rule reads it. */
    EventMetric eventMetric(StringData name) {
        for (EventMetric metric : metrics) {
            if (metric.name.equals(name)) {
                return metric;
            }
        }
        return null;
    }

    static HealthRules parse(String spec) {
        int slots = -1;
        Map<String, EventMetric> metrics = new LinkedHashMap<>();
        Map<String, WindowKind> kinds = new LinkedHashMap<>();
        for (String entry : spec.split(";")) {
            if (entry.startsWith("slots=")) {
                slots = Integer.parseInt(entry.substring("slots=".length()));
            } else if (entry.startsWith("rule=")) {
                String[] f = entry.substring("rule=".length()).split("\\|", -1);
                if (f.length != 11) {
                    throw new IllegalArgumentException("health rule needs 11 fields: " + entry);
                }
                Rule rule = new Rule(f);
                long sizeMs = Long.parseLong(f[3]);
                if (sizeMs <= 0) {
                    throw new IllegalArgumentException("window length must be positive: " + entry);
                }
                EventMetric metric = metrics.computeIfAbsent(f[1], EventMetric::new);
                WindowKind kind =
                        kinds.computeIfAbsent(
                                f[1] + "|" + sizeMs,
                                k -> {
                                    WindowKind made = new WindowKind(kinds.size(), sizeMs);
                                    metric.kinds.add(made);
                                    return made;
                                });
                kind.add(rule);
            } else {
                throw new IllegalArgumentException("unknown health rules entry: " + entry);
            }
        }
        if (slots <= 0) {
            throw new IllegalArgumentException("health rules need slots=N (N > 0): " + spec);
        }
        for (WindowKind kind : kinds.values()) {
            for (int slot : kind.slots) {
                if (slot >= slots) {
                    throw new IllegalArgumentException("reading slot " + slot + " >= slots=" + slots);
                }
            }
        }
        return new HealthRules(
                slots, new ArrayList<>(kinds.values()), metrics.values().toArray(new EventMetric[0]));
    }
}
