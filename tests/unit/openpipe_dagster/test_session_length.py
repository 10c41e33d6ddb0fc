"""Sessions of different sinks end at different moments (openpipe_dagster.runs)."""

from itertools import pairwise

from openpipe.config import load_settings
from openpipe.sinks import SINKS
from openpipe_dagster.runs import SESSION_SPREAD, session_length_s


def test_each_sink_runs_a_little_longer_than_the_setting_and_the_sinks_differ():
    settings = load_settings()
    base = settings.pipeline.session_seconds
    lengths = {sink: session_length_s(settings, sink) for sink in SINKS}
    assert all(base <= s <= base * (1 + SESSION_SPREAD) for s in lengths.values())
    assert lengths == {sink: session_length_s(settings, sink) for sink in SINKS}, "stable"
    ordered = sorted(lengths.values())
    # Started together, no two sinks hand over within 5 s of each other after one session.
    assert min(b - a for a, b in pairwise(ordered)) > 5, lengths
