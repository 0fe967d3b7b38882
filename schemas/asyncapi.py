"""The AsyncAPI 3.0 document of the whole shop, generated from the contracts: every topic (dead
letters included), every version of every message as it is on the wire
(:mod:`schemas.json_schemas`), and which service sends and which receives it
(:mod:`schemas.routing`, :mod:`schemas.topics`).

FastStream's own generator describes one payload per subscriber or publisher and names messages
itself; the shop carries many message types on one topic under one raw batch subscriber, so
this builder writes the document from the contracts instead. ``python -m stack.contracts`` keeps
the committed copy (``docs/asyncapi.json``) in step with it.
"""

from typing import Any

from schemas import routing
from schemas.envelope import Command, Message, latest
from schemas.json_schemas import canonical_json, data_schema, example, payload_schema, summary
from schemas.topics import (
    ALL_TOPICS,
    CONSUMED_TOPICS,
    DEAD_LETTER_TOPICS,
    SENT_TOPICS,
    WATCHED_TOPICS,
    Topic,
    dead_letter_topic,
)

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
DOCUMENT_VERSION = "1.0.0"
"""The document's own version (``info.version``); each message carries its own version."""
LOCAL_BROKER = "127.0.0.1:9092"

DEAD_LETTER = "DeadLetter"
DEAD_LETTER_HEADERS = {
    "dlq.reason": "Why the record could not be applied.",
    "dlq.service": "The service that dead-lettered it.",
    "dlq.topic": "The topic it came from.",
    "dlq.partition": "Its partition there.",
    "dlq.offset": "Its offset there.",
    "dlq.attempts": "How often its handler was tried (0: it could not be read).",
    "dlq.failed_at": "When it was dead-lettered (ISO 8601, UTC).",
    "dlq.written_at": "When it was first written (the record's timestamp, in ms since 1970).",
}
"""The headers a dead letter adds to the record's own (:mod:`common.dead_letters`)."""


def message_key(message: type[Message]) -> str:
    """The message's key under ``components.messages``, e.g. ``OrderPlaced.v1``."""
    return f"{message.TYPE}.v{message.VERSION}"


def build() -> dict[str, Any]:
    """The document, as a JSON-ready dict; the same for the same contracts."""
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Shop events",
            "version": DOCUMENT_VERSION,
            "description": (
                "Every Kafka topic of the shop, the commands and events on it, and which service "
                "sends and which receives each. A message is UTF-8 JSON: an envelope whose `data` "
                "is the message's own; its Kafka key keeps one aggregate's messages in order. "
                "Delivery is at least once: drop a repeated envelope `id`. See docs/events.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": LOCAL_BROKER,
                "protocol": "kafka",
                "description": "The broker `make up` starts (plaintext, one node).",
            }
        },
        "channels": {_channel_id(topic): _channel(topic) for topic in ALL_TOPICS},
        "operations": _operations(),
        "components": {"messages": _messages()},
    }


def document_json(document: dict[str, Any] | None = None) -> str:
    """The document as the committed file holds it."""
    return canonical_json(build() if document is None else document)


def _channel_id(topic: Topic) -> str:
    return topic.name


