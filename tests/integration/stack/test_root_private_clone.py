"""As root, a clone in a private (0700) directory still gets a working PostgreSQL.

As root the server runs as the `postgres` user, which cannot enter such a directory;
the cluster then lives under that user's home and `.openpipe/postgres` links to it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from openpipe.config import REPO_ROOT
from openpipe.stack import postgres
from openpipe.stack.process import StackError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="the private-directory case is about root"),
]

# Runs inside the clone, with the clone's code: start, bootstrap, report, stop, purge.
_SCRIPT = """
import json
import shutil
from openpipe.config import load_settings
from openpipe.stack import cli, components, postgres
from openpipe.stack.process import wait_until

settings = load_settings()
components.POSTGRES.start(settings)
wait_until(lambda: postgres.accepting(settings), timeout_s=60)
postgres.bootstrap(settings)
ok, detail = postgres.ready(settings)
with postgres.superuser_connect(settings) as conn:
    preloaded = postgres.preloads_timescaledb(conn)
# The next `up` finds the same cluster, even when .openpipe/run (the socket link) is gone.
first = postgres.DATA_DIR.resolve()
postgres.stop()
shutil.rmtree(postgres.SOCKET_DIR.parent)
components.POSTGRES.start(settings)
wait_until(lambda: postgres.accepting(settings), timeout_s=60)
again_ok, _ = postgres.ready(settings)  # the roles made by the first bootstrap are there
report = {
    "ready": ok,
    "detail": detail,
    "data_dir": str(postgres.DATA_DIR.resolve()),
    "link": postgres.DATA_DIR.is_symlink(),
    "preloaded": preloaded,
    "timescaledb_installed": postgres.timescaledb_installed(),
    "found_again": again_ok and first == postgres.DATA_DIR.resolve(),
}
cli.down(purge=True)
print("REPORT " + json.dumps(report))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(
    not (REPO_ROOT / ".git").exists(), reason="the checkout is not a git repository to clone"
)
def test_root_clone_in_a_0700_directory_starts_postgres_under_the_postgres_home():
    """A clone of the committed tree (HEAD), as a new user would make it."""
    private = Path(tempfile.mkdtemp(prefix="openpipe-private-"))
    try:
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        clone = private / "openpipe"
        subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1", f"file://{REPO_ROOT}", str(clone)],
            check=True,
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OPENPIPE")},
            "PYTHONPATH": str(clone),
            "OPENPIPE__DATABASE__PORT": str(_free_port()),
        }
        result = subprocess.run(
            [sys.executable, "-c", _SCRIPT],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout.split("REPORT ", 1)[1])
        assert report["ready"], report
        assert report["link"], "the cluster should live outside the private directory"
        home = Path(pwd.getpwnam("postgres").pw_dir)
        assert Path(report["data_dir"]).is_relative_to(home / "openpipe")
        assert report["preloaded"] == report["timescaledb_installed"]
        assert report["found_again"]
        # `down --purge` removed the cluster outside the checkout as well.
        assert not Path(report["data_dir"]).exists()
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_without_a_usable_postgres_home_it_fails_before_initdb(tmp_path, monkeypatch):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    tmp_path.chmod(0o700)
    state = private / ".openpipe"
    monkeypatch.setattr(postgres, "STATE_DIR", state)
    monkeypatch.setattr(postgres, "DATA_DIR", state / "postgres")
    monkeypatch.setattr(postgres, "SOCKET_DIR", state / "run" / "pgsocket")
    monkeypatch.setattr(
        postgres, "external_cluster_dir", lambda user: Path("/nonexistent/openpipe/x")
    )
    with pytest.raises(StackError, match=r"cannot enter .*chmod o\+x"):
        postgres._place_cluster("postgres")
    assert not (state / "postgres").exists()


def test_a_cluster_left_where_postgres_can_no_longer_enter_says_what_to_do(tmp_path, monkeypatch):
    private = tmp_path / "private"
    (private / ".openpipe" / "postgres").mkdir(parents=True)
    (private / ".openpipe" / "postgres" / "PG_VERSION").write_text("15\n")
    tmp_path.chmod(0o700)
    state = private / ".openpipe"
    monkeypatch.setattr(postgres, "STATE_DIR", state)
    monkeypatch.setattr(postgres, "DATA_DIR", state / "postgres")
    monkeypatch.setattr(postgres, "SOCKET_DIR", state / "run" / "pgsocket")
    with pytest.raises(StackError, match=r"can no longer enter .*chmod o\+x"):
        postgres._place_cluster("postgres")
    assert not (state / "postgres").is_symlink()
