from pathlib import Path
from typing import ClassVar

from pydantic import Field

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "notification_svc"
    default_http_port: ClassVar[int] = 8005

    consumer_fetch_wait_ms: int = Field(default=100, ge=0, le=10_000)
    """Off the order's path: batches gathered over up to 100 ms (see ServiceSettings)."""
    niceness: int = Field(default=10, ge=0, le=19)
    """Off the order's path: the cores go first to the services on it (see ServiceSettings)."""

    mailbox_dir: Path = Path(".cache/mailbox")
    """Where the mailbox sender writes one ``<notification id>.eml`` file per message."""
    sending_enabled: bool = True
    """Run the sending loop in this process (off: it only records notifications)."""
    notification_attempts: int = Field(default=5, ge=1)
    """Sends of one notification before it is Failed."""
    notification_backoff_s: float = Field(default=2.0, ge=0)
    """The wait after a first failed send; it doubles after each further failure."""
    notification_batch_size: int = Field(default=50, ge=1)
    notification_poll_s: float = Field(default=1.0, gt=0)
    notification_send_timeout_s: float = Field(default=10.0, gt=0)
