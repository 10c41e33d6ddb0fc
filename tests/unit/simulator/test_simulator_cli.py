"""CLI: deterministic --dry-run output, the line format, and config errors naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from openpipe.events import FAULT_HEADER

REPO = Path(__file__).resolve().parents[3]
ARGS = ["--start", "2026-01-01T07:00:00Z", "--duration", "120", "--dry-run"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "simulator", "--config", "config/settings.yaml", *args],
        cwd=REPO,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.fixture(scope="module")
def seed_one() -> bytes:
    result = run_cli("--seed", "1", *ARGS)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_same_seed_and_start_give_identical_output(seed_one: bytes) -> None:
    assert run_cli("--seed", "1", *ARGS).stdout == seed_one


def test_other_seed_gives_other_output(seed_one: bytes) -> None:
    assert run_cli("--seed", "2", *ARGS).stdout != seed_one


def test_dry_run_lines_have_topic_key_headers_value(seed_one: bytes) -> None:
    lines = [orjson.loads(line) for line in seed_one.splitlines()]
    assert len(lines) > 5000
    faults = set()
    for line in lines:
        assert list(line) == ["topic", "key", "headers", "value"]
        kind = line["headers"].get(FAULT_HEADER)
        faults.add(kind)
        if kind == "malformed_json":
            assert isinstance(line["value"], str)
        else:
            assert isinstance(line["value"], dict)
        if kind is None:
            assert line["value"]["device_id"] == line["key"]
    assert {None, "malformed_json", "duplicate", "late"} <= faults


def test_rate_multiplier_scales_output() -> None:
    base = run_cli(
        "--seed", "1", "--start", "2026-01-01T07:00:00Z", "--duration", "20", "--dry-run"
    )
    fast = run_cli(
        "--seed",
        "1",
        "--start",
        "2026-01-01T07:00:00Z",
        "--duration",
        "20",
        "--dry-run",
        "--rate-multiplier",
        "3",
    )
    ratio = fast.stdout.count(b"\n") / base.stdout.count(b"\n")
    assert 2.5 < ratio < 3.5


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("OPENPIPE__DEVICES__WEARABLES__COUNT", "-5", "devices.wearables.count"),
        ("OPENPIPE__DEVICES__GPS__BAD_DATA_PROBABILITY", "1.5", "devices.gps.bad_data_probability"),
        ("OPENPIPE__DEVICES__GPS__FAULT_MIX", "{gremlins: 1}", "devices.gps.fault_mix"),
        ("OPENPIPE__DEVICES__WEARABLES__PERSONAS", "{vampire: 1}", "devices.wearables.personas"),
        (
            "OPENPIPE__GPS_ROUTES",
            "{solo: {city: Pune, waypoints: [[18.5, 73.8]]}}",
            "gps_routes.solo.waypoints",
        ),
    ],
)
def test_invalid_config_fails_at_start_naming_the_key(name: str, value: str, key: str) -> None:
    result = run_cli(*ARGS, env={name: value})
    assert result.returncode == 2
    assert key in result.stderr.decode(), result.stderr.decode()
    assert result.stdout == b""


def test_start_without_duration_is_a_usage_error() -> None:
    result = run_cli("--start", "2026-01-01T00:00:00Z", "--dry-run")
    assert result.returncode == 2
    assert b"--start needs --duration" in result.stderr
