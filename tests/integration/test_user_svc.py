"""user_svc on the real broker and database: its reads answer while passwords are hashed, a
password beyond what its hashing pool takes is refused at once, and the first admin exists
once the service has started."""

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from tests.conftest import unique
from tests.integration.conftest import in_process
from user_svc.app import create_app
from user_svc.settings import Settings


async def register(http: httpx.AsyncClient) -> dict[str, Any]:
    email = f"{unique('burst')}@example.com"
    created = await http.post(
        "/users", json={"name": "Burst", "email": email, "password": "correct horse"}
    )
    assert created.status_code == 201, created.text
    user: dict[str, Any] = created.json()
    return user


async def test_reads_answer_at_once_while_a_burst_of_registrations_is_hashed(
    settings_for: Callable[..., Settings],
) -> None:
    async with in_process(create_app(settings_for(Settings, password_hash_workers=2))) as users:
        http = users.http
        reader = await register(http)
        burst_started = time.perf_counter()
        burst = asyncio.gather(*(register(http) for _ in range(8)))
        reads: list[float] = []
        while not burst.done():
            started = time.perf_counter()
            profile = await http.get(f"/users/{reader['id']}")
            reads.append(time.perf_counter() - started)
            assert profile.status_code == 200
        assert len(await burst) == 8
        burst_s = time.perf_counter() - burst_started

    # on the event loop, the burst's eight hashes run back to back and the first read waits
    # for them all
    assert max(reads) < burst_s / 4, (max(reads), burst_s, len(reads))


async def test_a_registration_is_answered_503_at_once_when_too_many_wait_to_be_hashed(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for(Settings, password_hash_workers=1, password_hash_waiting=1)
    async with in_process(create_app(settings)) as users:
        answers = await asyncio.gather(
            *(
                users.http.post(
                    "/users",
                    json={
                        "name": "Burst",
                        "email": f"{unique('burst')}@example.com",
                        "password": "correct horse",
                    },
                )
                for _ in range(6)
            )
        )
    statuses = [answer.status_code for answer in answers]
    # one is hashed and one waits; the others are refused at once
    assert set(statuses) == {201, 503} and statuses.count(201) >= 2, statuses
    assert all(a.headers["Retry-After"] == "1" for a in answers if a.status_code == 503)


async def test_the_first_admin_can_sign_in_as_soon_as_the_service_has_started(
    settings_for: Callable[..., Settings],
) -> None:
    email = f"{unique('admin')}@example.com"
    settings = settings_for(Settings, shop_admin_email=email, shop_admin_password="admin password")
    async with in_process(create_app(settings)) as users:
        assert (await users.http.get("/readyz")).status_code == 200
        signed_in = await users.http.post(
            "/auth/verify", json={"email": email, "password": "admin password"}
        )
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["role"] == "Admin"


async def test_the_service_does_not_start_when_its_first_admin_cannot_be_created(
    settings_for: Callable[..., Settings],
) -> None:
    # an email the settings would refuse, past them: the account's own event refuses it too
    settings = settings_for(
        Settings, shop_admin_email="admin@example.com", shop_admin_password="admin password"
    ).model_copy(update={"shop_admin_email": "admin@shop.test"})
    app = create_app(settings)
    with pytest.raises(ValidationError, match="special-use"):
        async with in_process(app):
            pass
    assert not app.state.runtime.ready
