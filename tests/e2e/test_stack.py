"""The launcher, as a newcomer uses it: ``up`` brings every process up and ready, a second
``up`` is harmless, the processes talk to each other, and ``down`` leaves nothing behind.

Runs a second, complete stack on its own ports and folder, beside any ``make up`` stack.
"""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.topics import ALL_TOPICS
from stack.config import ROOT
from stack.services import SERVICES

pytestmark = pytest.mark.e2e

OFFSET = int(os.environ.get("SHOP_E2E_HTTP_PORT_OFFSET", 100))
KAFKA_PORT = int(os.environ.get("SHOP_E2E_KAFKA_PORT", 29092))
PG_PORT = int(os.environ.get("SHOP_E2E_PG_PORT", 25434))


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("stack")
    env = {
        **os.environ,
        "SHOP_STATE_DIR": str(state),
        "SHOP_KAFKA_PORT": str(KAFKA_PORT),
        "SHOP_KAFKA_CONTROLLER_PORT": str(KAFKA_PORT + 1),
        "SHOP_PG_PORT": str(PG_PORT),
        "SHOP_HTTP_PORT_OFFSET": str(OFFSET),
    }
    env.pop("DATABASE_URL", None)
    yield env
    launcher(env, "down", check=False)


def launcher(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=check,
    )


def our_processes(state: str) -> list[str]:
    """Command lines of live processes that belong to the stack in ``state``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if state in cmdline or f"SHOP_STATE_DIR={state}".encode() in environ:
            found.append(cmdline)
    return found


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page, read by prometheus_client's parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def service_pids(state: str) -> dict[str, str]:
    """Each running service's pid, from the launcher's pid files ("<pid> <marker>")."""
    return {
        service.name: (Path(state) / "run" / f"{service.name}.pid").read_text().split()[0]
        for service in SERVICES
    }


def test_up_starts_everything_and_down_stops_everything(stack_env: dict[str, str]) -> None:
    up = launcher(stack_env, "up")
    assert "The shop is up" in up.stdout
    assert f"http://127.0.0.1:{8000 + OFFSET}" in up.stdout
    for service in SERVICES:
        assert f"{service.name}" in up.stderr

    status = launcher(stack_env, "status")
    lines = status.stdout.splitlines()[1:]
    assert len(lines) == 2 + len(SERVICES)
    assert all(line.split()[3] == "ready" for line in lines), status.stdout

    if shutil.which("kcat"):
        listing = subprocess.run(
            ["kcat", "-b", f"127.0.0.1:{KAFKA_PORT}", "-L"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        for topic in ALL_TOPICS:
            assert f'topic "{topic.name}"' in listing

    gateway = f"http://127.0.0.1:{8000 + OFFSET}"
    assert httpx.get(f"{gateway}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{gateway}/docs").status_code == 200
    assert httpx.get(f"{gateway}/openapi.json").json()["info"]["title"] == "shop gateway"

    again = launcher(stack_env, "up")
    assert "already running" in again.stderr

    user = httpx.post(
        f"http://127.0.0.1:{8003 + OFFSET}/users",
        json={"name": "Dee", "email": "dee@example.com", "password": "long enough"},
    )
    assert user.status_code == 201, user.text
    user_id = user.json()["id"]
    deadline = time.monotonic() + 30
    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{PG_PORT}/notification_svc", autocommit=True
    ) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM notifications WHERE user_id = %s", (user_id,)
            ).fetchone()
            if row and row[0] == 1:
                break
            assert time.monotonic() < deadline, "notification_svc never saw UserRegistered"
            time.sleep(0.2)

    # every service's /metrics parses with prometheus_client's own parser
    scraped = {
        service.name: samples(
            httpx.get(f"http://127.0.0.1:{service.base_port + OFFSET}/metrics").text
        )
        for service in SERVICES
    }
    for name, found in scraped.items():
        assert found[("process_cpu_seconds_total", ())] > 0, name
    gateway_metrics = scraped["gateway_svc"]
    healthz = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert gateway_metrics[("shop_http_requests_total", healthz)] >= 1
    assert gateway_metrics[("shop_http_request_duration_seconds_count", healthz)] >= 1
    consumed = scraped["notification_svc"]
    labelled = (("service", "notification_svc"),)
    assert consumed[("shop_consumer_messages_applied_total", labelled)] >= 1
    assert consumed[("shop_consumer_batch_seconds_count", labelled)] >= 1
    hop = (("service", "notification_svc"), ("topic", "users.events"))
    assert consumed[("shop_consumer_hop_seconds_count", hop)] >= 1
    assert (
        scraped["user_svc"][("shop_outbox_publish_seconds_count", (("service", "user_svc"),))] >= 1
    )
    # a served process sets its startup heap aside (common.collector): full collections that
    # walked it stopped the service for 85 to 230 ms under load
    assert consumed[("shop_gc_frozen_objects", labelled)] > 50_000

    # the services off the order's path yield the cores to those on it
    niceness = {
        name: int((Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()[16])
        for name, pid in service_pids(stack_env["SHOP_STATE_DIR"]).items()
    }
    assert niceness == {
        service.name: 10 if service.name in ("notification_svc", "inventory_svc") else 0
        for service in SERVICES
    }

    state = stack_env["SHOP_STATE_DIR"]
    assert our_processes(state)
    down = launcher(stack_env, "down")
    assert "Everything is down" in down.stdout
    assert our_processes(state) == []
    assert launcher(stack_env, "status", check=False).returncode != 0


def test_up_fails_naming_the_variable_when_a_service_refuses_its_settings(
    stack_env: dict[str, str],
) -> None:
    # email-validator refuses special-use domains such as .test: no admin could ever exist
    env = {**stack_env, "SHOP_ADMIN_EMAIL": "admin@shop.test"}
    state = env["SHOP_STATE_DIR"]
    try:
        up = launcher(env, "up", check=False)
    finally:
        down = launcher(env, "down", check=False)
    assert up.returncode != 0, up.stdout
    assert "The shop is up" not in up.stdout
    # at once, not after the launcher's wait for readiness
    assert "user_svc exited while starting" in up.stderr, up.stderr
    assert "SHOP_ADMIN_EMAIL: value is not a valid email address" in up.stderr, up.stderr
    assert "Everything is down" in down.stdout
    assert our_processes(state) == []
