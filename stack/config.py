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
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

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
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        """The server every service's own database lives on (one database per service)."""
        return os.environ.get(
            "DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{self.pg_port}/postgres"
        )

    @property
    def external_database(self) -> bool:
        return "DATABASE_URL" in os.environ
