"""payment_svc's port to the outside: the payment provider (card processor)."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class ChargeResult:
    approved: bool
    reference: str
    """The provider's id of the charge: ``transactions.gateway_id``, and what a refund names."""
    decline_reason: str | None = None


@dataclass(frozen=True)
class RefundResult:
    succeeded: bool
    reference: str
    reason: str | None = None


class PaymentProvider(Protocol):
    """Charges and refunds. The same ``idempotency_key`` always names the same operation: a
    provider that sees a key again answers what it answered the first time, and moves no money."""

    async def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> ChargeResult:
        """Decide on a charge of ``amount`` to the card behind ``token``; raises only when the
        provider could not be asked (the caller retries with the same key)."""
        ...

    async def refund(
        self, *, reference: str, amount: Decimal, idempotency_key: str
    ) -> RefundResult: ...
