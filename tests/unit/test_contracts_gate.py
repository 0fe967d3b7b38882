"""``make contracts``: released messages stay readable; the gate names what broke them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stack import contracts
from stack.contracts import BREAKING, BREAKING_FOR_EVENTS, ROOT, differences


def test_main_matches_its_snapshots_and_its_asyncapi_document() -> None:
    assert contracts.check() == 0, f"run {contracts.REFRESH} (see the printed changes)"


def breaking(old: dict, new: dict, rules: set[str] = BREAKING) -> list[str]:
    return [what for what, kind in differences(old, new) if kind in rules]


def compatible(old: dict, new: dict, rules: set[str] = BREAKING) -> list[str]:
    return [what for what, kind in differences(old, new) if kind not in rules]


UUID = {"type": "string", "format": "uuid"}


def obj(required: tuple[str, ...] = ("a",), **fields: dict) -> dict:
    return {"type": "object", "properties": fields, "required": list(required)}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (obj(a=UUID, b=UUID), obj(a=UUID), "field removed (or renamed): b"),
        (obj(a=UUID), obj(("a", "b"), a=UUID, b=UUID), "new required field: b"),
        (obj(a=UUID, b=UUID), obj(("a", "b"), a=UUID, b=UUID), "field made required: b"),
        (
            obj(a={"anyOf": [UUID, {"type": "null"}]}),
            obj(a=UUID),
            "type narrowed at a: null no longer accepted",
        ),
        (obj(a={"type": "number"}), obj(a={"type": "integer"}), "number no longer accepted"),
        (obj(a={"type": "string"}), obj(a={"type": "integer"}), "string no longer accepted"),
        (
            obj(a={"type": "string"}),
            obj(a={"type": "string", "enum": ["x"]}),
            "type narrowed at a: only ['x'] accepted",
        ),
        (
            obj(a={"type": "integer"}),
            obj(a={"type": "integer", "multipleOf": 5}),
            "multipleOf changed at a",
        ),
        (
            obj(a={"type": "string", "default": "x"}),
            obj(a={"type": "string", "default": "y"}),
            "default changed at a: 'x' to 'y'",
        ),
        (
            obj(a={"type": "object", "additionalProperties": {"type": "integer"}}),
            obj(a={"type": "object", "additionalProperties": {"type": "string"}}),
            "type narrowed at a.*: integer no longer accepted",
        ),
        (obj(a={"type": "string"}), obj(a=UUID), "type narrowed at a: format None to 'uuid'"),
        (
            obj(a={"type": "string", "maxLength": 50}),
            obj(a={"type": "string", "maxLength": 20}),
            "type narrowed at a: maxLength 50 to 20",
        ),
        (
            obj(a={"enum": ["Admin", "Customer"], "type": "string"}),
            obj(a={"enum": ["Customer"], "type": "string"}),
            "enum value removed at a: 'Admin'",
        ),
        (
            obj(a=obj(q=UUID)),
            obj(a={**obj(q=UUID), "additionalProperties": False}),
            "type narrowed at a: unknown fields now refused",
        ),
        (
            obj(a={"type": "array", "items": obj(q={"type": "integer"}, p=UUID)}),
            obj(a={"type": "array", "items": obj(q={"type": "integer"})}),
            "field removed (or renamed): a[].p",
        ),
    ],
)
def test_a_change_that_breaks_a_consumer_is_named(old: dict, new: dict, expected: str) -> None:
    assert any(expected in what for what in breaking(old, new)), list(differences(old, new))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (obj(a=UUID), obj(a=UUID, b=UUID), "new optional field: b"),
        (obj(a={"type": "integer"}), obj(a={"type": "number"}), "type widened at a"),
        (
            obj(a=UUID),
            obj(a={"anyOf": [UUID, {"type": "null"}]}),
            "type widened at a: null now accepted",
        ),
        (
            obj(a={"type": "string", "maxLength": 20}),
            obj(a={"type": "string", "maxLength": 50}),
            "type widened at a: maxLength 20 to 50",
        ),
        (obj(a={"enum": ["x"]}), obj(a={"enum": ["x", "y"]}), "enum value added at a: 'y'"),
        (obj(a=UUID), obj((), a=UUID), "field made optional: a"),
    ],
)
def test_a_change_that_keeps_a_commands_senders_and_reader_going_is_compatible(
    old: dict, new: dict, expected: str
) -> None:
    assert breaking(old, new) == []
    assert any(expected in what for what in compatible(old, new))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            obj(a=UUID),
            obj((), a={"anyOf": [UUID, {"type": "null"}]}),
            "type widened at a: null now accepted",
        ),
        (obj(a=UUID), obj((), a=UUID), "field made optional: a"),
        (obj(a={"enum": ["x"]}), obj(a={"enum": ["x", "y"]}), "enum value added at a: 'y'"),
        (
            obj(a={"type": "string", "maxLength": 20}),
            obj(a={"type": "string", "maxLength": 50}),
            "type widened at a: maxLength 20 to 50",
        ),
    ],
)
def test_an_event_may_not_widen_what_its_consumers_built_on(
    old: dict, new: dict, expected: str
) -> None:
    assert any(expected in what for what in breaking(old, new, BREAKING_FOR_EVENTS))
    assert compatible(obj(a=UUID), obj(a=UUID, b=UUID), BREAKING_FOR_EVENTS) == [
        "new optional field: b"
    ]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The gate and the contracts, copied into a git repository of their own and committed, to
    be edited as a developer would."""
    for part in ("schemas", "stack"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "asyncapi.json", tmp_path / "docs")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "released"], check=True)
    return tmp_path


