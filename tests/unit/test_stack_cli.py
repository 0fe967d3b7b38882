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


def test_formatting_with_scram_passes_the_passwords_in_a_private_argument_file(
    tmp_path: Path,
) -> None:
    """``ps`` shows a command line to every user; the passwords go in a file of mode 600,
    quoted as Java's launcher reads it."""
    from stack.kafka_process import _in_argfile

    tricky = 'password=p"w\\x'
    command = ["java", "-Xmx64m", "-cp", "jars/*", "kafka.tools.StorageTool", f"--add={tricky}"]

    line = _in_argfile(command, tmp_path / "node" / "format.args")

    assert line == ["java", "-Xmx64m", f"@{tmp_path / 'node' / 'format.args'}"]
    assert (tmp_path / "node" / "format.args").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "node").stat().st_mode & 0o777 == 0o700
    text = (tmp_path / "node" / "format.args").read_text()
    assert text.splitlines() == [
        '"-cp"',
        '"jars/*"',
        '"kafka.tools.StorageTool"',
        '"--add=password=p\\"w\\\\x"',
    ]


def test_a_plaintext_stack_gives_its_services_every_kafka_setting_so_none_leaks_from_the_shell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "from-the-shell")
    monkeypatch.delenv("SHOP_KAFKA_SECURITY", raising=False)

    env = StackConfig().kafka_env("order_svc")

    assert env["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert env["KAFKA_SASL_PASSWORD"] == "" and env["KAFKA_SASL_USERNAME"] == ""
    assert set(env) >= {"KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SASL_MECHANISM", "KAFKA_SSL_CAFILE"}


def test_a_kafka_access_never_shows_its_password() -> None:
    from common.kafka_access import KafkaAccess

    access = KafkaAccess("k:9092", "SASL_SSL", "SCRAM-SHA-512", "order_svc", "s3cret-pw")

    assert "s3cret-pw" not in repr(access) and "order_svc" in repr(access)


def test_the_launchers_later_commands_take_the_running_stacks_shape_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stack.config import recall_shape, remember_shape

    monkeypatch.setenv("SHOP_STATE_DIR", str(tmp_path))
    for name in ("SHOP_KAFKA_BROKERS", "SHOP_KAFKA_SECURITY", "SHOP_REPLICAS", "SHOP_TRACING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOP_KAFKA_BROKERS", "3")
    monkeypatch.setenv("SHOP_KAFKA_SECURITY", "scram")
    remember_shape(StackConfig())  # as up does
    monkeypatch.delenv("SHOP_KAFKA_BROKERS")
    monkeypatch.setenv("SHOP_KAFKA_SECURITY", "plaintext")  # said in the shell: it wins

    assert recall_shape() == {"SHOP_KAFKA_BROKERS": "3"}
    config = StackConfig()
    assert config.kafka_brokers == 3 and not config.scram

    monkeypatch.delenv("SHOP_KAFKA_BROKERS")
    config.shape_file.unlink()  # as down does
    assert recall_shape() == {} and StackConfig().kafka_brokers == 1
