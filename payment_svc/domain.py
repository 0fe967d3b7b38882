"""payment_svc's rules: whether an order is charged, and whether a cancellation refunds it."""

from dataclasses import dataclass
from uuid import UUID

from schemas.payments import REFUNDED_BEFORE_V2

PAID, FAILED, REFUNDED = "Paid", "Failed", "Refunded"
"""Payment statuses."""
CHARGE, REFUND = "Charge", "Refund"
"""Transaction kinds; a transaction's status is what it did to the payment: a Charge is Paid or
Failed (declined), a Refund is Refunded."""

UNKNOWN_METHOD = "unknown payment method"


@dataclass(frozen=True)
class ChargeCard:
    """Ask the provider."""


@dataclass(frozen=True)
class Skip:
    """Do nothing: the order is not to be charged (again)."""

    why: str


@dataclass(frozen=True)
class Refuse:
    """Record a failed payment without asking the provider."""

    reason: str


def plan_charge(
    *, has_payment: bool, cancelled: bool, buyer: UUID, method_owner: UUID | None
) -> ChargeCard | Skip | Refuse:
    """What to do with reserved stock: one payment per order, never after its cancellation, and
    only with a payment method of the buyer's own (another's is as unknown as a missing one)."""
    if has_payment:
        return Skip("the order already has a payment")
    if cancelled:
        return Skip("the order was cancelled before its payment")
    if method_owner is None or method_owner != buyer:
        return Refuse(UNKNOWN_METHOD)
    return ChargeCard()


def refundable(status: str | None) -> bool:
    """A cancellation refunds a payment that was taken and not refunded yet."""
    return status == PAID


REASON_LENGTH = 255
"""The longest refund reason: PaymentRefunded's ``reason`` and ``cancelled_orders.reason``."""


def refund_reason(cancellation_reason: str) -> str:
    """Why a cancelled order's payment is refunded: the cancellation's reason, cut to the
    length the contract takes (an empty one says only that the order was cancelled). Never one
    PaymentRefunded refuses: the money has moved by the time the event is built."""
    return cancellation_reason[:REASON_LENGTH] or REFUNDED_BEFORE_V2


CHARGE_KEY_PREFIX = "charge:"


def charge_key(order_id: UUID) -> str:
    """The provider's idempotency key of an order's charge: one order, one charge."""
    return f"{CHARGE_KEY_PREFIX}{order_id}"


def refund_key(order_id: UUID) -> str:
    return f"refund:{order_id}"
