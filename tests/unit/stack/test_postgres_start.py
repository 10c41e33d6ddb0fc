"""How `openpipe up` starts PostgreSQL for `database.timescaledb: auto | on | off`."""

import pwd
from pathlib import Path

import pytest
import yaml

from openpipe.config import DEFAULT_CONFIG_PATH, ConfigError, load_settings, parse_settings
from openpipe.stack import postgres
from openpipe.stack.process import StackError
from openpipe.storage.schema import storage_label

PRELOAD = "shared_preload_libraries=timescaledb"
TELEMETRY = "timescaledb.telemetry_level=off"


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A fake server install: bin/postgres, lib/ (no pg_config), and the argv `start` used."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "bin" / "postgres").write_text("")
    monkeypatch.setattr(postgres, "find_binary", lambda name: str(tmp_path / "bin" / name))
    monkeypatch.setattr(postgres, "_run_as", lambda: None)
    started = []

    class Recorder:
        def start(self, argv, **kwargs):
            started.append(argv)

    monkeypatch.setattr(postgres, "PROCESS", Recorder())
    return tmp_path, started


def _settings(**database):
    return load_settings(
        environ={f"OPENPIPE__DATABASE__{k.upper()}": str(v) for k, v in database.items()}
    )


def _start(mode: str, started: list) -> list[str]:
    postgres.start(_settings(timescaledb=mode))
    return started[-1]


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_start_preloads_timescaledb_when_its_library_is_installed(server, mode):
    root, started = server
    (root / "lib" / "timescaledb.so").write_text("")
    argv = _start(mode, started)
    assert PRELOAD in argv and TELEMETRY in argv
    assert argv[argv.index(PRELOAD) - 1] == "-c"


def test_auto_without_the_library_starts_plain_postgres(server):
    _, started = server
    argv = _start("auto", started)
    assert not any("timescaledb" in arg for arg in argv)
    assert "port=5432" in argv


def test_off_never_preloads_even_when_installed(server):
    root, started = server
    (root / "lib" / "timescaledb.so").write_text("")
    assert not any("timescaledb" in arg for arg in _start("off", started))


def test_on_without_the_library_fails_before_starting(server):
    root, started = server
    with pytest.raises(StackError, match=r"database\.timescaledb is 'on'.*'auto' or 'off'"):
        _start("on", started)
    assert started == []
    settings = _settings(timescaledb="on")
    with pytest.raises(StackError, match=str(root / "lib")):
        postgres.check_timescaledb(settings)


def test_on_with_an_external_server_is_checked_by_the_migrations_not_here(server):
    settings = _settings(timescaledb="on", manage_local="false")
    postgres.check_timescaledb(settings)  # no local library to look at: no error


def test_library_dir_asks_pg_config_next_to_the_server(server):
    root, _ = server
    pg_config = root / "bin" / "pg_config"
    pg_config.write_text(f"#!/bin/sh\necho {root}/pkglib\n")
    pg_config.chmod(0o755)
    assert postgres.library_dir() == root / "pkglib"
    pg_config.unlink()
    assert postgres.library_dir() == root / "lib"


def test_server_options_keep_the_base_settings_in_both_modes(tmp_path):
    db = load_settings(environ={}).database
    plain = postgres.server_options(db, tmp_path, timescaledb=False)
    preloaded = postgres.server_options(db, tmp_path, timescaledb=True)
    assert preloaded[: len(plain)] == plain
    assert f"unix_socket_directories={tmp_path}" in plain
    assert preloaded[len(plain) :] == ["-c", PRELOAD, "-c", TELEMETRY]


@pytest.mark.parametrize(("written", "read"), [("auto", "auto"), ("on", "on"), ("off", "off")])
def test_timescaledb_setting_takes_yaml_on_off_as_words(written, read):
    settings = load_settings(environ={"OPENPIPE__DATABASE__TIMESCALEDB": written})
    assert settings.database.timescaledb == read
    # In the YAML file a bare on/off is a boolean; it still means the word.
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["database"]["timescaledb"] = yaml.safe_load(written)
    assert parse_settings(raw, environ={}).database.timescaledb == read


def test_a_bad_timescaledb_value_names_the_key_and_the_allowed_values():
    with pytest.raises(ConfigError, match=r"database\.timescaledb: .*'auto', 'on' or 'off'"):
        load_settings(environ={"OPENPIPE__DATABASE__TIMESCALEDB": "maybe"})


def test_compress_after_days_defaults_to_a_week_and_must_be_positive():
    assert load_settings(environ={}).database.compress_after_days == 7
    with pytest.raises(ConfigError, match=r"database\.compress_after_days"):
        load_settings(environ={"OPENPIPE__DATABASE__COMPRESS_AFTER_DAYS": "0"})


def test_storage_labels():
    assert storage_label("timescaledb", "2.28.3", 10) == "TimescaleDB 2.28.3, 10 hypertables"
    assert storage_label("native", None, 0) == "native partitions"
    assert storage_label("native", "2.28.3", 0) == (
        "native partitions (TimescaleDB 2.28.3 installed but unused)"
    )
    assert storage_label(None, None, 0) == "schema not migrated yet"
    assert (
        storage_label(None, "2.28.3", 0) == "schema not migrated yet (TimescaleDB 2.28.3 installed)"
    )


def test_external_cluster_dir_is_found_again_for_the_same_checkout(tmp_path):
    user = pwd.getpwuid(0).pw_name
    first = postgres.external_cluster_dir(user, tmp_path / "clone" / ".openpipe")
    again = postgres.external_cluster_dir(user, tmp_path / "clone" / ".openpipe")
    other = postgres.external_cluster_dir(user, tmp_path / "other" / ".openpipe")
    assert first == again != other
    assert first.parent == Path(pwd.getpwuid(0).pw_dir) / "openpipe"
    assert first.name.startswith("clone-")
