"""What every route may ask for: the upstream clients, the command producer, the order watch."""

from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import Depends, HTTPException, Request

from common.broker import KafkaProducerHolder, publish
from gateway_svc.clients import Upstreams, unavailable
from gateway_svc.facts import Facts
from gateway_svc.watch import OrderWatch
from schemas.envelope import Command, Envelope


async def _upstreams(request: Request) -> Upstreams:
    found: Upstreams = request.app.state.upstreams
    return found


async def _facts(request: Request) -> Facts:
    found: Facts = request.app.state.facts
    return found


async def _watch(request: Request) -> OrderWatch:
    found: OrderWatch = request.app.state.watch
    return found


class CommandBus:
    """Sends a command and returns once Kafka holds it; the client then gets 202."""

    def __init__(self, producer: KafkaProducerHolder) -> None:
        self._producer = producer

    async def send(self, command: Command) -> Envelope:
        try:
            return await publish(self._producer, command)
        except (KafkaError, OSError):
            raise unavailable("command") from None


async def _commands(request: Request) -> CommandBus:
    return CommandBus(request.app.state.runtime.producer)


Upstream = Annotated[Upstreams, Depends(_upstreams)]
Commands = Annotated[CommandBus, Depends(_commands)]
Watch = Annotated[OrderWatch, Depends(_watch)]
Known = Annotated[Facts, Depends(_facts)]


def field_error(location: tuple[str | int, ...], message: str) -> HTTPException:
    """A 422 shaped like FastAPI's own, naming the field at fault."""
    return HTTPException(422, [{"loc": list(location), "msg": message, "type": "value_error"}])
