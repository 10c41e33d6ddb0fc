"""Taking the chaos run's account: read each topic's offset range, compare with the tables.

The Kafka side is read from the topics themselves (every message Kafka acknowledged over
the run, whoever produced it) and loaded into temporary tables, so that PostgreSQL does
the joins. The SQL of the account lives in this module (STYLE.md §3: one builder module).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from datetime import datetime, timedelta

import orjson
import psycopg
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from psycopg import sql
from psycopg.rows import dict_row
from system_account import ProbeAccount, RawAccount, UpsertAccount, WindowComparison
from system_probe import DUPLICATE, OUT_OF_RANGE, VALID, ProbeLedger

from openpipe import kafka
from openpipe.config import Settings
from openpipe.events import FAULT_HEADER, InvalidEvent
from openpipe.sinks.rows import parse_record
from openpipe.sinks.specs import SinkSpec

log = logging.getLogger(__name__)
_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
Marks = dict[int, int]


def read_range(settings: Settings, topic: str, starts: Marks, ends: Marks, progress=None):
    """Yield every message of `topic` in [starts[p], ends[p]) (committed ones only)."""
    consumer = kafka.make_consumer(
        settings.kafka.bootstrap_servers,
        "openpipe-chaos-account",
        **{"isolation.level": "read_committed", "log_level": 3},
    )
    pending = {p for p in ends if ends[p] > starts.get(p, 0)}
    try:
        if not pending:
            return
        consumer.assign([TopicPartition(topic, p, starts.get(p, 0)) for p in sorted(pending)])
        read, quiet_since = 0, time.monotonic()
        while pending:
            chunk = consumer.consume(num_messages=5000, timeout=1.0)
            for msg in chunk:
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(msg.error())
                p, offset = msg.partition(), msg.offset()
                if p not in pending or offset >= ends[p]:
                    continue
                read += 1
                yield msg
                if offset + 1 >= ends[p]:
                    pending.discard(p)
            if chunk:
                quiet_since = time.monotonic()
                if progress and read % 100_000 < len(chunk):
                    progress(f"reading {topic}: {read:,} messages")
                continue
            # Transaction markers take offsets too: trust the position at the end.
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                if tp.offset >= ends[tp.partition]:
                    pending.discard(tp.partition)
            if pending and time.monotonic() - quiet_since > 60:
                raise RuntimeError(
                    f"{topic}: no message for 60 s, partitions {sorted(pending)} unread"
                )
    finally:
        consumer.close()


def _event_id(value: bytes | None) -> str | None:
    """The event_id of a raw message if it has one that looks like a UUID (no validation)."""
    if not value:
        return None
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    event_id = event.get("event_id") if isinstance(event, dict) else None
    if isinstance(event_id, str) and _UUID.fullmatch(event_id.encode()):
        return event_id.lower()
    return None


def _fault(headers) -> str | None:
    for name, value in headers or ():
        if name == FAULT_HEADER and value is not None:
            return value.decode("utf-8", "replace")
    return None


def _range_filter(starts: Marks, ends: Marks) -> sql.Composable:
    """(kafka_partition = p AND kafka_offset >= start AND kafka_offset < end) OR ..."""
    parts = [
        sql.SQL("(kafka_partition = {} AND kafka_offset >= {} AND kafka_offset < {})").format(
            sql.Literal(p), sql.Literal(starts.get(p, 0)), sql.Literal(end)
        )
        for p, end in sorted(ends.items())
    ]
    return sql.SQL(" OR ").join(parts) if parts else sql.SQL("false")


def _stored_next(conn: psycopg.Connection, sink: str, topic: str) -> Marks:
    rows = conn.execute(
        "SELECT kafka_partition, next_offset FROM sink_offsets WHERE sink = %s AND kafka_topic = %s",
        (sink, topic),
    ).fetchall()
    return dict(rows)


def account_raw(
    conn: psycopg.Connection,
    settings: Settings,
    spec: SinkSpec,
    starts: Marks,
    ends: Marks,
    ledger: ProbeLedger | None,
    progress=None,
) -> RawAccount:
    """File every offset of the raw topic's range: row, dead letter, dropped duplicate or lost."""
    topic = spec.topic(settings)
    table = sql.Identifier(spec.table)
    account = RawAccount(topic, spec.table, acknowledged=0)
    injected: Counter = Counter()
    per_partition: Counter = Counter()
    conn.execute(
        "CREATE TEMP TABLE chaos_log (kafka_partition int, kafka_offset bigint, event_id uuid)"
    )
    try:
        with conn.cursor().copy(
            "COPY chaos_log (kafka_partition, kafka_offset, event_id) FROM STDIN"
        ) as copy:
            for msg in read_range(settings, topic, starts, ends, progress):
                per_partition[msg.partition()] += 1
                fault = _fault(msg.headers())
                if fault:
                    injected[fault] += 1
                copy.write_row((msg.partition(), msg.offset(), _event_id(msg.value())))
        account.acknowledged = sum(per_partition.values())
        account.injected = dict(injected)
        account.offset_gaps = sum(
            (ends[p] - starts.get(p, 0)) - per_partition[p]
            for p in ends
            if ends[p] > starts.get(p, 0)
        )
        in_range = _range_filter(starts, ends)
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE chaos_rows AS SELECT kafka_partition, kafka_offset, event_id "
                "FROM {} WHERE kafka_topic = {} AND ({})"
            ).format(table, sql.Literal(topic), in_range)
        )
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE chaos_dl AS SELECT kafka_partition, kafka_offset, error_kind "
                "FROM dead_letters WHERE kafka_topic = {} AND ({})"
            ).format(sql.Literal(topic), in_range)
        )
        # The probe check looks rows up by event_id; without an index that is a scan per probe.
        conn.execute("CREATE INDEX ON chaos_rows (event_id)")
        conn.execute("ANALYZE chaos_log; ANALYZE chaos_rows; ANALYZE chaos_dl")
        stored, rows, overlap = conn.execute(
            "SELECT (SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM chaos_rows), "
            "(SELECT count(*) FROM chaos_rows), "
            "(SELECT count(*) FROM chaos_rows JOIN chaos_dl USING (kafka_partition, kafka_offset))"
        ).fetchone()
        account.stored = stored
        account.filed_twice = (rows - stored) + overlap
        account.dead_letters = dict(
            conn.execute("SELECT error_kind, count(*) FROM chaos_dl GROUP BY 1").fetchall()
        )
        conn.execute(
            "CREATE TEMP TABLE chaos_unfiled AS SELECT l.* FROM chaos_log l "
            "WHERE NOT EXISTS (SELECT 1 FROM chaos_rows r WHERE r.kafka_partition = "
            "l.kafka_partition AND r.kafka_offset = l.kafka_offset) "
            "AND NOT EXISTS (SELECT 1 FROM chaos_dl d WHERE d.kafka_partition = "
            "l.kafka_partition AND d.kafka_offset = l.kafka_offset)"
        )
        unfiled = conn.execute(
            sql.SQL(
                "SELECT u.kafka_partition, u.kafka_offset, u.event_id IS NOT NULL AND EXISTS "
                "(SELECT 1 FROM {} t WHERE t.event_id = u.event_id) FROM chaos_unfiled u "
                "ORDER BY 1, 2"
            ).format(table)
        ).fetchall()
        stored_next = _stored_next(conn, spec.table, topic)
        account.duplicates_dropped = sum(1 for _, _, dup in unfiled if dup)
        # Below the sink's stored offset and filed nowhere: lost. At or above it: the sink
        # has not got there yet (counted as unsettled below).
        lost = [f"{p}:{o}" for p, o, dup in unfiled if not dup and o < stored_next.get(p, 0)]
        account.lost, account.lost_examples = len(lost), lost[:10]
        account.ids_stored_twice = conn.execute(
            sql.SQL(
                "SELECT count(DISTINCT r.event_id) FROM chaos_rows r JOIN {} t "
                "ON t.event_id = r.event_id WHERE NOT (t.kafka_topic = {} AND "
                "t.kafka_partition = r.kafka_partition AND t.kafka_offset = r.kafka_offset)"
            ).format(table, sql.Literal(topic))
        ).fetchone()[0]
        account.unsettled = sum(max(0, end - stored_next.get(p, 0)) for p, end in ends.items())
        if ledger is not None:
            account.probes = _probe_account(conn, topic, starts, ends, stored_next, ledger)
    finally:
        conn.execute(
            "DROP TABLE IF EXISTS chaos_log, chaos_rows, chaos_dl, chaos_unfiled, chaos_probe"
        )
    return account


