package dev.openpipe.flink;

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * One pass over a Kafka value: strict JSON as orjson reads it (UTF-8, no lone surrogates,
 * no control characters in strings, finite numbers, duplicate keys last-wins, nesting
 * limit), then the wearable rules of openpipe.events. Only the accept/reject verdict and
 * the fields the job needs come out; the sinks name the fault. Not thread-safe: one
 * instance per operator.
 */
public final class WearableParser {

    /** What one value decodes to. {@code eventMs} is set whenever event_time parses. */
    public static final class Decoded {
        public boolean valid;
        public boolean hasTime;
        public long eventMs;
        public String eventId;
        public String deviceId;
        public String patientId;
        public String metric;
        public final double[] readings;

        Decoded(int slots) {
            readings = new double[slots];
        }
    }

    private static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;
        static final Invalid INSTANCE = new Invalid();

        private Invalid() {
            super(null, null, false, false);
        }
    }

    private static final int T_STRING = 1;
    private static final int T_NUMBER = 2;
    private static final int T_OTHER = 3; // true, false, object, array
    private static final int T_NULL = 4;

    /** Code points Python's str.isspace() accepts: identifiers made only of these are blank. */
    private static final String PY_SPACE =
            "\t\n\u000b\u000c\r\u001c\u001d\u001e\u001f \u0085\u00a0\u1680\u2000\u2001\u2002"
                    + "\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

    private final WearableRules rules;
    private final Map<String, Integer> slotOfKey = new HashMap<>();
    private final int[] kind;
    private final Object[] value; // String for strings, String (literal text) for numbers
    private final boolean[] integral;
    private final Decoded out;

    private byte[] b;
    private int pos;
    private int end;

    public WearableParser(WearableRules rules) {
        this.rules = rules;
        for (String key : rules.keys) {
            slotOfKey.putIfAbsent(key, slotOfKey.size());
        }
        kind = new int[slotOfKey.size()];
        value = new Object[slotOfKey.size()];
        integral = new boolean[slotOfKey.size()];
        out = new Decoded(rules.readingSlots());
    }

    /** Decodes one value (null for a tombstone). The returned object is reused per call. */
    public Decoded decode(byte[] message) {
        Decoded d = out;
        d.valid = false;
        d.hasTime = false;
        d.eventId = d.deviceId = d.patientId = d.metric = null;
        java.util.Arrays.fill(d.readings, Double.NaN);
        java.util.Arrays.fill(kind, 0);
        java.util.Arrays.fill(value, null);
        if (message == null) {
            return d;
        }
        b = message;
        pos = 0;
        end = message.length;
        try {
            skipWs();
            if (pos >= end || b[pos] != '{') {
                return d; // not an object (or not JSON): neither valid nor timed
            }
            parseObject(1, true);
            skipWs();
            if (pos != end) {
                return d; // content after the document
            }
        } catch (Invalid | ArrayIndexOutOfBoundsException e) {
            return d;
        } finally {
            b = null;
        }
        int timeSlot = slotOfKey.get("event_time");
        if (kind[timeSlot] == T_STRING) {
            long[] ms = EventTime.epochMillis((String) value[timeSlot]);
            if (ms != null) {
                d.hasTime = true;
                d.eventMs = ms[0];
            }
        }
        d.valid = message.length <= rules.maxBytes && d.hasTime && judge(d);
        return d;
    }

    private boolean judge(Decoded d) {
        int version = slotOfKey.get("schema_version");
        if (kind[version] != T_NUMBER || !integral[version] || !rules.schemaVersion.equals(value[version])) {
            return false;
        }
        String eventId = string("event_id");
        if (eventId == null || !isUuid(eventId)) {
            return false;
        }
        if (!rules.deviceType.equals(string("device_type"))) {
            return false;
        }
        for (String name : rules.identifiers) {
            String id = string(name);
            // Blank ids are missing; NUL cannot be stored in PostgreSQL text, so the sinks refuse it.
            if (id == null || isBlank(id) || id.indexOf('\0') >= 0) {
                return false;
            }
        }
        String metric = string("metric");
        String[] fields = metric == null ? null : rules.metrics.get(metric);
        if (fields == null) {
            return false;
        }
        for (int i = 0; i < fields.length; i++) {
            int slot = slotOfKey.get(fields[i]);
            if (kind[slot] != T_NUMBER) {
                return false;
            }
            double reading = Double.parseDouble((String) value[slot]);
            double[] range = rules.ranges.get(fields[i]);
            if (!(reading >= range[0] && reading <= range[1])) {
                return false;
            }
            d.readings[i] = reading;
        }
        String[] pair = rules.exceeds.get(metric);
        if (pair != null) {
            double high = Double.parseDouble((String) value[slotOfKey.get(pair[0])]);
            double low = Double.parseDouble((String) value[slotOfKey.get(pair[1])]);
            if (!(high > low)) {
                return false;
            }
        }
        d.eventId = eventId;
        d.deviceId = string(rules.identifiers[0]);
        d.patientId = rules.identifiers.length > 1 ? string(rules.identifiers[1]) : null;
        d.metric = metric;
        return true;
    }

    private String string(String key) {
        int slot = slotOfKey.get(key);
        return kind[slot] == T_STRING ? (String) value[slot] : null;
    }

    private static boolean isBlank(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (PY_SPACE.indexOf(s.charAt(i)) < 0) {
                return false;
            }
        }
        return true;
    }

    private static boolean isUuid(String s) {
        if (s.length() != 36) {
            return false;
        }
        for (int i = 0; i < 36; i++) {
            char c = s.charAt(i);
            boolean dash = i == 8 || i == 13 || i == 18 || i == 23;
            boolean hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            if (dash ? c != '-' : !hex) {
                return false;
            }
        }
        return true;
    }

    // --- strict JSON ------------------------------------------------------------------

    private void skipWs() {
        while (pos < end) {
            byte c = b[pos];
            if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
                pos++;
            } else {
                return;
            }
        }
    }

    private void expect(char c) throws Invalid {
        if (pos >= end || b[pos] != c) {
            throw Invalid.INSTANCE;
        }
        pos++;
    }

    private void parseObject(int depth, boolean top) throws Invalid {
        if (depth > rules.maxDepth) {
            throw Invalid.INSTANCE;
        }
        expect('{');
        skipWs();
        if (pos < end && b[pos] == '}') {
            pos++;
            return;
        }
        while (true) {
            skipWs();
            String key = parseString(true);
            skipWs();
            expect(':');
            skipWs();
            Integer slot = top ? slotOfKey.get(key) : null;
            if (slot == null) {
                parseValue(depth, -1);
            } else {
                parseValue(depth, slot);
            }
            skipWs();
            if (pos >= end) {
                throw Invalid.INSTANCE;
            }
            byte c = b[pos++];
            if (c == '}') {
                return;
            }
            if (c != ',') {
                throw Invalid.INSTANCE;
            }
        }
    }

    private void parseArray(int depth) throws Invalid {
        if (depth > rules.maxDepth) {
            throw Invalid.INSTANCE;
        }
        expect('[');
        skipWs();
        if (pos < end && b[pos] == ']') {
            pos++;
            return;
        }
        while (true) {
            skipWs();
            parseValue(depth, -1);
            skipWs();
            if (pos >= end) {
                throw Invalid.INSTANCE;
            }
            byte c = b[pos++];
            if (c == ']') {
                return;
            }
            if (c != ',') {
                throw Invalid.INSTANCE;
            }
        }
    }

    /** A value inside a container at `depth`; `slot` >= 0 keeps it (last duplicate wins). */
    private void parseValue(int depth, int slot) throws Invalid {
        if (pos >= end) {
            throw Invalid.INSTANCE;
        }
        byte c = b[pos];
        int k;
        Object v = null;
        boolean whole = false;
        switch (c) {
            case '"':
                v = parseString(slot >= 0);
                k = T_STRING;
                break;
            case '{':
                parseObject(depth + 1, false);
                k = T_OTHER;
                break;
            case '[':
                parseArray(depth + 1);
                k = T_OTHER;
                break;
            case 't':
                literal("true");
                k = T_OTHER;
                break;
            case 'f':
                literal("false");
                k = T_OTHER;
                break;
            case 'n':
                literal("null");
                k = T_NULL;
                break;
            default:
                int start = pos;
                whole = parseNumber();
                if (slot >= 0) {
                    v = new String(b, start, pos - start, StandardCharsets.ISO_8859_1);
                }
                k = T_NUMBER;
        }
        if (slot >= 0) {
            kind[slot] = k;
            value[slot] = v;
            integral[slot] = whole;
        }
    }

    private void literal(String word) throws Invalid {
        int n = word.length();
        if (pos + n > end) {
            throw Invalid.INSTANCE;
        }
        for (int i = 0; i < n; i++) {
            if (b[pos + i] != word.charAt(i)) {
                throw Invalid.INSTANCE;
            }
        }
        pos += n;
    }

    /** RFC 8259 number; true when it is an integer literal. Refuses what overflows a double. */
    private boolean parseNumber() throws Invalid {
        int start = pos;
        if (pos < end && b[pos] == '-') {
            pos++;
        }
        int intStart = pos;
        if (pos >= end) {
            throw Invalid.INSTANCE;
        }
        if (b[pos] == '0') {
            pos++;
        } else if (b[pos] >= '1' && b[pos] <= '9') {
            while (pos < end && b[pos] >= '0' && b[pos] <= '9') {
                pos++;
            }
        } else {
            throw Invalid.INSTANCE;
        }
        int intDigits = pos - intStart;
        boolean whole = true;
        if (pos < end && b[pos] == '.') {
            pos++;
            whole = false;
            int digits = pos;
            while (pos < end && b[pos] >= '0' && b[pos] <= '9') {
                pos++;
            }
            if (pos == digits) {
                throw Invalid.INSTANCE;
            }
        }
        boolean exponent = false;
        if (pos < end && (b[pos] == 'e' || b[pos] == 'E')) {
            pos++;
            whole = false;
            exponent = true;
            if (pos < end && (b[pos] == '+' || b[pos] == '-')) {
                pos++;
            }
            int digits = pos;
            while (pos < end && b[pos] >= '0' && b[pos] <= '9') {
                pos++;
            }
            if (pos == digits) {
                throw Invalid.INSTANCE;
            }
        }
        if (exponent || intDigits > 300) {
            String text = new String(b, start, pos - start, StandardCharsets.ISO_8859_1);
            if (Double.isInfinite(Double.parseDouble(text))) {
                throw Invalid.INSTANCE; // orjson: "number is infinity when parsed as double"
            }
        }
        if (whole && intDigits > 18) {
            // orjson keeps integers in [-2^63, 2^64 - 1] as int, others become floats.
            String text = new String(b, start, pos - start, StandardCharsets.ISO_8859_1);
            BigDecimal n = new BigDecimal(text);
            whole = n.compareTo(MIN_INT) >= 0 && n.compareTo(MAX_UINT) <= 0;
        }
        return whole;
    }

    private static final BigDecimal MIN_INT = new BigDecimal("-9223372036854775808");
    private static final BigDecimal MAX_UINT = new BigDecimal("18446744073709551615");

    /** A JSON string at pos; decoded when `keep`, else only checked (returns null). */
    private String parseString(boolean keep) throws Invalid {
        expect('"');
        int start = pos;
        boolean plain = true; // ASCII without escapes: decode by copying
        while (true) {
            if (pos >= end) {
                throw Invalid.INSTANCE;
            }
            int c = b[pos] & 0xff;
            if (c == '"') {
                break;
            }
            if (c < 0x20) {
                throw Invalid.INSTANCE;
            }
            if (c == '\\') {
                plain = false;
                pos++;
                if (pos >= end) {
                    throw Invalid.INSTANCE;
                }
                int e = b[pos++];
                if (e == 'u') {
                    int unit = hex4();
                    if (unit >= 0xDC00 && unit <= 0xDFFF) {
                        throw Invalid.INSTANCE; // a low surrogate without its high half
                    }
                    if (unit >= 0xD800 && unit <= 0xDBFF) {
                        if (pos + 1 >= end || b[pos] != '\\' || b[pos + 1] != 'u') {
                            throw Invalid.INSTANCE; // a lone high surrogate
                        }
                        pos += 2;
                        int low = hex4();
                        if (low < 0xDC00 || low > 0xDFFF) {
                            throw Invalid.INSTANCE;
                        }
                    }
                } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n'
                        && e != 'r' && e != 't') {
                    throw Invalid.INSTANCE;
                }
            } else if (c < 0x80) {
                pos++;
            } else {
                plain = false;
                utf8(c);
            }
        }
        int stop = pos;
        pos++; // closing quote
        if (!keep) {
            return null;
        }
        if (plain) {
            return new String(b, start, stop - start, StandardCharsets.ISO_8859_1);
        }
        return unescape(start, stop);
    }

    private int hex4() throws Invalid {
        if (pos + 4 > end) {
            throw Invalid.INSTANCE;
        }
        int v = 0;
        for (int i = 0; i < 4; i++) {
            int d = Character.digit(b[pos++], 16);
            if (d < 0) {
                throw Invalid.INSTANCE;
            }
            v = v * 16 + d;
        }
        return v;
    }

    /** Checks one multi-byte UTF-8 sequence at pos (lead byte `c`) the way Python decodes. */
    private void utf8(int c) throws Invalid {
        int need;
        int min;
        int max = 0xBF;
        int second = pos + 1 < end ? b[pos + 1] & 0xff : -1;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            min = c == 0xE0 ? 0xA0 : 0x80;
            max = c == 0xED ? 0x9F : 0xBF; // no encoded surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            min = c == 0xF0 ? 0x90 : 0x80;
            max = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            throw Invalid.INSTANCE;
        }
        if (second < min || second > max) {
            throw Invalid.INSTANCE;
        }
        for (int i = 2; i <= need; i++) {
            if (pos + i >= end || (b[pos + i] & 0xC0) != 0x80) {
                throw Invalid.INSTANCE;
            }
        }
        pos += need + 1;
    }

    private String unescape(int start, int stop) {
        StringBuilder s = new StringBuilder(stop - start);
        int i = start;
        while (i < stop) {
            int c = b[i] & 0xff;
            if (c == '\\') {
                int e = b[i + 1];
                i += 2;
                switch (e) {
                    case 'b': s.append('\b'); break;
                    case 'f': s.append('\f'); break;
                    case 'n': s.append('\n'); break;
                    case 'r': s.append('\r'); break;
                    case 't': s.append('\t'); break;
                    case 'u':
                        s.append((char) Integer.parseInt(new String(b, i, 4, StandardCharsets.ISO_8859_1), 16));
                        i += 4;
                        break;
                    default: s.append((char) e);
                }
            } else {
                int run = i;
                while (i < stop && b[i] != '\\') {
                    i++;
                }
                s.append(new String(b, run, i - run, StandardCharsets.UTF_8));
            }
        }
        return s.toString();
    }
}
