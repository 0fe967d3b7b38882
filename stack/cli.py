"""``python -m stack up|down|status|logs SERVICE|...``: the local stack, behind the Make targets;
also one process stopped or restarted, dead letters listed and re-driven, the payment provider's
faults switched (``provider-faults``) and its ledger reconciled with payment_svc
(``reconcile``)."""

import argparse
import asyncio
import logging
import os
import sys

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from common.kafka_access import KafkaAccess
from common.lag import consumer_lag
from common.settings import refusal
from payment_svc.adapters import Faults, set_faults
from payment_svc.app import create_provider
from payment_svc.reconcile import reconcile as compare_ledgers
from payment_svc.settings import Settings as PaymentSettings
from schemas.topics import ALL_TOPICS
from stack import kafka, kafka_acls, postgres, procs, services, zipkin
from stack.config import KafkaNode, StackConfig, recall_shape, remember_shape
from stack.progress import elapsed, step


def up(config: StackConfig, *, with_services: bool = True) -> None:
    """Start Kafka, PostgreSQL and every service; return when all report ready."""
    remember_shape(config)
    kafka.start(config)
    admin = config.kafka_access()
    asyncio.run(kafka.wait_ready(admin, brokers=config.kafka_brokers))
    created = asyncio.run(kafka.ensure_topics(admin))
    step("kafka", f"ready on {config.kafka_bootstrap}; {len(ALL_TOPICS)} topics ({created} new)")
    if config.scram:
        granted = asyncio.run(kafka_acls.apply(admin))
        kafka.admin_client_config(config)  # for Kafka's own tools: --command-config
        step(
            "kafka",
            f"SASL/SCRAM-SHA-512 on; {granted} ACLs for {len(kafka_acls.PRINCIPALS)}"
            f" principals, passwords in {config.state_dir / 'secrets' / 'kafka'}/",
        )
    kcat = kafka.write_kcat_conf(config)
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
    asyncio.run(set_faults(_payment_settings(config).provider_ledger_url(), None))
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
    for name in kafka.stop(config):
        step(name, "stopped")
    if not config.external_database and postgres.stop(config):
        step("postgres", "stopped")
    config.shape_file.unlink(missing_ok=True)
    print(f"Everything is down ({elapsed():.1f}s).", flush=True)


def stop_one(config: StackConfig, name: str, *, crash: bool) -> None:
    """Stop one process: gracefully, or with ``crash`` as SIGKILL would."""
    if name == "kafka" or kafka.node(config, name):
        nodes = _kafka_nodes(config, name)
        stopped = bool(kafka.kill(config, nodes) if crash else kafka.stop(config, nodes))
    elif name == "postgres":
        stopped = postgres.kill(config) if crash else postgres.stop(config)
    else:
        service = _service(name)
        stopped = procs.kill(config, name) if crash else services.stop(config, service)
    step(name, ("killed" if crash else "stopped") if stopped else "was not running")


def start_one(config: StackConfig, name: str) -> None:
    """Start one process (if it is not running) and wait until it is ready."""
    if name == "kafka" or kafka.node(config, name):
        nodes = _kafka_nodes(config, name)
        kafka.start(config, nodes)
        for node in nodes:
            asyncio.run(kafka.wait_ready(config.kafka_access(bootstrap=node.address)))
        everyone = all(procs.running_pid(config, node.name) for node in config.kafka_nodes)
        if config.kafka_brokers > 1 and everyone:
            # a rolling restart takes the next node down only once this one has caught up
            step(name, "catching up: waiting until every partition is in sync...")
            asyncio.run(kafka.wait_in_sync(config.kafka_access()))
    elif name == "postgres":
        postgres.start(config)
    else:
        service = _service(name)
        services.start(config, service)
        services.wait_ready(config, (service,))
    step(name, "ready")


def _kafka_nodes(config: StackConfig, name: str) -> tuple[KafkaNode, ...]:
    """``kafka`` is every node; ``kafka-2`` one node of a cluster."""
    node = kafka.node(config, name)
    return config.kafka_nodes if node is None else (node,)


