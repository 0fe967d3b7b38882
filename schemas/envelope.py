"""The envelope every message travels in, and the base classes of commands and events.

On the wire a message is UTF-8 JSON that ``kcat -J`` shows readably::

    {"id": "...", "type": "OrderPlaced", "version": 1, "occurred_at": "2026-...Z",
     "correlation_id": "...", "causation_id": "...", "data": {...}}

Money is a decimal string ("19.99"), never a float. A breaking change to a message is a new
``VERSION`` of it, registered beside the old one with an upcaster (:meth:`Message.upcast`), never
a silent edit: producers emit the newest version, and :func:`decode` reads every registered one
as the newest. ``make contracts`` holds the released versions to their snapshots.
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Self, TypeVar
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from schemas.ids import new_id
from schemas.topics import Topic


def _money_text(value: Decimal) -> str:
    return f"{abs(value) if value.is_zero() else value:.2f}"  # never "-0.00"


Money = Annotated[
    Decimal,
    Field(max_digits=10, decimal_places=2, ge=0),
    PlainSerializer(_money_text, return_type=str),
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
    occurred_at: AwareDatetime
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
        """The envelope's data as this message. An event's fields this version does not know
        are ignored (a producer may add an optional field before every consumer knows it); a
        command's are refused, naming them."""
        return cls.model_validate(envelope.data, extra="ignore" if issubclass(cls, Event) else None)

    def upcast(self) -> "Message":
        """The upcaster: this message as the next version of its type says it. Every version but
        the newest defines it, with a docstring saying what it fills in (the AsyncAPI document
        shows it); :func:`to_newest` chains the steps."""
        raise NotImplementedError(f"{self.TYPE} v{self.VERSION} is the newest version")


class Command(Message):
    """An instruction to one service, named in the imperative (``PlaceOrder``)."""


class Event(Message):
    """A fact that happened, named in the past tense (``OrderPlaced``); read tolerantly
    (:meth:`Message.from_envelope`)."""


class UnknownMessageError(ValueError):
    """The envelope names a type or version that no contract describes."""


_REGISTRY: dict[tuple[str, int], type[Message]] = {}
_LATEST: dict[str, type[Message]] = {}
M = TypeVar("M", bound=type[Message])


def register(message_class: M) -> M:
    """Class decorator: make a contract (one version of one type) known to :func:`decode`."""
    key = (message_class.TYPE, message_class.VERSION)
    if key in _REGISTRY and _REGISTRY[key] is not message_class:
        raise ValueError(f"two contracts claim {key}")
    _REGISTRY[key] = message_class
    newest = _LATEST.get(message_class.TYPE)
    if newest is None or newest.VERSION < message_class.VERSION:
        _LATEST[message_class.TYPE] = message_class
    return message_class


def contracts() -> list[type[Message]]:
    """Every registered contract, every version (importing :mod:`schemas` registers them all)."""
    return list(_REGISTRY.values())


def versions_of(message_type: str) -> list[type[Message]]:
    """The registered versions of one type, oldest first."""
    return sorted(
        (cls for (name, _), cls in _REGISTRY.items() if name == message_type),
        key=lambda cls: cls.VERSION,
    )


def latest(message_type: str) -> type[Message]:
    """The newest version of a type: the one producers emit and handlers are written for."""
    try:
        return _LATEST[message_type]
    except KeyError:
        raise UnknownMessageError(f"no contract for type {message_type!r}") from None


def is_known_type(message_type: str) -> bool:
    """Whether some contract (of any version) has this type name."""
    return message_type in _LATEST


def contract_for(envelope: Envelope) -> type[Message]:
    """The contract of the envelope's type and version."""
    try:
        return _REGISTRY[(envelope.type, envelope.version)]
    except KeyError:
        known = [cls.VERSION for cls in versions_of(envelope.type)]
        raise UnknownMessageError(
            f"no contract for type {envelope.type!r} version {envelope.version}"
            + (f" (known versions: {', '.join(map(str, known))})" if known else "")
        ) from None


def to_newest(message: Message) -> Message:
    """``message`` as the newest version of its type says it, one upcaster after another."""
    newest = latest(message.TYPE).VERSION
    while newest > message.VERSION:
        step = message.upcast()
        if (step.TYPE, step.VERSION) != (message.TYPE, message.VERSION + 1):
            raise TypeError(
                f"{message.TYPE} v{message.VERSION}'s upcaster gave {step.TYPE} v{step.VERSION}"
            )
        message = step
    return message


def read(envelope: Envelope) -> Message:
    """The envelope's data as the newest version of its type; raises
    :class:`UnknownMessageError` or ``ValidationError`` (naming the fields) for anything else."""
    return to_newest(contract_for(envelope).from_envelope(envelope))


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode()


def decode(raw: bytes | None) -> tuple[Envelope, Message]:
    """Parse bytes from Kafka into the envelope and its typed message, of the newest version
    whatever version the envelope carries (the envelope is kept as it came).

    Raises ``ValidationError`` or :class:`UnknownMessageError` for anything malformed.
    """
    if raw is None:
        raise UnknownMessageError("empty message (tombstone)")
    envelope = Envelope.model_validate_json(raw)
    return envelope, read(envelope)


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
    "latest",
    "read",
    "register",
    "to_newest",
    "utcnow",
    "versions_of",
]
