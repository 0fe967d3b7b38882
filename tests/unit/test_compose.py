"""compose.yaml is safe on a shared host: only the gateway is published beyond the loopback, and
the secrets and the first admin come from the environment, never from a default."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"
LOOPBACK = {"127.0.0.1", "::1"}
REQUIRED = {"gateway_svc": ["JWT_SECRET"], "user_svc": ["SHOP_ADMIN_EMAIL", "SHOP_ADMIN_PASSWORD"]}


def services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Any] = compose["services"]
    return found


def host_ip(port: str | int | dict[str, Any]) -> str:
    """The address a published port binds on the host; "" for every interface."""
    if isinstance(port, dict):
        return str(port.get("host_ip", ""))
    spec = str(port)
    if spec.startswith("["):
        return spec[1 : spec.index("]")]
    parts = spec.split(":")
    return parts[0] if len(parts) == 3 else ""


@pytest.mark.parametrize(
    ("port", "ip"),
    [
        ("9092:9092", ""),
        (8000, ""),
        ("[::]:9092:9092", "::"),
        ("127.0.0.1:9092:9092", "127.0.0.1"),
        ("[::1]:9092:9092", "::1"),
        ({"target": 9092, "published": 9092}, ""),
        ({"target": 9092, "published": 9092, "host_ip": "127.0.0.1"}, "127.0.0.1"),
    ],
)
def test_host_ip_reads_every_form_of_a_published_port(port: Any, ip: str) -> None:
    assert host_ip(port) == ip


def test_compose_publishes_nothing_beyond_the_loopback_but_the_gateway() -> None:
    found = services()
    assert {"kafka", "postgres", "gateway_svc"} <= set(found)
    for name, service in found.items():
        if name == "gateway_svc":
            continue  # the public API
        for port in service.get("ports", []):
            assert host_ip(port) in LOOPBACK, f"{name} publishes {port!r} beyond the loopback"


def test_compose_requires_the_secret_and_the_first_admin_from_the_environment() -> None:
    found = services()
    for name, variables in REQUIRED.items():
        environment = found[name]["environment"]
        for variable in variables:
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", environment[variable]), (
                f"{name} takes {variable} as {environment[variable]!r}, not ${{{variable}:?...}}"
            )