def _probe_account(
    conn: psycopg.Connection,
    topic: str,
    starts: Marks,
    ends: Marks,
    stored_next: Marks,
    ledger: ProbeLedger,
) -> ProbeAccount:
    """Judge each acknowledged probe of `topic` by its delivery report's offset."""
    with ledger.lock:
        acked = [(k, v) for k, v in ledger.acked.items() if k[0] == topic]
        sent, failed = ledger.sent[topic], ledger.failed[topic]
    account = ProbeAccount(sent=sent, acknowledged=len(acked), delivery_failed=failed)
    account.by_kind = dict(Counter(kind for _, (_, kind, _) in acked))
    inside = [
        (p, o, event_id, kind)
        for (_, p, o), (event_id, kind, _) in acked
        if starts.get(p, 0) <= o < ends.get(p, 0)
    ]
    account.outside_range = len(acked) - len(inside)
    conn.execute(
        "CREATE TEMP TABLE chaos_probe (kafka_partition int, kafka_offset bigint, "
        "event_id uuid, kind text)"
    )
    with conn.cursor().copy("COPY chaos_probe FROM STDIN") as copy:
        for row in inside:
            copy.write_row(row)
    outcomes = conn.execute(
        "SELECT p.kafka_partition, p.kafka_offset, p.kind, p.event_id = r.event_id AS same_id, "
        "r.kafka_offset IS NOT NULL, "
        "d.error_kind, u.kafka_offset IS NOT NULL AND EXISTS "
        "(SELECT 1 FROM chaos_rows x WHERE x.event_id = p.event_id) "
        "FROM chaos_probe p "
        "LEFT JOIN chaos_rows r USING (kafka_partition, kafka_offset) "
        "LEFT JOIN chaos_dl d USING (kafka_partition, kafka_offset) "
        "LEFT JOIN chaos_unfiled u USING (kafka_partition, kafka_offset)"
    ).fetchall()
    wrong: Counter = Counter()
    for partition, offset, kind, same_id, has_row, dl_kind, dropped in outcomes:
        drained = offset < stored_next.get(partition, 0)
        got = (
            ("stored" if same_id else "stored under another event_id")
            if has_row
            else f"dead letter {dl_kind}"
            if dl_kind
            else "dropped duplicate"
            if dropped
            else "lost"
            if drained
            else "not drained yet"
        )
        expected = {
            VALID: "stored",
            OUT_OF_RANGE: "dead letter out_of_range",
            DUPLICATE: "dropped duplicate",
        }[kind]
        if got != expected:
            wrong[f"{kind} probe(s): expected {expected}, got {got}"] += 1
    account.wrong = dict(wrong)
    return account


