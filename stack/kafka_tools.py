"""What the command-line tools need to reach the stack's Kafka as its admin (kcat's settings,
``--command-config`` for Kafka's own), and the consumer-group offset shift that ``rewind`` runs
with Kafka's own tool. The settings go in files of mode 600: with SCRAM they hold the admin's
password."""

import subprocess
from pathlib import Path

from stack.config import StackConfig, write_private
from stack.kafka_acls import ADMIN
from stack.kafka_process import java_command


def write_kcat_conf(config: StackConfig) -> Path:
    """``.cache/kcat.conf``: ``kcat -F .cache/kcat.conf -L`` reaches the stack's Kafka as its
    admin (mode 600: with SCRAM it holds the password)."""
    # the state folder stays as it is: PostgreSQL's user traverses it to its files
    return write_private(config.state_dir / "kcat.conf", kcat_conf(config), own_folder=False)


def kcat_conf(config: StackConfig, principal: str = ADMIN) -> str:
    """kcat's settings for ``principal``; with SCRAM on, it signs in with PLAIN (the listener
    takes both; see :func:`stack.kafka_properties._scram_listeners` for why)."""
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
        java_command(
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
