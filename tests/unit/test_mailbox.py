"""The mailbox's messages read back as the email package would have written them."""

import email
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTPUTF8
from email.utils import format_datetime
from uuid import uuid4

import pytest

from notification_svc.adapters import compose

SENT_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _by_the_email_package(notification_id: object, to: str, subject: str, body: str) -> bytes:
    message = EmailMessage(policy=SMTPUTF8.clone(linesep="\n"))
    message["From"] = "shop@localhost"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(SENT_AT)
    message["Message-ID"] = f"<{notification_id}@shop.local>"
    message.set_content(body, cte="8bit")
    return message.as_bytes()


@pytest.mark.parametrize(
    ("to", "subject", "body"),
    [
        ("ann@example.com", "Your order is paid", "Hello Ann,\n\nYour order is paid.\n"),
        ("zoë@example.com", "Commande payée", "Bonjour Zoë,\r\nvotre commande est payée."),
    ],
)
def test_a_composed_message_is_what_the_email_package_writes(
    to: str, subject: str, body: str
) -> None:
    notification_id = uuid4()
    ours = compose(
        notification_id=notification_id,
        sender="shop@localhost",
        to=to,
        subject=subject,
        body=body,
        sent_at=SENT_AT,
    )
    assert ours == _by_the_email_package(notification_id, to, subject, body)
    parsed = email.message_from_bytes(ours, policy=SMTPUTF8)
    assert parsed["To"] == to and parsed["Subject"] == subject


def test_a_header_cannot_carry_a_second_line() -> None:
    with pytest.raises(ValueError, match="Subject"):
        compose(
            notification_id=uuid4(),
            sender="shop@localhost",
            to="ann@example.com",
            subject="Paid\nBcc: everyone@example.com",
            body="",
            sent_at=SENT_AT,
        )
