"""The AsyncAPI 3.0 document of the whole shop, generated from the contracts: every topic (dead
letters included), every version of every message as it is on the wire, and who sends and who
receives it (:mod:`schemas.catalog`).

FastStream's own generator describes one payload per subscriber or publisher and names messages
itself; the shop carries many message types on one topic under one raw batch subscriber, so
this builder writes the document from the contracts instead: each message's payload is the
envelope's JSON Schema with ``data`` the message's own (pydantic's ``model_json_schema``).
``python -m stack contracts`` keeps the committed copy (``docs/asyncapi.json``) and the snapshots
of every message version (``schemas/snapshots/``) in step with it.
"""

import json
import re
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from schemas import catalog
from schemas.envelope import Command, Envelope, Message, latest
from schemas.topics import ALL_TOPICS, DEAD_LETTER_TOPICS, Topic

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
DOCUMENT_VERSION = "1.0.0"
"""The document's own version (``info.version``); each message carries its own version."""
LOCAL_BROKER = "127.0.0.1:9092"

MONEY_PATTERN = r"^[0-9]{1,8}(\.[0-9]{1,2})?$"
MONEY = {
    "type": "string",
    "pattern": MONEY_PATTERN,
    "description": 'An amount of money: a decimal string, at most two decimals ("19.99").',
}

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

_EXAMPLE_TEXT = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "description": "A mug that holds a pint",
    "url": "https://images.example.com/mug.png",
    "street": "1 Main Street",
    "city": "Springfield",
    "state": "IL",
    "zip_code": "62701",
    "method": "Credit Card",
    "token": "tok_visa_4242",
    "gateway_id": "ch_3N1x",
    "type": "OrderPlaced",
}
_EXAMPLE_TIME = "2026-01-01T12:00:00Z"


class _ContractSchema(GenerateJsonSchema):
    """pydantic's JSON Schema, with money (the only ``Decimal`` of the contracts) as the
    decimal string it is on the wire."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        return dict(MONEY)


def data_schema(message: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a message's ``data``, self-contained (nested models inlined) and
    without pydantic's generated titles."""
    schema = message.model_json_schema(schema_generator=_ContractSchema)
    definitions = schema.pop("$defs", {})
    cleaned: dict[str, Any] = _clean(schema, definitions)
    return cleaned


def payload_schema(message: type[Message]) -> dict[str, Any]:
    """The whole envelope as it is on the wire, ``data`` being the message's own schema."""
    envelope = data_schema(Envelope)
    properties = envelope["properties"]
    properties["type"] = {"const": message.TYPE, "description": "The message type."}
    properties["version"] = {"const": message.VERSION, "description": "The message's version."}
    properties["id"]["description"] = "The message's id: consumers drop a repeated one."
    properties["occurred_at"]["description"] = "When the producer made it (UTC)."
    properties["correlation_id"]["description"] = "The id of the saga it belongs to."
    properties["causation_id"]["description"] = "The id of the message that caused it."
    properties["data"] = data_schema(message)
    envelope["description"] = _summary(message)
    return envelope


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
    """The document as the committed file holds it (sorted keys, two-space indents)."""
    return json.dumps(build() if document is None else document, indent=2, sort_keys=True) + "\n"


def example(message: type[Message]) -> dict[str, Any]:
    """An envelope of ``message`` that its own schema and class both accept."""
    return {
        "id": str(_example_id("message")),
        "type": message.TYPE,
        "version": message.VERSION,
        "occurred_at": _EXAMPLE_TIME,
        "correlation_id": str(_example_id("correlation")),
        "causation_id": str(_example_id("causation")),
        "data": _example_of(data_schema(message), None),
    }


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
            for cls in catalog.messages_on(topic)
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
    for cls in catalog.messages_on(topic):
        names = fields.setdefault(cls.KEY_FIELD, [])
        if cls.TYPE not in names:
            names.append(cls.TYPE)
    if len(fields) == 1:
        return f"`{next(iter(fields))}`"
    main = max(fields, key=lambda field: len(fields[field]))
    others = [f"`{field}` for {', '.join(fields[field])}" for field in fields if field != main]
    return f"`{main}`; " + "; ".join(others)


