"""Where the local stack keeps its files and which ports it uses; all from the environment."""

import os
from dataclasses import dataclass, field
from pathlib import Path

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
    def kafka_bootstrap(self) -> str:
        return ",".join(node.address for node in self.kafka_nodes)

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


def _brokers(value: str) -> int:
    if value not in ("1", "3"):
        raise SystemExit(f"SHOP_KAFKA_BROKERS must be 1 or 3, not {value!r}")
    return int(value)
