"""Pure encoders: JSON values, CSV lines, Kafka message decoding, sink lag, positions."""

import datetime as dt
import uuid
from decimal import Decimal

from sql_viewer.encode import MAX_PREVIEW_BYTES, csv_lines, decode_message, fit_cell, json_value
from sql_viewer.guard import split_statements
from sql_viewer.kafka_view import PartitionInfo
from sql_viewer.routers.kafka import topic_summaries
from sql_viewer.runner import WRAP_PREFIX, _user_position


def test_json_value_makes_database_values_json_ready():
    assert json_value(Decimal("72.50")) == 72.5
    assert json_value(Decimal("NaN")) == "NaN"
    assert json_value(float("inf")) == "inf"
    assert json_value(b"\x01\xff") == "\\x01ff"
    assert json_value(dt.timedelta(minutes=1)) == "0:01:00"
    assert json_value(dt.date(2024, 1, 2)) == "2024-01-02"
    ident = uuid.uuid4()
    assert json_value(ident) is ident
    assert json_value([Decimal("1.5"), None]) == [1.5, None]


def test_csv_lines_quote_and_render_like_postgres():
    lines = list(
        csv_lines(
            ["a", "b,c"],
            [[None, 'say "hi"'], [True, {"k": [1]}], [dt.datetime(2024, 1, 2, 3, 4, 5), 1.5]],
        )
    )
    assert lines == [
        'a,"b,c"\r\n',
        ',"say ""hi"""\r\n',
        'true,"{""k"":[1]}"\r\n',
        "2024-01-02T03:04:05,1.5\r\n",
    ]


def test_decode_message_parses_json_and_decodes_headers():
    message = decode_message(
        partition=2,
        offset=41,
        timestamp_ms=1_700_000_000_123,
        key=b"wearable-0001",
        value=b'{"metric": "heart_rate", "heart_rate_bpm": 100.5}',
        headers=[("openpipe-fault", b"late"), ("raw", b"\xff\x00"), ("none", None)],
    )
    assert message["timestamp"] == "2023-11-14T22:13:20.123+00:00"
    assert message["value"]["format"] == "json"
    assert message["value"]["value"]["heart_rate_bpm"] == 100.5
    assert message["headers"] == [
        {"key": "openpipe-fault", "value": "late"},
        {"key": "raw", "value": "base64:/wA="},
        {"key": "none", "value": None},
    ]


def test_decode_message_shows_malformed_and_binary_values_and_tombstones():
    def value_of(raw):
        return decode_message(
            partition=0, offset=0, timestamp_ms=None, key=None, value=raw, headers=None
        )["value"]

    assert value_of(b'{"broken": ') == {
        "size": 11,
        "truncated": False,
        "format": "text",
        "value": '{"broken": ',
    }
    assert value_of(b"\xff\xfe")["format"] == "base64"
    assert value_of(None) is None
    big = value_of(b"x" * (MAX_PREVIEW_BYTES + 10))
    assert big["truncated"] is True and len(big["value"]) == MAX_PREVIEW_BYTES


def test_topic_summaries_compute_lag_per_sink_and_partition():
    topics = {"virtual-gps": [PartitionInfo(0, 0, 100), PartitionInfo(1, 10, 50)]}
    offsets = [("gps_points", "virtual-gps", 0, 90), ("gps_points", "virtual-gps", 1, 50)]
    (summary,) = topic_summaries(topics, offsets, ["virtual-gps"])
    assert summary["messages"] == 140
    assert summary["configured"] is True
    (sink,) = summary["sinks"]
    assert sink["sink"] == "gps_points" and sink["lag"] == 10
    assert [p["lag"] for p in sink["partitions"]] == [10, 0]


def test_topic_summaries_without_sink_offsets_table():
    (summary,) = topic_summaries({"t": [PartitionInfo(0, 0, 5)]}, None, [])
    assert summary["sinks"] == [] and summary["configured"] is False


def test_error_position_maps_back_to_the_users_text():
    text = "\n  select nosuch from t"
    (statement,) = split_statements(text)
    sent = len(WRAP_PREFIX) + statement.text.index("nosuch") + 1
    assert text[_user_position(str(sent), statement) - 1 :].startswith("nosuch")
    assert _user_position("3", statement) is None
    assert _user_position(None, statement) is None


def test_sink_lag_for_a_partition_without_stored_offset_counts_retained_messages():
    topics = {"t": [PartitionInfo(0, 40, 100), PartitionInfo(1, 0, 5)]}
    (summary,) = topic_summaries(topics, [("s", "t", 1, 5)], ["t"])
    (sink,) = summary["sinks"]
    assert [(p["next_offset"], p["lag"]) for p in sink["partitions"]] == [(None, 60), (5, 0)]


def test_fit_cell_keeps_short_cells_and_cuts_long_ones_with_a_marker():
    assert fit_cell("abc", 256) == ("abc", 5, False)
    assert fit_cell(42, 256) == (42, 24, False)
    text, size, cut = fit_cell("é" * 1000, 256)  # 2000 bytes of UTF-8
    assert cut and text.startswith("é" * 128) and "[cut: 2000 bytes of text" in text
    assert size == len(text) + 2
    raw, _, cut = fit_cell(b"\x01" * 1000, 256)
    assert cut and raw.startswith("\\x" + "01" * 128 + "…") and "[cut: 1000 bytes" in raw
    assert fit_cell(b"\x01\x02", 256) == (b"\x01\x02", 8, False)
    doc, _, cut = fit_cell({"k": "v" * 1000}, 256)
    assert cut and doc.startswith('{"k":"vvv') and "bytes of JSON" in doc
    assert fit_cell({"k": 1}, 256) == ({"k": 1}, 7, False)
