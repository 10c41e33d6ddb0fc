import re

import pytest
import yaml

from openpipe.config import (
    DEFAULT_CONFIG_PATH,
    FAULT_KINDS,
    ConfigError,
    load_settings,
    parse_settings,
)


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_defaults_load(raw):
    settings = parse_settings(raw, environ={})
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.topics.all() == [
        "virtual-wearables",
        "virtual-restaurants",
        "virtual-gps",
        "health-metrics-1min",
        "health-metrics-10min",
        "health-alerts",
    ]
    assert settings.kafka.partitions == 3
    assert set(settings.devices.wearables.fault_mix) == set(FAULT_KINDS)
    assert settings.flink.thresholds.heart_rate_bpm == 100
    assert settings.validation.heart_rate_bpm.contains(25)
    assert not settings.validation.heart_rate_bpm.contains(250.01)


def test_load_settings_reads_the_file_and_env(monkeypatch):
    monkeypatch.setenv("OPENPIPE__DEVICES__WEARABLES__COUNT", "1234")
    assert load_settings().devices.wearables.count == 1234


def test_env_override_is_parsed_as_yaml(raw):
    settings = parse_settings(
        raw,
        environ={
            "OPENPIPE__KAFKA__PARTITIONS": "6",
            "OPENPIPE__VALIDATION__HEART_RATE_BPM": "[30, 220]",
            "OPENPIPE__KAFKA__MANAGE_LOCAL": "false",
            "UNRELATED": "x",
        },
    )
    assert settings.kafka.partitions == 6
    assert settings.validation.heart_rate_bpm.low == 30
    assert settings.kafka.manage_local is False


def test_env_override_nested_family_key(raw):
    settings = parse_settings(raw, environ={"OPENPIPE__DEVICES__GPS__FAULT_MIX__LATE": "0"})
    assert settings.devices.gps.fault_mix["late"] == 0


def test_string_override_keeps_strings(raw):
    settings = parse_settings(raw, environ={"OPENPIPE__DATABASE__PASSWORD": "s3cret:with=chars"})
    assert settings.database.password == "s3cret:with=chars"


# Each of these is something else in YAML: a number, a boolean, a comment, a quoted
# scalar, a mapping, null, a list, or nothing at all.
TEXT_VALUES = [
    "123456",
    "true",
    "pa ss #1",
    "'quoted'",
    '"double"',
    "a: b",
    "null",
    "~",
    "1e3",
    "0o17",
    "[1, 2]",
    "{x: 1}",
    "  padded  ",
    "",
]


@pytest.mark.parametrize("value", TEXT_VALUES)
@pytest.mark.parametrize(
    ("variable", "read"),
    [
        ("OPENPIPE__DATABASE__PASSWORD", lambda s: s.database.password),
        ("OPENPIPE__DATABASE__READER_PASSWORD", lambda s: s.database.reader_password),
        ("OPENPIPE__DATABASE__USER", lambda s: s.database.user),
        ("OPENPIPE__ANALYTICS__REPORTS_DIR", lambda s: s.analytics.reports_dir),
        ("OPENPIPE__GPS_ROUTES__CHENNAI_OMR__CITY", lambda s: s.gps_routes["chennai_omr"].city),
    ],
)
def test_text_override_is_the_exact_string(raw, variable, read, value):
    assert read(parse_settings(raw, environ={variable: value})) == value


def test_text_override_through_load_settings(monkeypatch):
    monkeypatch.setenv("OPENPIPE__DATABASE__PASSWORD", "pa ss #1")
    assert load_settings().database.password == "pa ss #1"


def test_choice_override_is_text(raw):
    settings = parse_settings(raw, environ={"OPENPIPE__KAFKA__PRODUCER__COMPRESSION_TYPE": "none"})
    assert settings.kafka.producer.compression_type == "none"
    with pytest.raises(ConfigError, match=r"kafka\.producer\.compression_type.*'zstd'"):
        parse_settings(raw, environ={"OPENPIPE__KAFKA__PRODUCER__COMPRESSION_TYPE": "'lz4'"})


