"""The payment provider adapters: the deterministic simulator (the default) and a fake for tests."""

import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal

from payment_svc.ports import ChargeResult, RefundResult

DECLINING_TOKEN = "tok_decline"  # noqa: S105 (a test card, not a secret)
"""The documented token that the simulator always declines; ``tok_visa`` (and any other
well-formed token) is approved."""
CARD_DECLINED = "card declined"
MALFORMED_TOKEN = "invalid card token"  # noqa: S105 (a reason, not a secret)

_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{1,255}")


def simulated_reference(idempotency_key: str) -> str:
    """The simulator's reference for an operation: the same key, the same reference."""
    return "sim_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


def simulated_decline_reason(token: str) -> str | None:
    """Why the simulator declines a charge to ``token``; None when it approves."""
    if not _WELL_FORMED.fullmatch(token):
        return MALFORMED_TOKEN
    if token == DECLINING_TOKEN:
        return CARD_DECLINED
    return None


class SimulatedProvider:
    """A card processor without a network: its answers follow from the token and the key alone,
    so a retried call gets the same answer and the same reference."""

    async def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> ChargeResult:
        reason = simulated_decline_reason(token)
        return ChargeResult(
            approved=reason is None,
            reference=simulated_reference(idempotency_key),
            decline_reason=reason,
        )

    async def refund(
        self, *, reference: str, amount: Decimal, idempotency_key: str
    ) -> RefundResult:
        return RefundResult(succeeded=True, reference=simulated_reference(idempotency_key))


@dataclass(frozen=True)
class Call:
    operation: str
    idempotency_key: str
    amount: Decimal
    token: str = ""
    reference: str = ""


@dataclass
class FakeProvider:
    """Records every call; declines ``declined_tokens``, fails refunds when ``refuse_refunds``,
    and raises ``error`` (a provider that cannot be reached) while it is set."""

    declined_tokens: set[str] = field(default_factory=lambda: {DECLINING_TOKEN})
    refuse_refunds: bool = False
    error: Exception | None = None
    calls: list[Call] = field(default_factory=list)

    @property
    def charges(self) -> list[Call]:
        return [call for call in self.calls if call.operation == "charge"]

    @property
    def refunds(self) -> list[Call]:
        return [call for call in self.calls if call.operation == "refund"]

    async def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> ChargeResult:
        self.calls.append(Call("charge", idempotency_key, amount, token=token))
        if self.error is not None:
            raise self.error
        declined = token in self.declined_tokens
        return ChargeResult(
            approved=not declined,
            reference=f"fake_charge_{idempotency_key}",
            decline_reason=CARD_DECLINED if declined else None,
        )

    async def refund(
        self, *, reference: str, amount: Decimal, idempotency_key: str
    ) -> RefundResult:
        self.calls.append(Call("refund", idempotency_key, amount, reference=reference))
        if self.error is not None:
            raise self.error
        return RefundResult(
            succeeded=not self.refuse_refunds,
            reference=f"fake_refund_{idempotency_key}",
            reason="refund refused" if self.refuse_refunds else None,
        )
