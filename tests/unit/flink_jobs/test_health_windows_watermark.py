"""Streaming-mode test of the job's watermark, from a bounded file source read in order.

The source is a JSON-lines file (values base64-encoded) decoded by the job's parse
function, with the job's own watermark expression, on one slot, with a watermark emitted after every record, so lateness is
decided exactly as the rows are ordered in the file.
"""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest
from flink_table_helpers import T0_MS, encode, ms, rounded, source_row

from flink_jobs import health_sql, health_windows
from flink_jobs.reference import wearable_event
from openpipe.events import format_event_time


def _hr(seconds: float, bpm: float) -> dict:
    return wearable_event("wm", "heart_rate", ms(seconds), heart_rate_bpm=bpm)


# (event, kafka send time in seconds after T0), in the order they are read.
STREAM = [
    (_hr(10, 60), 10),
    (_hr(20, 70), 20),
    (_hr(65, 80), 65),  # watermark 55: window [0, 60) still open
    (_hr(50, 90), 66),  # out of order but within the watermark delay: included
    (_hr(75, 100), 75),  # watermark 65: window [0, 60) fires
    (_hr(58, 110), 76),  # later than the watermark: excluded
    (_hr(3600, 120), 77),  # an hour ahead of its send time: invalid, must not move time
    (_hr(80, 130), 80),  # still on time for [60, 120)
    (_hr(290, 140), 90),  # 200 s ahead (allowed); moves the watermark only to 80
    (_hr(100, 150), 100),  # on time for [60, 120) despite the early clock above
]


def _window(start_s: int, count: int, values: list[float]) -> tuple:
    return rounded(
        (
            format_event_time(ms(start_s)),
            format_event_time(ms(start_s + 60)),
            "wm",
            "patient-wm",
            "heart_rate",
            count,
            sum(values) / len(values),
            min(values),
            max(values),
        )
    )


def _run(settings, folder: Path, watermark: str, stream: list | None = None) -> set[tuple]:
    """The 1-minute windows of `stream` ((event, Kafka send time in ms) rows; STREAM if None)."""
    if stream is None:
        stream = [(event, ms(sent_s)) for event, sent_s in STREAM]
    folder.mkdir()
    with (folder / "part-0.json").open("wb") as out:
        for event, sent_ms in stream:
            payload, _ = source_row(encode(event), sent_ms)
            line = {
                "payload": base64.b64encode(payload).decode(),
                "kafka_ts": format_event_time(sent_ms),
            }
            out.write(orjson.dumps(line) + b"\n")
    t_env = health_windows.stream_table_env(
        # a watermark after every row
        {"parallelism.default": "1", "pipeline.auto-watermark-interval": "0 ms"}
    )
    health_windows.configure(t_env, settings)
    t_env.execute_sql(
        f"""
CREATE TEMPORARY TABLE wearables_file (
  payload BYTES,
  kafka_ts TIMESTAMP_LTZ(3),
  {health_sql.computed_columns_ddl(settings, "payload")},
  WATERMARK FOR event_ts AS {watermark}
) WITH (
  'connector' = 'filesystem',
  'path' = '{folder}',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
)"""
    )
    tables = health_windows.transform(t_env, t_env.from_path("wearables_file"), settings)
    with tables.metrics_1min.execute().collect() as rows:
        return {rounded(tuple(row)) for row in rows}


@pytest.fixture(scope="module")
def job_windows(settings, tmp_path_factory) -> set[tuple]:
    return _run(settings, tmp_path_factory.mktemp("wm") / "job", health_sql.watermark_sql(settings))


def test_out_of_order_within_watermark_is_included_and_late_event_excluded(job_windows):
    assert _window(0, 3, [60, 70, 90]) in job_windows


def test_future_and_early_clocks_do_not_make_others_late(job_windows):
    assert job_windows == {
        _window(0, 3, [60, 70, 90]),
        _window(60, 4, [80, 100, 130, 150]),
        _window(240, 1, [140]),
    }


def test_naive_watermark_would_drop_on_time_events(settings, tmp_path):
    """Control: the same stream under `event_ts - delay` loses readings, so the test bites."""
    delay_ms = settings.flink.watermark_delay_seconds * 1000
    naive = _run(settings, tmp_path / "naive", f"TIMESTAMPADD(MILLISECOND, -{delay_ms}, event_ts)")
    assert _window(60, 4, [80, 100, 130, 150]) not in naive


@pytest.mark.parametrize(("watermark_ms", "late"), [(59_999, True), (59_998, False)])
def test_a_reading_is_late_once_the_watermark_reaches_its_window_end_minus_one(
    settings, tmp_path, watermark_ms, late
):
    """Flink SQL's rule, kept by the window operator: window [0, 60 s) has fired when the
    watermark is 59.999 s, so a reading for it after that is left out; at 59.998 s it is in."""
    delay_ms = settings.flink.watermark_delay_seconds * 1000

    def hr(at_ms: int, bpm: float) -> tuple[dict, int]:  # sent at its event time
        return wearable_event("wm", "heart_rate", T0_MS + at_ms, heart_rate_bpm=bpm), T0_MS + at_ms

    stream = [
        hr(10_000, 60),
        hr(watermark_ms + delay_ms, 70),  # moves the watermark to watermark_ms
        (hr(30_000, 80)[0], T0_MS + watermark_ms + delay_ms),  # for [0, 60 s), sent after
    ]
    windows = _run(settings, tmp_path / "edge", health_sql.watermark_sql(settings), stream)
    first = _window(0, 1, [60]) if late else _window(0, 2, [60, 80])
    assert windows == {first, _window(60, 1, [70])}
