"""docker-compose.yml and docker/ agree with config/settings.yaml, the code and the pins.

No Docker engine is needed: the compose file, the Dockerfiles and the Dagster files are
parsed and compared with the settings, the modules in the repo, pyproject.toml and
jvm/pom.xml.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from openpipe.config import ENV_PREFIX, REPO_ROOT, ConfigError, Settings, parse_settings

COMPOSE_PATH = REPO_ROOT / "docker-compose.yml"
DOCKER_DIR = REPO_ROOT / "docker"
DOCKERFILES = sorted(DOCKER_DIR.glob("*/Dockerfile"))
INIT_SCRIPT = DOCKER_DIR / "timescaledb" / "100_openpipe.sh"

# The only settings the containers change: where things are. Everything else must be
# exactly what config/settings.yaml says, so the compose system is the same system.
CONTAINER_ADDRESSES = {
    "OPENPIPE__KAFKA__BOOTSTRAP_SERVERS": "kafka:{kafka_port}",
    "OPENPIPE__KAFKA__MANAGE_LOCAL": "false",
    "OPENPIPE__DATABASE__HOST": "timescaledb",
    "OPENPIPE__DATABASE__MANAGE_LOCAL": "false",
    "OPENPIPE__FLINK__MANAGE_LOCAL": "false",
    "OPENPIPE__FLINK__REST_URL": "http://flink-jobmanager:{flink_rest_port}",
    # What the user's browser opens: the JobManager port published on the host.
    "OPENPIPE__FLINK__UI_URL": "http://127.0.0.1:{flink_host_port}",
    "OPENPIPE__MONITORING__HOST": "0.0.0.0",
    # Not an address, but the one other thing a container deployment changes: the
    # simulator is its own service, so Dagster must not launch a second one.
    "OPENPIPE__DAGSTER__LAUNCH_SIMULATOR": "false",
}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _raw_settings() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "config" / "settings.yaml").read_text())


@pytest.fixture(scope="module")
def settings() -> Settings:
    return parse_settings(_raw_settings(), environ={})


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_PATH.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _resolve(value: Any, dotenv: dict[str, str] | None = None) -> str:
    """A compose value as the container sees it, with `dotenv` as the shell/.env variables."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    given = dotenv or {}
    return _INTERPOLATION.sub(lambda m: given.get(m.group(1), m.group(2) or ""), text)


