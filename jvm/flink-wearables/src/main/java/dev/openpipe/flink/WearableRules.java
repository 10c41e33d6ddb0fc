package dev.openpipe.flink;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The validation rules of a wearable event, from the one-line spec that
 * flink_jobs/health_sql.py builds out of the settings and openpipe.events:
 * {@code max_bytes=...;max_depth=...;schema_version=1;device_type=wearable;
 * identifiers=device_id,patient_id;metric.<name>=<field>[,<field>];
 * range.<field>=<low>,<high>;exceeds.<metric>=<field>,<field>}.
 */
public final class WearableRules implements Serializable {
    private static final long serialVersionUID = 1L;

    /** orjson refuses documents nested deeper than this, whatever the configuration says. */
    static final int PARSER_DEPTH_LIMIT = 1024;

    final int maxBytes;
    final int maxDepth;
    final String schemaVersion;
    final String deviceType;
    final String[] identifiers;
    /** metric name -> its measurement fields, in the order readings are emitted. */
    final Map<String, String[]> metrics = new LinkedHashMap<>();
    final Map<String, double[]> ranges = new LinkedHashMap<>();
    /** metric name -> {field that must be greater, field it must exceed}. */
    final Map<String, String[]> exceeds = new LinkedHashMap<>();
    /** Every top-level key the parser keeps a value for. */
    final List<String> keys = new ArrayList<>();

    private WearableRules(Map<String, String> spec) {
        maxBytes = Integer.parseInt(require(spec, "max_bytes"));
        maxDepth = Math.min(Integer.parseInt(require(spec, "max_depth")), PARSER_DEPTH_LIMIT);
        schemaVersion = Long.toString(Long.parseLong(require(spec, "schema_version")));
        deviceType = require(spec, "device_type");
        identifiers = require(spec, "identifiers").split(",");
        for (Map.Entry<String, String> entry : spec.entrySet()) {
            String key = entry.getKey();
            String[] parts = entry.getValue().split(",");
            if (key.startsWith("metric.")) {
                metrics.put(key.substring(7), parts);
            } else if (key.startsWith("range.")) {
                ranges.put(key.substring(6), new double[] {Double.parseDouble(parts[0]), Double.parseDouble(parts[1])});
            } else if (key.startsWith("exceeds.")) {
                exceeds.put(key.substring(8), parts);
            }
        }
        for (String[] fields : metrics.values()) {
            for (String field : fields) {
                if (!ranges.containsKey(field)) {
                    throw new IllegalArgumentException("wearable rules: no range for " + field);
                }
            }
        }
        keys.addAll(List.of("schema_version", "event_id", "event_time", "device_type", "metric"));
        keys.addAll(List.of(identifiers));
        keys.addAll(ranges.keySet());
    }

    private static String require(Map<String, String> spec, String key) {
        String value = spec.get(key);
        if (value == null) {
            throw new IllegalArgumentException("wearable rules spec lacks '" + key + "'");
        }
        return value;
    }

    /** Parses a spec string; throws IllegalArgumentException naming what is missing. */
    public static WearableRules parse(String spec) {
        Map<String, String> map = new LinkedHashMap<>();
        for (String item : spec.split(";")) {
            if (item.isBlank()) {
                continue;
            }
            int eq = item.indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException("wearable rules: '" + item + "' is not key=value");
            }
            map.put(item.substring(0, eq).trim(), item.substring(eq + 1).trim());
        }
        return new WearableRules(map);
    }

    /** The largest number of measurement fields of one metric (reading_1 .. reading_n). */
    int readingSlots() {
        int slots = 0;
        for (String[] fields : metrics.values()) {
            slots = Math.max(slots, fields.length);
        }
        return slots;
    }
}
