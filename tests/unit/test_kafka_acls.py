"""The broker's ACL table grants each principal what its code needs and nothing more: a
compromised service can forge nothing on another's topics."""

import pytest

from schemas.topics import ALL_TOPICS, CONSUMED_TOPICS, dead_letter_topic
from stack.cli import main
from stack.kafka_acls import PRINCIPALS, Grant, Operation, Resource, grants


def of(principal: str, operation: Operation, resource: Resource = Resource.TOPIC) -> set[str]:
    return {
        g.name
        for g in grants()
        if g.principal == principal and g.operation is operation and g.resource is resource
    }


def test_the_gateway_writes_only_commands_and_reads_only_orders_events_outside_any_group() -> None:
    assert of("gateway_svc", Operation.WRITE) == {
        "users.commands",
        "products.commands",
        "orders.commands",
        "payments.commands",
    }
    assert of("gateway_svc", Operation.READ) == {"orders.events"}
    assert of("gateway_svc", Operation.READ, Resource.GROUP) == set()


@pytest.mark.parametrize("service", list(CONSUMED_TOPICS))
def test_a_service_writes_its_own_events_and_dead_letters_and_reads_what_it_consumes(
    service: str,
) -> None:
    written = of(service, Operation.WRITE)
    assert dead_letter_topic(service).name in written
    others = {dead_letter_topic(s).name for s in CONSUMED_TOPICS if s != service}
    assert not written & others, f"{service} may write another's dead letters"
    assert not {t for t in written if t.endswith(".commands")}, f"{service} may send commands"
    assert of(service, Operation.READ) == {t.name for t in CONSUMED_TOPICS[service]}
    assert of(service, Operation.READ, Resource.GROUP) == {service}


def test_payments_events_are_written_by_payment_svc_alone() -> None:
    writers = {g.principal for g in grants() if g.operation is Operation.WRITE}
    assert {p for p in writers if "payments.events" in of(p, Operation.WRITE)} == {"payment_svc"}


def test_every_grant_names_a_real_topic_or_group_and_the_cluster_only_to_describe() -> None:
    topics = {t.name for t in ALL_TOPICS}
    for grant in grants():
        assert grant.principal in PRINCIPALS and grant.principal != "admin"
        if grant.resource is Resource.TOPIC:
            assert grant.name in topics, grant
        elif grant.resource is Resource.CLUSTER:
            assert grant.operation is Operation.DESCRIBE, grant
        else:
            assert grant.name == grant.principal, grant
        assert "*" not in grant.name


def test_the_acls_command_prints_one_kafka_acls_line_per_grant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["acls"]) in (0, None)

    lines = capsys.readouterr().out.splitlines()

    assert len(lines) == len(grants())
    cluster = Grant("order_svc", Resource.CLUSTER, "kafka-cluster", Operation.DESCRIBE)
    assert cluster.kafka_acls_args() == (
        "--allow-principal User:order_svc --operation Describe --cluster"
    )
    assert any(
        line.endswith(
            "--allow-principal User:payment_svc --operation Write --topic payments.events"
        )
        for line in lines
    )
