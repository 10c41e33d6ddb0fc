package dev.openpipe.flink;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.math.BigDecimal;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.binary.BinaryStringData;

/**
 * One pass over a Kafka value: strict JSON as orjson reads it (UTF-8, no lone surrogates,
 * no control characters in strings, finite numbers, duplicate keys last-wins, nesting
 * limit), then the wearable rules of openpipe.events. Only the accept/reject verdict and
 * the fields the job needs come out; the sinks name the fault. Not thread-safe: one
 * instance per operator.
 *
 * <p>Byte level: a kept value is remembered as its place in the message; keys, ids,
 * metric and event_time are compared and the readings converted in place, and the strings
 * the job emits are copied out as UTF-8 {@link StringData}. Only a string with escapes or
 * non-ASCII characters is decoded to a Java String (then judged on that), so a plain event
 * costs no String, no map lookup and no UTF-8 re-encoding downstream.
 */
public final class WearableParser {

    /** What one value decodes to: {@code eventMs} whenever event_time parses, the strings if valid. */
    public static final class Decoded {
        public boolean valid;
        public boolean hasTime;
        public long eventMs;
        /** The event_id UUID's 128 bits (either case of hex digit gives the same), if valid. */
        public long eventIdHigh;
        public long eventIdLow;
        public StringData deviceId;
        public StringData patientId;
        public StringData metric;
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
    /** Powers of ten a double holds exactly (Clinger's fast path for decimal readings). */
    private static final double[] POW10 = new double[23];

    static {
        POW10[0] = 1;
        for (int i = 1; i < POW10.length; i++) {
            POW10[i] = POW10[i - 1] * 10;
        }
    }

    private final WearableRules rules;
    /** Kept top-level keys: slot -> key (ASCII), and the same as a map for decoded keys. */
    private final byte[][] keyOfSlot;
    private final Map<String, Integer> slotOfKey = new HashMap<>();
    private final int schemaVersionSlot;
    private final int eventIdSlot;
    private final int eventTimeSlot;
    private final int deviceTypeSlot;
    private final int metricSlot;
    private final int[] identifierSlots;
    private final byte[] schemaVersion;
    private final byte[] deviceType;
    /** Per metric, in rule order: name, the name as emitted, field slots, ranges, exceeds. */
    private final byte[][] metricNames;
    private final StringData[] metricData;
    private final int[][] fieldSlots;
    private final double[][] minimum;
    private final double[][] maximum;
    /** Indexes into the metric's fields of {greater, smaller}, or null. */
    private final int[][] exceeds;

    /** Per kept slot: kind, where its text lies in the message (a string's inside the quotes). */
    private final int[] kind;
    private final int[] start;
    private final int[] stop;
    private final boolean[] integral;
    /**
     * The slot the k-th key of the top-level object had when last found: the guess tried
     * first. A producer writes its keys in one order, so the guess is nearly always right and
     * a key costs one comparison instead of a scan of every slot; a wrong one costs one more.
     */
    private final int[] slotAt = new int[32];
    /** A string slot with escapes or non-ASCII characters, decoded; null when plain. */
    private final String[] decoded;
    private final Decoded out;

    private byte[] b;
    private int pos;
    private int end;
    /** Set by parseString: whether the last string was ASCII without escapes. */
    private boolean plain;

