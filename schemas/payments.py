"""Contracts owned by payment_svc."""

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from schemas.envelope import Command, Event, Money, register
from schemas.topics import PAYMENTS_COMMANDS, PAYMENTS_EVENTS


@register
class AddPaymentMethod(Command):
    """Add a payment method (a provider's token) to a user."""

    TYPE = "AddPaymentMethod"
    TOPIC = PAYMENTS_COMMANDS
    KEY_FIELD: ClassVar[str] = "user_id"
    payment_method_id: UUID
    user_id: UUID
    method: str = Field(min_length=1, max_length=50)
    token: str = Field(min_length=1, max_length=255)


class _PaymentEvent(Event):
    TOPIC = PAYMENTS_EVENTS
    KEY_FIELD: ClassVar[str] = "order_id"


@register
class PaymentMethodAdded(_PaymentEvent):
    """A user added a payment method."""

    TYPE = "PaymentMethodAdded"
    KEY_FIELD = "user_id"
    payment_method_id: UUID
    user_id: UUID
    method: str


@register
class PaymentSucceeded(_PaymentEvent):
    """An order's charge was captured by the payment provider."""

    TYPE = "PaymentSucceeded"
    payment_id: UUID
    order_id: UUID
    user_id: UUID
    amount: Money
    gateway_id: str


@register
class PaymentFailed(_PaymentEvent):
    """An order could not be charged: declined, or refused before asking."""

    TYPE = "PaymentFailed"
    order_id: UUID
    user_id: UUID
    amount: Money
    reason: str


@register
class PaymentRefunded(_PaymentEvent):
    """An order's payment was refunded, and why.

    Version 2 adds ``reason`` (the order's cancellation reason), which the customer's
    notification tells."""

    TYPE = "PaymentRefunded"
    VERSION = 2
    payment_id: UUID
    order_id: UUID
    user_id: UUID
    amount: Money
    gateway_id: str
    reason: str = Field(min_length=1, max_length=255)


REFUNDED_BEFORE_V2 = "Order cancelled"
"""The reason a version 1 refund is read with: every refund then was of a cancelled order."""


@register
class PaymentRefundedV1(_PaymentEvent):
    """An order's payment was refunded.

    Version 1, still read (a v1 on the topic or re-driven): upcast with
    :data:`REFUNDED_BEFORE_V2` as its reason."""

    TYPE = "PaymentRefunded"
    VERSION = 1
    payment_id: UUID
    order_id: UUID
    user_id: UUID
    amount: Money
    gateway_id: str

    def upcast(self) -> PaymentRefunded:
        """v2 with `reason` "Order cancelled": every v1 refund was of a cancelled order."""
        return PaymentRefunded(**self.model_dump(), reason=REFUNDED_BEFORE_V2)
