"""The drain's process-wide GIL switch interval: set while any drain runs, then restored."""

import sys
import threading

import pytest

from openpipe.sinks.drain import _short_gil_slices


def test_overlapping_drains_restore_the_interval_only_when_the_last_ends() -> None:
    before = sys.getswitchinterval()
    first, second = _short_gil_slices(), _short_gil_slices()
    first.__enter__()
    assert sys.getswitchinterval() == pytest.approx(0.001)
    second.__enter__()
    first.__exit__(None, None, None)  # the first drain ends while the second still runs
    assert sys.getswitchinterval() == pytest.approx(0.001)
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


def test_drains_in_threads_leave_the_interval_as_it_was() -> None:
    before = sys.getswitchinterval()
    barrier = threading.Barrier(4)

    def drain() -> None:
        with _short_gil_slices():
            barrier.wait(timeout=5)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sys.getswitchinterval() == before
