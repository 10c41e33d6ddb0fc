import os
import socket
import subprocess
import time

import pytest

from openpipe.stack import process as proc
from openpipe.stack.process import ManagedProcess, StackError


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setattr(proc, "RUN_DIR", tmp_path / "run")
    monkeypatch.setattr(proc, "LOG_DIR", tmp_path / "logs")
    return tmp_path


def test_start_writes_pid_and_log_and_stop_kills_whole_group(state):
    managed = ManagedProcess("tree")
    # A parent that ignores SIGTERM and two children: stop() must still leave nothing behind.
    pid = managed.start(["sh", "-c", "trap '' TERM; sleep 300 & sleep 300 & echo started; wait"])
    assert managed.pid() == pid
    deadline = time.monotonic() + 5
    while len(proc.group_members(pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(proc.group_members(pid)) == 3
    assert managed.stop(timeout_s=1)
    assert proc.group_members(pid) == []
    assert not managed.pid_file.exists()
    assert "started" in managed.log_tail()
    assert not managed.running()


def test_stop_when_not_running_is_a_no_op(state):
    managed = ManagedProcess("idle")
    assert managed.stop() is False


def test_stale_pid_file_is_not_running(state):
    managed = ManagedProcess("stale")
    managed.pid_file.parent.mkdir(parents=True)
    dead = ManagedProcess("short")
    pid = dead.start(["true"])
    time.sleep(0.3)
    managed.pid_file.write_text(f"{pid}\n")
    assert managed.pid() is None


def test_a_pid_file_older_than_its_process_is_not_ours(state):
    # After a reboot the pid in an old file can be another process's: never ours to stop.
    other = subprocess.Popen(["sleep", "30"])
    try:
        managed = ManagedProcess("before-reboot")
        managed.pid_file.parent.mkdir(parents=True)
        managed.pid_file.write_text(f"{other.pid}\n")
        assert managed.pid() == other.pid  # written after the process started
        os.utime(managed.pid_file, (time.time() - 3600,) * 2)
        assert managed.pid() is None
        assert managed.stop() is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_garbage_pid_file_is_not_running(state):
    managed = ManagedProcess("garbage")
    managed.pid_file.parent.mkdir(parents=True)
    managed.pid_file.write_text("not a pid")
    assert not managed.running()


def test_missing_executable_is_a_stack_error(state):
    with pytest.raises(StackError, match="cannot run 'no-such-binary-xyz'"):
        ManagedProcess("missing").start(["no-such-binary-xyz"])


def test_require_free_port_names_the_setting():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(StackError, match=f"port {port} .* OPENPIPE__X__PORT"):
            proc.require_free_port("thing", "127.0.0.1", port, "OPENPIPE__X__PORT")
    proc.require_free_port("thing", "127.0.0.1", port, "OPENPIPE__X__PORT")


def test_wait_until_times_out_with_the_last_detail():
    with pytest.raises(StackError, match=r"not ready after 0 s \(still booting\)"):
        proc.wait_until(lambda: (False, "still booting"), timeout_s=0.2, interval_s=0.05)


def test_wait_until_fails_fast_when_the_process_dies():
    with pytest.raises(StackError, match="exited while starting"):
        proc.wait_until(lambda: (False, "x"), timeout_s=30, alive=lambda: False)


def test_wait_until_returns_detail_when_ready():
    calls = iter([(False, "a"), (True, "ready now")])
    assert proc.wait_until(lambda: next(calls), timeout_s=5, interval_s=0.01) == "ready now"


def test_own_pid_file_finds_a_process_restarted_by_its_own_tools(state, tmp_path):
    import signal
    import subprocess

    own = tmp_path / "postmaster.pid"
    managed = ManagedProcess("restarted", stop_signal=signal.SIGINT, own_pid_file=own)
    # Started outside ManagedProcess (as `pg_ctl restart` would), in no group of its own.
    # SIGINT back to its default: a shell running the tests in the background ignores it,
    # and sleep would inherit that.
    other = subprocess.Popen(
        ["sleep", "300"], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    own.write_text(f"{other.pid}\n/data\n")
    assert managed.pid() == other.pid
    assert managed.stop(timeout_s=5)
    assert other.wait(timeout=5) == -signal.SIGINT


def test_wait_until_waits_on_while_the_starter_makes_progress():
    # Kafka loading its logs after a crash, one more log per poll, then it listens: 0.5 s
    # in all, past the 0.15 s timeout, with each poll 0.05 s after the last progress.
    notes = (f"{n} of 10" for n in range(100))
    checks = iter([(False, "nothing listening")] * 10 + [(True, "broker id 1")])
    got = proc.wait_until(
        lambda: next(checks), timeout_s=0.15, progress=lambda: next(notes), interval_s=0.05
    )
    assert got == "broker id 1"


def test_wait_until_times_out_once_progress_stops_and_says_how_far_it_got():
    with pytest.raises(StackError, match=r"no progress for 0 s, 0 s in \(down; 2 of 3\)"):
        proc.wait_until(
            lambda: (False, "down"),
            timeout_s=0.1,
            progress=iter(["1 of 3", "2 of 3"] + ["2 of 3"] * 100).__next__,
            interval_s=0.02,
        )
