"""The gateway's way to the services' HTTP APIs (their reads, and the commands they apply at
once): one pooled HTTP client, errors mapped so a
client never sees a 500 for a service that is slow or down (503 with Retry-After instead).

aiohttp rather than httpx: measured here, a request costs the client about 0.14 ms of CPU with
aiohttp against 0.75 ms with httpx, and every read through the gateway makes one.
"""

from typing import Any

import aiohttp
import orjson
from fastapi import HTTPException, Response

from common import tracing
from gateway_svc.settings import Settings

PASSED_THROUGH = {400, 401, 404, 409, 422}


class Upstreams:
    def __init__(self, settings: Settings) -> None:
        self.urls = {
            "user": settings.user_svc_url,
            "product": settings.product_svc_url,
            "order": settings.order_svc_url,
            "payment": settings.payment_svc_url,
            "notification": settings.notification_svc_url,
            "inventory": settings.inventory_svc_url,
        }
        self._timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # made on first use, inside the running loop (aiohttp ties a session to its loop)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=200, limit_per_host=50),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, service: str, path: str, params: dict[str, Any] | None = None) -> Any:
        return _parsed(service, await self._call("GET", service, path, params=_query(params)))

    async def relay(
        self, service: str, path: str, params: dict[str, Any] | None = None
    ) -> Response:
        """The service's JSON answer to a GET, passed on as it came: for a page of a list,
        whose items the gateway does not change (its route keeps the model for the OpenAPI
        document). Parsing a page of 50 products, validating it and serializing it again cost
        a fifth of the gateway's CPU per ``GET /products`` (0.51 and 0.55 ms against 0.45 and
        0.40 ms, back to back)."""
        body = await self._call("GET", service, path, params=_query(params))
        if not body.startswith(b"{"):  # not the page its route promises: never a 500
            raise unavailable(service)
        return Response(body, media_type="application/json")

    async def post(self, service: str, path: str, body: dict[str, Any]) -> Any:
        return _parsed(service, await self._call("POST", service, path, json=body))

    async def command(self, service: str, envelope: bytes, timeout_s: float) -> None:
        """Have ``service`` apply a command envelope now (``common.commands``): returns once it
        is applied; its refusal raised as the 4xx it is; 503 when it does not answer in time."""
        await self._call(
            "POST",
            service,
            "/commands",
            data=envelope,
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )

    async def find(self, service: str, path: str) -> Any | None:
        """GET that answers None for 404."""
        try:
            return await self.get(service, path)
        except HTTPException as exc:
            if exc.status_code == 404:
                return None
            raise

    async def _call(self, method: str, service: str, path: str, **kwargs: Any) -> bytes:
        """The body of a successful answer; errors mapped to what the client should see."""
        trace = tracing.current_traceparent()
        if trace is not None:  # the service's span of this call joins the request's trace
            kwargs["headers"] = {**kwargs.get("headers", {}), tracing.TRACEPARENT: trace}
        try:
            async with self._http().request(method, self.urls[service] + path, **kwargs) as answer:
                status = answer.status
                body = await answer.read()
                reason = answer.reason or ""
        except (TimeoutError, aiohttp.ClientError):
            raise unavailable(service) from None
        if status in PASSED_THROUGH:
            raise HTTPException(status, _detail(body, reason))
        if status >= 400:
            raise unavailable(service)
        return body


def unavailable(what: str) -> HTTPException:
    return HTTPException(
        503, f"the {what} service is unavailable; try again shortly", headers={"Retry-After": "1"}
    )


def _query(params: dict[str, Any] | None) -> dict[str, str]:
    return {key: str(value) for key, value in (params or {}).items() if value is not None}


def _parsed(service: str, body: bytes) -> Any:
    try:
        return _json(body)
    except ValueError:
        raise unavailable(service) from None


def _json(body: bytes) -> Any:
    return orjson.loads(body)


def _detail(body: bytes, reason: str) -> Any:
    try:
        found = _json(body)
    except ValueError:
        return reason
    return found.get("detail", reason) if isinstance(found, dict) else reason
