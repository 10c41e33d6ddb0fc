"""docker-compose.yml is valid against the Compose Specification's JSON schema.

`compose-spec.json` is schema/compose-spec.json of github.com/compose-spec/compose-spec
(commit a08f8d51631b7127ddac3d2c65537db429d0f1d0, Apache-2.0), the schema `docker
compose` validates with. It catches a misspelt key, a wrong `depends_on` condition or a
bad `pull_policy` without a Docker engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from openpipe.config import REPO_ROOT

SCHEMA = Path(__file__).with_name("compose-spec.json")


def _errors(document: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{'.'.join(map(str, error.path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_file_follows_the_compose_spec() -> None:
    document = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert not _errors(document)


def test_the_schema_rejects_what_compose_rejects() -> None:
    document = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    document["services"]["kafka-topics"]["depends_on"]["kafka"]["condition"] = "done"
    document["services"]["kafka-ui"]["pull_policy"] = "sometimes"
    document["services"]["kafka"]["healtcheck"] = {}
    assert len(_errors(document)) == 3
