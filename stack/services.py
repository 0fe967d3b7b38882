"""The shop's own processes: the six domain services, each as one process or several replicas
(``SHOP_REPLICAS``), and the gateway."""

import os
import sys
import time
from dataclasses import dataclass, replace

import httpx

from stack import procs, zipkin
from stack.config import ROOT, StackConfig
from stack.progress import step

PORT_OFFSET = int(os.environ.get("SHOP_HTTP_PORT_OFFSET", "0"))
"""Shifts every service's port, so a second stack (a test's) can run beside the first."""


@dataclass(frozen=True)
class Service:
    package: str
    base_port: int
    replica: int = 1
    """Its slot among the service's processes: ``order_svc`` is the first, ``order_svc#2`` the
    second, on its port plus 100 (8102), and so on."""

    @property
    def name(self) -> str:
        return self.package if self.replica == 1 else f"{self.package}#{self.replica}"

    @property
    def port(self) -> int:
        return self.base_port + PORT_OFFSET + 100 * (self.replica - 1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


SERVICES = (
    Service("user_svc", 8003),
    Service("product_svc", 8001),
    Service("order_svc", 8002),
    Service("payment_svc", 8004),
    Service("notification_svc", 8005),
    Service("inventory_svc", 8006),
    Service("gateway_svc", 8000),
)


def processes(config: StackConfig) -> tuple[Service, ...]:
    """Every process ``up`` starts: each service's replicas (``SHOP_REPLICAS``), the gateway
    last."""
    return tuple(
        replace(service, replica=replica)
        for service in SERVICES
        for replica in range(1, config.replicas.get(service.package, 1) + 1)
    )


def known(config: StackConfig) -> tuple[Service, ...]:
    """:func:`processes`, and any replica that runs beyond them (started under a larger
    ``SHOP_REPLICAS``), so that ``down`` and ``status`` leave none out."""
    extra = []
    for service in SERVICES:
        for path in config.run_dir.glob(f"{service.package}#*.pid"):
            replica = path.stem.split("#", 1)[1]
            if replica.isdigit():
                extra.append(replace(service, replica=int(replica)))
    wanted = processes(config)
    return wanted + tuple(sorted(set(extra) - set(wanted), key=lambda s: (s.package, s.replica)))


def named(name: str) -> Service | None:
    """``order_svc`` or one of its replicas, ``order_svc#2``."""
    package, _, replica = name.partition("#")
    for service in SERVICES:
        if service.package == package:
            if not replica:
                return service
            if replica.isdigit() and int(replica) >= 1 and service.package != "gateway_svc":
                return replace(service, replica=int(replica))
    return None


def environment(config: StackConfig, service: Service) -> dict[str, str]:
    """The user's environment, plus where everything of this stack is."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=config.database_url,
        HTTP_PORT=str(service.port),
        CONSUMER_REPLICA=str(service.replica),
        PYTHONUNBUFFERED="1",
    )
    env.update(config.kafka_env(service.package))
    # the gateway calls each service's first process (several behind a balancer elsewhere)
    env.update({f"{other.package.upper()}_URL": other.url for other in SERVICES})
    if config.tracing or procs.running_pid(config, zipkin.NAME) is not None:
        # a service restarted alone (stack restart, the fault suite) stays traced while the
        # stack's Zipkin runs, whatever the shell it was restarted from says
        env["SHOP_TRACING"] = "1"
        env.setdefault("OTEL_EXPORTER_ZIPKIN_ENDPOINT", zipkin.spans_endpoint(config))
    env.setdefault("JWT_SECRET", config.secret("jwt_secret"))
    env.setdefault("SHOP_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL)
    env.setdefault("SHOP_ADMIN_PASSWORD", config.secret("admin_password"))
    return env


DEFAULT_ADMIN_EMAIL = "admin@example.com"


def start(config: StackConfig, service: Service) -> bool:
    """Start ``service`` unless it already runs; True when a process was started."""
    if procs.running_pid(config, service.name) is not None:
        return False
    procs.start(
        config,
        service.name,
        [sys.executable, "-m", service.package],
        env=environment(config, service),
        marker=f"-m {service.package}",
        cwd=ROOT,
    )
    return True


def readiness(service: Service) -> str:
    try:
        response = httpx.get(f"{service.url}/readyz", timeout=2)
    except httpx.HTTPError:
        return "not answering"
    return "ready" if response.status_code == 200 else f"not ready ({response.text[:120]})"


def wait_ready(config: StackConfig, services: tuple[Service, ...], timeout_s: float = 90) -> None:
    pending = list(services)
    deadline = time.monotonic() + timeout_s
    while pending:
        for service in list(pending):
            if readiness(service) == "ready":
                pending.remove(service)
                step(service.name, f"ready on {service.url}")
            elif procs.running_pid(config, service.name) is None:
                log = procs.log_file(config, service.name)
                tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
                raise SystemExit(
                    f"{service.name} exited while starting; last lines of {log}:\n{tail}\n"
                    f"What else started keeps running: mend the cause and start again"
                    f" (make up), or stop it all (make down)."
                )
        if time.monotonic() > deadline:
            names = ", ".join(service.name for service in pending)
            raise SystemExit(f"not ready after {timeout_s:.0f}s: {names}; see {config.logs_dir}")
        if pending:
            time.sleep(0.3)


def stop(config: StackConfig, service: Service) -> bool:
    return procs.stop(config, service.name, grace_s=20)
