"""A service's start: its start-up work done before it is ready, or it does not start."""

from typing import ClassVar

import pytest

from common.runtime import Runtime
from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "order_svc"
    default_http_port: ClassVar[int] = 8002


async def test_a_service_whose_start_up_work_fails_does_not_start() -> None:
    runtime = Runtime(Settings())
    done: list[str] = []

    async def fails() -> None:
        raise RuntimeError("no admin today")

    async def never() -> None:
        done.append("later work")

    runtime.on_start("the first admin account", fails)
    runtime.on_start("later work", never)
    with pytest.raises(RuntimeError, match="no admin today"):
        await runtime.start()
    assert done == []
    assert not runtime.ready
    assert (await runtime.check())["startup"] == "starting"
