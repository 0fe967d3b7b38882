"""The official AsyncAPI parser (@asyncapi/parser on node), for tests that validate a document.

The first use installs the parser pinned by tests/asyncapi_parser/package-lock.json with
``npm ci`` into .cache/node/asyncapi-parser/ (never into the source folder), and again whenever
package.json or the lock file change. A file lock keeps concurrent pytest processes from
installing at once. Needs node and npm on PATH.
"""

import fcntl
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path(__file__).resolve().parent / "asyncapi_parser"
INSTALL_DIR = ROOT / ".cache" / "node" / "asyncapi-parser"
MANIFESTS = ("package.json", "package-lock.json")
SCRIPT = "parse.mjs"
STAMP = ".installed-sha256"
INSTALL_TIMEOUT = 600.0
PARSE_TIMEOUT = 120.0


class AsyncAPIParserError(RuntimeError):
    """The parser could not be installed or run (not: the document has errors)."""


@dataclass(frozen=True)
class ParseResult:
    """The parser's diagnostics, each ``{"code", "message", "path"}``; path is dot-joined."""

    errors: list[dict[str, str]]
    warnings: list[dict[str, str]]

    @property
    def ok(self) -> bool:
        """True when the parser produced a document and reported no error."""
        return not self.errors


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AsyncAPIParserError(
            f"{name!r} is not on PATH: the AsyncAPI tests need Node.js 20+ with npm"
        )
    return found


def _digest() -> str:
    sha = hashlib.sha256()
    for name in MANIFESTS:
        sha.update(name.encode() + b"\0" + (SOURCE / name).read_bytes() + b"\0")
    return sha.hexdigest()


def _copy_if_changed(source: Path, target: Path) -> None:
    data = source.read_bytes()
    if target.exists() and target.read_bytes() == data:
        return
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    partial.replace(target)


def ensure_installed() -> Path:
    """Install the parser if it is missing or stale; return the path of the script to run."""
    npm = _tool("npm")
    _tool("node")
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    digest = _digest()
    stamp = INSTALL_DIR / STAMP
    with (INSTALL_DIR.parent / "asyncapi-parser.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        installed = (INSTALL_DIR / "node_modules" / "@asyncapi" / "parser").is_dir()
        if not installed or not stamp.exists() or stamp.read_text() != digest:
            stamp.unlink(missing_ok=True)
            for name in MANIFESTS:
                shutil.copyfile(SOURCE / name, INSTALL_DIR / name)
            command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", "--ignore-scripts"]
            try:
                done = subprocess.run(
                    command,
                    cwd=INSTALL_DIR,
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise AsyncAPIParserError(f"npm ci took over {INSTALL_TIMEOUT}s") from exc
            if done.returncode != 0:
                raise AsyncAPIParserError(
                    f"npm ci failed in {INSTALL_DIR} ({done.returncode}):\n{done.stderr}"
                )
            stamp.write_text(digest)
        _copy_if_changed(SOURCE / SCRIPT, INSTALL_DIR / SCRIPT)
    return INSTALL_DIR / SCRIPT


def parse_asyncapi(document: dict[str, Any] | str) -> ParseResult:
    """Parse an AsyncAPI document (a mapping, or JSON or YAML text) with the official parser."""
    script = ensure_installed()
    text = document if isinstance(document, str) else json.dumps(document)
    try:
        done = subprocess.run(
            [_tool("node"), str(script)],
            input=text,
            cwd=INSTALL_DIR,
            capture_output=True,
            text=True,
            timeout=PARSE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AsyncAPIParserError(f"the AsyncAPI parser took over {PARSE_TIMEOUT}s") from exc
    try:
        out = json.loads(done.stdout)
        result = ParseResult(errors=out["errors"], warnings=out["warnings"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AsyncAPIParserError(
            f"the AsyncAPI parser failed ({done.returncode}):\n{done.stderr}{done.stdout}"
        ) from exc
    if done.returncode != (0 if result.ok else 1):
        raise AsyncAPIParserError(
            f"the AsyncAPI parser exited {done.returncode} with {len(result.errors)} errors:\n"
            f"{done.stderr}"
        )
    return result