def account_upserts(
    conn: psycopg.Connection,
    settings: Settings,
    spec: SinkSpec,
    starts: Marks,
    ends: Marks,
    progress=None,
) -> UpsertAccount:
    """Each window key's latest message in the range must be what the table holds."""
    topic = spec.topic(settings)
    account = UpsertAccount(topic, spec.table, acknowledged=0)
    names = spec.column_names
    key_idx = [names.index(k) for k in spec.key]
    value_cols = [c for c in spec.value_columns]
    value_idx = [names.index(c) for c in value_cols]
    validation = settings.validation
    latest: dict[tuple, tuple[int, int, tuple]] = {}
    partitions_of: dict[tuple, set] = {}
    valid = 0
    for msg in read_range(settings, topic, starts, ends, progress):
        account.acknowledged += 1
        try:
            record = parse_record(
                msg.value(),
                max_bytes=validation.max_message_bytes,
                max_depth=validation.max_json_depth,
            )
            row = spec.record_row(record, topic, msg.partition(), msg.offset())
        except InvalidEvent:
            continue
        valid += 1
        key = tuple(row[i] for i in key_idx)
        partitions_of.setdefault(key, set()).add(msg.partition())
        seen = latest.get(key)
        if seen is None or (msg.partition(), msg.offset()) > seen[:2]:
            latest[key] = (msg.partition(), msg.offset(), tuple(row[i] for i in value_idx))
    stored_next = _stored_next(conn, spec.table, topic)
    account.keys = len(latest)
    account.superseded = valid - len(latest)
    account.keys_in_two_partitions = sum(1 for ps in partitions_of.values() if len(ps) > 1)
    types = dict(spec.columns)
    columns = [*spec.key, *value_cols]
    conn.execute(
        sql.SQL("CREATE TEMP TABLE chaos_latest ({}, drained boolean)").format(
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types[c])) for c in columns
            )
        )
    )
    try:
        with conn.cursor().copy(
            sql.SQL("COPY chaos_latest ({}, drained) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, columns))
            )
        ) as copy:
            for key, (partition, offset, values) in latest.items():
                copy.write_row((*key, *values, offset < stored_next.get(partition, 0)))
        join = sql.SQL(" AND ").join(
            sql.SQL("t.{c} = l.{c}").format(c=sql.Identifier(k)) for k in spec.key
        )
        differs = sql.SQL(" OR ").join(
            sql.SQL("t.{c} IS DISTINCT FROM l.{c}").format(c=sql.Identifier(c)) for c in value_cols
        )
        first_key = sql.Identifier(spec.key[0])
        missing, stale = conn.execute(
            sql.SQL(
                "SELECT count(*) FILTER (WHERE t.{k} IS NULL AND l.drained), "
                "count(*) FILTER (WHERE t.{k} IS NOT NULL AND l.drained AND ({d})) "
                "FROM chaos_latest l LEFT JOIN {t} t ON {j}"
            ).format(k=first_key, d=differs, t=sql.Identifier(spec.table), j=join)
        ).fetchone()
        account.keys_missing, account.keys_stale = missing, stale
        undrained = conn.execute("SELECT count(*) FROM chaos_latest WHERE NOT drained").fetchone()
        account.keys_matching = account.keys - missing - stale - undrained[0]
        if missing:
            examples = conn.execute(
                sql.SQL(
                    "SELECT l.* FROM chaos_latest l LEFT JOIN {t} t ON {j} "
                    "WHERE t.{k} IS NULL AND l.drained LIMIT 3"
                ).format(t=sql.Identifier(spec.table), j=join, k=first_key)
            ).fetchall()
            account.examples = [" ".join(str(v) for v in e[: len(spec.key)]) for e in examples]
    finally:
        conn.execute("DROP TABLE IF EXISTS chaos_latest")
    account.dead_letters = dict(
        conn.execute(
            sql.SQL(
                "SELECT error_kind, count(*) FROM dead_letters WHERE kafka_topic = {} AND ({}) "
                "GROUP BY 1"
            ).format(sql.Literal(topic), _range_filter(starts, ends))
        ).fetchall()
    )
    account.unsettled = sum(max(0, end - stored_next.get(p, 0)) for p, end in ends.items())
    return account


