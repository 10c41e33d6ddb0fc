import yaml

from openpipe.config import load_settings
from openpipe.stack import components, flink, jars, kafka, postgres
from openpipe.stack.process import ManagedProcess, StackError


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_kafka_properties_follow_settings():
    settings = load_settings(
        environ={
            "OPENPIPE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19092",
            "OPENPIPE__KAFKA__CONTROLLER_PORT": "19093",
        }
    )
    props = _props(kafka.render_properties(settings))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["process.roles"] == "broker,controller"
    assert props["num.partitions"] == "3"
    assert props["auto.create.topics.enable"] == "false"


def test_flink_config_is_loopback_with_configured_slots_and_state_dirs():
    settings = load_settings(
        environ={"OPENPIPE__FLINK__TASK_SLOTS": "4", "OPENPIPE__FLINK__CHECKPOINT_INTERVAL_S": "7"}
    )
    conf = flink.render_config(settings)
    assert conf["rest"]["port"] == settings.flink.rest_port
    assert conf["rest"]["bind-address"] == "127.0.0.1"
    assert conf["taskmanager"]["numberOfTaskSlots"] == 4
    assert conf["execution"]["checkpointing"]["dir"].endswith(".openpipe/flink/checkpoints")
    assert conf["execution"]["checkpointing"]["interval"] == "7s"
    yaml.safe_dump(conf)


def test_missing_postgres_binary_says_how_to_install(monkeypatch):
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])
    try:
        postgres.find_binary("initdb")
    except StackError as exc:
        assert "apt-get install -y postgresql" in str(exc)
    else:
        raise AssertionError("expected StackError")


def test_missing_maven_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(jars, "STAMP", tmp_path / "stamp")
    monkeypatch.setattr(jars.shutil, "which", lambda name: None)
    try:
        jars.fetch()
    except StackError as exc:
        assert "apt-get install -y maven" in str(exc)
    else:
        raise AssertionError("expected StackError")


def test_components_have_unique_names_and_ports():
    settings = load_settings()
    names = [c.name for c in components.ALL]
    assert len(names) == len(set(names))
    ports = [c.port(settings)[1] for c in components.ALL if c.port(settings)[1]]
    assert len(ports) == len(set(ports))
    assert components.by_name("kafka") is components.KAFKA


def test_kafka_segments_are_small_enough_to_recover_quickly():
    props = _props(kafka.render_properties(load_settings()))
    assert int(props["log.segment.bytes"]) <= 256 * 1024 * 1024


def test_kafka_recovery_progress_reads_the_brokers_log_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(kafka, "PROCESS", ManagedProcess("kafka", home=tmp_path))
    assert kafka.recovery_progress() is None  # no log yet
    line = "[t] INFO Completed load of Log(dir=x) in 5ms ({} completed in /data) (kafka.log)\n"
    earlier = "".join(line.format(f"{n}/161") for n in range(1, 162)) + (
        "[t] INFO Loaded 161 logs in 900ms (unclean log dirs = []) (kafka.log.LogManager)\n"
    )
    kafka.PROCESS.log_file.write_text(earlier)
    assert kafka.recovery_progress() is None  # the last start loaded them all
    with kafka.PROCESS.log_file.open("a") as log:
        log.write(line.format("1/1161") + "noise\n" * 3 + line.format("1136/1161"))
    assert kafka.recovery_progress() == "loading its logs: 1,136 of 1,161"


def test_flink_lib_is_the_distribution_plus_the_connector_and_nothing_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(flink, "LIB_DIR", tmp_path / "lib")
    dist = tmp_path / "dist"
    dist.mkdir()
    for name in ("flink-dist-2.2.1.jar", "flink-json-2.2.1.jar", "README.txt"):
        (dist / name).write_text(name)
    connector = tmp_path / "flink-sql-connector-kafka-5.0.0-2.2.jar"
    connector.write_text("connector")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "flink-sql-connector-kafka-4.0.0-2.0.jar").symlink_to(connector)
    flink.link_lib(dist, connector)
    flink.link_lib(dist, connector)  # idempotent
    linked = {p.name: p.resolve() for p in (tmp_path / "lib").iterdir()}
    assert linked == {
        "flink-dist-2.2.1.jar": (dist / "flink-dist-2.2.1.jar").resolve(),
        "flink-json-2.2.1.jar": (dist / "flink-json-2.2.1.jar").resolve(),
        connector.name: connector.resolve(),
    }
    assert flink._env()["FLINK_LIB_DIR"] == str(tmp_path / "lib")


def test_a_restart_is_needed_once_config_or_jars_differ_from_the_start(tmp_path, monkeypatch):
    home = tmp_path / "flink"
    (home / "conf").mkdir(parents=True)
    (home / "lib").mkdir()
    (home / "conf" / "config.yaml").write_text(
        (flink.flink_home() / "conf" / "config.yaml").read_text()
    )
    (home / "lib" / "flink-dist-2.2.1.jar").write_bytes(b"dist")
    monkeypatch.setattr(flink, "flink_home", lambda: home)
    jar = tmp_path / "flink-sql-connector-kafka-5.0.0-2.2.jar"
    jar.write_bytes(b"v1")
    monkeypatch.setattr(flink, "_extra_jars", lambda: (jar,))
    monkeypatch.setattr(flink, "STARTED_WITH", tmp_path / "started-with.sha256")
    running = {"flink-jobmanager"}
    monkeypatch.setattr(ManagedProcess, "running", lambda self: self.name in running)
    settings = load_settings(environ={})

    def started_now() -> None:
        flink.STARTED_WITH.write_text(flink._digest(flink._config_text(settings)))

    assert flink.restart_needed(settings)  # started before the check existed
    started_now()
    assert not flink.restart_needed(settings)
    jar.write_bytes(b"v2")  # another connector
    assert flink.restart_needed(settings)
    started_now()
    (home / "lib" / "flink-dist-2.2.1.jar").rename(home / "lib" / "flink-dist-2.2.2.jar")
    assert flink.restart_needed(settings)  # another Flink
    started_now()
    slots = load_settings(environ={"OPENPIPE__FLINK__TASK_SLOTS": "3"})
    assert flink.restart_needed(slots)
    running = {"flink-taskmanager-2"}  # left without its JobManager: still the old config
    assert flink.restart_needed(slots)
    running = set()
    assert not flink.restart_needed(slots)  # nothing to restart


def test_the_rendered_python_is_the_same_whichever_alias_started_us(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    for name in ("python", "python3"):
        (tmp_path / "bin" / name).touch()
    monkeypatch.setattr(flink.sys, "executable", str(tmp_path / "bin" / "python3"))
    python = flink.render_config(load_settings(environ={}))["python"]
    assert python == {"executable": str(tmp_path / "bin" / "python")} | {
        "client": {"executable": str(tmp_path / "bin" / "python")}
    }
