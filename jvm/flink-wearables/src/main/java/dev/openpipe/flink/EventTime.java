package dev.openpipe.flink;

import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;

/**
 * event_time as openpipe.events reads it: RFC 3339 with ASCII digits, 'T', optional 1-9
 * fraction digits (past microseconds cut), 'Z' or an offset from -23:59 to +23:59; a real
 * calendar date, hours 00-23, minutes and seconds 00-59 (no leap second). Milliseconds
 * are computed like Python's {@code int(datetime.timestamp() * 1000)}, float steps included,
 * so a time on a window or validity edge lands where the reference model puts it.
 */
final class EventTime {
    private static final int[] DAYS = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    private static final long TWO_53 = 1L << 53;

    private EventTime() {}

    /** What epochMillis gives for a text that is not a valid time. */
    static final long INVALID = Long.MIN_VALUE;

    /** Epoch ms of an RFC 3339 string (a JSON string with escapes, decoded), or INVALID. */
    static long epochMillis(String s) {
        // Every character a valid time has is ASCII; any other becomes a byte refused below.
        byte[] bytes = s.getBytes(StandardCharsets.ISO_8859_1);
        return epochMillis(bytes, 0, bytes.length);
    }

    /** Epoch ms of the RFC 3339 text at s[from, to), or INVALID when it is not a valid one. */
    static long epochMillis(byte[] s, int from, int to) {
        int n = to - from;
        if (n < 20 || s[from + 4] != '-' || s[from + 7] != '-' || s[from + 10] != 'T'
                || s[from + 13] != ':' || s[from + 16] != ':') {
            return INVALID;
        }
        int year = digits(s, from, 4);
        int month = digits(s, from + 5, 2);
        int day = digits(s, from + 8, 2);
        int hour = digits(s, from + 11, 2);
        int minute = digits(s, from + 14, 2);
        int second = digits(s, from + 17, 2);
        if (year < 1 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23
                || minute < 0 || minute > 59 || second < 0 || second > 59) {
            return INVALID; // digits() gives -1 for a non-digit
        }
        int monthDays = DAYS[month - 1] + (month == 2 && leap(year) ? 1 : 0);
        if (day > monthDays) {
            return INVALID;
        }
        int i = from + 19;
        int micros = 0;
        if (s[i] == '.') {
            int first = ++i;
            while (i < to && s[i] >= '0' && s[i] <= '9') {
                i++;
            }
            int count = i - first;
            if (count < 1 || count > 9) {
                return INVALID;
            }
            for (int k = 0; k < 6; k++) {
                micros = micros * 10 + (k < count ? s[first + k] - '0' : 0);
            }
        }
        int offsetMin;
        if (i == to - 1 && s[i] == 'Z') {
            offsetMin = 0;
        } else if (i == to - 6 && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
            int oh = digits(s, i + 1, 2);
            int om = digits(s, i + 4, 2);
            if (oh < 0 || oh > 23 || om < 0 || om > 59) {
                return INVALID;
            }
            offsetMin = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        } else {
            return INVALID;
        }
        long days = daysFromCivil(year, month, day);
        long seconds = days * 86400L + hour * 3600L + minute * 60L + second - offsetMin * 60L;
        long totalMicros = seconds * 1_000_000L + micros;
        double timestamp;
        if (Math.abs(totalMicros) < TWO_53) {
            timestamp = (double) totalMicros / 1e6; // exact operands: Python's correctly rounded int / int
        } else {
            timestamp = new BigDecimal(totalMicros).movePointLeft(6).doubleValue();
        }
        return (long) (timestamp * 1000.0);
    }

    private static int digits(byte[] s, int from, int count) {
        int v = 0;
        for (int k = from; k < from + count; k++) {
            int c = s[k];
            if (c < '0' || c > '9') {
                return -1;
            }
            v = v * 10 + (c - '0');
        }
        return v;
    }

    private static boolean leap(int y) {
        return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    }

    /** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
    private static long daysFromCivil(long y, int m, int d) {
        y -= m <= 2 ? 1 : 0;
        long era = (y >= 0 ? y : y - 399) / 400;
        long yoe = y - era * 400;
        long doy = (153L * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
    }
}
