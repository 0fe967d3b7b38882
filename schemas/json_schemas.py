"""The JSON Schemas of the messages as they are on the wire, and an example of each, from the
contracts (pydantic's ``model_json_schema``): what the AsyncAPI document (:mod:`schemas.asyncapi`)
shows and what ``make contracts`` snapshots (``stack/contracts.py``)."""

import json
import re
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from schemas.envelope import Envelope, Event, Message

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
    """pydantic's JSON Schema, with a ``Decimal`` (money, in the contracts) as the decimal string
    it is on the wire, its pattern made from its own bounds."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        digits, places = schema.get("max_digits"), schema.get("decimal_places")
        if digits is None or places is None:
            return super().decimal_schema(schema)
        lowest = schema.get("ge", schema.get("gt"))
        sign = "" if lowest is not None and lowest >= 0 else "-?"
        return {
            "type": "string",
            "pattern": rf"^{sign}[0-9]{{1,{digits - places}}}(\.[0-9]{{1,{places}}})?$",
            "description": f'A decimal string, at most {places} decimals ("19.99").',
        }


def data_schema(message: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a message's ``data``, self-contained (nested models inlined) and
    without pydantic's generated titles. An event's has no ``additionalProperties: false``: its
    readers ignore fields they do not know (:meth:`Message.from_envelope`)."""
    schema = message.model_json_schema(schema_generator=_ContractSchema)
    definitions = schema.pop("$defs", {})
    tolerant = isinstance(message, type) and issubclass(message, Event)
    cleaned: dict[str, Any] = _clean(schema, definitions, tolerant=tolerant)
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
    envelope["description"] = summary(message)
    return envelope


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


def summary(message: type[Message]) -> str:
    """The message's one-line description: its docstring's first sentence, or what it is."""
    own = message.__dict__.get("__doc__") or f"A {message.TYPE}."
    first = " ".join(own.split("\n\n")[0].split()).split(". ")[0].rstrip(".") + "."
    return re.sub(r"(?::\w+:)?``?([^`]+)``?", r"`\1`", first)


def _clean(schema: Any, definitions: dict[str, Any], *, tolerant: bool) -> Any:
    """``schema`` with every ``$ref`` to ``definitions`` inlined and the titles dropped (and,
    ``tolerant``, no ``additionalProperties: false``)."""
    if isinstance(schema, list):
        return [_clean(item, definitions, tolerant=tolerant) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        referred = {**definitions[name], **{k: v for k, v in schema.items() if k != "$ref"}}
        return _clean(referred, definitions, tolerant=tolerant)
    cleaned: dict[str, Any] = {}
    for keyword, value in schema.items():
        if keyword == "title" or (tolerant and keyword == "additionalProperties" and not value):
            continue
        if keyword == "properties":
            cleaned[keyword] = {
                name: _clean(sub, definitions, tolerant=tolerant) for name, sub in value.items()
            }
        elif keyword in ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties"):
            cleaned[keyword] = _clean(value, definitions, tolerant=tolerant)
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
    if "pattern" in schema:  # money: the contracts' only pattern (the tests hold examples to it)
        return "19.99"
    return _EXAMPLE_TEXT.get(name or "", (name or "text").replace("_", " ").capitalize())


def canonical_json(value: Any) -> str:
    """JSON as the committed files hold it: sorted keys, two-space indents, a final newline."""
    return json.dumps(value, indent=2, sort_keys=True) + "\n"
