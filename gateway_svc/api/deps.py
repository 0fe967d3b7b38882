"""What every route may ask for (the upstream clients, the commands, the order watch and the
bounds on those waiting on it), and how a write answers."""

from typing import Annotated, Any
from uuid import UUID

from aiokafka.errors import KafkaError
from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from common.producer import KafkaProducerHolder, publish
from gateway_svc.clients import Upstreams, unavailable
from gateway_svc.facts import Facts
from gateway_svc.settings import Settings
from gateway_svc.watch import OrderWatch, Watchers
from schemas.envelope import Command, Envelope, encode


async def _upstreams(request: Request) -> Upstreams:
    found: Upstreams = request.app.state.upstreams
    return found


async def _facts(request: Request) -> Facts:
    found: Facts = request.app.state.facts
    return found


async def _watch(request: Request) -> OrderWatch:
    found: OrderWatch = request.app.state.watch
    return found


async def _settings(request: Request) -> Settings:
    found: Settings = request.app.state.runtime.settings
    return found


async def _watchers(request: Request) -> Watchers:
    found: Watchers = request.app.state.watchers
    return found


async def _placements(request: Request) -> Watchers:
    found: Watchers = request.app.state.placements
    return found


class CommandBus:
    """Sends commands: on Kafka (``send``), or applied by their service at once (``apply``)."""

    def __init__(
        self, producer: KafkaProducerHolder, upstreams: Upstreams, write_wait_s: float
    ) -> None:
        self._producer = producer
        self._upstreams = upstreams
        self._write_wait_s = write_wait_s

    async def send(self, command: Command, envelope: Envelope | None = None) -> Envelope:
        """Returns once Kafka holds the command; the client then gets 202."""
        try:
            return await publish(self._producer, command, envelope)
        except (KafkaError, OSError):
            raise unavailable("command") from None

    async def apply(self, service: str, command: Command) -> bool:
        """True once ``service`` has applied ``command`` (its next read shows it); its refusal
        raised as the 4xx it is. False when the service did not apply it within WRITE_WAIT_S
        (slow, failing or unreachable; 0: never asked): the same envelope then goes on Kafka,
        and whichever copy reaches the service first is applied, its inbox drops the other."""
        envelope = command.envelope()
        if self._write_wait_s > 0:
            try:
                await self._upstreams.command(service, encode(envelope), self._write_wait_s)
            except HTTPException as exc:
                if exc.status_code != 503:
                    raise
            else:
                return True
        await self.send(command, envelope)
        return False


async def _commands(request: Request) -> CommandBus:
    state = request.app.state
    return CommandBus(state.runtime.producer, state.upstreams, state.runtime.settings.write_wait_s)


Upstream = Annotated[Upstreams, Depends(_upstreams)]
Commands = Annotated[CommandBus, Depends(_commands)]
Watch = Annotated[OrderWatch, Depends(_watch)]
Known = Annotated[Facts, Depends(_facts)]
Config = Annotated[Settings, Depends(_settings)]
Waiting = Annotated[Watchers, Depends(_watchers)]
"""Long polls and event streams."""
Placements = Annotated[Watchers, Depends(_placements)]
"""Placements waiting for order_svc to record their order."""


def written(resource: BaseModel, location: str, status: int = 201) -> JSONResponse:
    """The answer to a write its service has applied: the resource as it is now."""
    return JSONResponse(resource.model_dump(mode="json"), status, headers={"Location": location})


def accepted(resource_id: UUID, location: str) -> JSONResponse:
    """The answer to a write left on Kafka (its service was slow): 202, to be applied shortly."""
    body = {"id": str(resource_id), "status": "accepted"}
    return JSONResponse(body, 202, headers={"Location": location})


def write_responses(model: type[BaseModel], status: int = 201) -> dict[int | str, Any]:
    """The OpenAPI answers of a write: ``model`` once applied, 202 past WRITE_WAIT_S."""
    return {
        status: {"model": model, "headers": {"Location": {"description": "where to read it"}}},
        202: {
            "model": Accepted,
            "description": "its service was slow; applied shortly, readable at the Location",
        },
    }


class Accepted(BaseModel):
    id: UUID
    status: str = "accepted"


def field_error(location: tuple[str | int, ...], message: str) -> HTTPException:
    """A 422 shaped like FastAPI's own, naming the field at fault."""
    return HTTPException(422, [{"loc": list(location), "msg": message, "type": "value_error"}])
