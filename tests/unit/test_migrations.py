"""Each service's migrations form one line: two branches adding a revision of the same number
would leave Alembic with two heads, and the service would not start."""

import pytest
from alembic.script import ScriptDirectory

from stack.config import ROOT

SERVICES = sorted(path.parent.name for path in ROOT.glob("*_svc/migrations"))


@pytest.mark.parametrize("service", SERVICES)
def test_a_services_migrations_have_one_head(service: str) -> None:
    folder = ROOT / service / "migrations"
    script = ScriptDirectory(str(ROOT / "common" / "migrations"), version_locations=[str(folder)])
    assert len(script.get_heads()) == 1, script.get_heads()
    files = [path.name for path in folder.glob("[0-9]*.py")]
    assert len({name[:4] for name in files}) == len(files), sorted(files)
