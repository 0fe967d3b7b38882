"""The local stack's processes: all brought up (Kafka, PostgreSQL, every service) or down, one
stopped, started or restarted, a service's consumer group rewound, and each one's readiness
reported. What is started is waited for until it answers, so that the next step can rely on it."""

import asyncio
import os

from aiokafka.errors import KafkaError

from common.lag import consumer_lag
from payment_svc.adapters import set_faults
from schemas.topics import ALL_TOPICS
from stack import (
    kafka_acls,
    kafka_admin,
    kafka_process,
    kafka_tools,
    postgres,
    procs,
    services,
    zipkin,
)
from stack.config import KafkaNode, StackConfig, remember_shape
from stack.payment_provider import payment_settings
from stack.progress import elapsed, step


def up(config: StackConfig, *, with_services: bool = True) -> None:
    """Start Kafka, PostgreSQL and every service; return when all report ready."""
    remember_shape(config)
    kafka_process.start(config)
    admin = config.kafka_access()
    asyncio.run(kafka_admin.wait_ready(admin, brokers=config.kafka_brokers))
    created = asyncio.run(kafka_admin.ensure_topics(admin))
    step("kafka", f"ready on {config.kafka_bootstrap}; {len(ALL_TOPICS)} topics ({created} new)")
    if config.scram:
        granted = asyncio.run(kafka_acls.apply(admin))
        kafka_tools.admin_client_config(config)  # for Kafka's own tools: --command-config
        step(
            "kafka",
            f"SASL/SCRAM-SHA-512 on; {granted} ACLs for {len(kafka_acls.PRINCIPALS)}"
            f" principals, passwords in {config.state_dir / 'secrets' / 'kafka'}/",
        )
    kcat = kafka_tools.write_kcat_conf(config)
    if config.external_database:
        step("postgres", "using DATABASE_URL; not starting a local server")
    else:
        postgres.start(config)
        step("postgres", f"ready on 127.0.0.1:{config.pg_port}")
    if config.tracing:
        zipkin.start(config)
    if not with_services:
        return
    # Faults switched on a run before (provider-faults) do not outlive it: the simulated
    # provider starts with PAYMENT_PROVIDER_FAULTS.
    asyncio.run(set_faults(payment_settings(config).provider_ledger_url(), None))
    everyone = services.processes(config)
    started = [service for service in everyone if services.start(config, service)]
    for service in everyone:
        if service not in started:
            step(service.name, "already running")
    if config.tracing and len(started) < len(everyone):
        step("zipkin", "services that were already running keep their tracing (make down first)")
    if started:
        step("services", f"started {len(started)}; waiting until each is ready...")
    services.wait_ready(config, everyone)
    gateway = everyone[-1]
    admin_email = os.environ.get("SHOP_ADMIN_EMAIL", services.DEFAULT_ADMIN_EMAIL)
    traces = f"  traces    {zipkin.url(config)}  (Zipkin)\n" if config.tracing else ""
    print(
        f"\nThe shop is up in {elapsed():.1f}s.\n"
        f"  gateway   {gateway.url}  (OpenAPI: {gateway.url}/docs)\n"
        f"  kafka     {config.kafka_bootstrap}  (kcat -F {kcat} -L)\n"
        f"  postgres  {config.database_url}\n"
        f"  logs      {config.logs_dir}/  (make logs SERVICE=order_svc)\n"
        f"{traces}"
        f"  admin     {admin_email}, password in {config.state_dir / 'secrets' / 'admin_password'}"
        f" (unless SHOP_ADMIN_PASSWORD is set)\n"
        f"  stop      make down",
        flush=True,
    )


def down(config: StackConfig) -> None:
    """Stop everything ``up`` started: the services, then Kafka and PostgreSQL."""
    for service in reversed(services.known(config)):
        if services.stop(config, service):
            step(service.name, "stopped")
    if zipkin.stop(config):
        step("zipkin", "stopped")
    for name in kafka_process.stop(config):
        step(name, "stopped")
    if not config.external_database and postgres.stop(config):
        step("postgres", "stopped")
    config.shape_file.unlink(missing_ok=True)
    print(f"Everything is down ({elapsed():.1f}s).", flush=True)


