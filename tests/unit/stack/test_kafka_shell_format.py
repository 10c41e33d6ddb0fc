"""`openpipe kafka tail`: where it starts reading and how it prints a message."""

from openpipe.stack.kafka_shell import format_message, pretty_value, start_offsets


def test_from_the_end_starts_last_messages_before_each_high_watermark():
    marks = {0: (0, 100), 1: (95, 98), 2: (7, 7)}
    assert start_offsets(marks, from_beginning=False, last=10) == {0: 90, 1: 95, 2: 7}


def test_from_beginning_starts_at_each_low_watermark():
    marks = {0: (0, 100), 1: (95, 98)}
    assert start_offsets(marks, from_beginning=True, last=10) == {0: 0, 1: 95}


def test_message_shows_where_when_key_headers_and_pretty_json():
    message = {
        "partition": 2,
        "offset": 41,
        "timestamp": "2026-11-27T10:00:00.000+00:00",
        "key": "wear-000001",
        "headers": [{"key": "openpipe-fault", "value": "late"}],
    }
    text = format_message("virtual-wearables", message, b'{"a": 1, "b": [2]}')
    assert text.splitlines() == [
        "virtual-wearables/2@41  2026-11-27T10:00:00.000+00:00  key=wear-000001"
        "  headers: openpipe-fault=late",
        "{",
        '  "a": 1,',
        '  "b": [',
        "    2",
        "  ]",
        "}",
    ]


def test_values_that_are_not_json_are_shown_as_text_or_bytes():
    assert pretty_value(b"{not json") == "{not json"
    assert pretty_value(b"\xff\xfe") == "b'\\xff\\xfe'"
    assert pretty_value(None) == "(null)"
    assert pretty_value(b"100.5") == "100.5"