def _channel(topic: Topic) -> dict[str, Any]:
    if topic in DEAD_LETTER_TOPICS:
        service = topic.name.removesuffix(".dlq")
        description = (
            f"{service}'s dead letters: records it could not apply, as they came (key, value "
            "and headers), with why and where from in `dlq.*` headers. `make dlq` lists and "
            "re-drives them."
        )
        messages = {DEAD_LETTER: {"$ref": f"#/components/messages/{DEAD_LETTER}"}}
    else:
        kind = "Commands to" if topic.name.endswith(".commands") else "Events of"
        description = f"{kind} {_owner(topic)}. Key: {_keys(topic)}."
        messages = {
            message_key(cls): {"$ref": f"#/components/messages/{message_key(cls)}"}
            for cls in routing.messages_on(topic)
        }
    return {
        "address": topic.name,
        "description": description,
        "messages": messages,
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions,
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _keys(topic: Topic) -> str:
    """Which field of its messages' data each record's key is."""
    fields: dict[str, list[str]] = {}
    for cls in routing.messages_on(topic):
        names = fields.setdefault(cls.KEY_FIELD, [])
        if cls.TYPE not in names:
            names.append(cls.TYPE)
    if len(fields) == 1:
        return f"`{next(iter(fields))}`"
    main = max(fields, key=lambda field: len(fields[field]))
    others = [f"`{field}` for {', '.join(fields[field])}" for field in fields if field != main]
    return f"`{main}`; " + "; ".join(others)


def _owner(topic: Topic) -> str:
    """The service a command topic is for, or whose events a topic holds."""
    owners = CONSUMED_TOPICS if topic.name.endswith(".commands") else SENT_TOPICS
    return next(service for service, topics in owners.items() if topic in topics)


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for service in dict.fromkeys([*SENT_TOPICS, *CONSUMED_TOPICS]):
        for topic in SENT_TOPICS.get(service, ()):
            sent = routing.messages_on(topic)
            operations[f"{service}.send.{topic.name}"] = _operation(
                "send", service, topic, sent, f"{service} sends these on {topic.name}."
            )
        for topic in CONSUMED_TOPICS.get(service, ()):
            handled = [
                cls for cls in routing.messages_on(topic) if service in routing.receivers(cls)
            ]
            operations[f"{service}.receive.{topic.name}"] = _operation(
                "receive",
                service,
                topic,
                handled,
                f"{service} applies these, in its consumer group `{service}`; it skips the "
                f"other messages of {topic.name}. Every version is read, upcast to the newest.",
                group=service,
            )
        for topic in WATCHED_TOPICS.get(service, ()):
            operations[f"{service}.watch.{topic.name}"] = _operation(
                "receive",
                service,
                topic,
                routing.messages_on(topic),
                f"{service} tails {topic.name} outside any consumer group, for order news.",
            )
        if service in CONSUMED_TOPICS:
            dead = dead_letter_topic(service)
            operations[f"{service}.send.{dead.name}"] = _operation(
                "send", service, dead, [], f"{service} dead-letters what it cannot apply."
            )
    return operations


def _operation(
    action: str,
    service: str,
    topic: Topic,
    messages: list[type[Message]],
    text: str,
    group: str | None = None,
) -> dict[str, Any]:
    channel = _channel_id(topic)
    keys = [message_key(cls) for cls in messages] if messages else [DEAD_LETTER]
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": text,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{key}"} for key in keys],
        "tags": [{"name": service}],
    }
    if group is not None:
        operation["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "enum": [group]},
                "bindingVersion": KAFKA_BINDING,
            }
        }
    return operation


def _messages() -> dict[str, Any]:
    messages = {
        message_key(cls): _message(cls)
        for topic in ALL_TOPICS
        for cls in routing.messages_on(topic)
    }
    messages[DEAD_LETTER] = _dead_letter()
    return messages


def _message(message: type[Message]) -> dict[str, Any]:
    newest = latest(message.TYPE)
    kind = "command" if issubclass(message, Command) else "event"
    field_schema = data_schema(message)["properties"][message.KEY_FIELD]
    description = summary(message)
    if newest is not message:
        upcaster = " ".join((message.upcast.__doc__ or "").split())
        description += f" Superseded by v{newest.VERSION}; still read, upcast to {upcaster}"
    sample = example(message)
    return {
        "name": message.TYPE,
        "title": f"{message.TYPE} v{message.VERSION}",
        "summary": description,
        "contentType": "application/json",
        "headers": _headers(message),
        "payload": payload_schema(message),
        "correlationId": {
            "description": "The saga the message belongs to.",
            "location": "$message.payload#/correlation_id",
        },
        "bindings": {
            "kafka": {
                "key": {
                    **{k: v for k, v in field_schema.items() if k != "default"},
                    "description": f"The message's `{message.KEY_FIELD}`, as UTF-8 text.",
                },
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "tags": [{"name": kind}, {"name": routing.sender(message)}],
        "examples": [
            {
                "name": f"{message.TYPE}-v{message.VERSION}",
                "summary": f"A {message.TYPE} v{message.VERSION} as kcat shows it.",
                "headers": {"type": message.TYPE, "correlation_id": sample["correlation_id"]},
                "payload": sample,
            }
        ],
    }


def _headers(message: type[Message]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            "Set by the shop's producers, so that a consumer may skip a type without parsing it; "
            "a command from elsewhere may leave them out."
        ),
        "properties": {
            "type": {"const": message.TYPE, "description": "The envelope's type."},
            "correlation_id": {
                "type": "string",
                "format": "uuid",
                "description": "The envelope's correlation id.",
            },
        },
    }


def _dead_letter() -> dict[str, Any]:
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "A record a service could not apply, kept as it came, with why and where from.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "description": "The record's own headers, then these.",
            "properties": {
                name: {"type": "string", "description": text}
                for name, text in DEAD_LETTER_HEADERS.items()
            },
            "required": sorted(DEAD_LETTER_HEADERS),
        },
        "payload": {"description": "The record's value as it came: anything, even not JSON."},
        "tags": [{"name": "dead-letter"}],
    }
