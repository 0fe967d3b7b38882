"""The launcher's commands that need no running stack to answer."""

import pytest

from stack.cli import main


@pytest.mark.parametrize("spec", ["explode=1", "unavailable=2", "slow_ms=lots"])
def test_provider_faults_exits_2_naming_the_problem_when_the_spec_is_unreadable(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["provider-faults", spec]) == 2
    assert "provider fault" in capsys.readouterr().err
