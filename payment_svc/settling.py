"""Settling with the payment provider, whose money does not roll back with a transaction: each
call by its idempotency key, within a time limit and made again when it fails
(:func:`ask_provider`); a charge begun and not recorded voided and recorded as it was
(:func:`settle_attempt`); a payment refunded (:func:`refund`). What the provider answers is
recorded in the run's :class:`~payment_svc.writes.Writes`."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

from payment_svc import domain
from payment_svc.ports import PaymentProvider, ProviderError, RefundResult
from payment_svc.writes import Cause, Charge, Writes

log = logging.getLogger(__name__)
T = TypeVar("T")

PROVIDER_TRIES = 3
"""A provider call that fails (or outlasts ``PROVIDER_TIMEOUT_S``) is made again at once, this
often in all, before its use case fails: the same key moves no money twice, and a passing error
then costs a retry, not the whole batch applied again one message at a time."""
PROVIDER_TIMEOUT_S = 10.0


class RefundRefusedError(RuntimeError):
    """The provider refused a refund; the message is retried, then dead-lettered."""


async def ask_provider(call: Callable[[], Awaitable[T]], what: str) -> T:
    """``call()`` (a provider call by its key) within its time limit, made again when it fails;
    ProviderError once it failed ``PROVIDER_TRIES`` times."""
    for attempt in range(1, PROVIDER_TRIES + 1):
        try:
            async with asyncio.timeout(PROVIDER_TIMEOUT_S):
                return await call()
        except (ProviderError, TimeoutError) as exc:
            failure = str(exc) or f"no answer within {PROVIDER_TIMEOUT_S:g} s"
            if attempt == PROVIDER_TRIES:
                raise ProviderError(f"{what}: {failure}") from exc
            log.warning("asking the provider again (%s): %s", what, failure)
            await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


async def settle_attempt(
    writes: Writes,
    provider: PaymentProvider,
    attempt: Any,
    *,
    cancellation: str | None,
    cause: Cause,
) -> None:
    """Settle a charge begun and not recorded, from the provider: void it (no capture can
    follow), then record what it was; captured and the order cancelled (``cancellation``: why;
    None while it is not): refunded at once. Records nothing unless every provider call
    succeeded."""
    result = await ask_provider(
        partial(provider.void, attempt.idempotency_key), f"void of order {attempt.order_id}"
    )
    charge = Charge(attempt.order_id, attempt.user_id, attempt.amount)
    cancelled = cancellation is not None
    refunded = None
    if cancelled and result.approved:
        refunded = await _refund_at_provider(provider, charge, result.reference)
    log.warning(
        "settling order %s's charge from the provider: %s%s",
        attempt.order_id,
        "captured" if result.approved else result.decline_reason,
        ", order cancelled: refunded" if refunded else ", order cancelled" if cancelled else "",
    )
    if not cancelled or result.approved:
        payment_id = writes.charged(charge, cause, result)
        if refunded is not None and cancellation is not None:
            writes.refunded(charge, payment_id, refunded, cause, reason=cancellation)
    else:
        writes.settled.append(attempt.order_id)  # nothing was taken, nothing to record


async def refund(
    writes: Writes,
    provider: PaymentProvider,
    charge: Charge,
    payment_id: UUID,
    reference: str,
    cause: Cause,
    *,
    reason: str,
) -> None:
    """Refund a Paid payment (its charge's ``reference``) at the provider, and record it."""
    result = await _refund_at_provider(provider, charge, reference)
    writes.refunded(charge, payment_id, result, cause, reason=reason)


async def _refund_at_provider(
    provider: PaymentProvider, charge: Charge, reference: str
) -> RefundResult:
    result = await ask_provider(
        partial(
            provider.refund,
            reference=reference,
            amount=charge.amount,
            idempotency_key=domain.refund_key(charge.order_id),
        ),
        f"refund of order {charge.order_id}",
    )
    if not result.succeeded:
        raise RefundRefusedError(f"refund of order {charge.order_id} refused: {result.reason}")
    return result
