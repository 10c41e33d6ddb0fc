"""docker/*/Dockerfile, read as BuildKit would run them: which user each step runs as, and
whether the paths the containers use are made in the image. No Docker engine needed.

The base images' last USER is a fact about those images, recorded in BASE_IMAGE_USER
with its source; a new base image must be added there before these tests pass.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from openpipe.config import REPO_ROOT

DOCKER_DIR = REPO_ROOT / "docker"
FLINK_DOCKERFILE = DOCKER_DIR / "flink" / "Dockerfile"
APP_DOCKERFILE = DOCKER_DIR / "app" / "Dockerfile"

# The user each base image's build ends with (its last USER line; root when it has none).
BASE_IMAGE_USER = {
    # apache/flink-docker 2.2/scala_2.12-java17-ubuntu/Dockerfile ends with `USER flink`
    # (uid 9999, home /opt/flink; FLINK-37881 dropped gosu from the entrypoint).
    "flink": "flink",
    # docker-library/python: no USER line.
    "python": "root",
}
# What a non-root user may write to in each base image (the flink user owns /opt/flink).
WRITABLE = {"flink": ("/opt/flink/", "/tmp/"), "openpipe": ("/app/.openpipe/", "/tmp/")}
# Commands that need root wherever they write.
ROOT_ONLY = re.compile(r"\b(apt-get|apt|useradd|groupadd|chown)\b")


@dataclass(frozen=True)
class Step:
    instruction: str
    args: str
    user: str  # the user the step runs as
    stage: int  # index of the FROM it belongs to


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    out = []
    for text in logical:
        instruction, _, args = text.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def _base_user(image: str) -> str:
    name = image.split("@")[0].rsplit(":", 1)[0].split("/")[-1]
    assert name in BASE_IMAGE_USER, f"record the last USER of base image {image!r}"
    return BASE_IMAGE_USER[name]


def _steps(dockerfile: Path) -> list[Step]:
    """Every instruction of the final stage, with the user it runs as."""
    steps: list[Step] = []
    stage, user = -1, "root"
    stage_names: set[str] = set()
    for instruction, args in _instructions(dockerfile):
        if instruction == "FROM":
            stage += 1
            words = [w for w in args.split() if not w.startswith("--platform")]
            image = words[0]
            if len(words) == 3 and words[1].upper() == "AS":
                stage_names.add(words[2])
                user = "root"  # a copy-from stage: nothing runs in it
            else:
                user = "root" if image in stage_names else _base_user(image)
        elif instruction == "USER":
            user = args.split(":")[0]
        steps.append(Step(instruction, args, user, stage))
    last = steps[-1].stage
    return [step for step in steps if step.stage == last]


def _env(steps: list[Step]) -> dict[str, str]:
    env: dict[str, str] = {}
    for step in steps:
        if step.instruction == "ENV":
            for word in shlex.split(step.args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def _writes_where_it_may_not(step: Step) -> list[str]:
    """Why a RUN step would be refused: root-only commands, or absolute paths it names
    outside what its user owns (strict: a path it only reads counts too)."""
    if step.user == "root":
        return []
    text = re.sub(r"--mount=\S+", "", step.args)
    problems = [f"`{command}` needs root" for command in ROOT_ONLY.findall(text)]
    allowed = WRITABLE.get(step.user, ("/tmp/",))
    for path in re.findall(r"(?<![\w:])(/[\w./-]+)", text):
        if not (path + "/").startswith(allowed):
            problems.append(f"writes {path}")
    return problems


@pytest.mark.parametrize("dockerfile", [FLINK_DOCKERFILE, APP_DOCKERFILE], ids=["flink", "app"])
def test_every_run_step_may_write_where_it_writes(dockerfile: Path) -> None:
    # flink:2.2 ends with USER flink: a RUN that creates /opt/pyflink or links into
    # /usr/local/bin as that user is refused, and the whole `compose up` stops there.
    bad = {
        step.args[:80]: _writes_where_it_may_not(step)
        for step in _steps(dockerfile)
        if step.instruction == "RUN" and _writes_where_it_may_not(step)
    }
    assert not bad, f"{dockerfile.relative_to(REPO_ROOT)}: RUN steps as a non-root user: {bad}"


def test_the_parser_sees_the_flink_base_user() -> None:
    # Guards the test above: without `USER root`, the Flink image's installs run as flink.
    steps = _steps(FLINK_DOCKERFILE)
    first_run = next(step for step in steps if step.instruction == "RUN")
    assert first_run.user == "root"
    broken = Step("RUN", "uv venv /opt/pyflink && ln -sf /opt/x /usr/local/bin/python", "flink", 1)
    assert _writes_where_it_may_not(broken) == [
        "writes /opt/pyflink",
        "writes /opt/x",
        "writes /usr/local/bin/python",
    ]
    assert _writes_where_it_may_not(Step("RUN", "apt-get update", "flink", 1))
    assert not _writes_where_it_may_not(Step("RUN", "mkdir -p /opt/flink/data/x", "flink", 1))


@pytest.mark.parametrize(
    ("dockerfile", "user"),
    [(FLINK_DOCKERFILE, "flink"), (APP_DOCKERFILE, "openpipe")],
    ids=["flink", "app"],
)
def test_containers_run_as_their_own_non_root_user(dockerfile: Path, user: str) -> None:
    assert _steps(dockerfile)[-1].instruction == "USER", "USER must be the last instruction"
    assert _steps(dockerfile)[-1].user == user


def _flink_properties() -> dict[str, str]:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    text = compose["services"]["flink-jobmanager"]["environment"]["FLINK_PROPERTIES"]
    return dict(
        (part.strip() for part in line.split(":", 1)) for line in text.splitlines() if line.strip()
    )


def _made_in(steps: list[Step]) -> str:
    return " ".join(step.args for step in steps if step.instruction in ("RUN", "ADD", "COPY"))


def test_flink_image_makes_the_paths_compose_configures() -> None:
    steps = _steps(FLINK_DOCKERFILE)
    made = _made_in(steps)
    props = _flink_properties()
    for key in ("python.executable", "python.client.executable"):
        venv = props[key].rsplit("/bin/", 1)[0]
        assert f"uv venv --python 3.11 {venv}" in made, key
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir"):
        path = props[key].removeprefix("file://")
        assert path.startswith("/opt/flink/data/"), f"{key}={props[key]} is not on flink-data"
        assert path in made, f"{key}: the image does not create {path}"
    chown = next(s for s in steps if s.instruction == "RUN" and "/opt/flink/data" in s.args)
    assert "chown -R flink:flink /opt/flink/data" in chown.args and chown.user == "root"
    assert "/opt/flink/lib/" in made  # the Kafka SQL connector jar
    # Healthchecks run `python`: the link the root step makes.
    assert "ln -sf /opt/pyflink/bin/python /usr/local/bin/python " in made + " "


def test_app_image_gives_its_user_the_state_it_writes() -> None:
    steps = _steps(APP_DOCKERFILE)
    env = _env(steps)
    chown = next(s for s in steps if s.instruction == "RUN" and "chown" in s.args)
    assert chown.user == "root"
    for path in (env["DAGSTER_HOME"], "/app/.openpipe"):
        assert path in chown.args.split("chown -R openpipe", 1)[1], path
    assert env["FLINK_LOG_DIR"].startswith("/app/.openpipe/")
    assert env["DAGSTER_HOME"] == "/opt/dagster/home"
    copied = next(s for s in steps if s.instruction == "COPY" and "docker/dagster/" in s.args)
    assert copied.args.split()[-1].rstrip("/") == env["DAGSTER_HOME"]


def test_app_build_context_keeps_what_the_services_run() -> None:
    ignored = [
        line.strip()
        for line in (DOCKER_DIR / "app" / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    compose: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        command = service.get("command") or []
        scripts = [part for part in command if str(part).endswith(".py")]
        for script in scripts:
            assert (REPO_ROOT / script).is_file(), f"{name}: {script} does not exist"
            assert not any(script.startswith(pattern.rstrip("/") + "/") for pattern in ignored), (
                f"{name}: {script} is excluded from the app image by the .dockerignore"
            )


def test_app_image_carries_the_jars_the_job_loads() -> None:
    # The health job refuses to start without its wearable format jar (flink_jobs),
    # which the local stack builds with Maven; the app image builds it the same way.
    from openpipe.stack.jars import WEARABLES_JAR_NAME, WEARABLES_PROJECT

    steps = _steps(APP_DOCKERFILE)
    text = APP_DOCKERFILE.read_text()
    build = re.search(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)\s+AS\s+wearables", text, re.M)
    assert build and build.group(1).startswith("maven:") and "temurin-17" in build.group(1)
    source = WEARABLES_PROJECT.relative_to(REPO_ROOT).as_posix()
    assert f"COPY {source}/ ./" in text
    jar = next(s for s in steps if s.instruction == "COPY" and "--from=wearables" in s.args)
    assert jar.args.split()[-2].endswith(f"/target/{WEARABLES_JAR_NAME}")
    assert jar.args.split()[-1] == "/app/.openpipe/jars/flink/"
    pom = (WEARABLES_PROJECT / "pom.xml").read_text()
    assert f"<finalName>{WEARABLES_JAR_NAME.removesuffix('.jar')}</finalName>" in pom
    assert "<openpipe.build.dir>${project.basedir}/target</openpipe.build.dir>" in pom


def _builds() -> list[tuple[str, Path, Path]]:
    """(service, build context, Dockerfile) of each compose service that builds its image."""
    compose: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    builds = []
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = REPO_ROOT / (build if isinstance(build, str) else build["context"])
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            builds.append((name, context, context / (dockerfile or "Dockerfile")))
    return builds


def test_builds_point_at_existing_dockerfiles() -> None:
    for name, _, dockerfile in _builds():
        assert dockerfile.is_file(), f"{name}: {dockerfile}"


def test_copied_sources_are_in_the_build_context() -> None:
    for name, context, dockerfile in _builds():
        for instruction, args in _instructions(dockerfile):
            words = shlex.split(args)
            if instruction != "COPY" or any(w.startswith("--from=") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            missing = [s for s in sources if not (context / s).exists()]
            assert not missing, f"{name}: {dockerfile.name} copies {missing} from outside {context}"


def test_builds_from_the_repo_root_leave_the_local_state_out() -> None:
    # Without an ignore file the context would carry .openpipe/ (Kafka's log, the database).
    for name, context, dockerfile in _builds():
        if context != REPO_ROOT:
            continue
        ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
        lines = ignore.read_text().splitlines() if ignore.is_file() else []
        patterns = {line.strip().rstrip("/") for line in lines if not line.startswith("#")}
        assert {"*", ".openpipe"} & patterns, f"{name}: {ignore} keeps .openpipe/"
        assert "!.openpipe" not in patterns, f"{name}: {ignore} lets .openpipe/ back in"
