"""The gateway's way to the services' read APIs: one pooled HTTP client, errors mapped so a
client never sees a 500 for a service that is slow or down (503 with Retry-After instead)."""

from typing import Any

import httpx
from fastapi import HTTPException

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
        self._http = httpx.AsyncClient(
            timeout=settings.upstream_timeout_s,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def get(self, service: str, path: str, params: dict[str, Any] | None = None) -> Any:
        clean = {key: value for key, value in (params or {}).items() if value is not None}
        return await self._call("GET", service, path, params=clean)

    async def post(self, service: str, path: str, body: dict[str, Any]) -> Any:
        return await self._call("POST", service, path, json=body)

    async def find(self, service: str, path: str) -> Any | None:
        """GET that answers None for 404."""
        try:
            return await self.get(service, path)
        except HTTPException as exc:
            if exc.status_code == 404:
                return None
            raise

    async def _call(self, method: str, service: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, self.urls[service] + path, **kwargs)
        except httpx.HTTPError:
            raise unavailable(service) from None
        if response.status_code in PASSED_THROUGH:
            raise HTTPException(response.status_code, _detail(response))
        if response.status_code >= 400:
            raise unavailable(service)
        return response.json()


def unavailable(what: str) -> HTTPException:
    return HTTPException(
        503, f"the {what} service is unavailable; try again shortly", headers={"Retry-After": "1"}
    )


def _detail(response: httpx.Response) -> Any:
    try:
        return response.json().get("detail", response.reason_phrase)
    except ValueError:
        return response.reason_phrase
