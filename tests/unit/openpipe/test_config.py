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
