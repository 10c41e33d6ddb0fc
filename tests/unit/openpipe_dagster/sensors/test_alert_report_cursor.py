"""The alert-report sensor's cursor and its wait between reports (no stack needed)."""

from datetime import UTC, datetime, timedelta

import pytest

from openpipe.alert_report import encode_key
from openpipe_dagster.sensors.reports import ReportCursor, report_wait_s

KEY = (
    "2026-11-27T13:23:34.498874+00:00",
    "wear-031013",
    "elevated_heart_rate",
    "2026-11-27T13:22:00+00:00",
)
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def test_cursor_round_trips():
    cursor = ReportCursor(after=KEY, launched_at=NOW)
    assert ReportCursor.decode(cursor.encode()) == cursor
    assert ReportCursor.decode(ReportCursor().encode()) == ReportCursor()


def test_bare_alert_key_of_the_previous_format_is_read():
    assert ReportCursor.decode(encode_key(KEY)) == ReportCursor(after=KEY, launched_at=None)


def test_empty_cursor_is_a_fresh_start():
    assert ReportCursor.decode(None) == ReportCursor() == ReportCursor.decode("")


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"after": null}', '{"launched_at": 3}'])
def test_bad_cursor_says_what_to_do(text):
    with pytest.raises(ValueError, match="clear the sensor's cursor in the Dagster UI"):
        ReportCursor.decode(text)


@pytest.mark.parametrize(
    ("launched_ago_s", "wait_s"),
    [(None, 0), (0, 600), (599, 1), (600, 0), (3600, 0), (-60, 0)],
)
def test_wait_is_measured_from_the_last_launch(launched_ago_s, wait_s):
    launched = None if launched_ago_s is None else NOW - timedelta(seconds=launched_ago_s)
    assert report_wait_s(launched, NOW, 600) == wait_s