    public WearableParser(WearableRules rules) {
        this.rules = rules;
        for (String key : rules.keys) {
            slotOfKey.putIfAbsent(key, slotOfKey.size());
        }
        int slots = slotOfKey.size();
        keyOfSlot = new byte[slots][];
        slotOfKey.forEach((key, slot) -> keyOfSlot[slot] = ascii(key));
        schemaVersionSlot = slotOfKey.get("schema_version");
        eventIdSlot = slotOfKey.get("event_id");
        eventTimeSlot = slotOfKey.get("event_time");
        deviceTypeSlot = slotOfKey.get("device_type");
        metricSlot = slotOfKey.get("metric");
        identifierSlots = Arrays.stream(rules.identifiers).mapToInt(slotOfKey::get).toArray();
        schemaVersion = ascii(rules.schemaVersion);
        deviceType = ascii(rules.deviceType);
        int metrics = rules.metrics.size();
        metricNames = new byte[metrics][];
        metricData = new StringData[metrics];
        fieldSlots = new int[metrics][];
        minimum = new double[metrics][];
        maximum = new double[metrics][];
        exceeds = new int[metrics][];
        int m = 0;
        for (Map.Entry<String, String[]> metric : rules.metrics.entrySet()) {
            String[] fields = metric.getValue();
            metricNames[m] = ascii(metric.getKey());
            metricData[m] = BinaryStringData.fromBytes(metricNames[m]);
            fieldSlots[m] = new int[fields.length];
            minimum[m] = new double[fields.length];
            maximum[m] = new double[fields.length];
            for (int i = 0; i < fields.length; i++) {
                fieldSlots[m][i] = slotOfKey.get(fields[i]);
                minimum[m][i] = rules.ranges.get(fields[i])[0];
                maximum[m][i] = rules.ranges.get(fields[i])[1];
            }
            String[] pair = rules.exceeds.get(metric.getKey());
            if (pair != null) {
                List<String> names = List.of(fields);
                exceeds[m] = new int[] {names.indexOf(pair[0]), names.indexOf(pair[1])};
                if (exceeds[m][0] < 0 || exceeds[m][1] < 0) {
                    throw new IllegalArgumentException(
                            "wearable rules: exceeds." + metric.getKey() + " names a field it lacks");
                }
            }
            m++;
        }
        kind = new int[slots];
        start = new int[slots];
        stop = new int[slots];
        integral = new boolean[slots];
        decoded = new String[slots];
        out = new Decoded(rules.readingSlots());
    }

