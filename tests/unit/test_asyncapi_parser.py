"""tests/asyncapi.py runs the official AsyncAPI parser: it accepts a valid 3.0 document and
reports the errors of a broken one."""

import copy
from typing import Any

from tests.asyncapi import parse_asyncapi

VALID: dict[str, Any] = {
    "asyncapi": "3.0.0",
    "info": {"title": "Shop", "version": "1.0.0"},
    "channels": {
        "orders.events": {
            "address": "orders.events",
            "messages": {"OrderPlaced.v1": {"$ref": "#/components/messages/OrderPlaced.v1"}},
        }
    },
    "operations": {
        "consumeOrderEvents": {
            "action": "receive",
            "channel": {"$ref": "#/channels/orders.events"},
            "messages": [{"$ref": "#/channels/orders.events/messages/OrderPlaced.v1"}],
        }
    },
    "components": {
        "messages": {
            "OrderPlaced.v1": {
                "contentType": "application/json",
                "payload": {
                    "type": "object",
                    "required": ["order_id"],
                    "properties": {"order_id": {"type": "string", "format": "uuid"}},
                },
            }
        }
    },
}


def test_a_valid_document_parses_without_errors() -> None:
    result = parse_asyncapi(VALID)
    assert result.ok, result.errors
    assert result.errors == []


def test_an_operation_channel_ref_that_points_nowhere_is_an_error() -> None:
    broken = copy.deepcopy(VALID)
    broken["operations"]["consumeOrderEvents"]["channel"] = {"$ref": "#/channels/nowhere"}
    result = parse_asyncapi(broken)
    assert not result.ok
    assert {
        "code": "invalid-ref",
        "message": "'#/channels/nowhere' does not exist",
        "path": "operations.consumeOrderEvents.channel.$ref",
    } in result.errors


def test_yaml_text_without_info_is_an_error() -> None:
    result = parse_asyncapi('asyncapi: "3.0.0"\nchannels: {}\n')
    assert not result.ok
    assert 'must have required property "info"' in " ".join(e["message"] for e in result.errors)
