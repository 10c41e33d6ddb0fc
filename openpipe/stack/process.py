"""Background processes of the local stack: own process group, pid file and log under .openpipe/."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from openpipe.config import REPO_ROOT

STATE_DIR = Path(os.environ.get("OPENPIPE_HOME", REPO_ROOT / ".openpipe"))
RUN_DIR = STATE_DIR / "run"
LOG_DIR = STATE_DIR / "logs"


class StackError(RuntimeError):
    """A component could not be set up or started; the message says what to do."""


@dataclass(frozen=True)
class ManagedProcess:
    """One long-running process we start in its own process group."""

    name: str
    stop_signal: int = signal.SIGTERM
    # A pid file the program keeps itself (PostgreSQL's postmaster.pid): it stays right even
    # when the program was restarted by its own tools rather than by us.
    own_pid_file: Path | None = None
    # Where its pid file and log live; default: .openpipe/run and .openpipe/logs.
    home: Path | None = None

    @property
    def pid_file(self) -> Path:
        return (self.home or RUN_DIR) / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return (self.home or LOG_DIR) / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of the live process, from its own pid file or ours.

        The pid in ours counts only for a process that started before the file was written:
        after a reboot the number can belong to another process, which `stop` would signal.
        """
        own = _read_pid(self.own_pid_file) if self.own_pid_file else None
        if own is not None and _alive(own):
            return own
        pid = _read_pid(self.pid_file)
        if pid is None or not _alive(pid):
            return None
        started = process_start(pid)
        return pid if started is not None and started <= _mtime(self.pid_file) + 1 else None

    def running(self) -> bool:
        return self.pid() is not None

    def source_changed_since_start(self, folders: Sequence[str], root: Path) -> Path | None:
        """A .py or .yaml file under root/folders newer than our pid file, which `start`
        writes: the running process still has the older code or settings. None if never
        started."""
        started = _mtime(self.pid_file)
        if not started:
            return None
        for folder in folders:
            for path in (root / folder).rglob("*"):
                if path.suffix in (".py", ".yaml") and _mtime(path) > started:
                    return path
        return None

    def group_running(self) -> bool:
        """True while any process of the group we started is left, even with its leader gone."""
        pid = _read_pid(self.pid_file)
        return pid is not None and group_alive(pid)

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> int:
        """Start argv detached in a new session; stdout and stderr go to the log file."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **(env or {})}
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=full_env,
                    cwd=cwd or REPO_ROOT,
                    start_new_session=True,
                    user=user,
                )
            except FileNotFoundError as exc:
                raise StackError(f"{self.name}: cannot run {argv[0]!r}: {exc.strerror}") from None
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM the whole process group, then SIGKILL what is left; True if it was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal(pid, self.stop_signal)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and group_alive(pid):
            time.sleep(0.2)
        if group_alive(pid):
            _signal(pid, signal.SIGKILL)
            while group_alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log yet)"


def _mtime(path: Path) -> float:
    """A file's modification time; 0 for one gone meanwhile (a checkout, an editor's swap
    file) or a broken link."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError, PermissionError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _signal(pid: int, signum: int) -> None:
    """Signal the process group led by pid, or pid alone when it leads no group."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def proc_stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...; see
    proc(5), numbered from 0 here), or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def process_start(pid: int) -> float | None:
    """When the process started, epoch seconds, or None once it is gone or a zombie."""
    fields = proc_stat(pid)
    if fields is None or fields[0] == "Z":
        return None
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime")
    )
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, proc_stat fields) of every process still there when it is read."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(entry.name)) is not None:
            yield int(entry.name), fields


def cpu_ticks(fields: list[str]) -> int:
    """User + system CPU a process has used so far, in clock ticks, from its proc_stat fields."""
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (those gone count 0)."""
    ticks = sum(cpu_ticks(f) for pid in pids if (f := proc_stat(pid)) is not None)
    return ticks / os.sysconf("SC_CLK_TCK")


def group_members(pgid: int) -> list[int]:
    """Pids of the group's processes that are not zombies."""
    return [pid for pid, fields in proc_stats() if int(fields[2]) == pgid and fields[0] != "Z"]


def _is_zombie(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is None or fields[0] == "Z"


def group_alive(pgid: int) -> bool:
    """True while the leader or any non-zombie process of its group is left."""
    return _alive(pgid) or bool(group_members(pgid))


def listening_pids(port: int) -> list[int]:
    """Pids of processes with a TCP socket listening on `port` (any address), from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                pids.append(int(entry.name))
        except (FileNotFoundError, PermissionError, ProcessLookupError, NotADirectoryError):
            continue
    return pids


def command_line(pid: int) -> str:
    """The process's command line with spaces between arguments ('' if it is gone)."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets a process holds open."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return inodes


def client_ports(tcp_tables: list[str], inodes: set[int], server_port: int) -> set[int]:
    """Local ports of the TCP sockets among `inodes` connected to `server_port`.

    `tcp_tables` are the texts of /proc/net/tcp and /proc/net/tcp6 (hex address:port).
    """
    ports = set()
    for table in tcp_tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if (
                len(fields) > 9
                and int(fields[9]) in inodes
                and int(fields[2].rsplit(":", 1)[1], 16) == server_port
            ):
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def tcp_client_ports(pids: list[int], server_port: int) -> set[int]:
    """Local ports of the processes' TCP connections to `server_port` (any address)."""
    inodes = set().union(*(_socket_inodes(p) for p in pids)) if pids else set()
    if not inodes:
        return set()
    tables = []
    for name in ("tcp", "tcp6"):
        try:
            tables.append(Path(f"/proc/net/{name}").read_text())
        except FileNotFoundError:
            continue
    return client_ports(tables, inodes, server_port)


def stop_pid(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM a process (its group when it leads one), SIGKILL it if still there after timeout_s."""
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        _signal(pid, signal.SIGKILL)


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def require_free_port(component: str, host: str, port: int, setting: str) -> None:
    """Fail with one clear sentence when another program already listens on the port."""
    if port_open(host, port):
        raise StackError(
            f"{component}: port {port} on {host} is already taken by another program; "
            f"stop that program or choose another port with {setting}."
        )


def wait_until(
    check: Callable[[], tuple[bool, str]],
    *,
    timeout_s: float,
    alive: Callable[[], bool] | None = None,
    on_wait: Callable[[float, str], None] | None = None,
    progress: Callable[[], str | None] | None = None,
    interval_s: float = 0.5,
) -> str:
    """Poll check() until it reports ready; raise StackError on timeout or if the process dies.

    `progress` says what a slow starter is busy with (Kafka recovering its logs after a
    crash); each new answer restarts the timeout, so only a starter that stops moving
    times out.
    """
    start = since = time.monotonic()
    note = progress() if progress else None
    detail = "not checked yet"
    while True:
        ok, detail = check()
        if ok:
            return detail
        now = time.monotonic()
        if progress is not None:
            latest = progress()
            if latest != note:
                note, since = latest, now
            if note:
                detail = f"{detail}; {note}"
        if alive is not None and not alive():
            raise StackError(f"the process exited while starting ({detail})")
        if now - since > timeout_s:
            raise StackError(
                f"not ready after {timeout_s:.0f} s ({detail})"
                if since == start
                else f"no progress for {timeout_s:.0f} s, {now - start:.0f} s in ({detail})"
            )
        if on_wait:
            on_wait(now - start, detail)
        time.sleep(interval_s)
