"""A Zipkin server for the local stack's traces (``SHOP_TRACING=1 make up``): its executable jar
from Maven Central (``io.zipkin:zipkin-server``, classifier ``exec``), fetched once with the
Maven that fetches Kafka's jars, run with the machine's Java, spans kept in memory."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from stack import procs
from stack.config import ROOT, StackConfig
from stack.kafka_process import POM
from stack.progress import step

NAME = "zipkin"
VERSION = "3.5.1"
ARTIFACT = f"io.zipkin:zipkin-server:{VERSION}:jar:exec"
MAX_SPANS = 100_000
"""Spans kept in memory (its heap is 256 MB), the oldest dropped first."""


def jar(config: StackConfig) -> Path:
    """The server's jar, fetched from Maven Central on first use."""
    found = config.zipkin_dir / f"zipkin-server-{VERSION}-exec.jar"
    if found.exists():
        return found
    if shutil.which("mvn") is None:
        raise SystemExit("Maven (mvn) is needed once to fetch Zipkin: apt-get install maven")
    step(NAME, f"fetching {ARTIFACT} from Maven Central (first run only)...")
    subprocess.run(
        [
            *("mvn", "-B", "-q", "-f", str(POM), "dependency:copy"),
            f"-Dartifact={ARTIFACT}",
            f"-DoutputDirectory={config.zipkin_dir}",
        ],
        check=True,
        cwd=ROOT,
    )
    return found


def url(config: StackConfig) -> str:
    return f"http://127.0.0.1:{config.zipkin_port}"


def spans_endpoint(config: StackConfig) -> str:
    """Where the services send their spans (``OTEL_EXPORTER_ZIPKIN_ENDPOINT``)."""
    return f"{url(config)}/api/v2/spans"


def is_ready(config: StackConfig) -> bool:
    try:
        return httpx.get(f"{url(config)}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start(config: StackConfig) -> None:
    if procs.running_pid(config, NAME) is not None:
        step(NAME, f"already running on {url(config)}")
        return
    server = jar(config)
    pid = procs.start(
        config,
        NAME,
        [
            *("java", "-Xmx256m", "-XX:+UseSerialGC", "-jar", str(server)),
            # on the loopback interface only, as Kafka and PostgreSQL are
            "--armeria.ports[0].ip=127.0.0.1",
            f"--armeria.ports[0].port={config.zipkin_port}",
            "--armeria.ports[0].protocols=http",
        ],
        env={
            # its own settings only: a KAFKA_BOOTSTRAP_SERVERS in the environment would turn on
            # its Kafka collector, on the shop's broker
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **({"JAVA_HOME": os.environ["JAVA_HOME"]} if "JAVA_HOME" in os.environ else {}),
            "QUERY_PORT": str(config.zipkin_port),
            "MEM_MAX_SPANS": str(MAX_SPANS),
        },
        marker=str(server),
    )
    step(NAME, f"starting on {url(config)} (log {procs.log_file(config, NAME)})...")
    deadline = time.monotonic() + 120
    while not is_ready(config):
        if not procs.alive(pid):
            raise SystemExit(f"Zipkin exited while starting; see {procs.log_file(config, NAME)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"Zipkin did not start in 120s; see {procs.log_file(config, NAME)}")
        time.sleep(0.5)
    step(NAME, f"ready on {url(config)}")


def stop(config: StackConfig) -> bool:
    return procs.stop(config, NAME, grace_s=10)
