"""payment_svc's port to the outside: the payment provider (card processor).

What an adapter must do (``docs/payments.md`` says it at length):

- **One key, one operation.** The same ``idempotency_key`` always names the same operation. A
  provider that sees a key again answers what it answered the first time and moves no money,
  however often and however late it is asked.
- **A charge it has decided on can be looked up by its key** (:meth:`PaymentProvider.retrieve`),
  so that a charge whose answer payment_svc never recorded (it crashed, its commit failed, the
  call timed out) is settled from the provider's own records.
- **A charge can be voided by its key** (:meth:`PaymentProvider.void`): from then on no charge is
  ever captured under that key. If one was captured already, ``void`` answers with it, and the
  caller refunds it.
- **It lists what it did** (:meth:`PaymentProvider.charges`): every charge by its key, with its
  refunds, which reconciliation (``python -m stack reconcile``) compares with payment_svc's
  payments.
- **Errors are raised, answers are returned.** A declined card is an answer (``approved`` false);
  a provider that could not be asked, or that failed while answering, raises. A raise says
  nothing about whether money moved: the caller asks again with the same key, or settles it by
  ``retrieve``/``void``.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

CAPTURED, DECLINED, VOIDED = "captured", "declined", "voided"
"""A charge's outcome in the provider's records."""


@dataclass(frozen=True)
class ChargeResult:
    approved: bool
    """True when the money is captured."""
    reference: str
    """The provider's id of the charge: ``transactions.gateway_id``, and what a refund names."""
    decline_reason: str | None = None


@dataclass(frozen=True)
class RefundResult:
    succeeded: bool
    reference: str
    reason: str | None = None


@dataclass(frozen=True)
class ChargeRecord:
    """A charge as the provider's own records tell it, with what was refunded of it."""

    idempotency_key: str
    outcome: str
    """CAPTURED, DECLINED or VOIDED."""
    amount: Decimal
    reference: str
    refunded: Decimal = Decimal(0)
    refunds: int = 0


class ProviderError(RuntimeError):
    """The provider could not be asked, or failed while answering: whether money moved is
    unknown until the same key is asked again, retrieved or voided."""


class PaymentProvider(Protocol):
    """Charges and refunds, each named by its idempotency key; see the module docstring."""

    async def open(self) -> None:
        """Connect (called once when the service starts)."""

    async def close(self) -> None: ...

    async def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> ChargeResult:
        """Decide on a charge of ``amount`` to the card behind ``token``."""
        ...

    async def refund(
        self, *, reference: str, amount: Decimal, idempotency_key: str
    ) -> RefundResult:
        """Give back ``amount`` of the captured charge ``reference``."""
        ...

    async def retrieve(self, idempotency_key: str) -> ChargeResult | None:
        """What the charge under this key was answered; None if the provider never decided one."""
        ...

    async def void(self, idempotency_key: str) -> ChargeResult:
        """Make sure no charge is ever captured under this key from now on. Answers the charge
        as it stands: ``approved`` if it was captured before (refund it), else declined."""
        ...

    async def charges(self) -> list[ChargeRecord]:
        """Every charge on record, each with its refunds (for reconciliation)."""
        ...
