"""A whole shop for fault injection, with a catalog and buyers ready for a stream of orders, and
the faults it can be dealt: shared by the fault suite (``fault_shop``) and the soak."""

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common.kafka_access import KafkaAccess
from schemas.topics import CONSUMED_TOPICS
from stack import dlq
from tests.e2e.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Shop,
    launcher,
    new_product,
    payment_method,
)
from tests.faults.invariants import SERVICE_DATABASES, Databases
from tests.faults.load import Buyer, Catalog

SERVICES = ("gateway_svc", *SERVICE_DATABASES)


class ShopDidNotStartError(RuntimeError):
    pass


@dataclass
class FaultShop:
    shop: Shop
    databases: Databases
    catalog: Catalog
    buyers: list[Buyer]
    accepted: dict[str, str] = field(default_factory=dict)
    """Every order the shop accepted in the cases so far, checked after each case."""
    poison: dict[str, set[bytes]] = field(
        default_factory=lambda: {service: set() for service in CONSUMED_TOPICS}
    )
    """What each service's dead-letter topic must hold, and nothing else."""
    hot_products: set[str] = field(default_factory=set)
    """Products raced for their last units (the failover cases): each must end sold out."""

    @property
    def bootstrap(self) -> str:
        return self.shop.config.kafka_bootstrap

    @property
    def kafka_access(self) -> KafkaAccess:
        return self.shop.kafka_access

    def stack(self, *args: str) -> str:
        result = launcher(self.shop.env, *args)
        assert result.returncode == 0, f"stack {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout + result.stderr

    def kill_and_restart(self, service: str) -> None:
        self.stack("restart", service, "--kill")

    def sigterm_restart(self, service: str) -> None:
        self.stack("restart", service)

    def provider_faults(self, spec: str) -> None:
        """Make the simulated payment provider misbehave (``off`` to stop)."""
        self.stack("provider-faults", spec)

    def provider_window(self, spec: str, seconds: float) -> None:
        """The provider misbehaving as ``spec`` says for ``seconds``, then behaving again."""
        self.provider_faults(spec)
        try:
            time.sleep(seconds)
        finally:
            self.provider_faults("off")

    def new_dead_letters(
        self, service: str, before: set[int], within_s: float = 30
    ) -> list[dlq.DeadLetter]:
        """The letters on ``service``'s dead-letter topic at offsets not in ``before``, once
        there are some (or none, after ``within_s``)."""
        deadline = time.monotonic() + within_s
        while True:
            letters = asyncio.run(dlq.read(self.kafka_access, service))
            new = [letter for letter in letters if letter.offset not in before]
            if new or time.monotonic() > deadline:
                return new
            time.sleep(1)

    def restart_broker(self) -> None:
        self.stack("stop", "kafka")
        time.sleep(3)
        self._start_again("kafka")

    def restart_database(self) -> None:
        self.stack("stop", "postgres")
        time.sleep(3)
        self._start_again("postgres")

    def _start_again(self, name: str, within_s: float = 120) -> None:
        """Start a stopped process, again while its port is taken: on a port inside Linux's
        ephemeral range (as SHOP_FAULTS_* may put it), a client reconnecting while the server
        is down may connect to itself, and the port stays taken for TIME_WAIT (60 s)."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            result = launcher(self.shop.env, "start", name)
            if result.returncode == 0:
                return
            print(f"start {name} failed, trying again: {result.stderr.strip()[-200:]}")
            time.sleep(5)
        self.stack("start", name)


CLUSTER = {"SHOP_KAFKA_BROKERS": "3", "SHOP_KAFKA_SECURITY": "scram", "SHOP_REPLICAS": "2"}
"""Kafka as production runs it: three brokers, SASL/SCRAM with ACLs, two processes of each
service (the failover cases' shop)."""


@contextmanager
def running_fault_shop(state_dir: Path, *, cluster: bool = False) -> Iterator[FaultShop]:
    """``python -m stack up`` on the fault suite's ports (SHOP_FAULTS_*, or SHOP_FAULTS_CLUSTER_*
    for a ``cluster``, :data:`CLUSTER`), in ``state_dir``, with six products (one sold out) and
    twelve buyers; everything stopped on the way out."""
    prefix = "SHOP_FAULTS_CLUSTER_" if cluster else "SHOP_FAULTS_"
    kafka_port = int(os.environ.get(f"{prefix}KAFKA_PORT", 29892 if cluster else 29792))
    env = {
        **os.environ,
        **(CLUSTER if cluster else {}),
        "SHOP_STATE_DIR": str(state_dir),
        "SHOP_KAFKA_PORT": str(kafka_port),
        "SHOP_KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
        "SHOP_PG_PORT": os.environ.get(f"{prefix}PG_PORT", "25834" if cluster else "25734"),
        "SHOP_HTTP_PORT_OFFSET": os.environ.get(
            f"{prefix}HTTP_PORT_OFFSET", "700" if cluster else "600"
        ),
        "SHOP_ADMIN_EMAIL": ADMIN_EMAIL,
        "SHOP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RATE_LIMIT_PER_MINUTE": "100000",
        "REGISTRATIONS_PER_MINUTE": "100000",
        "CONSUMER_SESSION_TIMEOUT_MS": "10000",
        "ACCESS_TOKEN_TTL_S": "86400",  # a full soak runs for hours
    }
    env.pop("DATABASE_URL", None)
    env.pop("JWT_SECRET", None)
    up = launcher(env, "up")
    if up.returncode != 0:
        launcher(env, "down")
        raise ShopDidNotStartError(f"the shop did not come up:\n{up.stdout}\n{up.stderr}")
    shop = Shop(f"http://127.0.0.1:{8000 + int(env['SHOP_HTTP_PORT_OFFSET'])}", env)
    try:
        admin = shop.admin()
        plenty = [new_product(admin, price=f"{n}.50", stock=1_000_000) for n in range(1, 6)]
        sold_out = new_product(admin, price="99.00", stock=0)
        buyers = []
        for n in range(12):
            customer = shop.customer(f"Buyer{n}-{uuid.uuid4().hex[:4]}")
            buyers.append(
                Buyer(
                    token=customer.tokens["access_token"],
                    card=payment_method(customer),
                    declining_card=payment_method(customer, "tok_decline"),
                )
            )
        yield FaultShop(
            shop=shop,
            databases=Databases(env["SHOP_PG_PORT"], shop.kafka_access),
            catalog=Catalog(plenty=plenty, sold_out=sold_out),
            buyers=buyers,
        )
    finally:
        shop.http.close()
        launcher(env, "down")
