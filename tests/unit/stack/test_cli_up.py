"""`openpipe up`: what it does around the components, in order (components stubbed)."""

import os
from types import SimpleNamespace

import pytest

from openpipe.config import load_settings
from openpipe.stack import cli
from openpipe.stack.process import ManagedProcess, StackError


@pytest.fixture
def steps(monkeypatch):
    """Records each step `up` takes instead of starting anything."""
    done: list[str] = []
    monkeypatch.setattr(cli, "_launch", lambda c, s, p: done.append(f"launch {c.name}"))
    monkeypatch.setattr(cli, "_wait", lambda c, s, p: done.append(f"wait {c.name}"))
    monkeypatch.setattr(cli, "wait_until", lambda *a, **k: done.append("accepting"))
    monkeypatch.setattr(cli, "_migrate", lambda s, p: done.append("migrate"))
    monkeypatch.setattr(cli, "status", lambda s: done.append("status"))
    monkeypatch.setattr(
        cli,
        "kafka",
        SimpleNamespace(
            create_topics=lambda s: done.append(f"topics on {s.kafka.bootstrap_servers}")
        ),
    )
    monkeypatch.setattr(cli.dagster, "fail_orphaned_runs", lambda s: 0)
    monkeypatch.setattr(cli.jars, "up_to_date", lambda: True)
    monkeypatch.setattr(cli.jars, "fetch", lambda: done.append("jars"))
    monkeypatch.setattr(cli.postgres, "check_timescaledb", lambda s: done.append("check tsdb"))
    monkeypatch.setattr(cli.postgres, "bootstrap", lambda s: done.append("bootstrap"))
    monkeypatch.setattr(cli.postgres, "preload_note", lambda s: None)
    monkeypatch.setattr(cli.postgres, "stop", lambda: done.append("stop postgres"))
    monkeypatch.setattr(cli.flink, "restart_needed", lambda s: False)
    monkeypatch.setattr(cli.flink, "scale_taskmanagers", lambda s: done.append("scale") or [])
    monkeypatch.setattr(cli.viewer, "code_changed_since_start", lambda: None)
    monkeypatch.setattr(cli.flink, "stop", lambda: done.append("stop flink"))
    monkeypatch.setattr(ManagedProcess, "pid", lambda self: None)  # nothing running
    return done


def _settings(**env):
    return load_settings(environ={f"OPENPIPE__{k}": v for k, v in env.items()})


def test_external_kafka_still_gets_the_configured_topics(steps, capsys):
    settings = _settings(KAFKA__MANAGE_LOCAL="false", KAFKA__BOOTSTRAP_SERVERS="broker1:9092")
    cli.up(settings)
    assert "topics on broker1:9092" in steps
    assert steps.index("wait kafka") < steps.index("topics on broker1:9092")


def test_external_kafka_and_flink_still_get_the_connector_jar(steps):
    cli.up(_settings(KAFKA__MANAGE_LOCAL="false", FLINK__MANAGE_LOCAL="false"))
    assert "jars" in steps  # the Flink job deploy sends it to the external cluster


def test_up_migrates_before_it_says_the_stack_is_up(steps, capsys):
    cli.up(_settings())
    assert steps[0] == "check tsdb"
    assert steps.index("bootstrap") < steps.index("migrate") < steps.index("status")
    assert steps.index("wait dagster-daemon") < steps.index("migrate")
    out = capsys.readouterr().out
    assert out.index("stack is up") > 0


def test_timescaledb_on_without_the_library_stops_up_before_anything_starts(steps, monkeypatch):
    def refuse(settings):
        raise StackError("database.timescaledb is 'on' but ...")

    monkeypatch.setattr(cli.postgres, "check_timescaledb", refuse)
    with pytest.raises(StackError, match=r"database\.timescaledb"):
        cli.up(_settings())
    assert steps == []


@pytest.mark.parametrize(("has_tables", "restarted"), [(False, True), (True, False)])
def test_a_server_running_without_timescaledb_is_restarted_only_while_nothing_is_stored(
    steps, monkeypatch, capsys, has_tables, restarted
):
    monkeypatch.setattr(cli.postgres, "preload_note", lambda s: "restart to load TimescaleDB")
    monkeypatch.setattr(cli.postgres, "has_tables", lambda s: has_tables)
    cli.up(_settings())
    assert ("stop postgres" in steps) is restarted
    if restarted:
        after = steps[steps.index("stop postgres") + 1 :]
        assert after[:3] == ["launch postgres", "accepting", "bootstrap"]
    else:
        assert "restart to load TimescaleDB" in capsys.readouterr().out


def test_the_webserver_and_daemon_start_once_the_code_server_answers(steps):
    cli.up(_settings())
    ready = steps.index("wait dagster-code-server")
    assert steps.index("launch dagster-code-server") < ready
    assert ready < steps.index("launch dagster-webserver")
    assert ready < steps.index("launch dagster-daemon")


@pytest.mark.parametrize(("group_left", "failed"), [(True, False), (False, True)])
def test_runs_are_failed_as_orphans_only_when_no_code_server_process_is_left(
    steps, monkeypatch, group_left, failed
):
    # A daemon that crashed alone leaves the code server and its run workers working:
    # failing their runs would free their slots and let a second session start.
    monkeypatch.setattr(
        ManagedProcess,
        "group_running",
        lambda self: group_left if self.name == "dagster-code-server" else False,
    )
    monkeypatch.setattr(cli.dagster, "fail_orphaned_runs", lambda s: steps.append("orphans"))
    cli.up(_settings())
    assert ("orphans" in steps) is failed