def stop_one(config: StackConfig, name: str, *, crash: bool) -> None:
    """Stop one process: gracefully, or with ``crash`` as SIGKILL would."""
    if name == "kafka" or kafka_process.node(config, name):
        nodes = _kafka_nodes(config, name)
        stopped = bool(
            kafka_process.kill(config, nodes) if crash else kafka_process.stop(config, nodes)
        )
    elif name == "postgres":
        stopped = postgres.kill(config) if crash else postgres.stop(config)
    else:
        service = service_named(name)
        stopped = procs.kill(config, name) if crash else services.stop(config, service)
    step(name, ("killed" if crash else "stopped") if stopped else "was not running")


def start_one(config: StackConfig, name: str) -> None:
    """Start one process (if it is not running) and wait until it is ready."""
    if name == "kafka" or kafka_process.node(config, name):
        nodes = _kafka_nodes(config, name)
        kafka_process.start(config, nodes)
        for node in nodes:
            asyncio.run(kafka_admin.wait_ready(config.kafka_access(bootstrap=node.address)))
        everyone = all(procs.running_pid(config, node.name) for node in config.kafka_nodes)
        if config.kafka_brokers > 1 and everyone:
            # a rolling restart takes the next node down only once this one has caught up
            step(name, "catching up: waiting until every partition is in sync...")
            asyncio.run(kafka_admin.wait_in_sync(config.kafka_access()))
    elif name == "postgres":
        postgres.start(config)
    else:
        service = service_named(name)
        services.start(config, service)
        services.wait_ready(config, (service,))
    step(name, "ready")


def _kafka_nodes(config: StackConfig, name: str) -> tuple[KafkaNode, ...]:
    """``kafka`` is every node; ``kafka-2`` one node of a cluster."""
    node = kafka_process.node(config, name)
    return config.kafka_nodes if node is None else (node,)


def service_named(name: str) -> services.Service:
    found = services.named(name)
    if found is not None:
        return found
    nodes = [node.name for node in StackConfig().kafka_nodes if node.name != "kafka"]
    known = ", ".join(["kafka", *nodes, "postgres", *(s.name for s in services.SERVICES)])
    raise SystemExit(f"unknown process {name!r}; one of {known}, or a replica such as order_svc#2")


def status(config: StackConfig) -> int:
    rows = [
        (
            node.name,
            procs.running_pid(config, node.name),
            node.address,
            "ready"
            if asyncio.run(kafka_admin.is_ready(config.kafka_access(bootstrap=node.address)))
            else "not ready",
        )
        for node in config.kafka_nodes
    ]
    rows += [
        (
            "postgres",
            postgres.pid(config),
            f"127.0.0.1:{config.pg_port}",
            "ready" if postgres.is_ready(config) else "not ready",
        ),
    ]
    zipkin_pid = procs.running_pid(config, zipkin.NAME)
    if config.tracing or zipkin_pid is not None:
        ready = "ready" if zipkin.is_ready(config) else "not ready"
        rows.append((zipkin.NAME, zipkin_pid, zipkin.url(config), ready))
    for service in services.known(config):
        rows.append(
            (
                service.name,
                procs.running_pid(config, service.name),
                service.url,
                services.readiness(service),
            )
        )
    try:
        lag = asyncio.run(consumer_lag(config.kafka_access()))
    except (KafkaError, OSError):
        lag = {}
    print(f"{'process':<18}{'pid':>8}  {'address':<28}{'state':<16}consumer lag")
    for name, pid, address, state in rows:
        behind = str(lag[name]) if name in lag else ""
        print(f"{name:<18}{pid or '-':>8}  {address:<28}{state:<16}{behind}")
    return 0 if all(row[3] == "ready" for row in rows) else 1


def logs(config: StackConfig, name: str) -> None:
    """Follow one log; ``kafka`` on a cluster follows every node's."""
    names = [n.name for n in config.kafka_nodes] if name == "kafka" else [name]
    paths = [str(procs.log_file(config, one)) for one in names]
    if not any(os.path.exists(path) for path in paths):
        raise SystemExit(f"no log for {name!r} in {config.logs_dir}")
    os.execvp("tail", ["tail", "-n", "100", "-F", *paths])


def rewind(config: StackConfig, name: str, by: int) -> None:
    """Move a service's consumer group back ``by`` messages per partition, its processes
    stopped meanwhile."""
    # every process of the group leaves it first: Kafka resets an empty group only
    group = [s.name for s in services.known(config) if s.package == service_named(name).package]
    for one in group:
        stop_one(config, one, crash=False)
    print(kafka_tools.shift_offsets(config, service_named(name).package, -abs(by)))
    for one in group:
        start_one(config, one)
