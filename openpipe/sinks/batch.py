"""Pure batch assembly: Kafka messages in, table rows and dead letters out.

The offsets a batch covers are tracked by its reader (openpipe.sinks.drain), which
also skips what lies past the run's targets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from openpipe.config import Settings
from openpipe.events import FAULT_HEADER, EventValidator, InvalidEvent
from openpipe.sinks.rows import kafka_time, parse_record
from openpipe.sinks.specs import SinkSpec

Headers = list[tuple[str, bytes | None]] | None


def _safe_text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


def _fault(headers: Headers) -> str | None:
    for name, value in headers or ():
        if name == FAULT_HEADER:
            return _safe_text(value)
    return None


@dataclass
class Batch:
    """Messages of one topic turned into rows to write; duplicates dropped, rejects kept."""

    spec: SinkSpec
    sink: str
    topic: str
    validator: EventValidator | None
    max_bytes: int
    max_depth: int
    rows: list[tuple] = field(default_factory=list)
    dead_letters: list[tuple] = field(default_factory=list)
    dead_letter_kinds: Counter = field(default_factory=Counter)
    duplicates: int = 0
    messages: int = 0
    seen: set = field(default_factory=set)  # event_ids already filed (shared across chunks)
    _by_key: dict = field(default_factory=dict)
    _time: tuple[int, datetime | None] = (0, None)  # last (timestamp ms, kafka_time): reused

    @classmethod
    def for_sink(
        cls,
        spec: SinkSpec,
        settings: Settings,
        *,
        sink: str | None = None,
        topic: str | None = None,
        seen: set | None = None,
        validator: EventValidator | None = None,
    ) -> Batch:
        """An empty batch for `spec`, with the validator and limits from settings."""
        validation = settings.validation
        return cls(
            spec=spec,
            sink=sink or spec.table,
            topic=topic or spec.topic(settings),
            validator=(validator or EventValidator(settings)) if spec.family else None,
            max_bytes=validation.max_message_bytes,
            max_depth=validation.max_json_depth,
            seen=set() if seen is None else seen,
        )

    def add(
        self,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        headers: Headers = None,
    ) -> None:
        """Judge one message and file it as a row, a duplicate or a dead letter."""
        self.messages += 1
        try:
            if self.spec.family is not None:
                self._add_event(partition, offset, value, timestamp_ms, headers)
            else:
                self._add_record(partition, offset, value)
        except InvalidEvent as reject:
            self._dead_letter(partition, offset, key, value, timestamp_ms, headers, reject)

    def _add_event(
        self, partition: int, offset: int, value: bytes | None, ts_ms: int, headers: Headers
    ) -> None:
        event = self.validator.parse(self.spec.family, value, ts_ms)
        event_id = event.event_id.lower()
        if event_id in self.seen:
            self.duplicates += 1
            return
        if self._time[0] != ts_ms:  # messages of one producer batch share their timestamp
            self._time = (ts_ms, kafka_time(ts_ms))
        fault = _fault(headers) if headers else None
        row = self.spec.raw_row(event, (self.topic, partition, offset, self._time[1], fault))
        self.seen.add(event_id)
        self.rows.append(row)

    def _add_record(self, partition: int, offset: int, value: bytes | None) -> None:
        record = parse_record(value, max_bytes=self.max_bytes, max_depth=self.max_depth)
        row = self.spec.record_row(record, self.topic, partition, offset)
        key = tuple(row[self.spec.column_names.index(name)] for name in self.spec.key)
        if key in self._by_key:
            # A window re-emitted within one batch: the later message wins, once.
            self.duplicates += 1
        self._by_key[key] = row

    def _dead_letter(
        self,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        ts_ms: int,
        headers: Headers,
        reject: InvalidEvent,
    ) -> None:
        self.dead_letter_kinds[reject.kind] += 1
        self.dead_letters.append(
            (
                self.topic,
                partition,
                offset,
                _safe_text(key),
                kafka_time(ts_ms),
                value,
                reject.kind,
                reject.detail.replace("\x00", "\\x00"),
                _fault(headers),
                self.sink,
            )
        )

    def table_rows(self) -> list[tuple]:
        """Rows to write, in COPY column order (upserts: one per key, the latest)."""
        return self.rows if self.spec.family is not None else list(self._by_key.values())
