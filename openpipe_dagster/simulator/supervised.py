"""A long-running process that Dagster deploys and keeps alive (reusable by other services).

The process runs detached in its own session, so it outlives the Dagster run that started
it and can be stopped as a whole process group. State lives in `<state_dir>/<name>.json`
(pid, process start time to guard against pid reuse, desired state, caller metadata) next
to `<name>.pid` and `<name>.log`. A supervisor sensor reads `status()` and redeploys when
the process is wanted but dead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    """What the state file says and whether that process is still alive."""

    name: str
    running: bool
    desired: str  # "running", "stopped" or "never-deployed"
    pid: int | None = None
    started_at: float | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def needs_restart(self) -> bool:
        """Wanted running but not alive."""
        return self.desired == "running" and not self.running


def _start_ticks(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/pid/stat); None if gone or zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == "Z" else fields[19]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg succeeds while zombies remain; look for a live member.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


class SupervisedProcess:
    """Start, stop and inspect one detached process group with a pid file, log and state."""

    def __init__(self, name: str, state_dir: Path, extra_pid_files: Sequence[Path] = ()) -> None:
        self.name = name
        self.state_dir = Path(state_dir)
        self.pid_file = self.state_dir / f"{name}.pid"
        self.log_file = self.state_dir / f"{name}.log"
        self.state_file = self.state_dir / f"{name}.json"
        # Other tools (e.g. `openpipe down`) may look for the pid elsewhere too.
        self._extra_pid_files = [Path(p) for p in extra_pid_files]

    def _read_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _write_state(self, state: dict) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.replace(self.state_file)

    def status(self) -> ProcessStatus:
        """The recorded process and whether it is alive (same pid and same start time)."""
        state = self._read_state()
        if not state:
            return ProcessStatus(self.name, running=False, desired="never-deployed")
        pid = state.get("pid")
        alive = pid is not None and _start_ticks(pid) == state.get("start_ticks")
        return ProcessStatus(
            self.name,
            running=alive,
            desired=state.get("desired", "running"),
            pid=pid,
            started_at=state.get("started_at"),
            metadata=state.get("metadata", {}),
        )

    def start(
        self,
        argv: Sequence[str],
        *,
        metadata: Mapping[str, object] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ProcessStatus:
        """Stop any running instance, then start `argv` detached; record it as wanted."""
        self.stop(desired="running")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            out.write(
                f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {list(argv)}\n".encode()
            )
            out.flush()
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        for pid_file in (self.pid_file, *self._extra_pid_files):
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            pid_file.write_text(f"{proc.pid}\n")
        self._write_state(
            {
                "pid": proc.pid,
                "start_ticks": _start_ticks(proc.pid),
                "argv": list(argv),
                "started_at": time.time(),
                "desired": "running",
                "metadata": dict(metadata or {}),
            }
        )
        log.info("started %s as pid %d (log %s)", self.name, proc.pid, self.log_file)
        return self.status()

    def stop(self, timeout_s: float = 30.0, *, desired: str = "stopped") -> bool:
        """SIGTERM the process group, SIGKILL after `timeout_s`; True if it was running."""
        current = self.status()
        state = self._read_state()
        if state:
            state["desired"] = desired
            self._write_state(state)
        if not current.running:
            return False
        pgid = current.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.2)
        if _group_alive(pgid):
            log.warning(
                "%s (pid %d) ignored SIGTERM for %.0f s; killing", self.name, pgid, timeout_s
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            while _group_alive(pgid):
                time.sleep(0.1)
        for pid_file in (self.pid_file, *self._extra_pid_files):
            pid_file.unlink(missing_ok=True)
        log.info("stopped %s (pid %d)", self.name, pgid)
        return True

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the log, for error messages."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log yet)"
