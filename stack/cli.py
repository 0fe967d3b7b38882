"""``python -m stack up|down|status|logs SERVICE|...``: the local stack, behind the Make targets;
also one process stopped or restarted, dead letters listed and re-driven, the payment provider's
faults switched (``provider-faults``) and its ledger reconciled with payment_svc
(``reconcile``)."""

import argparse
import asyncio
import logging
import os
import sys

from common.kafka_access import KafkaAccess
from schemas.topics import ALL_TOPICS
from stack import kafka_acls, kafka_admin, lifecycle, payment_provider
from stack.config import StackConfig, recall_shape
from stack.progress import step


def from_shell() -> int:
    """``python -m stack``: :func:`main`, with the running stack's settings where the shell
    does not give them (see :data:`stack.config.SHAPE`)."""
    if recalled := recall_shape():
        step("stack", "as it was started: " + " ".join(f"{n}={v}" for n, v in recalled.items()))
    return main()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # a node that is down is expected here (a cluster's, or while waiting); aiokafka would log
    # every refused connection to it
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    config = StackConfig()
    if args.command == "up":
        lifecycle.up(config, with_services=not args.infra_only)
    elif args.command == "down":
        lifecycle.down(config)
    elif args.command == "topics":
        access = KafkaAccess.from_env(args.bootstrap) if args.bootstrap else config.kafka_access()
        # every node of the cluster first: topics get as many replicas as there are brokers
        asyncio.run(kafka_admin.wait_ready(access, timeout_s=120, brokers=config.kafka_brokers))
        created = asyncio.run(kafka_admin.ensure_topics(access))
        print(f"{created} topics created on {access.bootstrap_servers}; {len(ALL_TOPICS)} in all")
    elif args.command == "acls":
        for grant in kafka_acls.grants():
            print(
                'kafka-acls.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS"'
                f" --command-config admin.properties --add {grant.kafka_acls_args()}"
            )
    elif args.command == "status":
        return lifecycle.status(config)
    elif args.command in ("stop", "restart"):
        lifecycle.stop_one(config, args.name, crash=args.kill)
        if args.command == "restart":
            lifecycle.start_one(config, args.name)
    elif args.command == "start":
        lifecycle.start_one(config, args.name)
    elif args.command == "logs":
        lifecycle.logs(config, args.name)
    elif args.command == "rewind":
        lifecycle.rewind(config, args.name, args.by)
    elif args.command == "dlq":
        return dead_letters(config, args)
    elif args.command == "reconcile":
        return payment_provider.reconcile(config)
    elif args.command == "provider-faults":
        return payment_provider.provider_faults(config, args.spec)
    elif args.command == "revision":
        from stack.revision import revise

        revise(args.service, args.message)
    return 0


def _parser() -> argparse.ArgumentParser:
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
    return parser


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


if __name__ == "__main__":
    sys.exit(from_shell())
