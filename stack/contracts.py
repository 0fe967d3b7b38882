"""``make contracts``: the gate that keeps released messages readable by their consumers.

Every released version of every message has a snapshot in ``schemas/snapshots/<Type>.v<N>.json``:
its topic, its key field, whether it is a command or an event, and the JSON Schema of the
envelope as it is on the wire (:func:`schemas.json_schemas.payload_schema`). The AsyncAPI
document is committed as ``docs/asyncapi.json``. ``python -m stack.contracts`` fails, naming the
message and the change:

- when a released version changed in a way that breaks someone who relies on it. For every
  message: a field removed or renamed, a type narrowed (a value the snapshot accepts that the
  code refuses: another type, null, a tighter bound, a pattern, format or enum), a new required
  field, a field made required, a default or another keyword changed, the topic or the key field
  changed, a released version no longer registered. For an event, whose readers are other teams'
  consumers built on the snapshot, also a type widened and a field made optional (a new
  optional field stays compatible: event readers ignore fields they do not know);
- when anything else differs (a new optional field, a new version, a new description), until the
  snapshots and the document are refreshed: ``python -m stack.contracts --refresh`` (``make
  contracts-refresh``), which refuses a breaking change unless told ``--accept-breaking`` (for a
  version that was never released).

The snapshots are compared as they are in the working tree and as git's ``HEAD`` has them, so a
snapshot deleted or rewritten before a commit does not hide a breaking change. A breaking change
is a new ``VERSION`` of the message instead, with an upcaster (:mod:`schemas.envelope`).
"""

import argparse
import json
import operator
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import asyncapi
from schemas.envelope import Event, Message, contracts
from schemas.json_schemas import canonical_json, payload_schema

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "schemas" / "snapshots"
DOCUMENT = ROOT / "docs" / "asyncapi.json"
REFRESH = "make contracts-refresh"

Snapshot = dict[str, Any]

NARROWED, WIDENED, REMOVED, NEW_REQUIRED, MADE_REQUIRED = (
    "narrowed",
    "widened",
    "removed",
    "new required",
    "made required",
)
MADE_OPTIONAL, NEW_OPTIONAL, CHANGED, DESCRIBED = (
    "made optional",
    "new optional",
    "changed",
    "described",
)
BREAKING = {NARROWED, REMOVED, NEW_REQUIRED, MADE_REQUIRED, CHANGED}
"""Changes that break someone relying on any message: a consumer reading records written
before, or a sender of a command as it was."""
BREAKING_FOR_EVENTS = BREAKING | {WIDENED, MADE_OPTIONAL}
"""For an event also what breaks a consumer built on the snapshot reading new records."""


@dataclass(frozen=True)
class Change:
    message: str
    """``<Type>.v<N>``."""
    what: str
    breaking: bool

    def __str__(self) -> str:
        return f"{self.message}: {self.what}"


