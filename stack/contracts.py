"""``make contracts``: the gate that keeps released messages readable by their consumers.

Every released version of every message has a snapshot of its JSON Schema (the envelope as it is
on the wire, :func:`schemas.asyncapi.payload_schema`) in ``schemas/snapshots/<Type>.v<N>.json``,
and the AsyncAPI document is committed as ``docs/asyncapi.json``. ``python -m stack.contracts``
fails, naming the message and the change:

- when a released version changed incompatibly: a field removed or renamed, a type narrowed (a
  value the snapshot accepts that the code refuses: a type, null, a longer string, a pattern or
  format added), a new required field, a field made required, an enum value removed; or when a
  released version is no longer registered;
- when anything else differs (a new optional field, a new version, a new description), until the
  snapshots and the document are refreshed: ``python -m stack.contracts --refresh`` (``make
  contracts-refresh``), which refuses a breaking change unless told ``--accept-breaking`` (for a
  version that was never released).

A breaking change is a new ``VERSION`` of the message instead, with an upcaster from the old one
(:mod:`schemas.envelope`).
"""

import argparse
import json
import operator
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import asyncapi
from schemas.envelope import contracts

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "schemas" / "snapshots"
DOCUMENT = ROOT / "docs" / "asyncapi.json"
REFRESH = "make contracts-refresh"


@dataclass(frozen=True)
class Change:
    message: str
    """``<Type>.v<N>``."""
    what: str
    breaking: bool

    def __str__(self) -> str:
        return f"{self.message}: {self.what}"


def differences(old: Any, new: Any, path: str = "") -> Iterator[tuple[str, bool]]:
    """What changed from schema ``old`` to schema ``new``, each with whether it breaks a
    consumer: a reader of ``new`` given what ``old`` allowed, or a reader of ``old`` missing a
    field it relied on."""
    where = path or "the message"
    olds, news = _alternatives(old), _alternatives(new)
    for alternative in olds:
        match = _accepting(alternative, news)
        if match is None:
            yield f"type narrowed at {where}: {_describe(alternative)} no longer accepted", True
            continue
        yield from _compare(alternative, match, path)
    for alternative in news:
        if _accepting(alternative, olds) is None:
            yield f"type widened at {where}: {_describe(alternative)} now accepted", False


def _compare(old: dict[str, Any], new: dict[str, Any], path: str) -> Iterator[tuple[str, bool]]:
    where = path or "the message"
    if "const" in old and old.get("const") != new.get("const"):
        yield f"value changed at {where}: {old['const']!r} to {new.get('const')!r}", True
    if "enum" in old:
        removed = [value for value in old["enum"] if value not in new.get("enum", old["enum"])]
        for value in removed:
            yield f"enum value removed at {where}: {value!r}", True
        for value in new.get("enum", []):
            if value not in old["enum"]:
                yield f"enum value added at {where}: {value!r}", False
    for keyword, tighter in _BOUNDS.items():
        before, after = old.get(keyword), new.get(keyword)
        if after is not None and (before is None or tighter(after, before)):
            yield f"type narrowed at {where}: {keyword} {before} to {after}", True
        elif before is not None and after != before:
            yield f"type widened at {where}: {keyword} {before} to {after}", False
    for keyword in ("pattern", "format"):
        if new.get(keyword) is not None and new.get(keyword) != old.get(keyword):
            yield (
                f"type narrowed at {where}: {keyword} {old.get(keyword)!r} to {new[keyword]!r}",
                True,
            )
        elif old.get(keyword) is not None and new.get(keyword) is None:
            yield f"type widened at {where}: {keyword} {old[keyword]!r} dropped", False
    if new.get("additionalProperties") is False and old.get("additionalProperties") is not False:
        yield f"type narrowed at {where}: unknown fields now refused", True
    elif old.get("additionalProperties") is False and new.get("additionalProperties") is not False:
        yield f"type widened at {where}: unknown fields now accepted", False
    if "items" in old and "items" in new:
        yield from differences(old["items"], new["items"], f"{path}[]")
    old_fields, new_fields = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name in old_fields:
        field = f"{path}.{name}" if path else name
        if name not in new_fields:
            yield f"field removed (or renamed): {field}", True
        else:
            if name in new_required and name not in old_required:
                yield f"field made required: {field}", True
            yield from differences(old_fields[name], new_fields[name], field)
    for name in new_fields:
        if name not in old_fields:
            field = f"{path}.{name}" if path else name
            if name in new_required:
                yield f"new required field: {field}", True
            else:
                yield f"new optional field: {field}", False
    if old.get("description") != new.get("description"):
        yield f"description changed at {where}", False


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


