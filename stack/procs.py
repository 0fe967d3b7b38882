"""Processes the launcher starts: each in its own process group, its pid in a file, its output
in a log file; stopped gracefully, then firmly."""

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from stack.config import StackConfig


def pid_file(config: StackConfig, name: str) -> Path:
    return config.run_dir / f"{name}.pid"


def log_file(config: StackConfig, name: str) -> Path:
    return config.logs_dir / f"{name}.log"


def running_pid(config: StackConfig, name: str) -> int | None:
    """The recorded pid of ``name`` if that process still lives (and is not a reused pid)."""
    path = pid_file(config, name)
    try:
        pid = int(path.read_text().split()[0])
        marker = path.read_text().split(maxsplit=1)[1].strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError, IndexError):
        return None
    if marker not in cmdline or _is_zombie(pid):
        return None
    return pid


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def start(
    config: StackConfig,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    marker: str,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached in its own session; ``marker`` identifies it in /proc later."""
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    with log_file(config, name).open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    pid_file(config, name).write_text(f"{process.pid} {marker}\n")
    return process.pid


def stop(config: StackConfig, name: str, *, grace_s: float = 20.0) -> bool:
    """SIGTERM the process group, wait up to ``grace_s``, then SIGKILL; True if it was running."""
    return name in stop_all(config, [name], grace_s=grace_s)


def stop_all(config: StackConfig, names: Sequence[str], *, grace_s: float = 20.0) -> set[str]:
    """``stop`` for several processes at once: all are signalled, then awaited together (a
    cluster's nodes shut down side by side, not each waiting for the others to be gone); the
    names of those that were running."""
    pids: dict[str, int] = {}
    for name in names:
        pid = running_pid(config, name)
        if pid is None:
            pid_file(config, name).unlink(missing_ok=True)
        else:
            pids[name] = pid
            _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(pid) for pid in pids.values()):
        time.sleep(0.1)
    for name, pid in pids.items():
        if alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.05)
        pid_file(config, name).unlink(missing_ok=True)
    return set(pids)


def kill(config: StackConfig, name: str) -> bool:
    """SIGKILL the process group at once, as a crash would; True if it was running."""
    pid = running_pid(config, name)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.05)
    pid_file(config, name).unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # reap our own child, if it is one, so it does not linger as a zombie
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return not _is_zombie(pid)
