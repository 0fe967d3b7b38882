"""The mailbox's messages read back as the email package would have written them, and a batch
written with each message's own outcome."""

import email
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTPUTF8
from email.utils import format_datetime
from pathlib import Path
from uuid import uuid4

import pytest

from notification_svc.adapters import MailboxSender, compose
from notification_svc.ports import Mail

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


async def test_a_batch_is_written_one_file_each_and_a_bad_message_fails_alone(
    tmp_path: Path,
) -> None:
    sender = MailboxSender(tmp_path / "mailbox")
    good, bad, also_good = uuid4(), uuid4(), uuid4()
    outcomes = await sender.send(
        [
            Mail(good, "ann@example.com", "Paid", "Hello Ann\n"),
            Mail(bad, "bob@example.com", "Paid\nBcc: everyone@example.com", ""),
            Mail(also_good, "zoë@example.com", "Payée", "Bonjour\n"),
        ]
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)
    written = sorted(path.name for path in (tmp_path / "mailbox").iterdir())
    assert written == sorted([f"{good}.eml", f"{also_good}.eml"])
    parsed = email.message_from_bytes(
        (tmp_path / "mailbox" / f"{also_good}.eml").read_bytes(), policy=SMTPUTF8
    )
    assert parsed["To"] == "zoë@example.com"


async def test_a_file_that_cannot_be_written_fails_alone(tmp_path: Path) -> None:
    folder = tmp_path / "mailbox"
    folder.mkdir()
    blocked = uuid4()
    (folder / f"{blocked}.eml.tmp").mkdir()  # the partial file's name is taken by a folder
    sender = MailboxSender(folder)
    fine = uuid4()
    outcomes = await sender.send(
        [
            Mail(blocked, "ann@example.com", "Paid", "x\n"),
            Mail(fine, "ann@example.com", "Paid", "y\n"),
        ]
    )
    assert isinstance(outcomes[0], OSError) and outcomes[1] is None
    assert (folder / f"{fine}.eml").exists() and not (folder / f"{blocked}.eml").exists()