def differences(old: Any, new: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """What changed from schema ``old`` to schema ``new``: each change said, with its kind."""
    where = path or "the message"
    olds, news = _alternatives(old), _alternatives(new)
    for alternative in olds:
        match = _accepting(alternative, news)
        if match is None:
            yield f"type narrowed at {where}: {_kind(alternative)} no longer accepted", NARROWED
        else:
            yield from _compare(alternative, match, path)
    for alternative in news:
        if _accepting(alternative, olds) is None:
            yield f"type widened at {where}: {_kind(alternative)} now accepted", WIDENED


_HANDLED = {
    "type",
    "anyOf",
    "const",
    "enum",
    "pattern",
    "format",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "description",
    "default",
}


def _compare(old: dict[str, Any], new: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
    where = path or "the message"
    yield from _compare_values(old, new, where)
    for keyword, tighter in _BOUNDS.items():
        before, after = old.get(keyword), new.get(keyword)
        if after is not None and (before is None or tighter(after, before)):
            yield f"type narrowed at {where}: {keyword} {before} to {after}", NARROWED
        elif before is not None and after != before:
            yield f"type widened at {where}: {keyword} {before} to {after}", WIDENED
    for keyword in ("pattern", "format"):
        if new.get(keyword) is not None and new.get(keyword) != old.get(keyword):
            said = f"{keyword} {old.get(keyword)!r} to {new[keyword]!r}"
            yield f"type narrowed at {where}: {said}", NARROWED
        elif old.get(keyword) is not None and new.get(keyword) is None:
            yield f"type widened at {where}: {keyword} {old[keyword]!r} dropped", WIDENED
    if old.get("default") != new.get("default"):
        said = f"{old.get('default')!r} to {new.get('default')!r}"
        yield f"default changed at {where}: {said}", CHANGED
    for keyword in sorted((old.keys() | new.keys()) - _HANDLED - _BOUNDS.keys()):
        if old.get(keyword) != new.get(keyword):
            said = f"{old.get(keyword)!r} to {new.get(keyword)!r}"
            yield f"{keyword} changed at {where}: {said}", CHANGED
    if "items" in old or "items" in new:
        yield from differences(old.get("items", {}), new.get("items", {}), f"{path}[]")
    yield from _compare_fields(old, new, path)
    if old.get("description") != new.get("description"):
        yield f"description changed at {where}", DESCRIBED


def _compare_values(
    old: dict[str, Any], new: dict[str, Any], where: str
) -> Iterator[tuple[str, str]]:
    """Enums and constants: the values allowed, where a schema lists them."""
    before, after = _values(old), _values(new)
    if after is None:
        if before is not None:
            yield f"type widened at {where}: any value now accepted", WIDENED
        return
    if before is None:
        yield f"type narrowed at {where}: only {sorted(after, key=repr)} accepted", NARROWED
        return
    for value in before:
        if value not in after:
            yield f"enum value removed at {where}: {value!r}", NARROWED
    for value in after:
        if value not in before:
            yield f"enum value added at {where}: {value!r}", WIDENED


def _compare_fields(
    old: dict[str, Any], new: dict[str, Any], path: str
) -> Iterator[tuple[str, str]]:
    where = path or "the message"
    if new.get("additionalProperties") is False and old.get("additionalProperties") is not False:
        yield f"type narrowed at {where}: unknown fields now refused", NARROWED
    elif old.get("additionalProperties") is False and new.get("additionalProperties") is not False:
        yield f"type widened at {where}: unknown fields now accepted", WIDENED
    if isinstance(old.get("additionalProperties"), dict) or isinstance(
        new.get("additionalProperties"), dict
    ):
        before, after = old.get("additionalProperties", {}), new.get("additionalProperties", {})
        yield from differences(before or {}, after or {}, f"{path}.*")
    old_fields, new_fields = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name in old_fields:
        field = f"{path}.{name}" if path else name
        if name not in new_fields:
            yield f"field removed (or renamed): {field}", REMOVED
            continue
        if name in new_required and name not in old_required:
            yield f"field made required: {field}", MADE_REQUIRED
        elif name in old_required and name not in new_required:
            yield f"field made optional: {field}", MADE_OPTIONAL
        yield from differences(old_fields[name], new_fields[name], field)
    for name in new_fields:
        if name not in old_fields:
            field = f"{path}.{name}" if path else name
            if name in new_required:
                yield f"new required field: {field}", NEW_REQUIRED
            else:
                yield f"new optional field: {field}", NEW_OPTIONAL


_BOUNDS: dict[str, Callable[[Any, Any], bool]] = {
    "minLength": operator.gt,
    "maxLength": operator.lt,
    "minItems": operator.gt,
    "maxItems": operator.lt,
    "minimum": operator.gt,
    "exclusiveMinimum": operator.gt,
    "maximum": operator.lt,
    "exclusiveMaximum": operator.lt,
}
"""A bound's keyword, and when its new value accepts less than its old."""

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _values(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum: list[Any] | None = schema.get("enum")
    return enum


def _alternatives(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, dict) and "anyOf" in schema:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return [{**rest, **alternative} for alternative in schema["anyOf"]]
    return [schema if isinstance(schema, dict) else {}]


def _kind(schema: dict[str, Any]) -> str:
    if "type" in schema:
        return str(schema["type"])
    values = _values(schema)
    if values:
        return _JSON_TYPES.get(type(values[0]), "any")
    return "any"


def _accepting(schema: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The candidate of the same kind as ``schema`` (a number accepts an integer; a schema of
    no type accepts anything)."""
    kind = _kind(schema)
    for candidate in candidates:
        other = _kind(candidate)
        if other == kind or other == "any" or (kind, other) == ("integer", "number"):
            return candidate
    return None


def snapshot(message: type[Message]) -> Snapshot:
    """What a released version is held to."""
    return {
        "topic": message.TOPIC.name,
        "key": message.KEY_FIELD,
        "kind": "event" if issubclass(message, Event) else "command",
        "payload": payload_schema(message),
    }


def current() -> dict[str, Snapshot]:
    """Every registered message version's snapshot as the code makes it, by ``<Type>.v<N>``."""
    return {
        asyncapi.message_key(cls): snapshot(cls)
        for cls in sorted(contracts(), key=lambda cls: (cls.TYPE, cls.VERSION))
    }


def released() -> dict[str, Snapshot]:
    """The snapshots in the working tree, by ``<Type>.v<N>``."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(SNAPSHOTS.glob("*.json"))}


def committed() -> dict[str, Snapshot]:
    """The snapshots as git's ``HEAD`` has them (none outside a git checkout)."""
    folder = SNAPSHOTS.relative_to(ROOT).as_posix()
    listed = _git("ls-tree", "--name-only", "HEAD", f"{folder}/")
    found: dict[str, Snapshot] = {}
    for name in listed.splitlines() if listed else ():
        text = _git("show", f"HEAD:{name}")
        if text:
            found[Path(name).stem] = json.loads(text)
    return found


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def changes(old: dict[str, Snapshot], new: dict[str, Snapshot]) -> list[Change]:
    """Every change from the released snapshots to the code, message by message."""
    found: list[Change] = []
    for key, was in old.items():
        if key not in new:
            what = "released version no longer registered (keep it, with an upcaster)"
            found.append(Change(key, what, True))
            continue
        now = new[key]
        breaking = BREAKING_FOR_EVENTS if was.get("kind") == "event" else BREAKING
        for field in ("topic", "key", "kind"):
            if was.get(field) != now[field]:
                what = f"{field} changed: {was.get(field)!r} to {now[field]!r}"
                found.append(Change(key, what, True))
        found.extend(
            Change(key, what, kind in breaking)
            for what, kind in differences(was.get("payload"), now["payload"])
        )
    found.extend(
        Change(key, "new version, not yet snapshotted", False) for key in new if key not in old
    )
    return found


def _breaking(new: dict[str, Snapshot]) -> list[Change]:
    """The breaking changes against the snapshots in the working tree and in ``HEAD``."""
    seen: dict[str, Change] = {}
    for old in (committed(), released()):
        for change in changes(old, new):
            if change.breaking:
                seen.setdefault(str(change), change)
    return list(seen.values())


def check() -> int:
    """0 when the snapshots and the document match the code; else 1, each problem printed."""
    new = current()
    breaking = _breaking(new)
    for change in breaking:
        print(f"BREAKING {change}", file=sys.stderr)
    if breaking:
        print(
            f"\n{len(breaking)} breaking change(s) to released messages. Make a new VERSION of "
            "the message instead, registered beside the old one with an upcaster "
            "(docs/architecture.md, 'Changing a contract').",
            file=sys.stderr,
        )
        return 1
    stale = [change for change in changes(released(), new) if not change.breaking]
    for change in stale:
        print(f"changed  {change}", file=sys.stderr)
    document = DOCUMENT.relative_to(ROOT)
    document_stale = not DOCUMENT.exists() or DOCUMENT.read_text() != asyncapi.document_json()
    if document_stale:
        print(f"changed  {document} is out of date with the code", file=sys.stderr)
    if stale or document_stale:
        print(
            f"\nCompatible changes; refresh the snapshots and {document}: {REFRESH}",
            file=sys.stderr,
        )
        return 1
    print(f"contracts: {len(new)} message versions match their snapshots; {document} is up to date")
    return 0


def refresh(*, accept_breaking: bool) -> int:
    """Write the snapshots and the document from the code; refuses a breaking change unless
    ``accept_breaking``."""
    new = current()
    breaking = _breaking(new)
    if breaking and not accept_breaking:
        for change in breaking:
            print(f"BREAKING {change}", file=sys.stderr)
        print(
            "\nrefusing to release breaking changes; make a new VERSION instead, or pass "
            "--accept-breaking for a version that was never released",
            file=sys.stderr,
        )
        return 1
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    for key in released().keys() - new.keys():
        (SNAPSHOTS / f"{key}.json").unlink()
    for key, schema in new.items():
        (SNAPSHOTS / f"{key}.json").write_text(canonical_json(schema))
    DOCUMENT.write_text(asyncapi.document_json())
    print(f"wrote {len(new)} snapshots to {SNAPSHOTS.relative_to(ROOT)}/ and {DOCUMENT.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.contracts", description=__doc__)
    parser.add_argument("--refresh", action="store_true", help="write snapshots and document")
    parser.add_argument("--accept-breaking", action="store_true", help="with --refresh")
    args = parser.parse_args(argv)
    if args.refresh:
        return refresh(accept_breaking=args.accept_breaking)
    return check()


if __name__ == "__main__":
    sys.exit(main())
