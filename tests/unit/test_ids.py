"""Time-ordered ids: UUIDv7, sorting in the order they were made, random within a millisecond."""

import time
from uuid import UUID

from schemas.envelope import Envelope
from schemas.ids import new_id
from schemas.users import UserRegistered


def test_a_new_id_is_a_version_7_uuid_stamped_with_the_time_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000

    assert made.version == 7
    assert made.variant == "specified in RFC 4122"
    assert before <= made.int >> 80 <= after
    assert UUID(str(made)) == made


def test_ids_made_later_sort_later_and_none_repeats() -> None:
    earlier = [new_id() for _ in range(1_000)]
    time.sleep(0.002)
    later = [new_id() for _ in range(1_000)]

    assert max(earlier) < min(later)  # what puts an index's inserts on its last pages
    assert len(set(earlier + later)) == 2_000


def test_a_message_gets_a_time_ordered_id() -> None:
    event = UserRegistered(
        user_id=new_id(), name="Ann", email="ann@example.com", role="Customer"
    ).envelope()
    assert isinstance(event, Envelope)
    assert event.id.version == 7
    assert event.correlation_id == event.id
