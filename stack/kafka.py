"""Apache Kafka from its jars, in KRaft mode: one node, or a cluster of three (each node a broker
and a controller, with a static quorum); topics replicated as the cluster allows."""

import asyncio
import hashlib
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from common.kafka_access import KafkaAccess
from schemas.topics import (
    ALL_TOPICS,
    RETENTION_HOURS,
    SEGMENT_ROLL_HOURS,
    Topic,
)
from stack import procs
from stack.config import ROOT, KafkaNode, StackConfig, write_private
from stack.kafka_acls import ADMIN, PRINCIPALS
from stack.progress import step

NAME = "kafka"
POM = ROOT / "stack" / "kafka" / "pom.xml"
LOG4J = ROOT / "stack" / "kafka" / "log4j2.xml"
MAIN = "kafka.Kafka"


def ensure_jars(config: StackConfig) -> Path:
    """Resolve the broker's jars from Maven Central into ``jars_dir``, once per pom."""
    libs = config.jars_dir
    stamp = libs / ".pom-sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return libs
    if shutil.which("mvn") is None:
        raise SystemExit(
            "Maven (mvn) is needed once to fetch the Kafka jars: apt-get install maven"
        )
    step(NAME, "fetching the broker jars from Maven Central (first run only)...")
    if libs.exists():
        shutil.rmtree(libs)
    subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        check=True,
    )
    stamp.write_text(digest)
    step(NAME, f"{sum(1 for _ in libs.glob('*.jar'))} jars in {libs}")
    return libs


def _java(config: StackConfig, *args: str, heap: str = "256m") -> list[str]:
    return [
        "java",
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J}",
        "-cp",
        f"{config.jars_dir}/*",
        *args,
    ]


def _properties(config: StackConfig, node: KafkaNode) -> Path:
    nodes = config.kafka_nodes
    replicas, min_isr = _replication(len(nodes))
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


def _replication(brokers: int) -> tuple[int, int]:
    """Replicas per partition and the in-sync replicas a write needs: 3 and 2 on a cluster (one
    broker may be down and writes go on, acknowledged by two), 1 and 1 on one broker."""
    replicas = min(3, brokers)
    return replicas, max(1, replicas - 1)


