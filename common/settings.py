"""Settings every service shares; each service subclasses :class:`ServiceSettings`.

Everything comes from the environment (or a ``.env`` file) with local defaults that match what
``make up`` starts. Per service, ``<SERVICE>_DATABASE_URL`` (e.g. ``ORDER_SVC_DATABASE_URL``)
wins over ``DATABASE_URL``; with only ``DATABASE_URL`` each service uses its own database,
named after the service (or ``DATABASE_NAME``), on that server.
"""

import os
from typing import ClassVar, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from common.kafka_access import KafkaAccess

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:55432/postgres"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    service_name: ClassVar[str]
    default_http_port: ClassVar[int]

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str = ""
    """How the service reaches a secured cluster, named as Kafka's clients name them
    (:mod:`common.kafka_access`); unset, plaintext."""
    database_url: str = DEFAULT_DATABASE_URL
    database_name: str = ""
    """This service's own database on that server; defaults to the service name."""
    http_host: str = "127.0.0.1"
    http_port: int = 0
    log_level: str = "INFO"
    niceness: int = Field(default=0, ge=0, le=19)
    """Added to the process's niceness when it starts: a service off the order's path runs at a
    lower CPU priority, so that when the cores are short the services on it get them first."""

    consumer_group: str = ""
    """Defaults to the service name; tests give each run its own."""
    consumer_replica: int = Field(default=1, ge=1)
    """This process's slot among the replicas of its service (1, 2, ...): each replica running at
    the same time needs its own. It names the consumer's static membership of its group."""
    consumer_instance_id: str = ""
    """The consumer's static member id in its group (Kafka's ``group.instance.id``); defaults to
    ``<consumer_group>-<consumer_replica>``. A process restarted with the same id gets its
    partitions back at once, instead of after the dead process's session timeout; a process
    that stops gracefully leaves the group, and one that dies and stays away is dropped after
    its session timeout. Two live processes with one id take the partitions from each other at
    every heartbeat."""
    consumer_max_records: int = Field(default=500, ge=1)
    consumer_session_timeout_ms: int = 30_000
    consumer_commit_interval_ms: int = Field(default=200, ge=0)
    """Offsets are committed at most this often (always after the database commit); a crash
    redelivers at most this long's records, which the inboxes absorb."""
    consumer_batch_window_ms: int = Field(default=20, ge=0)
    """Under load, a batch waits this long for the records behind it: fewer, larger batches.
    0 turns it off. See common.pacing.BatchWindow."""
    consumer_batch_window_busy: float = Field(default=0.5, ge=0, le=1)
    """Under load means: the previous batch ended less than a window ago, and applying batches
    took at least this share of the last second."""
    consumer_fetch_wait_ms: int = Field(default=0, ge=0, le=10_000)
    """How long the broker may hold a fetch to gather records for it: one batch per wait instead
    of one per record arriving. 0: answered as soon as one record is there (the order's path).
    Services off the order's path default to more: less work per message, a little later."""
    handler_attempts: int = Field(default=3, ge=1)
    """Tries of one message before it goes to the dead-letter topic."""
    retry_backoff_s: float = 0.2
    """The pause before a failed message's next try, times the tries so far; and the first
    pause before a batch that failed on the database or the broker comes again."""
    redelivery_backoff_max_s: float = Field(default=2.0, gt=0)
    """A batch that failed on the database or the broker (never dead-lettered) comes again after
    a pause that doubles with each failure in a row up to this, and starts again at
    ``retry_backoff_s`` once a batch applies."""

    read_pool_size: int = Field(default=4, ge=1)
    """Connections at most for the hottest HTTP reads (common.db.ReadPool), opened on demand."""

    inbox_keep_hours: float = Field(default=360, gt=0)
    """An applied message's id stays in the inbox this long, then goes. It must outlast every
    redelivery Kafka can make (``schemas.topics.REDELIVERY_HOURS``); a dead letter re-driven
    within that is absorbed too. Raise it with the topics' retention; a service started with
    less warns."""
    inbox_forget_interval_s: float = Field(default=600, gt=0)
    """How often the ids past ``inbox_keep_hours`` are deleted."""
    metrics_sample_interval_s: float = Field(default=5, gt=0)
    """How often the gauges of ``/metrics`` are sampled: consumer lag, outbox and inbox rows."""
    relay_batch_size: int = Field(default=500, ge=1)
    relay_idle_poll_s: float = 0.5
    """The relay is woken on every local commit; this poll catches rows left by a crash."""

    def model_post_init(self, context: object) -> None:
        if not self.http_port:
            self.http_port = self.default_http_port
        if not self.consumer_group:
            self.consumer_group = self.service_name
        if not self.consumer_instance_id:
            self.consumer_instance_id = f"{self.consumer_group}-{self.consumer_replica}"
        if not self.database_name:
            self.database_name = self.service_name

    @model_validator(mode="after")
    def _kafka_access_is_whole(self) -> "ServiceSettings":
        self.kafka_access()  # a protocol without its credentials is refused at start
        return self

    def kafka_access(self) -> KafkaAccess:
        return KafkaAccess(
            self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol.upper(),
            sasl_mechanism=self.kafka_sasl_mechanism.upper(),
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password.get_secret_value(),
            ssl_cafile=self.kafka_ssl_cafile,
        )

    def service_database_url(self) -> str:
        """This service's own database: ``<SERVICE>_DATABASE_URL`` or one named after it."""
        own = os.environ.get(f"{self.service_name.upper()}_DATABASE_URL")
        if own:
            return own
        return (
            make_url(self.database_url)
            .set(database=self.database_name)
            .render_as_string(hide_password=False)
        )


S = TypeVar("S", bound=ServiceSettings)


def from_environment(settings_class: type[S]) -> S:
    """``settings_class()``; settings it refuses end the process with :func:`refusal`."""
    try:
        return settings_class()
    except ValidationError as exc:
        raise SystemExit(refusal(settings_class.service_name, exc)) from None


def refusal(service: str, error: ValidationError) -> str:
    """Each refused setting by its environment variable, and why; never its value (it may be a
    secret, and pydantic's own message repeats it)."""
    lines = [f"{service} refuses its settings:"]
    for problem in error.errors(include_url=False, include_input=False):
        variable = "__".join(str(part) for part in problem["loc"]).upper()
        lines.append(f"  {variable}: {problem['msg']}" if variable else f"  {problem['msg']}")
    return "\n".join(lines)
