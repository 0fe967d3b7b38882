"""The unit of work keeps its state in one typed object and listens on the shop's own sessions
only: a session of another library in the same process is left alone."""

import ast
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from common import outbox, unit_of_work
from common.unit_of_work import ShopSession, Unit, unit_of

ROOT = Path(__file__).resolve().parents[2]
LISTENERS = [
    ("before_commit", unit_of_work._refuse_unwritten),
    ("after_transaction_end", unit_of_work._end_unit),
    ("after_commit", outbox._wake_relays),
]


def test_every_listener_is_on_the_shops_session_class_not_on_sqlalchemys() -> None:
    for name, listener in LISTENERS:
        assert event.contains(ShopSession, name, listener), name
        assert not event.contains(Session, name, listener), name


def test_a_session_that_is_not_the_shops_has_no_unit_to_defer_rows_in() -> None:
    with Session() as session, pytest.raises(TypeError, match="not a shop session"):
        unit_of(session)  # its deferred rows would be dropped, its outbox rows never relayed


def test_a_shop_session_with_unwritten_rows_is_refused_at_commit() -> None:
    with ShopSession() as session:
        session.begin()
        unit_of(session).deferred.append((object(), {}))  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="deferred rows were never written"):
            session.commit()


def test_the_unit_ends_with_its_transaction() -> None:
    with ShopSession() as session:
        session.begin()
        unit = unit_of(session)
        unit.staged = True
        assert unit_of(session) is unit
        session.commit()
        assert unit_of(session) is not unit
        assert unit_of(session) == Unit()


def test_no_module_but_the_unit_of_work_reads_or_writes_session_info() -> None:
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        if path.parts[len(ROOT.parts)] in {".venv", ".cache", "tests"}:
            continue
        if path == ROOT / "common" / "unit_of_work.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "info"
                and isinstance(node.value, ast.Name)
                and "session" in node.value.id
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_relays_are_woken_when_the_outermost_transaction_commits_not_a_savepoint() -> None:
    woken: list[str] = []
    outbox._wakers.add(wake := lambda: woken.append("woken"))
    try:
        with ShopSession() as session:
            session.begin()
            savepoint = session.begin_nested()
            unit_of(session).staged = True
            savepoint.commit()  # released: nothing is committed yet
            assert woken == []
            session.commit()
            assert woken == ["woken"]
    finally:
        outbox._wakers.discard(wake)