def _alternatives(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, dict) and "anyOf" in schema:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return [{**rest, **alternative} for alternative in schema["anyOf"]]
    return [schema if isinstance(schema, dict) else {}]


def _kind(schema: dict[str, Any]) -> str:
    if "type" in schema:
        return str(schema["type"])
    if "const" in schema:
        return _JSON_TYPES.get(type(schema["const"]), "any")
    if "enum" in schema:
        return "enum"
    return "any"


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _accepting(schema: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The candidate of the same kind as ``schema`` (a number accepts an integer; a schema of
    no type accepts anything)."""
    kind = _kind(schema)
    for candidate in candidates:
        other = _kind(candidate)
        if other == kind or other == "any" or (kind, other) == ("integer", "number"):
            return candidate
    return None


def _describe(schema: dict[str, Any]) -> str:
    if "const" in schema:
        return repr(schema["const"])
    return _kind(schema)


def snapshot_path(key: str) -> Path:
    return SNAPSHOTS / f"{key}.json"


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def current() -> dict[str, dict[str, Any]]:
    """Every registered message version's payload schema, by ``<Type>.v<N>``."""
    return {
        asyncapi.message_key(cls): asyncapi.payload_schema(cls)
        for cls in sorted(contracts(), key=lambda cls: (cls.TYPE, cls.VERSION))
    }


def released() -> dict[str, dict[str, Any]]:
    """The committed snapshots, by ``<Type>.v<N>``."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(SNAPSHOTS.glob("*.json"))}


def changes(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[Change]:
    """Every change from the released snapshots to the code, message by message."""
    found: list[Change] = []
    for key, schema in old.items():
        if key not in new:
            found.append(
                Change(
                    key, "released version no longer registered (keep it, with an upcaster)", True
                )
            )
            continue
        found.extend(
            Change(key, what, breaking) for what, breaking in differences(schema, new[key])
        )
    found.extend(
        Change(key, "new version, not yet snapshotted", False) for key in new if key not in old
    )
    return found


def check() -> int:
    """0 when the snapshots and the document match the code; else 1, each problem printed."""
    found = changes(released(), current())
    breaking = [change for change in found if change.breaking]
    for change in breaking:
        print(f"BREAKING {change}", file=sys.stderr)
    if breaking:
        print(
            f"\n{len(breaking)} breaking change(s) to released messages. Make a new VERSION of "
            "the message instead, registered beside the old one with an upcaster "
            "(docs/events.md).",
            file=sys.stderr,
        )
        return 1
    stale = [change for change in found if not change.breaking]
    for change in stale:
        print(f"changed  {change}", file=sys.stderr)
    document_stale = not DOCUMENT.exists() or DOCUMENT.read_text() != asyncapi.document_json()
    if document_stale:
        print(
            f"changed  {DOCUMENT.relative_to(ROOT)} is out of date with the code", file=sys.stderr
        )
    if stale or document_stale:
        print(
            f"\nCompatible changes; refresh the snapshots and the document: {REFRESH}",
            file=sys.stderr,
        )
        return 1
    print(
        f"contracts: {len(current())} message versions match their snapshots; "
        f"{DOCUMENT.relative_to(ROOT)} is up to date"
    )
    return 0


def refresh(*, accept_breaking: bool) -> int:
    """Write the snapshots and the document from the code; refuses a breaking change unless
    ``accept_breaking``."""
    old, new = released(), current()
    breaking = [change for change in changes(old, new) if change.breaking]
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
    for key in old.keys() - new.keys():
        snapshot_path(key).unlink()
    for key, schema in new.items():
        snapshot_path(key).write_text(_dump(schema))
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
