"""Apache Kafka's nodes as processes of the machine's Java, in KRaft mode: the jars fetched once
from Maven Central, each node's storage formatted on its first start, and the nodes started,
stopped or killed together (one node, or a cluster of three, each a broker and a controller).
From jars rather than a container, so that the stack needs no Docker."""

import hashlib
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from stack import procs
from stack.config import ROOT, KafkaNode, StackConfig, write_private
from stack.kafka_acls import ADMIN, PRINCIPALS
from stack.kafka_properties import server_properties
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


def java_command(config: StackConfig, *args: str, heap: str = "256m") -> list[str]:
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
                java_command(config, "kafka.tools.StorageTool", "random-uuid"),
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
                java_command(
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
    formats = {n: server_properties(config, n) for n in todo}
    _format_storage(config, formats)
    started = []
    for n, properties in formats.items():
        log = procs.log_file(config, n.name)
        offset = log.stat().st_size if log.exists() else 0
        pid = procs.start(
            config,
            n.name,
            java_command(config, MAIN, str(properties), heap=config.kafka_heap),
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
