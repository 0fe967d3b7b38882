"""How a process reaches Kafka: the servers and, on a secured cluster, who it is.

The settings are named as Kafka's clients name them, so that the same services run against the
local stack (plaintext, or ``SHOP_KAFKA_SECURITY=scram``) and against a managed cluster:
``KAFKA_SECURITY_PROTOCOL`` (``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``),
``KAFKA_SASL_MECHANISM`` (``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``),
``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``, and ``KAFKA_SSL_CAFILE`` (a PEM file of the CAs
to trust; the system's when unset). Every Kafka client of the services and the launcher is
built from one :class:`KafkaAccess` (the bench's baselines run Kafka's own tools, plaintext).
"""

import os
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


@dataclass(frozen=True)
class KafkaAccess:
    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""

    def __post_init__(self) -> None:
        if self.security_protocol not in PROTOCOLS:
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL: {self.security_protocol!r} is not one of"
                f" {', '.join(PROTOCOLS)}"
            )
        if self.sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise ValueError(
                    f"KAFKA_SASL_MECHANISM: {self.sasl_mechanism!r} is not one of"
                    f" {', '.join(MECHANISMS)}"
                )
            for name, value in (("USERNAME", self.sasl_username), ("PASSWORD", self.sasl_password)):
                if not value:
                    raise ValueError(f"KAFKA_SASL_{name}: required with {self.security_protocol}")
        if self.ssl_cafile and not os.path.isfile(self.ssl_cafile):
            raise ValueError(f"KAFKA_SSL_CAFILE: no file at {self.ssl_cafile!r}")

    @classmethod
    def from_env(cls, bootstrap_servers: str) -> "KafkaAccess":
        """The servers given, and the credentials of the environment's ``KAFKA_*`` settings."""
        env = os.environ
        return cls(
            bootstrap_servers,
            security_protocol=env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
            sasl_mechanism=env.get("KAFKA_SASL_MECHANISM", "").upper(),
            sasl_username=env.get("KAFKA_SASL_USERNAME", ""),
            sasl_password=env.get("KAFKA_SASL_PASSWORD", ""),
            ssl_cafile=env.get("KAFKA_SSL_CAFILE", ""),
        )

    def to_env(self) -> dict[str, str]:
        """The environment that a process reads as this access, every setting in it: one left
        out would be taken from the environment the process inherits."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": self.security_protocol,
            "KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.sasl_username,
            "KAFKA_SASL_PASSWORD": self.sasl_password,
            "KAFKA_SSL_CAFILE": self.ssl_cafile,
        }

    @property
    def servers(self) -> list[str]:
        """``host:port`` of each server given (FastStream reads a string as one server)."""
        return [server.strip() for server in self.bootstrap_servers.split(",") if server.strip()]

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        return self.security_protocol.endswith("SSL")

    def _ssl_context(self) -> ssl.SSLContext | None:
        return create_ssl_context(cafile=self.ssl_cafile or None) if self.tls else None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any of aiokafka's clients."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl:
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.tls:
            options["ssl_context"] = self._ssl_context()
        return options

    def faststream_security(self) -> BaseSecurity | None:
        """The same, as FastStream's broker takes it."""
        if self.sasl:
            mechanism = MECHANISMS[self.sasl_mechanism]
            return mechanism(
                self.sasl_username,
                self.sasl_password,
                ssl_context=self._ssl_context(),
                use_ssl=self.tls,
            )
        if self.tls:
            return BaseSecurity(ssl_context=self._ssl_context(), use_ssl=True)
        return None
