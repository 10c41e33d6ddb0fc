"""Turning database values and Kafka messages into JSON and CSV (pure functions)."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import math
import uuid
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import orjson

MAX_PREVIEW_BYTES = 64 * 1024


def json_value(value: Any) -> Any:
    """A JSON-ready form of one database value (orjson handles the rest natively)."""
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool | dict | uuid.UUID):
        return value
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def fit_cell(value: Any, max_bytes: int) -> tuple[Any, int, bool]:
    """(value, its approximate JSON size, whether it was cut): a longer cell is cut to
    `max_bytes` and ends with a marker saying how long it was."""
    kind = type(value)
    if kind is str:
        if len(value) * 4 <= max_bytes:  # no UTF-8 text of this length can be too long
            return value, len(value) + 2, False
        size = len(value.encode())
        if size <= max_bytes:
            return value, size + 2, False
        shown = value.encode()[:max_bytes].decode("utf-8", errors="ignore")
        cut = shown + _cut_marker(size, "bytes of text", max_bytes)
        return cut, len(cut) + 2, True
    if kind is bytes or kind is bytearray or kind is memoryview:
        raw = bytes(value)
        if 2 * len(raw) + 2 <= max_bytes:
            return raw, 2 * len(raw) + 4, False
        cut = "\\x" + raw[: max_bytes // 2].hex() + _cut_marker(len(raw), "bytes", max_bytes // 2)
        return cut, len(cut) + 2, True
    if kind is dict or kind is list:
        text = orjson.dumps(value, default=str)
        if len(text) <= max_bytes:
            return value, len(text), False
        shown = text[:max_bytes].decode("utf-8", errors="ignore")
        cut = shown + _cut_marker(len(text), "bytes of JSON", max_bytes)
        return cut, len(cut) + 2, True
    return value, 24, False  # numbers, times, UUIDs, NULL: a few dozen bytes at most


def _cut_marker(size: int, unit: str, shown: int) -> str:
    return f"… [cut: {size} {unit}, the first {shown} shown (viewer.max_cell_bytes)]"


def json_rows(rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """Rows as lists of JSON-ready values."""
    return [[json_value(v) for v in row] for row in rows]


def csv_value(value: Any) -> str:
    """One CSV cell: NULL is empty, JSON stays JSON, everything else as PostgreSQL prints it."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_lines(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The header line, then one line per row (RFC 4180 quoting)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in [columns, *([csv_value(v) for v in r] for r in rows)]:
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def decode_bytes(raw: bytes | None) -> dict[str, Any] | None:
    """Bytes for display: parsed JSON, else UTF-8 text, else base64 (capped in size)."""
    if raw is None:
        return None
    shown, cut = raw[:MAX_PREVIEW_BYTES], len(raw) > MAX_PREVIEW_BYTES
    out: dict[str, Any] = {"size": len(raw), "truncated": cut}
    if not cut:
        try:
            out.update(format="json", value=orjson.loads(raw))
            return out
        except orjson.JSONDecodeError:
            pass
    try:
        out.update(format="text", value=shown.decode("utf-8"))
    except UnicodeDecodeError:
        out.update(format="base64", value=base64.b64encode(shown).decode("ascii"))
    return out


def decode_message(
    *,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
) -> dict[str, Any]:
    """One Kafka message for the viewer, headers decoded as text where they are text."""
    timestamp = (
        dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC).isoformat(timespec="milliseconds")
        if timestamp_ms is not None and timestamp_ms >= 0
        else None
    )
    return {
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp,
        "key": _text_or_base64(key),
        "headers": [{"key": k, "value": _text_or_base64(v)} for k, v in headers or []],
        "value": decode_bytes(value),
    }


def _text_or_base64(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")
