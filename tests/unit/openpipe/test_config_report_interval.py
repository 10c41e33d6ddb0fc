"""analytics.report_interval_s: its default and the values it refuses."""

import pytest
import yaml

from openpipe.config import DEFAULT_CONFIG_PATH, ConfigError, parse_settings


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_report_interval_defaults_to_ten_minutes(raw):
    assert parse_settings(raw, environ={}).analytics.report_interval_s == 600
    raw["analytics"].pop("report_interval_s")
    assert parse_settings(raw, environ={}).analytics.report_interval_s == 600


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("29", "greater than or equal to 30"),
        ("0", "greater than or equal to 30"),
        ("86401", "less than or equal to 86400"),
        ("ten", "valid integer"),
    ],
)
def test_bad_report_interval_names_the_key(raw, value, expected):
    with pytest.raises(ConfigError) as excinfo:
        parse_settings(raw, environ={"OPENPIPE__ANALYTICS__REPORT_INTERVAL_S": value})
    assert "analytics.report_interval_s" in str(excinfo.value)
    assert expected in str(excinfo.value)