def _ceil(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    steps = -((epoch - moment) // step)
    return epoch + steps * step


def compare_windows(
    conn: psycopg.Connection, settings: Settings, began: datetime, stopped: datetime
) -> WindowComparison:
    """Flink windows that opened and closed while traffic ran, against a batch recomputation.

    Reuses the project's stream-vs-batch query (sql/checks/stream_vs_batch.sql) and its
    classification: a window matches, or differs only by late events (counted), or not.
    """
    from openpipe_dagster.checks.stream_batch import (
        LATE,
        MATCH,
        SQL,
        classify_window,
        left_out,
        stream_batch_params,
    )

    f = settings.flink
    delay = timedelta(seconds=f.watermark_delay_seconds)
    start = _ceil(began, timedelta(seconds=min(f.heart_rate_window_s, f.blood_pressure_window_s)))
    sizes = {
        "heart_rate": f.heart_rate_window_s,
        "bp_systolic": f.blood_pressure_window_s,
        "bp_diastolic": f.blood_pressure_window_s,
        "blood_sugar": f.blood_sugar_window_s,
    }
    # A window is judged only when traffic ran past its end plus the watermark delay.
    margin = timedelta(seconds=30)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(SQL, stream_batch_params(settings, start, stopped)).fetchall()
    tolerance = settings.analytics.stream_batch_tolerance
    comparison = WindowComparison(first_window=start.isoformat(), last_window="")
    last = start
    for row in rows:
        size = timedelta(seconds=sizes[row["metric"]])
        if row["window_start"] + size + delay + margin > stopped:
            continue
        last = max(last, row["window_start"])
        kind = classify_window(row, tolerance)
        comparison.windows += 1
        comparison.late_events += left_out(row, kind)
        if kind == MATCH:
            comparison.matching += 1
        elif kind == LATE:
            comparison.explained_by_late += 1
        else:
            comparison.mismatched += 1
            if len(comparison.mismatch_examples) >= 20:
                continue
            comparison.mismatch_examples.append(
                f"{row['device_id']} {row['metric']} {row['window_start']:%H:%M}: batch "
                f"{row['all_count']} (on time {row['on_time_count']}), stream {row['stream_count']}"
            )
    comparison.last_window = last.isoformat()
    return comparison