def _service(name: str) -> services.Service:
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
            if asyncio.run(kafka.is_ready(config.kafka_access(bootstrap=node.address)))
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


def dead_letters(config: StackConfig, args: argparse.Namespace) -> int:
    from stack import dlq

    access = (
        KafkaAccess.from_env(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
        if "KAFKA_BOOTSTRAP_SERVERS" in os.environ
        else config.kafka_access()
    )
    if args.action == "list":
        dlq.show(access, [args.service] if args.service else dlq.ALL_SERVICES)
        return 0
    if not args.service or not (args.offsets or args.all):
        raise SystemExit("redrive needs a service and offsets (or --all)")
    redriven = asyncio.run(
        dlq.redrive(access, args.service, None if args.all else set(args.offsets), force=args.force)
    )
    print(f"re-drove {redriven.sent} message(s) from {args.service}.dlq")
    if redriven.too_old:
        print(
            f"refused offsets {', '.join(map(str, redriven.too_old))}: their messages are older"
            f" than the inboxes keep ids ({dlq.inbox_keep(args.service)}), so a service that"
            " applied one may apply it again; --force re-drives them all the same"
        )
    if redriven.unmatched:
        print(
            f"refused offsets {', '.join(map(str, redriven.unmatched))}: each letter must be the"
            " record it names on a topic the service consumes (key and value), and that record"
            " must still be there; none of these is"
        )
    return 1 if redriven.too_old or redriven.unmatched else 0


def reconcile(config: StackConfig) -> int:
    """Compare the payment provider's ledger with payment_svc's payments; 1 if they differ."""
    settings = _payment_settings(config)
    found = asyncio.run(_reconcile(settings))
    for line in found:
        print(line)
    print(f"{len(found)} difference(s) between the provider's ledger and payment_svc")
    return 1 if found else 0


async def _reconcile(settings: PaymentSettings) -> list[str]:
    provider = create_provider(settings)
    await provider.open()
    try:
        return await compare_ledgers(settings.service_database_url(), provider)
    finally:
        await provider.close()


def provider_faults(config: StackConfig, spec: str) -> int:
    """Switch the simulated provider's faults (every payment_svc reads them within a second);
    ``reset`` gives them back to each process's PAYMENT_PROVIDER_FAULTS."""
    try:
        faults = None if spec == "reset" else Faults.parse(spec)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    asyncio.run(set_faults(_payment_settings(config).provider_ledger_url(), faults))
    print(f"provider faults: {'as PAYMENT_PROVIDER_FAULTS' if faults is None else faults.spec()}")
    return 0


def _payment_settings(config: StackConfig) -> PaymentSettings:
    try:
        return PaymentSettings(database_url=config.database_url)
    except ValidationError as exc:  # by name, never with the values (a password among them)
        raise SystemExit(refusal(PaymentSettings.service_name, exc)) from None


def from_shell() -> int:
    """``python -m stack``: :func:`main`, with the running stack's settings where the shell
    does not give them (see :data:`stack.config.SHAPE`)."""
    if recalled := recall_shape():
        step("stack", "as it was started: " + " ".join(f"{n}={v}" for n, v in recalled.items()))
    return main()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start Kafka, PostgreSQL and every service")
    up_parser.add_argument(
        "--infra-only", action="store_true", help="only Kafka and PostgreSQL, no services"
    )
    commands.add_parser("down", help="stop everything up started")
    topics_parser = commands.add_parser("topics", help="create the missing topics on a broker")
    topics_parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), help="host:port"
    )
    commands.add_parser(
        "acls", help="the ACL table as kafka-acls.sh commands, to apply on a managed cluster"
    )
    commands.add_parser("status", help="each process and its readiness")
    for verb, text in (
        (
            "stop",
            "stop one process (kafka, a node such as kafka-2, postgres, a service, or one of"
            " its replicas such as order_svc#2)",
        ),
        ("start", "start one process and wait until it is ready"),
        ("restart", "stop one process, start it again, wait until it is ready"),
    ):
        one = commands.add_parser(verb, help=text)
        one.add_argument("name")
        if verb != "start":
            one.add_argument("--kill", action="store_true", help="SIGKILL, as a crash would")
    logs_parser = commands.add_parser("logs", help="follow one log")
    logs_parser.add_argument(
        "name",
        help="kafka (every node), a node such as kafka-2, postgres, or a process such as"
        " order_svc or order_svc#2",
        nargs="?",
        default="gateway_svc",
    )
    rewind_parser = commands.add_parser(
        "rewind", help="stop a service, move its consumer group back N messages per partition"
    )
    rewind_parser.add_argument("name", help="a service, e.g. payment_svc")
    rewind_parser.add_argument("--by", type=int, default=100)
    dlq_parser = commands.add_parser("dlq", help="list or re-drive dead letters")
    dlq_parser.add_argument("action", choices=["list", "redrive"], nargs="?", default="list")
    dlq_parser.add_argument("service", nargs="?", help="e.g. order_svc (list: all by default)")
    dlq_parser.add_argument("offsets", nargs="*", type=int, help="redrive: these offsets")
    dlq_parser.add_argument("--all", action="store_true", help="redrive: every message")
    dlq_parser.add_argument(
        "--force",
        action="store_true",
        help="redrive: also messages older than the inboxes keep ids (INBOX_KEEP_HOURS)",
    )
    commands.add_parser(
        "reconcile", help="compare the payment provider's ledger with payment_svc, order by order"
    )
    faults_parser = commands.add_parser(
        "provider-faults", help="make the simulated payment provider misbehave, or stop it"
    )
    faults_parser.add_argument(
        "spec",
        help="e.g. error_after_capture=0.2,timeout_after_capture=0.1,unavailable=1,slow_ms=50"
        " (shares of calls); off: none; reset: as each process's PAYMENT_PROVIDER_FAULTS",
    )
    revision_parser = commands.add_parser("revision", help="autogenerate a service's migration")
    revision_parser.add_argument("service")
    revision_parser.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    # a node that is down is expected here (a cluster's, or while waiting); aiokafka would log
    # every refused connection to it
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    config = StackConfig()
    if args.command == "up":
        up(config, with_services=not args.infra_only)
    elif args.command == "down":
        down(config)
    elif args.command == "topics":
        access = KafkaAccess.from_env(args.bootstrap) if args.bootstrap else config.kafka_access()
        # every node of the cluster first: topics get as many replicas as there are brokers
        asyncio.run(kafka.wait_ready(access, timeout_s=120, brokers=config.kafka_brokers))
        created = asyncio.run(kafka.ensure_topics(access))
        print(f"{created} topics created on {access.bootstrap_servers}; {len(ALL_TOPICS)} in all")
    elif args.command == "acls":
        for grant in kafka_acls.grants():
            print(
                'kafka-acls.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS"'
                f" --command-config admin.properties --add {grant.kafka_acls_args()}"
            )
    elif args.command == "status":
        return status(config)
    elif args.command in ("stop", "restart"):
        stop_one(config, args.name, crash=args.kill)
        if args.command == "restart":
            start_one(config, args.name)
    elif args.command == "start":
        start_one(config, args.name)
    elif args.command == "logs":
        logs(config, args.name)
    elif args.command == "rewind":
        # every process of the group leaves it first: Kafka resets an empty group only
        group = [s.name for s in services.known(config) if s.package == _service(args.name).package]
        for name in group:
            stop_one(config, name, crash=False)
        print(kafka.shift_offsets(config, _service(args.name).package, -abs(args.by)))
        for name in group:
            start_one(config, name)
    elif args.command == "dlq":
        return dead_letters(config, args)
    elif args.command == "reconcile":
        return reconcile(config)
    elif args.command == "provider-faults":
        return provider_faults(config, args.spec)
    elif args.command == "revision":
        from stack.revision import revise

        revise(args.service, args.message)
    return 0


if __name__ == "__main__":
    sys.exit(from_shell())
