"""GET /api/kafka/topics and /api/kafka/topics/{name}/messages."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from sql_viewer.catalogue import sink_offsets
from sql_viewer.deps import KafkaDep, RunnerDep
from sql_viewer.errors import json_response
from sql_viewer.kafka_view import PartitionInfo
from sql_viewer.runner import QueryFailed

router = APIRouter(prefix="/api/kafka", tags=["kafka"])


def topic_summaries(
    topics: dict[str, list[PartitionInfo]],
    offsets: list[tuple[str, str, int, int]] | None,
    configured: list[str],
) -> list[dict[str, Any]]:
    """Join broker watermarks with each sink's stored offsets into per-topic lag."""
    by_topic: dict[str, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for sink, topic, partition, next_offset in offsets or []:
        by_topic[topic][sink][partition] = next_offset
    summaries = []
    for name, partitions in topics.items():
        highs = {p.partition: p.high for p in partitions}
        sinks = []
        for sink, stored in sorted(by_topic.get(name, {}).items()):
            # A partition the sink has not stored yet lags by everything Kafka still holds.
            rows = [
                {
                    "partition": p.partition,
                    "next_offset": stored.get(p.partition),
                    "lag": max(0, p.high - stored.get(p.partition, p.low)),
                }
                for p in partitions
            ]
            sinks.append({"sink": sink, "lag": sum(r["lag"] for r in rows), "partitions": rows})
        summaries.append(
            {
                "name": name,
                "configured": name in configured,
                "partitions": [
                    {"partition": p.partition, "low": p.low, "high": p.high} for p in partitions
                ],
                "messages": sum(p.high - p.low for p in partitions),
                "high_watermark_total": sum(highs.values()),
                "sinks": sinks,
            }
        )
    return summaries


@router.get("/topics")
def read_topics(kafka: KafkaDep, runner: RunnerDep) -> Response:
    """Topics, partitions, watermarks, and every sink's stored offset and lag."""
    topics = kafka.topics()
    offsets_error = None
    try:
        offsets = sink_offsets(runner)
    except QueryFailed as exc:
        offsets, offsets_error = None, exc.message
    return json_response(
        {
            "topics": topic_summaries(topics, offsets, kafka.configured_topics),
            "sink_offsets_available": offsets is not None,
            "sink_offsets_error": offsets_error,
        }
    )


@router.get("/topics/{name}/messages")
def read_messages(
    name: str, kafka: KafkaDep, limit: Annotated[int | None, Query(ge=1)] = None
) -> Response:
    """The newest messages of a topic (newest first), values decoded, headers shown."""
    count = min(limit or 20, kafka.message_limit)
    return json_response(
        {"topic": name, "limit": count, "messages": kafka.latest_messages(name, count)}
    )