def _owner(topic: Topic) -> str:
    if topic.name.endswith(".commands"):
        return next(
            service
            for service, handled in catalog.RECEIVES.items()
            if any(topic == cls.TOPIC for cls in handled)
        )
    return next(service for service, topics in catalog.SENDS.items() if topic in topics)


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for service in catalog.SERVICES:
        for topic in catalog.SENDS.get(service, ()):
            sent = catalog.messages_on(topic)
            operations[f"{service}.send.{topic.name}"] = _operation(
                "send", service, topic, sent, f"{service} sends these on {topic.name}."
            )
        for topic in _consumed(service):
            handled = [
                cls for cls in catalog.messages_on(topic) if service in catalog.receivers(cls)
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
        for topic in catalog.WATCHES.get(service, ()):
            operations[f"{service}.watch.{topic.name}"] = _operation(
                "receive",
                service,
                topic,
                catalog.messages_on(topic),
                f"{service} tails {topic.name} outside any consumer group, for order news.",
            )
        if service in catalog.RECEIVES:
            dead = next(t for t in DEAD_LETTER_TOPICS if t.name == f"{service}.dlq")
            operations[f"{service}.send.{dead.name}"] = _operation(
                "send", service, dead, [], f"{service} dead-letters what it cannot apply."
            )
    return operations


def _consumed(service: str) -> list[Topic]:
    handled = catalog.RECEIVES.get(service, ())
    return [topic for topic in ALL_TOPICS if any(topic == cls.TOPIC for cls in handled)]


def _operation(
    action: str,
    service: str,
    topic: Topic,
    messages: list[type[Message]],
    summary: str,
    group: str | None = None,
) -> dict[str, Any]:
    channel = _channel_id(topic)
    keys = [message_key(cls) for cls in messages] if messages else [DEAD_LETTER]
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
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
        for cls in catalog.messages_on(topic)
    }
    messages[DEAD_LETTER] = _dead_letter()
    return messages


def _message(message: type[Message]) -> dict[str, Any]:
    newest = latest(message.TYPE)
    kind = "command" if issubclass(message, Command) else "event"
    field_schema = data_schema(message)["properties"][message.KEY_FIELD]
    description = _summary(message)
    if newest is not message:
        description += (
            f" Superseded by v{newest.VERSION}: still read, upcast to it; no longer sent."
        )
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
        "tags": [{"name": kind}, {"name": catalog.sender(message)}],
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


def _summary(message: type[Message]) -> str:
    """The message's one-line description: its docstring's first sentence, or what it is."""
    own = message.__dict__.get("__doc__") or f"A {message.TYPE}."
    first = " ".join(own.split("\n\n")[0].split()).split(". ")[0].rstrip(".") + "."
    return re.sub(r"(?::\w+:)?``?([^`]+)``?", r"`\1`", first)


def _clean(schema: Any, definitions: dict[str, Any]) -> Any:
    """``schema`` with every ``$ref`` to ``definitions`` inlined and the titles dropped."""
    if isinstance(schema, list):
        return [_clean(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return _clean(
            {**definitions[name], **{k: v for k, v in schema.items() if k != "$ref"}}, definitions
        )
    cleaned: dict[str, Any] = {}
    for keyword, value in schema.items():
        if keyword == "title":
            continue
        if keyword == "properties":
            cleaned[keyword] = {name: _clean(sub, definitions) for name, sub in value.items()}
        elif keyword in ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties"):
            cleaned[keyword] = _clean(value, definitions)
        else:
            cleaned[keyword] = value
    return cleaned


def _example_id(name: str) -> Any:
    return uuid5(NAMESPACE_URL, f"https://shop.example/{name}")


def _example_of(schema: dict[str, Any], name: str | None) -> Any:
    """A value that ``schema`` accepts, readable where the field's name says what it is."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _example_of(next(s for s in schema["anyOf"] if s.get("type") != "null"), name)
    kind = schema.get("type")
    if kind == "object":
        return {
            field: _example_of(sub, field) for field, sub in schema.get("properties", {}).items()
        }
    if kind == "array":
        return [_example_of(schema["items"], name)]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)), int(schema.get("exclusiveMinimum", 0)) + 1)
    if kind == "boolean":
        return True
    if schema.get("format") == "uuid":
        return str(_example_id(name or "id"))
    if schema.get("format") == "date-time":
        return _EXAMPLE_TIME
    if schema.get("pattern") == MONEY_PATTERN:
        return "19.99"
    return _EXAMPLE_TEXT.get(name or "", (name or "text").replace("_", " ").capitalize())
