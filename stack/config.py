"""Where the local stack keeps its files and which ports it uses; all from the environment."""

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common.kafka_access import KafkaAccess
from schemas.topics import CONSUMING_SERVICES, PARTITIONS
from stack.kafka_acls import ADMIN

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("SHOP_STATE_DIR", ROOT / ".cache")).resolve()
    )
    kafka_port: int = field(default_factory=lambda: int(os.environ.get("SHOP_KAFKA_PORT", 9092)))
    kafka_controller_port: int = field(
        default_factory=lambda: int(os.environ.get("SHOP_KAFKA_CONTROLLER_PORT", 9093))
    )
    kafka_heap: str = field(default_factory=lambda: os.environ.get("SHOP_KAFKA_HEAP", "512m"))
    kafka_brokers: int = field(
        default_factory=lambda: _brokers(os.environ.get("SHOP_KAFKA_BROKERS", "1"))
    )
    """``SHOP_KAFKA_BROKERS=3``: a cluster of three nodes, each a broker and a controller."""
    pg_port: int = field(default_factory=lambda: int(os.environ.get("SHOP_PG_PORT", 55432)))
    tracing: bool = field(
        default_factory=lambda: os.environ.get("SHOP_TRACING", "") not in ("", "0")
    )
    """``SHOP_TRACING=1``: a Zipkin runs beside the stack and every service sends it spans."""
    zipkin_port: int = field(default_factory=lambda: int(os.environ.get("SHOP_ZIPKIN_PORT", 9411)))
    replicas: Mapping[str, int] = field(
        default_factory=lambda: _replicas(os.environ.get("SHOP_REPLICAS", ""))
    )
    """``SHOP_REPLICAS=2`` (every domain service) or ``order_svc=3,product_svc=2``: how many
    processes of each service ``up`` starts; one where unsaid, and the gateway always one."""
    kafka_security: str = field(
        default_factory=lambda: _security(os.environ.get("SHOP_KAFKA_SECURITY", ""))
    )
    """``SHOP_KAFKA_SECURITY=scram``: SASL/SCRAM-SHA-512 on every listener, a principal per
    service with the ACLs of :mod:`stack.kafka_acls`; unset, plaintext with no authorisation."""

    @property
    def jars_dir(self) -> Path:
        # jars are shared by every state dir of one checkout: fetched once
        return ROOT / ".cache" / "kafka-libs"

    @property
    def zipkin_dir(self) -> Path:
        # shared like the Kafka jars
        return ROOT / ".cache" / "zipkin"

    @property
    def kafka_nodes(self) -> tuple["KafkaNode", ...]:
        """One node named ``kafka`` on the given ports; or ``kafka-1`` … ``kafka-N``, node i on
        each port plus ``2 * (i - 1)`` (9092/9093, 9094/9095, 9096/9097)."""
        if self.kafka_brokers == 1:
            return (
                KafkaNode(
                    1,
                    "kafka",
                    self.kafka_port,
                    self.kafka_controller_port,
                    self.state_dir / "kafka",
                ),
            )
        return tuple(
            KafkaNode(
                i,
                f"kafka-{i}",
                self.kafka_port + 2 * (i - 1),
                self.kafka_controller_port + 2 * (i - 1),
                self.state_dir / f"kafka-{i}",
            )
            for i in range(1, self.kafka_brokers + 1)
        )

    @property
    def pg_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def shape_file(self) -> Path:
        """The :data:`SHAPE` settings of the running stack, from its ``up`` to its ``down``."""
        return self.run_dir / "shape.env"

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(node.address for node in self.kafka_nodes)

    @property
    def scram(self) -> bool:
        return self.kafka_security == "scram"

    def kafka_access(self, principal: str = ADMIN, bootstrap: str | None = None) -> KafkaAccess:
        """How ``principal`` reaches this stack's Kafka (every node, or ``bootstrap``)."""
        servers = bootstrap or self.kafka_bootstrap
        if not self.scram:
            return KafkaAccess(servers)
        return KafkaAccess(
            servers,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=principal,
            sasl_password=self.secret(f"kafka/{principal}"),
        )

    def kafka_env(self, principal: str) -> dict[str, str]:
        """The same as a process's environment (the settings of :mod:`common.kafka_access`)."""
        return self.kafka_access(principal).to_env()

    def secret(self, name: str) -> str:
        """A random secret made once per local stack and kept in its state folder (mode 600),
        so it survives restarts, e.g. ``jwt_secret`` or ``kafka/order_svc``."""
        path = self.state_dir / "secrets" / name
        if not path.exists():
            write_private(path, secrets.token_urlsafe(24), up_to=self.state_dir / "secrets")
        return path.read_text().strip()

    @property
    def database_url(self) -> str:
        """The server every service's own database lives on (one database per service)."""
        return os.environ.get(
            "DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{self.pg_port}/postgres"
        )

    @property
    def external_database(self) -> bool:
        return "DATABASE_URL" in os.environ


