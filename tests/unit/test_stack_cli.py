"""The launcher's commands that need no running stack to answer."""

import re
from pathlib import Path

import pytest

from schemas.topics import CONSUMING_SERVICES
from stack import services
from stack.cli import main
from stack.config import StackConfig, _replicas


@pytest.mark.parametrize("spec", ["explode=1", "unavailable=2", "slow_ms=lots"])
def test_provider_faults_exits_2_naming_the_problem_when_the_spec_is_unreadable(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["provider-faults", spec]) == 2
    assert "provider fault" in capsys.readouterr().err


def test_replicas_are_read_for_every_service_or_per_service_and_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert _replicas("") == {}
    assert _replicas("2") == dict.fromkeys(CONSUMING_SERVICES, 2)
    assert _replicas("order_svc=3, product_svc=2") == {"order_svc": 3, "product_svc": 2}
    for wrong, named_in_error in (
        ("gateway_svc=2", "'gateway_svc=2'"),
        ("order_svc", "'order_svc'"),
        ("order_svc=7", "order_svc=7; from 1 to 6"),
        ("0", "=0; from 1 to 6"),
    ):
        with pytest.raises(SystemExit, match=re.escape(named_in_error)):
            _replicas(wrong)

    config = StackConfig(state_dir=tmp_path, replicas={"order_svc": 3})
    everyone = [service.name for service in services.processes(config)]
    assert everyone.count("gateway_svc") == 1 and everyone[-1] == "gateway_svc"
    assert [n for n in everyone if "order" in n] == ["order_svc", "order_svc#2", "order_svc#3"]
    third = services.named("order_svc#3")
    assert third is not None and (third.package, third.replica) == ("order_svc", 3)
    assert third.port == services.named("order_svc").port + 200  # type: ignore[union-attr]
    assert services.named("gateway_svc#2") is None and services.named("nobody") is None
    env = services.environment(config, third)
    assert (env["CONSUMER_REPLICA"], env["HTTP_PORT"]) == ("3", str(third.port))

    # a replica still running from a larger SHOP_REPLICAS is known, so down stops it too
    config.run_dir.mkdir(parents=True)
    (config.run_dir / "product_svc#2.pid").write_text("1 -m product_svc\n")
    assert "product_svc#2" in [s.name for s in services.known(config)]
