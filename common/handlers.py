"""A service's handler table and how a record finds its handler.

A service maps each message class it applies to a use case (its ``handlers.py``); a
:class:`SetBased` use case takes a whole run of messages of its type at once. :func:`route`
reads a record into its envelope, message and handler, skipping the types the service ignores
by their ``type`` header alone, and raises :class:`~common.failures.PoisonMessageError` for what
no retry can read. :func:`runs_of_one_type` cuts a batch into the runs a set-based use case
takes.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from common.failures import PoisonMessageError
from schemas.envelope import Envelope, Message, UnknownMessageError, is_known_type, latest, read

Handler = Callable[[Envelope, Any], Awaitable[object]]
"""A use case of one message; what it returns (e.g. a ``Refused``) is for its HTTP callers."""
Handlers = Mapping[type[Message], Handler]
RunHandler = Callable[[Sequence[tuple[Envelope, Any]]], Awaitable[None]]
"""Applies a run of messages of one type, each about another aggregate (see
:func:`runs_of_one_type`), with the outcome of applying them one by one in order."""


@dataclass(frozen=True)
class SetBased:
    """A use case that applies a whole run of messages at once (a :data:`RunHandler`): the
    consumer's fast path hands it every run of its type; as a plain handler (the path that
    applies a failed batch one message at a time) it applies a run of one."""

    apply: RunHandler

    async def __call__(self, envelope: Envelope, message: Any) -> None:
        await self.apply(((envelope, message),))


class Routed(NamedTuple):
    record: ConsumerRecord[bytes, bytes]
    envelope: Envelope
    message: Message
    handler: Handler


def route(handlers: Mapping[str, Handler], record: ConsumerRecord[bytes, bytes]) -> Routed | None:
    """The record's envelope, message and handler in ``handlers`` (by type); None for a type
    this service ignores (known from the ``type`` header alone, without parsing, when it names a
    message of the record's topic: a header naming another topic's message is not believed)."""
    for name, value in record.headers or ():
        if name == "type":
            header_type = (value or b"").decode(errors="replace")
            if (
                header_type not in handlers
                and is_known_type(header_type)
                and latest(header_type).TOPIC.name == record.topic
            ):
                return None
            break
    raw = record.value
    if raw is None:
        raise PoisonMessageError("empty value (tombstone)")
    try:
        envelope = Envelope.model_validate_json(raw)
    except ValidationError as exc:
        raise PoisonMessageError(f"not a valid envelope: {_brief(exc)}") from exc
    if envelope.type not in handlers:
        if not is_known_type(envelope.type):
            raise PoisonMessageError(f"no contract for type {envelope.type!r}")
        return None  # a known message (of any version) that this service has no interest in
    handler = handlers[envelope.type]
    try:
        message = read(envelope)
    except UnknownMessageError as exc:
        raise PoisonMessageError(str(exc)) from exc
    except ValidationError as exc:
        raise PoisonMessageError(
            f"invalid {envelope.type} v{envelope.version} data: {_brief(exc)}"
        ) from exc
    except Exception as exc:  # an upcaster's failure: dead-lettered, to re-drive once fixed
        raise PoisonMessageError(
            f"{envelope.type} v{envelope.version} could not be upcast: {type(exc).__name__}: {exc}"
        ) from exc
    return Routed(record, envelope, message, handler)


def runs_of_one_type(routed: Sequence[Routed]) -> list[list[Routed]]:
    """The batch cut, in order, into runs of consecutive messages of one type and of distinct
    aggregates: a message of another type, or for an aggregate (its Kafka key) already in the
    run, starts the next run. A set-based use case can then treat a run's messages as
    independent of one another, apart from the rows they share (a product's stock)."""
    runs: list[list[Routed]] = []
    keys: set[object] = set()
    for item in routed:
        message = item.message
        key = getattr(message, message.KEY_FIELD)
        if runs and runs[-1][0].envelope.type == item.envelope.type and key not in keys:
            runs[-1].append(item)
            keys.add(key)
        else:
            runs.append([item])
            keys = {key}
    return runs


def _brief(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
        for error in exc.errors()[:5]
    )
