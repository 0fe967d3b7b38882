"""Who may do what on the broker (``SHOP_KAFKA_SECURITY=scram``): one principal per process
kind, its grants derived from :mod:`schemas.topics`, so that a new topic or consumer there is
authorised here without a second list to keep.

A service may read the topics it consumes, with its own consumer group; write its own topics
and its own dead-letter topic; and describe the cluster. The gateway writes the command topics
and reads ``orders.events`` outside any group. ``admin`` (the launcher, kcat, the dead-letter
tool) is a super user. Nothing else is allowed: no anonymous access, and no ACL means no access.

The grants are sent with Kafka's CreateAcls API (version 2: Kafka 4 no longer answers the
versions aiokafka knows); creating a grant that exists changes nothing, so every ``up`` sends
them all.
"""

from dataclasses import dataclass
from enum import IntEnum

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from common.kafka_access import KafkaAccess
from schemas.topics import (
    CONSUMED_TOPICS,
    SENT_TOPICS,
    WATCHED_TOPICS,
    dead_letter_topic,
)

ADMIN = "admin"
PRINCIPALS = tuple(dict.fromkeys([*SENT_TOPICS, *CONSUMED_TOPICS, *WATCHED_TOPICS]))
"""Every process kind that reaches Kafka, named as its package (``order_svc``…)."""


class Resource(IntEnum):  # Kafka's ResourceType
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Operation(IntEnum):  # Kafka's AclOperation
    READ = 3
    WRITE = 4
    DESCRIBE = 8


@dataclass(frozen=True, order=True)
class Grant:
    principal: str
    resource: Resource
    name: str
    operation: Operation

    def __str__(self) -> str:
        return f"User:{self.principal} {self.operation.name} {self.resource.name} {self.name}"

    def kafka_acls_args(self) -> str:
        """The grant as arguments of Kafka's ``kafka-acls.sh --add``, for a cluster the launcher
        does not run (``python -m stack acls``)."""
        where = (
            "--cluster"
            if self.resource is Resource.CLUSTER
            else (f"--{self.resource.name.lower()} {self.name}")
        )
        return (
            f"--allow-principal User:{self.principal}"
            f" --operation {self.operation.name.capitalize()} {where}"
        )


def grants() -> list[Grant]:
    """The whole table: what each principal may do (reading or writing a topic implies
    describing it; writing implies idempotent writes)."""
    table: list[Grant] = []
    for principal in PRINCIPALS:
        read = [*CONSUMED_TOPICS.get(principal, ()), *WATCHED_TOPICS.get(principal, ())]
        write = list(SENT_TOPICS.get(principal, ()))
        if principal in CONSUMED_TOPICS:
            write.append(dead_letter_topic(principal))
            table.append(Grant(principal, Resource.GROUP, principal, Operation.READ))
        table += [Grant(principal, Resource.TOPIC, t.name, Operation.READ) for t in read]
        table += [Grant(principal, Resource.TOPIC, t.name, Operation.WRITE) for t in write]
        table.append(Grant(principal, Resource.CLUSTER, "kafka-cluster", Operation.DESCRIBE))
    return sorted(set(table))


class _CreateAclsResponse_v2(Response):  # type: ignore[misc]
    API_KEY = 30
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _CreateAclsRequest_v2(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 30
    API_VERSION = 2
    RESPONSE_TYPE = _CreateAclsResponse_v2
    SCHEMA = Schema(
        (
            "creations",
            CompactArray(
                ("resource_type", Int8),
                ("resource_name", CompactString("utf-8")),
                ("resource_pattern_type", Int8),
                ("principal", CompactString("utf-8")),
                ("host", CompactString("utf-8")),
                ("operation", Int8),
                ("permission_type", Int8),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _CreateAcls(Request[_CreateAclsRequest_v2]):  # type: ignore[misc]
    API_KEY = 30
    LITERAL, ALLOW = 3, 3

    def __init__(self, table: list[Grant]) -> None:
        self._table = table

    def build(self, request_struct_class: type[_CreateAclsRequest_v2]) -> _CreateAclsRequest_v2:
        creations: list[tuple[object, ...]] = [
            (
                g.resource,
                g.name,
                self.LITERAL,
                f"User:{g.principal}",
                "*",
                g.operation,
                self.ALLOW,
                {},
            )
            for g in self._table
        ]
        return request_struct_class(creations, {})


async def apply(admin_access: KafkaAccess, table: list[Grant] | None = None) -> int:
    """Create every grant of ``table`` (the whole table by default); how many were sent."""
    table = grants() if table is None else table
    admin = AIOKafkaAdminClient(**admin_access.client_options(), request_timeout_ms=10_000)
    await admin.start()
    try:
        # the active controller applies it; any broker forwards it there
        response = await admin._send_request(_CreateAcls(table))
    finally:
        await admin.close()
    failed = [
        f"{grant}: {message or code}"
        for grant, (code, message, _) in zip(table, response.results, strict=True)
        if code
    ]
    if failed:
        raise SystemExit("Kafka refused grants:\n  " + "\n  ".join(failed))
    return len(table)