def gate(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    return subprocess.run(
        [sys.executable, "-m", "stack.contracts", *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def edit_order_placed(checkout: Path, old: str, new: str) -> None:
    orders = checkout / "schemas" / "orders.py"
    text = orders.read_text()
    start = text.index("class OrderPlaced(")
    end = text.index("@register", start)
    assert old in text[start:end]
    orders.write_text(text[:start] + text[start:end].replace(old, new, 1) + text[end:])


def test_the_gate_passes_on_an_untouched_checkout(checkout: Path) -> None:
    result = gate(checkout)
    assert result.returncode == 0, result.stderr
    assert "match their snapshots" in result.stdout


def test_deleting_a_field_of_order_placed_fails_the_gate_naming_it(checkout: Path) -> None:
    edit_order_placed(checkout, "    total_price: Money\n", "")
    result = gate(checkout)
    assert result.returncode == 1
    assert "BREAKING OrderPlaced.v1: field removed (or renamed): data.total_price" in result.stderr
    refused = gate(checkout, "--refresh")
    assert refused.returncode == 1 and "refusing" in refused.stderr


def test_an_optional_field_passes_once_the_snapshot_is_refreshed(checkout: Path) -> None:
    edit_order_placed(
        checkout,
        "    address_id: UUID | None = None\n",
        "    address_id: UUID | None = None\n    gift_note: str | None = None\n",
    )
    before = gate(checkout)
    assert before.returncode == 1
    assert "changed  OrderPlaced.v1: new optional field: data.gift_note" in before.stderr
    assert "asyncapi.json is out of date" in before.stderr
    assert "BREAKING" not in before.stderr
    refreshed = gate(checkout, "--refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    after = gate(checkout)
    assert after.returncode == 0, after.stderr
    assert "gift_note" in (checkout / "schemas" / "snapshots" / "OrderPlaced.v1.json").read_text()


def test_a_released_version_that_is_no_longer_registered_fails_the_gate(checkout: Path) -> None:
    payments = checkout / "schemas" / "payments.py"
    text = payments.read_text()
    payments.write_text(
        text.replace("@register\nclass PaymentRefundedV1(", "class PaymentRefundedV1(")
    )
    result = gate(checkout)
    assert result.returncode == 1
    assert "BREAKING PaymentRefunded.v1: released version no longer registered" in result.stderr


def test_deleting_a_snapshot_does_not_hide_a_breaking_change_before_it_is_committed(
    checkout: Path,
) -> None:
    edit_order_placed(checkout, "    total_price: Money\n", "")
    (checkout / "schemas" / "snapshots" / "OrderPlaced.v1.json").unlink()
    result = gate(checkout)
    assert result.returncode == 1
    assert "BREAKING OrderPlaced.v1: field removed (or renamed): data.total_price" in result.stderr
    assert gate(checkout, "--refresh").returncode == 1


def test_moving_a_message_to_another_topic_or_key_breaks_it(checkout: Path) -> None:
    edit_order_placed(
        checkout,
        '    TYPE = "OrderPlaced"\n',
        '    TYPE = "OrderPlaced"\n    KEY_FIELD = "user_id"\n',
    )
    result = gate(checkout)
    assert result.returncode == 1
    assert "BREAKING OrderPlaced.v1: key changed: 'order_id' to 'user_id'" in result.stderr
