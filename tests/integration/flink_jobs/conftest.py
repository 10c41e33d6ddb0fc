"""Fixtures for Flink job integration tests: an isolated job instance on the stack's cluster
(flink_support.py), one per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flink_support import IsolatedJob, isolated_job_instance

from openpipe.storage import db

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def isolated_job(tmp_path_factory) -> Iterator[IsolatedJob]:
    yield from isolated_job_instance(tmp_path_factory)


@pytest.fixture
def connect(isolated_job):
    def _connect():
        return db.connect(isolated_job.settings, application_name="itest-flink", autocommit=True)

    return _connect