@pytest.mark.parametrize(
    ("variable", "value", "read", "expected"),
    [
        ("OPENPIPE__KAFKA__PARTITIONS", "6", lambda s: s.kafka.partitions, 6),
        ("OPENPIPE__KAFKA__MANAGE_LOCAL", "false", lambda s: s.kafka.manage_local, False),
        ("OPENPIPE__DATABASE__PORT", "6543", lambda s: s.database.port, 6543),
        ("OPENPIPE__PIPELINE__FLUSH_INTERVAL_S", "2.5", lambda s: s.pipeline.flush_interval_s, 2.5),
        (
            "OPENPIPE__VALIDATION__SPEED_KMH",
            "[0, 200]",
            lambda s: (s.validation.speed_kmh.low, s.validation.speed_kmh.high),
            (0, 200),
        ),
        (
            "OPENPIPE__ANALYTICS__PARTITIONS_START",
            "2026-02-01",
            lambda s: s.analytics.partitions_start.isoformat(),
            "2026-02-01",
        ),
        (
            "OPENPIPE__KAFKA__TOPICS",
            "{wearables: w, restaurants: r, gps: g}",
            lambda s: s.kafka.topics.all()[:3],
            ["w", "r", "g"],
        ),
    ],
)
def test_typed_override_is_parsed_as_yaml(raw, variable, value, read, expected):
    assert read(parse_settings(raw, environ={variable: value})) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OPENPIPE__DATABASE__PORT": "pa ss"}, "database.port"),
        ({"OPENPIPE__KAFKA__PARTITIONS": "null"}, "kafka.partitions"),
        ({"OPENPIPE__KAFKA__MANAGE_LOCAL": "maybe"}, "kafka.manage_local"),
        ({"OPENPIPE__KAFKA__PARTITIONS": "[unclosed"}, "OPENPIPE__KAFKA__PARTITIONS: value is not"),
        ({"OPENPIPE__DATABASE__PASSWORD__X": "1"}, "database.password"),
    ],
)
def test_typed_override_errors_name_the_key(raw, env, expected):
    with pytest.raises(ConfigError) as excinfo:
        parse_settings(raw, environ=env)
    assert expected in str(excinfo.value)


def test_flink_ui_url_defaults_to_the_rest_url(raw):
    settings = parse_settings(raw, environ={})
    assert settings.flink.ui_url == settings.flink.rest_url == "http://127.0.0.1:8083"
    assert settings.flink.rest_port == 8083
    moved = parse_settings(raw, environ={"OPENPIPE__FLINK__REST_URL": "http://jm:8081/"})
    assert (moved.flink.rest_url, moved.flink.ui_url, moved.flink.rest_port) == (
        "http://jm:8081",
        "http://jm:8081",
        8081,
    )


def test_flink_ui_url_is_its_own_setting(raw):
    settings = parse_settings(
        raw,
        environ={
            "OPENPIPE__FLINK__REST_URL": "http://flink-jobmanager:8081",
            "OPENPIPE__FLINK__UI_URL": "http://127.0.0.1:8083",
        },
    )
    assert settings.flink.rest_url == "http://flink-jobmanager:8081"
    assert settings.flink.ui_url == "http://127.0.0.1:8083"


@pytest.mark.parametrize("url", ["127.0.0.1:8083", "ftp://x:1", "http://", "http://jm:99999"])
@pytest.mark.parametrize("key", ["REST_URL", "UI_URL"])
def test_flink_urls_must_be_http(raw, key, url):
    with pytest.raises(ConfigError, match=rf"flink\.{key.lower()}: .*http\(s\) URL"):
        parse_settings(raw, environ={f"OPENPIPE__FLINK__{key}": url})


@pytest.mark.parametrize(
    ("variable", "replacement"),
    [
        ("OPENPIPE__MONITORING__FLINK_PORT", "flink.rest_url"),
        ("OPENPIPE__DAGSTER__PORT", "monitoring.dagster_port"),
    ],
)
def test_moved_port_keys_say_where_they_went(raw, variable, replacement):
    with pytest.raises(ConfigError, match=rf"unknown key \(.*{re.escape(replacement)}\)"):
        parse_settings(raw, environ={variable: "8083"})