def _format_storage(config: StackConfig, formats: dict[KafkaNode, Path]) -> None:
    """Format each node's storage that is not yet formatted, all with the cluster's one id."""
    for n in formats:
        _check_security(config, n)
    todo = {
        n: p for n, p in formats.items() if not (n.folder / "data" / "meta.properties").exists()
    }
    if not todo:
        return
    step(NAME, f"formatting storage of {', '.join(n.name for n in todo)} (first start)...")
    cluster_id = (
        _cluster_id(config)
        or (
            subprocess.run(
                _java(config, "kafka.tools.StorageTool", "random-uuid"),
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
    )
    standalone = ["--standalone"] if len(config.kafka_nodes) == 1 else []
    credentials = [
        f"--add-scram=SCRAM-SHA-512=[name={principal},password={config.secret(f'kafka/{principal}')}]"
        for principal in (ADMIN, *PRINCIPALS)
        if config.scram
    ]
    formatting = [
        subprocess.Popen(
            _in_argfile(
                _java(
                    config,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(properties),
                    *standalone,
                    *credentials,
                    "--ignore-formatted",
                ),
                node.folder / "format.args",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for node, properties in todo.items()
    ]
    try:
        for process in formatting:
            output, _ = process.communicate()
            if process.returncode != 0:
                raise SystemExit(f"formatting Kafka's storage failed:\n{output.decode()}")
    finally:
        for node in todo:
            (node.folder / "format.args").unlink(missing_ok=True)
    for n in todo:
        _security_mark(n).write_text(_security_name(config))


def _in_argfile(command: list[str], path: Path) -> list[str]:
    """``command`` with its class path, main class and arguments moved into an argument file
    of mode 600 (``java @file``): a command line is there for anyone to read (``ps``), and the
    SCRAM passwords are among the arguments. Java expands ``@file`` only before the main
    class, so the whole tail goes in."""
    at = command.index("-cp")
    quoted = ['"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in command[at:]]
    write_private(path, "\n".join(quoted) + "\n")
    return [*command[:at], f"@{path}"]


def _security_mark(node: KafkaNode) -> Path:
    return node.folder / "security"


def _security_name(config: StackConfig) -> str:
    return "scram" if config.scram else "plaintext"


def _check_security(config: StackConfig, node: KafkaNode) -> None:
    """A storage formatted in one mode does not start in the other: SCRAM's credentials are
    written when the storage is formatted."""
    mark = _security_mark(node)
    formatted = mark.read_text().strip() if mark.exists() else "plaintext"
    if (node.folder / "data" / "meta.properties").exists() and formatted != _security_name(config):
        raise SystemExit(
            f"{node.name}'s storage in {node.folder} was formatted for {formatted}, not"
            f" {_security_name(config)} (SHOP_KAFKA_SECURITY): make clean first, or use"
            f" another SHOP_STATE_DIR"
        )


def _cluster_id(config: StackConfig) -> str | None:
    """The id of the nodes already formatted: a node formatted after the others (its first
    start) joins their cluster. A voter whose log was wiped is not safe to bring back this way
    (its quorum's state is lost with it): stop the cluster and make clean instead."""
    for node in config.kafka_nodes:
        meta = node.folder / "data" / "meta.properties"
        if meta.exists():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.split("=", 1)[1].strip()
    return None


def node(config: StackConfig, name: str) -> KafkaNode | None:
    for candidate in config.kafka_nodes:
        if candidate.name == name:
            return candidate
    return None


def start(config: StackConfig, nodes: Sequence[KafkaNode] | None = None) -> None:
    """Start the nodes (every node by default) that are not running; return once each says it
    has started."""
    nodes = config.kafka_nodes if nodes is None else nodes
    todo = [n for n in nodes if procs.running_pid(config, n.name) is None]
    for n in nodes:
        if n not in todo:
            step(n.name, f"already running on {n.address}")
    if not todo:
        return
    ensure_jars(config)
    formats = {n: _properties(config, n) for n in todo}
    _format_storage(config, formats)
    started = []
    for n, properties in formats.items():
        log = procs.log_file(config, n.name)
        offset = log.stat().st_size if log.exists() else 0
        pid = procs.start(
            config,
            n.name,
            _java(config, MAIN, str(properties), heap=config.kafka_heap),
            marker=str(properties),
        )
        step(n.name, f"starting on {n.address} (log {log})...")
        started.append((n, pid, log, offset))
    for n, pid, log, offset in started:
        _wait_for_log_line(n, pid, log, offset, "Kafka Server started", timeout_s=120)


def _wait_for_log_line(
    node: KafkaNode, pid: int, log: Path, offset: int, line: str, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with log.open("rb") as f:
            f.seek(offset)
            if line.encode() in f.read():
                return
        if not procs.alive(pid):
            raise SystemExit(f"{node.name} exited while starting; see {log}")
        time.sleep(0.2)
    raise SystemExit(f"{node.name} did not start within {timeout_s:.0f}s; see {log}")


async def _admin(access: KafkaAccess) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**access.client_options(), request_timeout_ms=5000)
    await admin.start()
    return admin


async def wait_ready(access: KafkaAccess, timeout_s: float = 60, brokers: int = 1) -> None:
    """Ready means the cluster answers a metadata request with at least ``brokers`` brokers in
    it, not merely that a port is open."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = await _admin(access)
            try:
                cluster = await admin.describe_cluster()
            finally:
                await admin.close()
            if len(cluster["brokers"]) >= brokers:
                return
            if time.monotonic() > deadline:
                raise KafkaError(f"{len(cluster['brokers'])} of {brokers} brokers up")
        except (KafkaError, OSError):
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.3)


async def under_replicated(access: KafkaAccess) -> list[str]:
    """The partitions (``topic/partition``) whose in-sync replicas are fewer than their
    replicas: a rolling restart waits for none before it takes the next broker down."""
    admin = await _admin(access)
    try:
        topics = await admin.describe_topics()
    finally:
        await admin.close()
    return [
        f"{topic['topic']}/{partition['partition']}"
        for topic in topics
        for partition in topic["partitions"]
        if len(partition["isr"]) < len(partition["replicas"])
    ]


async def leaders(access: KafkaAccess) -> Counter[int]:
    """How many partitions each broker leads (by node id), over every topic: the fault cases
    kill the busiest."""
    admin = await _admin(access)
    try:
        topics = await admin.describe_topics()
    finally:
        await admin.close()
    return Counter(partition["leader"] for topic in topics for partition in topic["partitions"])


async def wait_in_sync(access: KafkaAccess, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while lagging := await under_replicated(access):
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(lagging)} partitions not in sync: {', '.join(lagging[:5])}…")
        await asyncio.sleep(0.5)


async def ensure_topics(access: KafkaAccess, topics: Iterable[Topic] = ALL_TOPICS) -> int:
    """Create the missing topics; returns how many were created."""
    admin = await _admin(access)
    try:
        existing = set(await admin.list_topics())
        replicas, min_isr = _replication(len((await admin.describe_cluster())["brokers"]))
        missing = [
            NewTopic(
                topic.name,
                num_partitions=topic.partitions,
                replication_factor=replicas,
                topic_configs={"min.insync.replicas": str(min_isr)},
            )
            for topic in topics
            if topic.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
        return len(missing)
    finally:
        await admin.close()


async def is_ready(access: KafkaAccess) -> bool:
    try:
        await asyncio.wait_for(wait_ready(access, timeout_s=0), 5)
    except (KafkaError, OSError, TimeoutError):
        return False
    return True


def write_kcat_conf(config: StackConfig) -> Path:
    """``.cache/kcat.conf``: ``kcat -F .cache/kcat.conf -L`` reaches the stack's Kafka as its
    admin (mode 600: with SCRAM it holds the password)."""
    # the state folder stays as it is: PostgreSQL's user traverses it to its files
    return write_private(config.state_dir / "kcat.conf", kcat_conf(config), own_folder=False)


def kcat_conf(config: StackConfig, principal: str = ADMIN) -> str:
    """kcat's settings for ``principal``; with SCRAM on, it signs in with PLAIN (the listener
    takes both; see :func:`_scram_listeners` for why)."""
    access = config.kafka_access(principal)
    lines = [f"bootstrap.servers={access.bootstrap_servers}"]
    if access.sasl:
        lines += [
            f"security.protocol={access.security_protocol.lower()}",
            "sasl.mechanisms=PLAIN",
            f"sasl.username={access.sasl_username}",
            f"sasl.password={access.sasl_password}",
        ]
    return "\n".join(lines) + "\n"


def admin_client_config(config: StackConfig) -> list[str]:
    """``--command-config`` for Kafka's own tools: the admin's SCRAM credentials, in a file of
    mode 600 (never on a command line, where ``ps`` shows it)."""
    access = config.kafka_access()
    if not access.sasl:
        return []
    path = write_private(
        config.state_dir / "secrets" / "kafka" / "admin.properties",
        f"security.protocol={access.security_protocol}\n"
        f"sasl.mechanism={access.sasl_mechanism}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required"
        f' username="{access.sasl_username}" password="{access.sasl_password}";\n',
    )
    return ["--command-config", str(path)]


def shift_offsets(config: StackConfig, group: str, by: int) -> str:
    """Move an inactive consumer group's offsets on all its topics by ``by`` (negative: rewind),
    with Kafka's own ConsumerGroupCommand. Its members must be stopped first."""
    result = subprocess.run(
        _java(
            config,
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server",
            config.kafka_bootstrap,
            *admin_client_config(config),
            "--group",
            group,
            "--reset-offsets",
            "--all-topics",
            "--shift-by",
            str(by),
            "--execute",
        ),
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def stop(config: StackConfig, nodes: Sequence[KafkaNode] | None = None) -> list[str]:
    """Stop the nodes together, gracefully; the names of those that ran. By default every node,
    also one of a topology other than this shell's (``up`` with ``SHOP_KAFKA_BROKERS=3``,
    ``down`` without it), found by its pid file."""
    if nodes is None:
        names = [n.name for n in config.kafka_nodes]
        names += sorted({path.stem for path in config.run_dir.glob("kafka*.pid")} - set(names))
    else:
        names = [n.name for n in nodes]
    stopped = procs.stop_all(config, names, grace_s=30)
    return [name for name in names if name in stopped]


def kill(config: StackConfig, nodes: Sequence[KafkaNode] | None = None) -> list[KafkaNode]:
    """SIGKILL the nodes (every node by default), as a crash would; the ones that ran."""
    nodes = config.kafka_nodes if nodes is None else nodes
    return [n for n in nodes if procs.kill(config, n.name)]
