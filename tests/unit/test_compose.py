"""compose.yaml is safe on a shared host: only the gateway is published beyond the loopback, and
the secrets and the first admin come from the environment, never from a default."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
LOOPBACK = {"127.0.0.1", "::1"}
REQUIRED = {"gateway_svc": ["JWT_SECRET"], "user_svc": ["SHOP_ADMIN_EMAIL", "SHOP_ADMIN_PASSWORD"]}


def services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Any] = compose["services"]
    return found


def host_ip(port: str | int | dict[str, Any]) -> str:
    """The address a published port binds on the host; "" for every interface."""
    if isinstance(port, dict):
        return str(port.get("host_ip", ""))
    spec = str(port)
    if spec.startswith("["):
        return spec[1 : spec.index("]")]
    parts = spec.split(":")
    return parts[0] if len(parts) == 3 else ""


@pytest.mark.parametrize(
    ("port", "ip"),
    [
        ("9092:9092", ""),
        (8000, ""),
        ("[::]:9092:9092", "::"),
        ("127.0.0.1:9092:9092", "127.0.0.1"),
        ("[::1]:9092:9092", "::1"),
        ({"target": 9092, "published": 9092}, ""),
        ({"target": 9092, "published": 9092, "host_ip": "127.0.0.1"}, "127.0.0.1"),
    ],
)
def test_host_ip_reads_every_form_of_a_published_port(port: Any, ip: str) -> None:
    assert host_ip(port) == ip


def test_compose_publishes_nothing_beyond_the_loopback_but_the_gateway() -> None:
    found = services()
    assert {"kafka", "postgres", "gateway_svc"} <= set(found)
    for name, service in found.items():
        if name == "gateway_svc":
            continue  # the public API
        for port in service.get("ports", []):
            assert host_ip(port) in LOOPBACK, f"{name} publishes {port!r} beyond the loopback"


def test_compose_requires_the_secret_and_the_first_admin_from_the_environment() -> None:
    found = services()
    for name, variables in REQUIRED.items():
        environment = found[name]["environment"]
        for variable in variables:
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", environment[variable]), (
                f"{name} takes {variable} as {environment[variable]!r}, not ${{{variable}:?...}}"
            )


CLUSTER_ENV = COMPOSE.with_name("compose.cluster.env")


def interpolated(variables: dict[str, str]) -> dict[str, Any]:
    """compose.yaml's services with ``${NAME:-default}`` read as Compose reads them."""

    def value(match: re.Match[str]) -> str:
        return variables.get(match[1], match[2] or "")

    text = re.sub(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}", value, COMPOSE.read_text())
    found: dict[str, Any] = yaml.safe_load(text)["services"]
    return found


def env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def kafka_nodes(variables: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The Kafka services Compose starts with these variables (their profiles active)."""
    active = set(filter(None, variables.get("COMPOSE_PROFILES", "").split(",")))
    return {
        name: service
        for name, service in interpolated(variables).items()
        if service.get("image", "").startswith("apache/kafka")
        and set(service.get("profiles", [])) <= active
    }


def test_compose_alone_runs_one_kafka_node_voting_for_itself() -> None:
    nodes = kafka_nodes({})
    assert list(nodes) == ["kafka"]
    environment = nodes["kafka"]["environment"]
    assert environment["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert environment["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1


def test_compose_with_the_cluster_env_runs_three_nodes_that_know_each_other() -> None:
    variables = env_file(CLUSTER_ENV)
    nodes = kafka_nodes(variables)
    assert len(nodes) == 3
    voters = dict(
        voter.split("@") for voter in variables["COMPOSE_KAFKA_VOTERS"].split(",")
    )  # node id -> host:port
    assert {str(n["environment"]["KAFKA_NODE_ID"]) for n in nodes.values()} == set(voters)
    published = set()
    for name, node in nodes.items():
        environment = node["environment"]
        assert voters[str(environment["KAFKA_NODE_ID"])] == f"{name}:9093"
        assert environment["KAFKA_CONTROLLER_QUORUM_VOTERS"] == variables["COMPOSE_KAFKA_VOTERS"]
        assert f"INTERNAL://{name}:19092" in environment["KAFKA_ADVERTISED_LISTENERS"]
        assert environment["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert environment["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert environment["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        external = environment["KAFKA_ADVERTISED_LISTENERS"].split("EXTERNAL://")[1]
        (port,) = node["ports"]
        assert port == f"{external}:9092", f"{name} advertises {external}, publishes {port}"
        published.add(external)
    assert len(published) == 3
    services = interpolated(variables)
    assert services["topics"]["environment"]["SHOP_KAFKA_BROKERS"] == 3
    bootstrap = services["order_svc"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"].split(",")
    assert sorted(bootstrap) == sorted(f"{name}:19092" for name in nodes)
