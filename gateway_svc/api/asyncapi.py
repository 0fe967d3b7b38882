"""The shop's events for other services: the AsyncAPI document of every topic and message."""

from functools import cache

import yaml
from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from schemas import asyncapi

router = APIRouter(tags=["events"])

_CACHE = {"Cache-Control": "public, max-age=300"}


@cache
def _json() -> bytes:
    return asyncapi.document_json().encode()


@cache
def _yaml() -> bytes:
    text: str = yaml.safe_dump(asyncapi.build(), sort_keys=False, allow_unicode=True)
    return text.encode()


@router.get(
    "/asyncapi.json",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
    summary="The AsyncAPI 3.0 document of every topic and message",
)
async def asyncapi_json() -> Response:
    """Open it in any AsyncAPI tool (AsyncAPI Studio, the AsyncAPI CLI). Built once per
    process, off the event loop."""
    return Response(await run_in_threadpool(_json), media_type="application/json", headers=_CACHE)


@router.get(
    "/asyncapi.yaml",
    response_class=Response,
    responses={200: {"content": {"application/yaml": {}}}},
    summary="The same document in YAML",
)
async def asyncapi_yaml() -> Response:
    return Response(await run_in_threadpool(_yaml), media_type="application/yaml", headers=_CACHE)