@pytest.mark.parametrize(
    ("was_up", "changed", "reloaded"),
    [(True, True, True), (True, False, False), (False, True, False)],
)
def test_a_running_code_server_with_older_code_is_reloaded(
    steps, monkeypatch, tmp_path, was_up, changed, reloaded
):
    # After a `git pull`, its old code would read the new settings.yaml and its sensors fail.
    monkeypatch.setattr(ManagedProcess, "pid", lambda self: 1 if was_up else None)
    monkeypatch.setattr(
        cli.dagster, "code_changed_since_start", lambda: tmp_path / "x.py" if changed else None
    )
    monkeypatch.setattr(cli, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(cli.dagster, "reload_code", lambda s: steps.append("reload"))
    cli.up(_settings())
    assert ("reload" in steps) is reloaded
    if reloaded:
        assert steps.index("wait dagster-webserver") < steps.index("reload")


@pytest.mark.parametrize(
    ("module", "attr", "source"),
    [
        (cli.dagster, "CODE_SERVER", "config/settings.yaml"),
        (cli.viewer, "PROCESS", "sql_viewer/guard.py"),
    ],
    ids=["code server", "viewer"],
)
def test_a_source_newer_than_its_process_is_found(monkeypatch, tmp_path, module, attr, source):
    # `up` reloads the code server or restarts the viewer when this finds a file.
    process = ManagedProcess(getattr(module, attr).name, home=tmp_path / "run")
    monkeypatch.setattr(module, attr, process)
    path = tmp_path / source
    path.parent.mkdir()
    path.write_text("a: 1\n")
    assert module.code_changed_since_start(tmp_path) is None  # never started
    process.pid_file.parent.mkdir()
    process.pid_file.write_text("1\n")
    os.utime(path, (1, 1))
    assert module.code_changed_since_start(tmp_path) is None
    os.utime(path, None)
    os.utime(process.pid_file, (process.pid_file.stat().st_mtime - 5,) * 2)
    assert module.code_changed_since_start(tmp_path) == path
    (tmp_path / "openpipe").mkdir()
    os.utime(path, (1, 1))
    (tmp_path / "openpipe" / "notes.txt").write_text("not code")
    assert module.code_changed_since_start(tmp_path) is None


@pytest.mark.parametrize(("local", "changed"), [(True, True), (True, False), (False, True)])
def test_a_local_flink_started_with_other_config_or_jars_is_restarted(
    steps, monkeypatch, local, changed
):
    # Its JVMs read config.yaml and lib/ once: new settings need new processes.
    monkeypatch.setattr(cli.flink, "restart_needed", lambda s: changed)
    cli.up(_settings(FLINK__MANAGE_LOCAL=str(local).lower()))
    if local and changed:
        assert steps.index("jars") < steps.index("stop flink")
        assert steps.index("stop flink") < steps.index("launch flink-jobmanager")
    else:
        assert "stop flink" not in steps


@pytest.mark.parametrize("changed", [True, False])
def test_a_running_viewer_with_older_code_is_restarted(steps, monkeypatch, tmp_path, changed):
    # It imports its code once; `up` would otherwise leave the old viewer serving.
    monkeypatch.setattr(cli, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(
        cli.viewer, "code_changed_since_start", lambda: tmp_path / "g.py" if changed else None
    )
    monkeypatch.setattr(ManagedProcess, "stop", lambda self: steps.append(f"stop {self.name}"))
    cli.up(_settings())
    if changed:
        assert steps.index("stop sql-viewer") < steps.index("launch sql-viewer")
    else:
        assert "stop sql-viewer" not in steps


def test_up_scales_local_taskmanagers_after_starting_the_first(steps):
    cli.up(_settings())
    assert steps.index("launch flink-taskmanager") < steps.index("scale")
    assert steps.index("scale") < steps.index("wait flink-taskmanager")


@pytest.mark.parametrize(
    ("wanted", "running", "started", "stopped"),
    [
        (2, {1}, [2], []),
        (1, {1, 2, 3}, [], [2, 3]),
        (3, {1, 2, 3}, [], []),
    ],
)
def test_taskmanagers_follow_the_setting(monkeypatch, wanted, running, started, stopped):
    # Raised on a running stack, `up` waited for TaskManagers nobody started; lowered, the
    # extra ones kept running until `make down`.
    done = {"started": [], "stopped": []}
    index = {p.name: i for i, p in enumerate(cli.flink.TASKMANAGERS, start=1)}

    def stop(process: ManagedProcess) -> bool:  # True if it was running, as ManagedProcess's
        if index[process.name] not in running:
            return False
        done["stopped"].append(index[process.name])
        return True

    monkeypatch.setattr(ManagedProcess, "running", lambda self: index[self.name] in running)
    monkeypatch.setattr(ManagedProcess, "stop", stop)
    monkeypatch.setattr(cli.flink, "start_taskmanager", done["started"].append)
    changes = cli.flink.scale_taskmanagers(_settings(FLINK__TASKMANAGERS=str(wanted)))
    assert (done["started"], done["stopped"]) == (started, stopped)
    assert len(changes) == len(started) + len(stopped)
