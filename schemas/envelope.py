"""The envelope every message travels in, and the base classes of commands and events.

On the wire a message is UTF-8 JSON that ``kcat -J`` shows readably::

    {"id": "...", "type": "OrderPlaced", "version": 1, "occurred_at": "2026-...Z",
     "correlation_id": "...", "causation_id": "...", "data": {...}}

Money is a decimal string ("19.99"), never a float. A breaking change to a message is a new
``VERSION`` of it, registered beside the old one, never a silent edit.
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Self, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError

from schemas.ids import new_id
from schemas.topics import Topic

Money = Annotated[
    Decimal,
    Field(max_digits=10, decimal_places=2, ge=0),
    PlainSerializer(lambda value: f"{value:.2f}", return_type=str),
]
"""An amount of money: DECIMAL(10,2) in the tables, a decimal string on the wire."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """What is on the wire: metadata plus the message's ``data``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: UUID
    type: str = Field(min_length=1, max_length=100)
    version: int = Field(ge=1)
    occurred_at: datetime
    correlation_id: UUID
    causation_id: UUID | None = None
    data: dict[str, Any]


class Message(BaseModel):
    """A command or an event: its ``data``, plus the class-level type, version, topic and key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic]
    KEY_FIELD: ClassVar[str]

    def key(self) -> bytes:
        """The Kafka key: the aggregate id, so one aggregate's messages keep their order."""
        return str(getattr(self, self.KEY_FIELD)).encode()

    def envelope(
        self,
        *,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
        message_id: UUID | None = None,
    ) -> Envelope:
        """Wrap this message; a saga's first message starts a new correlation id."""
        message_id = message_id or new_id()
        return Envelope(
            id=message_id,
            type=self.TYPE,
            version=self.VERSION,
            occurred_at=utcnow(),
            correlation_id=correlation_id or message_id,
            causation_id=causation_id,
            data=self.model_dump(mode="json"),
        )

    def caused_by(self, cause: Envelope) -> Envelope:
        """Wrap this message as a consequence of ``cause``: same saga, caused by it."""
        return self.envelope(correlation_id=cause.correlation_id, causation_id=cause.id)

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> Self:
        return cls.model_validate(envelope.data)


class Command(Message):
    """An instruction to one service, named in the imperative (``PlaceOrder``)."""


class Event(Message):
    """A fact that happened, named in the past tense (``OrderPlaced``)."""


class UnknownMessageError(ValueError):
    """The envelope names a type or version that no contract describes."""


_REGISTRY: dict[tuple[str, int], type[Message]] = {}
_TYPES: set[str] = set()
M = TypeVar("M", bound=type[Message])


def register(message_class: M) -> M:
    """Class decorator: make a contract known to :func:`decode`."""
    key = (message_class.TYPE, message_class.VERSION)
    if key in _REGISTRY and _REGISTRY[key] is not message_class:
        raise ValueError(f"two contracts claim {key}")
    _REGISTRY[key] = message_class
    _TYPES.add(message_class.TYPE)
    return message_class


def contracts() -> list[type[Message]]:
    """Every registered contract (importing :mod:`schemas` registers them all)."""
    return list(_REGISTRY.values())


def is_known_type(message_type: str) -> bool:
    """Whether some contract (of any version) has this type name."""
    return message_type in _TYPES


def contract_for(envelope: Envelope) -> type[Message]:
    try:
        return _REGISTRY[(envelope.type, envelope.version)]
    except KeyError:
        raise UnknownMessageError(
            f"no contract for type {envelope.type!r} version {envelope.version}"
        ) from None


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode()


def decode(raw: bytes | None) -> tuple[Envelope, Message]:
    """Parse bytes from Kafka into the envelope and its typed message.

    Raises ``ValidationError`` or :class:`UnknownMessageError` for anything malformed.
    """
    if raw is None:
        raise UnknownMessageError("empty message (tombstone)")
    envelope = Envelope.model_validate_json(raw)
    return envelope, contract_for(envelope).from_envelope(envelope)


__all__ = [
    "Command",
    "Envelope",
    "Event",
    "Message",
    "Money",
    "UnknownMessageError",
    "ValidationError",
    "contract_for",
    "contracts",
    "decode",
    "encode",
    "is_known_type",
    "register",
    "utcnow",
]