def test_each_port_is_one_setting(raw):
    # One fact, one key: the Flink port lives in flink.rest_url, Dagster's in monitoring.
    settings = parse_settings(raw, environ={})
    assert "flink_port" not in settings.monitoring.model_dump()
    assert "port" not in settings.dagster.model_dump()
    assert "flink_port" not in raw["monitoring"] and "port" not in raw["dagster"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OPENPIPE__DEVICES__WEARABLES__COUNT": "-1"}, "devices.wearables.count"),
        (
            {"OPENPIPE__DEVICES__GPS__BAD_DATA_PROBABILITY": "1.5"},
            "devices.gps.bad_data_probability",
        ),
        ({"OPENPIPE__DEVICES__GPS__BAD_DATA_PROBABILITY": "-0.1"}, "greater than or equal to 0"),
        ({"OPENPIPE__KAFKA__BOGUS": "1"}, "kafka.bogus: unknown key"),
        ({"OPENPIPE__DEVICES__GPS__FAULT_MIX__TELEPORT": "1"}, "'malformed_json'"),
        ({"OPENPIPE__DEVICES__WEARABLES__PERSONAS__ZOMBIE": "1"}, "'hypertensive'"),
        ({"OPENPIPE__KAFKA__PRODUCER__COMPRESSION_TYPE": "brotli"}, "'zstd'"),
        ({"OPENPIPE__KAFKA__PARTITIONS": "three"}, "kafka.partitions"),
        ({"OPENPIPE__MONITORING__VIEWER_PORT": "70000"}, "monitoring.viewer_port"),
        ({"OPENPIPE__VALIDATION__HEART_RATE_BPM": "[250, 25]"}, "must not exceed"),
        ({"OPENPIPE__VALIDATION__HEART_RATE_BPM": "[1, 2, 3]"}, "two numbers"),
        ({"OPENPIPE__FLINK__WATERMARK_DELAY_SECONDS": "-5"}, "flink.watermark_delay_seconds"),
        ({"OPENPIPE__FLINK__TRANSACTION_NAMING": "random"}, "'incrementing'"),
        ({"OPENPIPE__NOSUCHSECTION__X": "1"}, "nosuchsection: unknown key"),
    ],
)
def test_bad_values_name_the_key(raw, env, expected):
    with pytest.raises(ConfigError) as excinfo:
        parse_settings(raw, environ=env)
    assert expected in str(excinfo.value)


def test_route_needs_two_waypoints(raw):
    raw["gps_routes"]["solo"] = {"city": "Pune", "waypoints": [[18.52, 73.85]]}
    with pytest.raises(ConfigError, match=r"gps_routes\.solo\.waypoints"):
        parse_settings(raw, environ={})


def test_waypoint_must_be_on_earth(raw):
    raw["gps_routes"]["bad"] = {"city": "Nowhere", "waypoints": [[95, 0], [0, 0]]}
    with pytest.raises(ConfigError, match=r"gps_routes\.bad\.waypoints\.0\.0"):
        parse_settings(raw, environ={})


def test_fault_mix_needs_weight_when_faults_are_on(raw):
    raw["devices"]["gps"]["fault_mix"] = dict.fromkeys(FAULT_KINDS, 0)
    with pytest.raises(ConfigError, match="fault_mix needs at least one kind"):
        parse_settings(raw, environ={})


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_invalid_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(path)


def test_fingerprint_changes_with_settings(raw):
    a = parse_settings(raw, environ={})
    b = parse_settings(raw, environ={"OPENPIPE__FLINK__THRESHOLDS__HEART_RATE_BPM": "110"})
    assert a.fingerprint() == parse_settings(raw, environ={}).fingerprint()
    assert a.fingerprint() != b.fingerprint()


def test_reader_dsn(raw):
    settings = parse_settings(raw, environ={})
    assert "user=openpipe_reader" in settings.database.dsn(reader=True)
    assert "dbname=dagster" in settings.database.dsn(database="dagster")
