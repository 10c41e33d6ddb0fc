"""produce_waiting: a full local queue is waited out (delivery reports served), not lost."""

from __future__ import annotations

from openpipe.kafka import produce_waiting


class _FullTwice:
    """librdkafka's contract as the Python client shows it: BufferError while the queue is full."""

    def __init__(self) -> None:
        self.full, self.produced, self.polls = 2, [], 0

    def produce(self, topic, **message) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        self.produced.append((topic, message))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0


def test_a_full_queue_is_waited_out_and_the_message_sent_once():
    producer = _FullTwice()
    produce_waiting(producer, "t", key=b"k", value=b"v", timestamp=5)
    assert producer.produced == [("t", {"key": b"k", "value": b"v", "timestamp": 5})]
    assert producer.polls == 2
