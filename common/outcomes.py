"""What a use case answers when it does not apply its command."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Refused:
    """A command its service will not apply, and why: what a use case returns instead of
    applying it. The consumer moves on (the use case logs it); ``POST /commands`` answers it
    (``status``: 404 for a missing subject, 409 for a conflict with the current state, 422 for
    a field at fault)."""

    reason: str
    field: str | None = None
    status: int = 422

    def detail(self) -> Any:
        if self.field is None:
            return self.reason
        return [{"loc": ["body", self.field], "msg": self.reason, "type": "value_error"}]
