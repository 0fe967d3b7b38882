"""Commands applied over HTTP as well as from Kafka: the gateway's writes whose result a client
reads back at once (a category, then a product in it).

``POST /commands`` takes a command's envelope exactly as it would travel on Kafka and runs the
service's own handler for it, in its own transaction, inbox included: the same message later
delivered from Kafka (the gateway's fallback when this answer is slow) changes nothing. The
handler's events still leave through the outbox.
"""

from collections.abc import Collection

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from common.handlers import Handlers
from common.outcomes import Refused
from schemas.envelope import Command, UnknownMessageError, decode


def command_router(handlers: Handlers, applied_at_once: Collection[type[Command]]) -> APIRouter:
    """``POST /commands`` for the ``applied_at_once`` commands of ``handlers``: 204 once the
    command is applied (or was before), 4xx with the refusal's reason otherwise."""
    router = APIRouter(tags=["commands"])

    @router.post(
        "/commands",
        status_code=204,
        responses={
            404: {"description": "its subject does not exist"},
            409: {"description": "it conflicts with the current state"},
            422: {"description": "malformed, not applied here, or a field at fault"},
        },
    )
    async def apply_command(request: Request) -> Response:
        """Apply one command envelope (as on Kafka) now; used by the gateway."""
        try:
            envelope, command = decode(await request.body())
        except (ValidationError, UnknownMessageError) as exc:
            raise HTTPException(422, f"not a command envelope: {exc}") from None
        if type(command) not in applied_at_once:
            raise HTTPException(422, f"{envelope.type} is not applied over HTTP here")
        outcome = await handlers[type(command)](envelope, command)
        if isinstance(outcome, Refused):
            return JSONResponse({"detail": outcome.detail()}, outcome.status)
        return Response(status_code=204)

    return router