    private static byte[] ascii(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) >= 0x80) {
                throw new IllegalArgumentException("wearable rules: '" + s + "' is not ASCII");
            }
        }
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    /** Decodes one value (null for a tombstone). The returned object is reused per call. */
    public Decoded decode(byte[] message) {
        Decoded d = out;
        d.valid = false;
        d.hasTime = false;
        d.deviceId = d.patientId = d.metric = null;
        Arrays.fill(d.readings, Double.NaN);
        Arrays.fill(kind, 0);
        if (message == null) {
            return d;
        }
        b = message;
        pos = 0;
        end = message.length;
        try {
            if (!parseDocument()) {
                return d; // not an object, not JSON or content after it: neither valid nor timed
            }
            if (kind[eventTimeSlot] == T_STRING) {
                long ms = decoded[eventTimeSlot] == null
                        ? EventTime.epochMillis(b, start[eventTimeSlot], stop[eventTimeSlot])
                        : EventTime.epochMillis(decoded[eventTimeSlot]);
                if (ms != EventTime.INVALID) {
                    d.hasTime = true;
                    d.eventMs = ms;
                }
            }
            d.valid = message.length <= rules.maxBytes && d.hasTime && judge(d);
            return d;
        } finally {
            b = null;
        }
    }

    private boolean parseDocument() {
        try {
            skipWs();
            if (pos >= end || b[pos] != '{') {
                return false;
            }
            parseObject(1, true);
            skipWs();
            return pos == end;
        } catch (Invalid | ArrayIndexOutOfBoundsException e) {
            return false;
        }
    }

    private boolean judge(Decoded d) {
        int version = schemaVersionSlot;
        if (kind[version] != T_NUMBER || !integral[version] || !bytesEqual(version, schemaVersion)) {
            return false;
        }
        if (kind[eventIdSlot] != T_STRING || !uuid(eventIdSlot, d)) {
            return false;
        }
        if (!stringEquals(deviceTypeSlot, deviceType)) {
            return false;
        }
        for (int slot : identifierSlots) {
            // Blank ids are missing; NUL cannot be stored in PostgreSQL text, so the sinks refuse it.
            if (kind[slot] != T_STRING || blankOrNul(slot)) {
                return false;
            }
        }
        int m = 0;
        while (m < metricNames.length && !stringEquals(metricSlot, metricNames[m])) {
            m++;
        }
        if (m == metricNames.length) {
            return false;
        }
        int[] fields = fieldSlots[m];
        for (int i = 0; i < fields.length; i++) {
            if (kind[fields[i]] != T_NUMBER) {
                return false;
            }
            double reading = number(fields[i]);
            if (!(reading >= minimum[m][i] && reading <= maximum[m][i])) {
                return false;
            }
            d.readings[i] = reading;
        }
        int[] pair = exceeds[m];
        if (pair != null && !(d.readings[pair[0]] > d.readings[pair[1]])) {
            return false;
        }
        d.deviceId = stringData(identifierSlots[0]);
        d.patientId = identifierSlots.length > 1 ? stringData(identifierSlots[1]) : null;
        d.metric = metricData[m];
        return true;
    }

    /** Whether the slot's text in the message (a number, or a plain string) is `expected`. */
    private boolean bytesEqual(int slot, byte[] expected) {
        return Arrays.equals(b, start[slot], stop[slot], expected, 0, expected.length);
    }

    /** Whether the slot holds a string equal to the ASCII `expected`. */
    private boolean stringEquals(int slot, byte[] expected) {
        if (kind[slot] != T_STRING) {
            return false;
        }
        String s = decoded[slot];
        return s == null
                ? bytesEqual(slot, expected)
                : s.equals(new String(expected, StandardCharsets.US_ASCII));
    }

    private StringData stringData(int slot) {
        String s = decoded[slot];
        return s == null
                ? BinaryStringData.fromBytes(Arrays.copyOfRange(b, start[slot], stop[slot]))
                : StringData.fromString(s);
    }

    private boolean blankOrNul(int slot) {
        String s = decoded[slot];
        if (s != null) {
            return isBlank(s) || s.indexOf('\0') >= 0;
        }
        // Plain: ASCII without control characters, so only ' ' is a Python space and no NUL.
        for (int i = start[slot]; i < stop[slot]; i++) {
            if (b[i] != ' ') {
                return false;
            }
        }
        return true;
    }

    private static boolean isBlank(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (PY_SPACE.indexOf(s.charAt(i)) < 0) {
                return false;
            }
        }
        return true;
    }

    /** Whether the slot holds a UUID; if so, its 128 bits go to d.eventIdHigh/Low. */
    private boolean uuid(int slot, Decoded d) {
        String s = decoded[slot];
        int from = start[slot];
        int n = s == null ? stop[slot] - from : s.length();
        if (n != 36) {
            return false;
        }
        long high = 0;
        long low = 0;
        for (int i = 0; i < 36; i++) {
            int c = s == null ? b[from + i] : s.charAt(i);
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                if (c != '-') {
                    return false;
                }
                continue;
            }
            int value = c >= '0' && c <= '9' ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                    : -1;
            if (value < 0) {
                return false;
            }
            if (i < 19) {
                high = (high << 4) | value;
            } else {
                low = (low << 4) | value;
            }
        }
        d.eventIdHigh = high;
        d.eventIdLow = low;
        return true;
    }

    /**
     * The slot's number as Double.parseDouble reads it. Up to 15 digits and no exponent, the
     * digits as a long over a power of ten are both exact, so one division rounds correctly.
     */
    private double number(int slot) {
        int i = start[slot];
        int stopAt = stop[slot];
        boolean negative = b[i] == '-';
        if (negative) {
            i++;
        }
        long digits = 0;
        int count = 0;
        int fraction = -1;
        for (; i < stopAt; i++) {
            int c = b[i];
            if (c == '.') {
                fraction = 0;
            } else if (c >= '0' && c <= '9' && count < 15) {
                digits = digits * 10 + (c - '0');
                count++;
                if (fraction >= 0) {
                    fraction++;
                }
            } else {
                return Double.parseDouble(
                        new String(b, start[slot], stopAt - start[slot], StandardCharsets.ISO_8859_1));
            }
        }
        double value = fraction > 0 ? digits / POW10[fraction] : digits;
        return negative ? -value : value;
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
        for (int k = 0; ; k++) {
            skipWs();
            int keyStart = pos + 1;
            parseString();
            int slot = top ? keySlot(keyStart, pos - 1, k) : -1;
            skipWs();
            expect(':');
            skipWs();
            parseValue(depth, slot);
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

    /** The slot of the key just parsed (its text at [from, to)), or -1 if not kept. */
    private int keySlot(int from, int to, int k) {
        if (!plain) {
            Integer slot = slotOfKey.get(unescape(from, to));
            return slot == null ? -1 : slot;
        }
        int guess = k < slotAt.length ? slotAt[k] : -1;
        if (guess >= 0 && keyEquals(from, to, guess)) {
            return guess;
        }
        for (int slot = 0; slot < keyOfSlot.length; slot++) {
            if (keyEquals(from, to, slot)) {
                if (k < slotAt.length) {
                    slotAt[k] = slot;
                }
                return slot;
            }
        }
        return -1;
    }

    private boolean keyEquals(int from, int to, int slot) {
        byte[] key = keyOfSlot[slot];
        return Arrays.equals(b, from, to, key, 0, key.length);
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
        int from = pos;
        int k;
        boolean whole = false;
        String text = null;
        switch (b[pos]) {
            case '"':
                parseString();
                from++;
                if (slot >= 0 && !plain) {
                    text = unescape(from, pos - 1);
                }
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
                whole = parseNumber();
                k = T_NUMBER;
        }
        if (slot >= 0) {
            kind[slot] = k;
            start[slot] = from;
            stop[slot] = k == T_STRING ? pos - 1 : pos;
            decoded[slot] = text;
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
        int first = pos;
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
            String text = new String(b, first, pos - first, StandardCharsets.ISO_8859_1);
            if (Double.isInfinite(Double.parseDouble(text))) {
                throw Invalid.INSTANCE; // orjson: "number is infinity when parsed as double"
            }
        }
        if (whole && intDigits > 18) {
            // orjson keeps integers in [-2^63, 2^64 - 1] as int, others become floats.
            String text = new String(b, first, pos - first, StandardCharsets.ISO_8859_1);
            BigDecimal n = new BigDecimal(text);
            whole = n.compareTo(MIN_INT) >= 0 && n.compareTo(MAX_UINT) <= 0;
        }
        return whole;
    }

    private static final BigDecimal MIN_INT = new BigDecimal("-9223372036854775808");
    private static final BigDecimal MAX_UINT = new BigDecimal("18446744073709551615");

    /** Bytes a JSON string holds as they are: printable ASCII but the quote and backslash. */
    private static final boolean[] STRING_PLAIN = new boolean[256];

    static {
        for (int c = 0x20; c < 0x80; c++) {
            STRING_PLAIN[c] = c != '"' && c != '\\';
        }
    }

    /** Eight message bytes at a time, as one long (unaligned reads are fine on any JVM). */
    private static final VarHandle WORDS =
            MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    private static final long ONES = 0x0101010101010101L;
    private static final long HIGHS = 0x8080808080808080L;

    /**
     * Whether one of the eight bytes of `w` is not STRING_PLAIN: a quote, a backslash, a
     * control (below 0x20) or not ASCII. The zero-byte tests may also flag a byte above a
     * real hit (a borrow), never miss one; the byte loop then finds the exact position.
     */
    private static boolean notPlain(long w) {
        long quote = w ^ (ONES * '"');
        long backslash = w ^ (ONES * '\\');
        long hits = ((quote - ONES) & ~quote)
                | ((backslash - ONES) & ~backslash)
                | ((w - ONES * 0x20) & ~w)
                | w;
        return (hits & HIGHS) != 0;
    }

    /** Moves pos past the plain bytes (STRING_PLAIN) from pos: a word, then a byte, at a time. */
    private void skipPlain() {
        byte[] buf = b;
        int p = pos;
        int last = end - 8;
        while (p <= last && !notPlain((long) WORDS.get(buf, p))) {
            p += 8;
        }
        while (p < end && STRING_PLAIN[buf[p] & 0xff]) {
            p++;
        }
        pos = p;
    }

    /** Checks the JSON string at pos and moves past it; sets `plain`. */
    private void parseString() throws Invalid {
        expect('"');
        plain = true; // ASCII without escapes
        while (true) {
            skipPlain(); // most bytes of most strings
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
            } else {
                plain = false;
                utf8(c);
            }
        }
        pos++; // closing quote
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

    /** The string whose JSON text (inside the quotes) is at [from, to), decoded. */
    private String unescape(int from, int to) {
        StringBuilder s = new StringBuilder(to - from);
        int i = from;
        while (i < to) {
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
                while (i < to && b[i] != '\\') {
                    i++;
                }
                s.append(new String(b, run, i - run, StandardCharsets.UTF_8));
            }
        }
        return s.toString();
    }
}
