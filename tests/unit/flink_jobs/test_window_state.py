"""The window operator's state serializer: what a checkpoint writes comes back the same, and
a copy shares nothing that a later reading changes.

The heap state backend copies an entry with the serializer's `copy` before the operator
changes it while a checkpoint is being written; a shallow copy would let readings that came
after the checkpoint leak into it. Driven through PyFlink's gateway, in the JVM the job's
tests start.
"""

from __future__ import annotations

import pytest
from flink_table_helpers import batch_env
from pyflink.java_gateway import get_gateway


@pytest.fixture(scope="module")
def jvm(settings):
    batch_env(settings)  # starts the JVM with the job's jar on its class path
    return get_gateway().jvm


def _window(jvm):
    window = jvm.dev.openpipe.flink.OpenWindow(2)
    for i, (systolic, diastolic) in enumerate([(141.5, 91.0), (120.25, 80.0), (135.0, 85.5)]):
        window.readings(0).put(7, i, systolic)
        window.readings(1).put(7, i, diastolic)
    window.offerPatient(jvm.org.apache.flink.table.data.StringData.fromString("patient-\u00e9-1"))
    return window


def _bytes(jvm, serializer, window) -> bytes:
    out = jvm.org.apache.flink.core.memory.DataOutputSerializer(64)
    serializer.serialize(window, out)
    return bytes(out.getCopyOfBuffer())


def test_a_window_round_trips_through_its_serializer(jvm):
    serializer = jvm.dev.openpipe.flink.OpenWindowSerializer()
    window = _window(jvm)
    written = _bytes(jvm, serializer, window)
    back = serializer.deserialize(jvm.org.apache.flink.core.memory.DataInputDeserializer(written))
    assert _bytes(jvm, serializer, back) == written
    assert back.readings(0).size() == 3
    assert back.readings(0).sum() == window.readings(0).sum()
    assert back.readings(1).sum() == window.readings(1).sum()


def test_a_copy_keeps_what_the_window_held_when_copied(jvm):
    serializer = jvm.dev.openpipe.flink.OpenWindowSerializer()
    window = _window(jvm)
    copy = serializer.copy(window)
    before = _bytes(jvm, serializer, window)
    window.readings(0).put(8, 1, 150.0)  # a reading after the checkpoint began
    window.readings(1).put(8, 1, 95.0)
    assert window.readings(0).size() == 4
    assert copy.readings(0).size() == 3
    assert _bytes(jvm, serializer, copy) == before
