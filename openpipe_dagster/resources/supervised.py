"""A long-running process that Dagster deploys and keeps alive (reusable by other services).

The process is a `ManagedProcess` (detached, its own process group, pid file and log), so it
outlives the Dagster run that started it and `openpipe down` stops it like the rest of the
stack. Next to it, `<name>.json` records the process start time (to guard against pid reuse),
the desired state and caller metadata. A supervisor sensor reads `status()` and redeploys
when the process is wanted but dead.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from openpipe.stack.process import ManagedProcess

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


class SupervisedProcess:
    """A ManagedProcess plus its desired state and deploy metadata, kept in `<name>.json`."""

    def __init__(self, name: str, state_dir: Path) -> None:
        self.name = name
        self.process = ManagedProcess(name, home=Path(state_dir))
        self.state_file = Path(state_dir) / f"{name}.json"

    @property
    def pid_file(self) -> Path:
        return self.process.pid_file

    @property
    def log_file(self) -> Path:
        return self.process.log_file

    def _read_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _write_state(self, state: dict) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
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
        pid = self.process.start(argv, env={"PYTHONUNBUFFERED": "1", **(env or {})}, cwd=cwd)
        self._write_state(
            {
                "pid": pid,
                "start_ticks": _start_ticks(pid),
                "argv": list(argv),
                "started_at": time.time(),
                "desired": "running",
                "metadata": dict(metadata or {}),
            }
        )
        log.info("started %s as pid %d (log %s)", self.name, pid, self.log_file)
        return self.status()

    def stop(self, timeout_s: float = 30.0, *, desired: str = "stopped") -> bool:
        """Stop the whole process group (SIGTERM, then SIGKILL); True if it was running."""
        current = self.status()
        state = self._read_state()
        if state:
            state["desired"] = desired
            self._write_state(state)
        if not current.running:
            return False
        stopped = self.process.stop(timeout_s)
        log.info("stopped %s (pid %d)", self.name, current.pid)
        return stopped

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the log, for error messages."""
        return self.process.log_tail(lines)
