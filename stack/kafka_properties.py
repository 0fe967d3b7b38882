"""Each Kafka node's ``server.properties``: its quorum (one node formats itself, three vote as a
static quorum), its listeners (plaintext, or SASL with ACLs), and the replication the cluster
allows, so that on three brokers one may be down while writes go on."""

from pathlib import Path

from schemas.topics import RETENTION_HOURS, SEGMENT_ROLL_HOURS
from stack.config import KafkaNode, StackConfig, write_private
from stack.kafka_acls import ADMIN, PRINCIPALS


def server_properties(config: StackConfig, node: KafkaNode) -> Path:
    nodes = config.kafka_nodes
    replicas, min_isr = replication(len(nodes))
    if len(nodes) == 1:  # a quorum of one that formats itself (--standalone)
        quorum = f"controller.quorum.bootstrap.servers={node.controller_address}"
    else:  # a static quorum of every node
        voters = ",".join(f"{n.node_id}@{n.controller_address}" for n in nodes)
        quorum = f"controller.quorum.voters={voters}"
    # the node's folder is its own (700): it holds the topics' data and, with SCRAM, the
    # passwords, which anyone reading the files could take around the ACLs
    return write_private(
        node.folder / "server.properties",
        "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={node.node_id}",
                quorum,
                *(_scram_listeners(config, node) if config.scram else _plain_listeners(node)),
                f"log.dirs={node.folder / 'data'}",
                "num.partitions=6",
                "auto.create.topics.enable=false",
                f"default.replication.factor={replicas}",
                f"min.insync.replicas={min_isr}",
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=6",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={min_isr}",
                f"share.coordinator.state.topic.replication.factor={replicas}",
                f"share.coordinator.state.topic.min.isr={min_isr}",
                "group.initial.rebalance.delay.ms=0",
                # a node that comes back leads its share again within 30 s, not 5 min: until
                # then the others lead its partitions too, and the clients all talk to them
                "leader.imbalance.check.interval.seconds=30",
                f"log.retention.hours={RETENTION_HOURS}",
                f"log.roll.hours={SEGMENT_ROLL_HOURS}",
                "num.network.threads=2",
                "num.io.threads=4",
                "",
            ]
        ),
    )


def _plain_listeners(node: KafkaNode) -> list[str]:
    return [
        f"listeners=PLAINTEXT://{node.address},CONTROLLER://{node.controller_address}",
        f"advertised.listeners=PLAINTEXT://{node.address}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    ]


def _scram_listeners(config: StackConfig, node: KafkaNode) -> list[str]:
    """Clients and brokers authenticate with SCRAM-SHA-512 (its credentials are in the cluster's
    metadata, written when the storage is formatted); the controllers, which cannot read those
    before they run, with PLAIN and the admin's password. The clients' listener takes PLAIN
    too, with the same passwords, for kcat: Debian's librdkafka (2.0) cannot do SCRAM with
    Kafka 4 (librdkafka#4895, fixed in 2.6.1). ACLs decide the rest: ``admin`` is the only
    super user, and nothing without a grant is allowed."""
    password = config.secret(f"kafka/{ADMIN}")
    users = " ".join(
        f'user_{principal}="{config.secret(f"kafka/{principal}")}"'
        for principal in (ADMIN, *PRINCIPALS)
    )
    scram = f'ScramLoginModule required username="{ADMIN}" password="{password}";'
    plain = (
        f'PlainLoginModule required username="{ADMIN}" password="{password}"'
        f' user_{ADMIN}="{password}";'
    )
    return [
        f"listeners=SASL_PLAINTEXT://{node.address},CONTROLLER://{node.controller_address}",
        f"advertised.listeners=SASL_PLAINTEXT://{node.address}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=SASL_PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
        f"org.apache.kafka.common.security.scram.{scram}",
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config="
        f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
        "sasl.mechanism.controller.protocol=PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config="
        f"org.apache.kafka.common.security.plain.{plain}",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{ADMIN}",
        "allow.everyone.if.no.acl.found=false",
    ]


def replication(brokers: int) -> tuple[int, int]:
    """Replicas per partition and the in-sync replicas a write needs: 3 and 2 on a cluster (one
    broker may be down and writes go on, acknowledged by two), 1 and 1 on one broker."""
    replicas = min(3, brokers)
    return replicas, max(1, replicas - 1)