@dataclass(frozen=True)
class KafkaNode:
    """One Kafka process of the local stack: a broker and a controller."""

    node_id: int
    name: str
    port: int
    controller_port: int
    folder: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def controller_address(self) -> str:
        return f"127.0.0.1:{self.controller_port}"


def _replicas(value: str) -> dict[str, int]:
    """``2``, or ``order_svc=3,product_svc=2``; refused by name when it names no domain service
    or asks for more processes than a topic has partitions."""
    value = value.strip()
    if not value:
        return {}
    wanted: dict[str, int] = {}
    if value.isdigit():
        wanted = dict.fromkeys(CONSUMING_SERVICES, int(value))
    else:
        for part in value.split(","):
            service, _, given = part.strip().partition("=")
            if service not in CONSUMING_SERVICES or not given.strip().isdigit():
                raise SystemExit(
                    f"SHOP_REPLICAS: {part.strip()!r} is not <service>=<count> for one of"
                    f" {', '.join(CONSUMING_SERVICES)}"
                )
            wanted[service] = int(given)
    for service, count in wanted.items():
        if not 1 <= count <= PARTITIONS:
            raise SystemExit(
                f"SHOP_REPLICAS: {service}={count}; from 1 to {PARTITIONS} (a topic's partitions)"
            )
    return wanted


def _security(value: str) -> str:
    if value not in ("", "plaintext", "scram"):
        raise SystemExit(f"SHOP_KAFKA_SECURITY must be scram, plaintext or unset, not {value!r}")
    return "scram" if value == "scram" else ""


def _brokers(value: str) -> int:
    if value not in ("1", "3"):
        raise SystemExit(f"SHOP_KAFKA_BROKERS must be 1 or 3, not {value!r}")
    return int(value)


SHAPE = ("SHOP_KAFKA_BROKERS", "SHOP_KAFKA_SECURITY", "SHOP_REPLICAS", "SHOP_TRACING")
"""The settings that shape a running stack. ``up`` records those it was given, and the
launcher's later commands (``status``, ``stop kafka-2``, ``dlq``, ``down``, another ``up``) take
them from there when the environment does not say: a cluster started with them is not mistaken
for the single plaintext broker by a shell that has not exported them."""


def remember_shape(config: StackConfig) -> None:
    config.run_dir.mkdir(parents=True, exist_ok=True)
    given = [f"{name}={os.environ[name]}" for name in SHAPE if os.environ.get(name)]
    config.shape_file.write_text("".join(f"{line}\n" for line in given))


def recall_shape() -> dict[str, str]:
    """Put the running stack's recorded settings into the environment, under any set there;
    returns those it put."""
    path = StackConfig().shape_file
    recalled: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if name in SHAPE and name not in os.environ:
                os.environ[name] = recalled[name] = value
    return recalled


def write_private(
    path: Path, text: str, up_to: Path | None = None, *, own_folder: bool = True
) -> Path:
    """Write ``text`` to a file only its owner may read (600), in a folder only its owner may
    enter (700), as are the folders between it and ``up_to``: the file is made with that mode
    before anything is written to it, and one made before under another mode is set right.
    ``own_folder=False`` leaves the folder as it is (one that others must traverse)."""
    folders = [path.parent] if own_folder else []
    if up_to is not None:
        folders += [f for f in path.parent.parents if f == up_to or up_to in f.parents]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder in folders:  # mkdir's mode skips parents, and an existing folder keeps its own
        folder.chmod(0o700)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)
    return path
