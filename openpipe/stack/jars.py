"""JVM artefacts from jvm/pom.xml, fetched with Maven into .openpipe/jars/ once per pom version."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from openpipe.config import REPO_ROOT
from openpipe.stack.process import STATE_DIR, StackError

POM = REPO_ROOT / "jvm" / "pom.xml"
#: The job's own format and function (built, not fetched): jvm/flink-wearables.
WEARABLES_PROJECT = REPO_ROOT / "jvm" / "flink-wearables"
WEARABLES_JAR_NAME = "openpipe-flink-wearables.jar"
JARS_DIR = STATE_DIR / "jars"
KAFKA_JARS = JARS_DIR / "kafka"
FLINK_JARS = JARS_DIR / "flink"
STAMP = JARS_DIR / "pom.sha256"

# (folder, maven dependency-plugin filter): the broker and tools, then the Flink connector alone.
_GROUPS = (
    (KAFKA_JARS, "-DexcludeGroupIds=org.apache.flink"),
    (FLINK_JARS, "-DincludeGroupIds=org.apache.flink"),
)


def _pom_digest() -> str:
    digest = hashlib.sha256(POM.read_bytes())
    for path in sorted(p for p in WEARABLES_PROJECT.rglob("*") if p.is_file()):
        if "target" not in path.relative_to(WEARABLES_PROJECT).parts:
            digest.update(str(path.relative_to(WEARABLES_PROJECT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def up_to_date() -> bool:
    return STAMP.exists() and STAMP.read_text().strip() == _pom_digest()


def fetch() -> None:
    """Copy the runtime jars of jvm/pom.xml into .openpipe/jars/, unless already current."""
    if up_to_date():
        return
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError(
            "Maven (`mvn`) is not on PATH; install it with `sudo apt-get install -y maven`."
        )
    for folder, selector in _GROUPS:
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                selector,
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            errors = [line for line in result.stdout.splitlines() if "ERROR" in line][:3]
            raise StackError(
                "fetching JVM jars with Maven failed; check network access to Maven Central "
                f"and rerun `make up`. Maven said: {' / '.join(errors) or result.stderr.strip()}"
            )
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    _build_wearables(mvn)
    STAMP.write_text(_pom_digest() + "\n")


def _build_wearables(mvn: str) -> None:
    """Compile jvm/flink-wearables with Maven and put its jar next to the Kafka connector."""
    build_dir = JARS_DIR / "build" / "flink-wearables"
    shutil.rmtree(build_dir, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(WEARABLES_PROJECT / "pom.xml"),
            "package",
            f"-Dopenpipe.build.dir={build_dir}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        errors = [line for line in result.stdout.splitlines() if "ERROR" in line][:5]
        raise StackError(
            "building jvm/flink-wearables with Maven failed; fix the Java source or the "
            f"network and rerun `make up`. Maven said: {' / '.join(errors) or result.stderr}"
        )
    shutil.copy2(build_dir / WEARABLES_JAR_NAME, FLINK_JARS / WEARABLES_JAR_NAME)


def flink_kafka_connector() -> Path:
    """The Flink Kafka SQL connector jar that jobs load."""
    jars = sorted(FLINK_JARS.glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise StackError("the Flink Kafka connector jar is missing; run `make up` to fetch it.")
    return jars[-1]


def flink_wearables_jar() -> Path:
    """The job's wearable format and function (jvm/flink-wearables), built by `fetch`."""
    jar = FLINK_JARS / WEARABLES_JAR_NAME
    if not jar.exists():
        raise StackError(f"{jar} is missing; run `make up` to build jvm/flink-wearables.")
    return jar