def _environment(service: dict[str, Any], dotenv: dict[str, str] | None = None) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: _resolve(value, dotenv) for key, value in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) for each published port."""
    out = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.append((entry.get("host_ip", ""), int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split(":")
        ip = parts[0] if len(parts) == 3 else ""
        out.append((ip, int(parts[-2]), int(parts[-1])))
    return out


def _flink_properties(service: dict[str, Any]) -> dict[str, str]:
    text = _environment(service)["FLINK_PROPERTIES"]
    return dict(
        (part.strip() for part in line.split(":", 1)) for line in text.splitlines() if line.strip()
    )


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def _expected_ports(settings: Settings) -> dict[str, tuple[int, int]]:
    """service -> (host port, container port), both derived from settings."""
    m = settings.monitoring
    return {
        "dagster-webserver": (m.dagster_port, m.dagster_port),
        "simulator": (m.simulator_port, m.simulator_port),
        "sql-viewer": (m.viewer_port, m.viewer_port),
        "kafka-ui": (m.kafka_ui_port, 8080),  # the Kafka UI image listens on 8080
        "flink-jobmanager": (settings.flink.rest_port, 8081),  # REST port inside the container
        "kafka": (settings.kafka.broker_port, 19092),  # the EXTERNAL (host) listener
        "timescaledb": (settings.database.port, settings.database.port),
    }


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _pinned_dependency(name: str) -> str:
    for requirement in _pyproject()["project"]["dependencies"]:
        if requirement.startswith(f"{name}=="):
            return requirement.split("==", 1)[1]
    raise AssertionError(f"{name} is not pinned with == in pyproject.toml")


def _pom_property(name: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(REPO_ROOT / "jvm" / "pom.xml").getroot()
    node = root.find(f"m:properties/m:{name}", ns)
    assert node is not None, f"jvm/pom.xml has no <{name}> property"
    return node.text.strip()


def _base_images(dockerfile: Path) -> list[str]:
    """Every image a Dockerfile builds from or copies from (build stages excluded)."""
    text = dockerfile.read_text()
    stages = set(
        re.findall(
            r"^FROM\s+(?:--platform=\S+\s+)?\S+\s+AS\s+(\S+)", text, re.MULTILINE | re.IGNORECASE
        )
    )
    images = re.findall(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", text, re.MULTILINE)
    images += re.findall(r"COPY\s+--from=(\S+)", text)
    syntax = re.search(r"^#\s*syntax=(\S+)", text)
    if syntax:
        images.append(syntax.group(1))
    return [image for image in images if image not in stages]


def _is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest") and "$" not in image


def _arg_default(dockerfile: Path, name: str) -> str:
    match = re.search(rf"^ARG\s+{name}=(\S+)", dockerfile.read_text(), re.MULTILINE)
    assert match, f"{dockerfile.relative_to(REPO_ROOT)} has no ARG {name}=<default>"
    return match.group(1)


def _one_shot(services: dict[str, dict[str, Any]]) -> set[str]:
    """Services that run to completion (no restart); others wait for them to succeed."""
    return {name for name, service in services.items() if service.get("restart") == "no"}


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    long_running = {name: s for name, s in services.items() if name not in _one_shot(services)}
    missing = [name for name, service in long_running.items() if not service.get("healthcheck")]
    assert not missing, f"services without a healthcheck: {missing}"
    for name, service in long_running.items():
        assert _command(service) or service.get("image"), name
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_every_service_has_a_pinned_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image or service.get("build"), f"{name}: neither image nor build"
        if image:
            assert _is_pinned(image), f"{name}: image {image!r} has no pinned tag"


def test_built_images_are_never_pulled(services: dict[str, dict[str, Any]]) -> None:
    # With `image:` and `build:` and no pull policy, `docker compose up` first tries to
    # pull openpipe/app and openpipe/flink from Docker Hub, where they do not exist.
    built = {name: s for name, s in services.items() if s.get("build")}
    assert {"user_code", "flink-jobmanager", "kafka-topics"} <= set(built)
    for name, service in built.items():
        assert service.get("pull_policy") == "build", f"{name}: needs pull_policy: build"


def _linux_wheel_machines(package: str) -> set[str]:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    entry = next(p for p in lock["package"] if p["name"] == package)
    machines = set()
    for wheel in entry.get("wheels", []):
        filename = wheel["url"].rsplit("/", 1)[1]
        if "-cp311-" in filename or "-py3-none-" in filename:
            machines |= set(re.findall(r"linux_?\d*_?\d*_(x86_64|aarch64)", filename))
    return machines


def test_built_images_name_the_platform_the_lock_can_install(
    services: dict[str, dict[str, Any]],
) -> None:
    # apache-flink (in both images) has Linux wheels for x86_64 only; on arm64 hosts the
    # images build and run as amd64 rather than fail compiling it. When the lock gains an
    # aarch64 wheel, drop the `platform:` lines.
    machines = _linux_wheel_machines("apache-flink")
    assert "x86_64" in machines
    expected = None if "aarch64" in machines else "linux/amd64"
    for name, service in services.items():
        if service.get("build"):
            assert service.get("platform") == expected, f"{name}: platform"


def test_dockerfiles_pin_their_base_images() -> None:
    assert {p.parent.name for p in DOCKERFILES} >= {"app", "flink"}
    for dockerfile in DOCKERFILES:
        for image in _base_images(dockerfile):
            assert _is_pinned(image), f"{dockerfile.relative_to(REPO_ROOT)}: {image!r} unpinned"


def test_published_host_ports_equal_the_settings(
    services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    expected = _expected_ports(settings)
    published = {name: _published(s) for name, s in services.items() if s.get("ports")}
    assert set(published) == set(expected), "published services differ from the settings' ports"
    for name, (host_port, container_port) in expected.items():
        assert [(h, c) for _, h, c in published[name]] == [(host_port, container_port)], name
        # Same exposure as the local stack: loopback only.
        assert all(ip == "127.0.0.1" for ip, _, _ in published[name]), name


def test_healthchecks_probe_the_ports_the_services_listen_on(
    services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    expected = _expected_ports(settings)
    for name, service in services.items():
        if name in _one_shot(services):
            continue
        for port in re.findall(r"localhost:(\d+)", _healthcheck_text(service)):
            listening = {expected[name][1]} if name in expected else set()
            if name == "kafka":
                listening = {settings.kafka.broker_port}
            if name == "user_code":
                listening = {int(_command(service)[_command(service).index("-p") + 1])}
            assert int(port) in listening, f"{name}: healthcheck probes port {port}"


def test_python_services_use_their_ready_endpoint(services: dict[str, dict[str, Any]]) -> None:
    for name in ("simulator", "sql-viewer"):
        assert "/health/ready" in _healthcheck_text(services[name]), name
    assert "/overview" in _healthcheck_text(services["flink-jobmanager"])
    assert "pg_isready" in _healthcheck_text(services["timescaledb"])
    assert "kafka-broker-api-versions" in _healthcheck_text(services["kafka"])


APP_SERVICES = [
    "user_code",
    "dagster-webserver",
    "dagster-daemon",
    "simulator",
    "sql-viewer",
    "kafka-topics",
]


@pytest.mark.parametrize("service_name", [*APP_SERVICES, "timescaledb"])
def test_openpipe_environment_parses(
    services: dict[str, dict[str, Any]], service_name: str
) -> None:
    env = _environment(services[service_name])
    assert any(key.startswith(ENV_PREFIX) for key in env), service_name
    try:
        parse_settings(_raw_settings(), environ=env)
    except ConfigError as exc:
        pytest.fail(f"{service_name}: {exc}")


# Secrets a user may put in .env; YAML would read each as something else.
SECRETS = ["123456", "true", "pa ss #1", "'quoted'", "a: b", "null", "1e3"]


@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_from_env_reach_every_reader_unchanged(
    services: dict[str, dict[str, Any]], secret: str
) -> None:
    # The TimescaleDB init script and dagster.yaml take the variable as it is; the Python
    # services must read the same password, or their logins fail.
    dotenv = {"OPENPIPE_DB_PASSWORD": secret, "OPENPIPE_DB_READER_PASSWORD": secret}
    for name in APP_SERVICES:
        env = _environment(services[name], dotenv)
        assert env["OPENPIPE__DATABASE__PASSWORD"] == secret, name
        settings = parse_settings(_raw_settings(), environ=env)
        assert settings.database.password == secret, name
        assert settings.database.reader_password == secret, name
    db = _environment(services["timescaledb"], dotenv)
    assert db["OPENPIPE__DATABASE__PASSWORD"] == db["OPENPIPE__DATABASE__READER_PASSWORD"] == secret


def test_overrides_change_only_addresses(
    services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    flink_rest_port = int(_flink_properties(services["flink-jobmanager"])["rest.port"])
    addresses = {
        key: value.format(
            kafka_port=settings.kafka.broker_port,
            flink_rest_port=flink_rest_port,
            flink_host_port=settings.flink.rest_port,
        )
        for key, value in CONTAINER_ADDRESSES.items()
    }
    defaults = settings.model_dump()
    for name, service in services.items():
        for key, value in _environment(service).items():
            if not key.startswith(ENV_PREFIX):
                continue
            if key in addresses:
                assert value == addresses[key], f"{name}: {key}={value}"
                continue
            # As the services read it (text stays text), the value is the file's own.
            read = parse_settings(_raw_settings(), environ={key: value}).model_dump()
            assert read == defaults, (
                f"{name}: {key}={value} differs from config/settings.yaml; "
                "change the settings file, not the compose file"
            )


def test_app_services_share_the_same_settings(services: dict[str, dict[str, Any]]) -> None:
    envs = [
        {k: v for k, v in _environment(services[name]).items() if k.startswith(ENV_PREFIX)}
        for name in APP_SERVICES
    ]
    assert all(env == envs[0] for env in envs), "app services see different OPENPIPE__ values"
    assert set(CONTAINER_ADDRESSES) <= set(envs[0])


def test_topics_are_not_named_in_the_compose_file(settings: Settings) -> None:
    text = COMPOSE_PATH.read_text()
    named = [topic for topic in settings.kafka.topics.all() if topic in text]
    assert not named, f"topics are created from config (docker/app/ensure_topics.py): {named}"


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {target: spec["condition"] for target, spec in service.get("depends_on", {}).items()}


def test_topics_exist_before_anything_uses_kafka(
    services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    # Auto-creation is off: without this service nothing creates the topics in compose,
    # and the simulator waits for them forever (readiness 503).
    init = services["kafka-topics"]
    assert init["restart"] == "no"
    assert _command(init) == ["python", "docker/app/ensure_topics.py"]
    assert init["build"] == services["user_code"]["build"]
    assert _depends(init) == {"kafka": "service_healthy"}
    env = _environment(init)
    assert parse_settings(_raw_settings(), environ=env).kafka.bootstrap_servers == (
        f"kafka:{settings.kafka.broker_port}"
    )
    for name in ("simulator", "sql-viewer", "user_code"):
        assert _depends(services[name]).get("kafka-topics") == "service_completed_successfully", (
            name
        )
    # The Dagster webserver and daemon reach Kafka only through user_code's runs.
    for name in ("dagster-webserver", "dagster-daemon"):
        assert "user_code" in _depends(services[name]), name


def _ensure_topics_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "ensure_topics", DOCKER_DIR / "app" / "ensure_topics.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _RecordingAdmin:
    """Stands in for AdminClient to record what the init service asks Kafka to create."""

    def __init__(self) -> None:
        self.created: list[Any] = []

    def list_topics(self, timeout: float) -> Any:
        return SimpleNamespace(topics={})

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Any]:
        self.created += topics
        return {t.topic: SimpleNamespace(result=lambda: None) for t in topics}


def test_topic_init_creates_the_configured_topics(
    services: dict[str, dict[str, Any]],
) -> None:
    env = {**_environment(services["kafka-topics"]), "OPENPIPE__KAFKA__PARTITIONS": "6"}
    settings = parse_settings(_raw_settings(), environ=env)
    admin = _RecordingAdmin()
    created = _ensure_topics_module().ensure_configured_topics(settings, admin)
    assert created == dict.fromkeys(settings.kafka.topics.all(), True)
    assert [(t.topic, t.num_partitions, t.replication_factor) for t in admin.created] == [
        (name, 6, settings.kafka.replication_factor) for name in settings.kafka.topics.all()
    ]


def test_kafka_healthcheck_has_its_own_small_heap(services: dict[str, dict[str, Any]]) -> None:
    # The probe is a JVM started every interval; with the broker's KAFKA_HEAP_OPTS it
    # would reserve the broker's heap again each time.
    probe = _healthcheck_text(services["kafka"])
    heap = re.search(r"KAFKA_HEAP_OPTS='([^']*)'", probe)
    assert heap, "the Kafka healthcheck must set KAFKA_HEAP_OPTS for itself"
    assert heap.group(1) != _environment(services["kafka"])["KAFKA_HEAP_OPTS"]
    assert int(re.search(r"-Xmx(\d+)m", heap.group(1)).group(1)) <= 128


def test_kafka_ui_is_the_maintained_fork(services: dict[str, dict[str, Any]]) -> None:
    image = services["kafka-ui"]["image"]
    assert image.startswith("ghcr.io/kafbat/kafka-ui:v"), image
    assert "actuator/health" in _healthcheck_text(services["kafka-ui"])


def test_flink_links_open_on_the_host(
    services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    env = _environment(services["user_code"])
    compose_settings = parse_settings(_raw_settings(), environ=env)
    (_, host_port, _), *_ = _published(services["flink-jobmanager"])
    assert compose_settings.flink.ui_url == f"http://127.0.0.1:{host_port}"
    assert host_port == settings.flink.rest_port
    # Dagster itself talks to the cluster inside the compose network.
    assert compose_settings.flink.rest_url.startswith("http://flink-jobmanager:")


def test_flink_state_lives_on_the_cluster_volume(services: dict[str, dict[str, Any]]) -> None:
    # The cluster's own checkpoint and savepoint dirs, on a volume that the JobManager and
    # the TaskManager mount at the same path, and that the Dagster runs can read.
    props = _flink_properties(services["flink-jobmanager"])
    for name in ("flink-jobmanager", "flink-taskmanager"):
        assert _flink_properties(services[name]) == props, name
    dirs = [props["execution.checkpointing.dir"], props["execution.checkpointing.savepoint-dir"]]
    assert not [d for d in dirs if not d.startswith("file:///")]
    paths = [d.removeprefix("file://") for d in dirs]
    for name in ("flink-jobmanager", "flink-taskmanager"):
        mounts = dict(m.split(":")[:2][::-1] for m in services[name]["volumes"])
        mount = next((t for t in mounts if all(p.startswith(t + "/") for p in paths)), None)
        assert mount and mounts[mount] == "flink-data", f"{name}: state dirs not on flink-data"
    user_code = [m.split(":") for m in services["user_code"]["volumes"]]
    assert ["flink-data", mount, "ro"] in user_code
    # Nothing names a path of a machine that submits jobs (the app image's /app).
    assert not [v for v in props.values() if "/app/" in v or ".openpipe" in v]


def test_kafka_broker_matches_settings(
    services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    kafka = services["kafka"]
    env = _environment(kafka)
    assert kafka["image"] == f"apache/kafka:{_pom_property('kafka.version')}"
    assert kafka["image"].split(":")[1].startswith("4.1.")
    port, controller = settings.kafka.broker_port, settings.kafka.controller_port
    assert f"PLAINTEXT://kafka:{port}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert f"EXTERNAL://127.0.0.1:{port}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://:{port}" in env["KAFKA_LISTENERS"]
    assert f"CONTROLLER://:{controller}" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@kafka:{controller}"
    assert int(env["KAFKA_NUM_PARTITIONS"]) == settings.kafka.partitions
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    heap = settings.kafka.heap_mb
    assert env["KAFKA_HEAP_OPTS"] == f"-Xms{heap}m -Xmx{heap}m"
    assert env["KAFKA_LOG_DIRS"] in {target.split(":")[1] for target in kafka["volumes"]}
    ui = _environment(services["kafka-ui"])
    assert ui["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == f"kafka:{port}"


def test_flink_cluster_matches_settings(
    services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    f = settings.flink
    for name in ("flink-jobmanager", "flink-taskmanager"):
        props = _flink_properties(services[name])
        assert props["taskmanager.numberOfTaskSlots"] == str(f.task_slots), name
        assert props["parallelism.default"] == str(f.parallelism), name
        assert props["jobmanager.memory.process.size"] == f"{f.jobmanager_memory_mb}m", name
        assert props["taskmanager.memory.process.size"] == f"{f.taskmanager_memory_mb}m", name
        assert props["execution.checkpointing.interval"] == f"{f.checkpoint_interval_s}s", name
        assert props["jobmanager.rpc.address"] == "flink-jobmanager", name
    props = _flink_properties(services["flink-jobmanager"])
    assert int(props["rest.port"]) == _expected_ports(settings)["flink-jobmanager"][1]


# Local-stack keys that name this machine (addresses, paths, its Python) or the PyFlink
# distribution's JVM options; compose sets its own or keeps the image's.
_MACHINE_KEYS = {
    "env.java.opts.all",
    "jobmanager.bind-host",
    "jobmanager.rpc.address",
    "jobmanager.rpc.port",
    "taskmanager.bind-host",
    "taskmanager.host",
    "rest.address",
    "rest.bind-address",
    "rest.port",
    "execution.checkpointing.dir",
    "execution.checkpointing.savepoint-dir",
    "python.executable",
    "python.client.executable",
}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def test_flink_cluster_config_mirrors_the_local_stack(
    services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    # One cluster configuration: what openpipe/stack/flink.py renders for the local stack,
    # apart from addresses and paths, is what the compose cluster gets.
    from openpipe.stack.flink import render_config

    local = {
        key: value
        for key, value in _flatten(render_config(settings)).items()
        if key not in _MACHINE_KEYS
    }
    props = _flink_properties(services["flink-jobmanager"])
    assert {key: props.get(key) for key in local} == local
    extra = set(props) - set(local) - _MACHINE_KEYS
    assert not extra, f"compose-only Flink options: {sorted(extra)}"


def test_flink_properties_survive_the_image_entrypoint(
    services: dict[str, dict[str, Any]],
) -> None:
    # The flink image's entrypoint strips all whitespace from each line and passes every
    # line (comments too) to Flink, and re-nesting a key that prefixes another breaks it.
    text = _environment(services["flink-jobmanager"])["FLINK_PROPERTIES"]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert not [line for line in lines if line.startswith("#")]
    props = _flink_properties(services["flink-jobmanager"])
    assert not [v for v in props.values() if re.search(r"\s", v) or not v]
    keys = sorted(props)
    assert not [(a, b) for a in keys for b in keys if b.startswith(a + ".")]


def test_images_match_the_project_pins() -> None:
    flink = DOCKER_DIR / "flink" / "Dockerfile"
    pyflink = _pinned_dependency("apache-flink")
    assert f"FROM flink:{pyflink}-java17" in flink.read_text()
    assert _arg_default(flink, "PYFLINK_VERSION") == pyflink
    connector = _pom_property("flink.kafka.connector.version")
    assert _arg_default(flink, "KAFKA_CONNECTOR_VERSION") == connector
    app = (DOCKER_DIR / "app" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11[.\d]*-slim", app, re.MULTILINE)
    assert f"flink-sql-connector-kafka-{connector}.jar" in app
    assert "uv sync --frozen --no-dev" in app
    # Both images fetch the same connector artefact, so they carry the same checksum.
    checksum = re.compile(r"--checksum=(sha256:\w+)")
    assert checksum.findall(flink.read_text()) == checksum.findall(app), "connector checksums"
    assert len(checksum.findall(app)) == 1


def _module_file(module: str) -> Path:
    path = REPO_ROOT / Path(*module.split("."))
    return path / "__main__.py" if path.is_dir() else path.with_suffix(".py")


def test_topic_init_script_exists(services: dict[str, dict[str, Any]]) -> None:
    script = _command(services["kafka-topics"])[1]
    assert (REPO_ROOT / script).is_file()


@pytest.mark.parametrize(
    ("service_name", "module"),
    [
        ("simulator", "simulator"),
        ("sql-viewer", "sql_viewer"),
        ("user_code", "openpipe_dagster.definitions"),
    ],
)
def test_commands_run_modules_that_exist(
    services: dict[str, dict[str, Any]], service_name: str, module: str
) -> None:
    command = _command(services[service_name])
    assert command[command.index("-m") + 1] == module
    path = _module_file(module)
    assert path.is_file(), f"{service_name} runs `python -m {module}`: {path} does not exist"


def test_dagster_does_not_launch_a_second_simulator(
    services: dict[str, dict[str, Any]],
) -> None:
    assert "simulator" in services
    for name in ("dagster-webserver", "dagster-daemon", "user_code"):
        env = _environment(services[name])
        assert env.get("OPENPIPE__DAGSTER__LAUNCH_SIMULATOR") == "false", name


def test_simulator_reads_the_settings_file(services: dict[str, dict[str, Any]]) -> None:
    command = _command(services["simulator"])
    assert (REPO_ROOT / command[command.index("--config") + 1]).is_file()


def test_dagster_services_use_the_compose_workspace(
    services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    workspace = yaml.safe_load((DOCKER_DIR / "dagster" / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    code_server = _command(services["user_code"])
    assert grpc["host"] == "user_code" and "user_code" in services
    assert grpc["port"] == int(code_server[code_server.index("-p") + 1])
    repo_workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    assert grpc["location_name"] == repo_workspace["load_from"][0]["python_module"]["location_name"]
    for name in ("dagster-webserver", "dagster-daemon"):
        command = _command(services[name])
        assert command[command.index("-w") + 1] == "/opt/dagster/home/workspace.yaml", name
    webserver = _command(services["dagster-webserver"])
    assert int(webserver[webserver.index("-p") + 1]) == settings.monitoring.dagster_port


def test_dagster_instance_repeats_the_repo_config() -> None:
    repo = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    compose = yaml.safe_load((DOCKER_DIR / "dagster" / "dagster.yaml").read_text())
    for key, value in repo.items():
        assert compose.get(key) == value, f"docker/dagster/dagster.yaml: {key} differs"


def test_dagster_instance_config_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    for key in ("HOST", "PORT", "DAGSTER_NAME", "USER", "PASSWORD"):
        monkeypatch.setenv(f"OPENPIPE__DATABASE__{key}", "5432" if key == "PORT" else "x")
    shutil.copy(DOCKER_DIR / "dagster" / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["custom"]["config"]["postgres_db"]["hostname"] == {
        "env": "OPENPIPE__DATABASE__HOST"
    }


def test_dagster_containers_get_the_variables_dagster_yaml_reads(
    services: dict[str, dict[str, Any]],
) -> None:
    text = (DOCKER_DIR / "dagster" / "dagster.yaml").read_text()
    needed = set(re.findall(r"env:\s*(\w+)", text))
    assert needed
    for name in ("user_code", "dagster-webserver", "dagster-daemon"):
        assert needed <= set(_environment(services[name])), name


def test_database_init_script_gets_its_variables(
    services: dict[str, dict[str, Any]], settings: Settings
) -> None:
    db = services["timescaledb"]
    env = _environment(db)
    needed = set(re.findall(r"OPENPIPE__DATABASE__\w+", INIT_SCRIPT.read_text()))
    assert needed and needed <= set(env)
    assert env["POSTGRES_USER"] == settings.database.superuser
    mounts = [m.split(":")[:2] for m in db["volumes"]]
    assert [
        "./docker/timescaledb/100_openpipe.sh",
        "/docker-entrypoint-initdb.d/100_openpipe.sh",
    ] in (mounts)
    assert INIT_SCRIPT.stat().st_mode & 0o111, "the init script must be executable"
    image = db["image"]
    assert re.fullmatch(r"timescale/timescaledb:[\d.]+-pg1[67]", image), image


def test_depends_on_waits_for_health(services: dict[str, dict[str, Any]]) -> None:
    one_shot = _one_shot(services)
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            wanted = "service_completed_successfully" if target in one_shot else "service_healthy"
            assert spec == {"condition": wanted}, f"{name} -> {target}"


def test_data_lives_in_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert mount.endswith(":ro"), f"{name}: bind mount {mount} must be read-only"
                continue
            assert source in declared, f"{name}: volume {source} is not declared"
            used.add(source)
    assert used == declared
    for name in ("kafka", "timescaledb", "flink-jobmanager", "flink-taskmanager"):
        assert any(not m.startswith((".", "/")) for m in services[name]["volumes"]), name
