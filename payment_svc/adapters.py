"""The default payment provider: a simulated card processor that keeps its own durable ledger.

It stands where a real provider (a Stripe-like HTTP API) would, and behaves as one does where it
matters to payment_svc: it keeps a ledger of its own, outside payment_svc's database (a database
of its own, ``payment_provider`` by default, on the same server), so money it moved is on record
whether or not payment_svc recorded it; it answers a key it has seen with its first answer; a
charge can be looked up and voided by its key. Its decisions follow from the card token alone
(``tok_decline`` is declined, any other well-formed token approved).

Faults can be switched on to test what happens when the provider misbehaves (:class:`Faults`):
from the environment (``PAYMENT_PROVIDER_FAULTS``), by a test, or at run time with
``python -m stack provider-faults SPEC``, which writes the ledger's ``faults`` row; a running
provider reads that row at most once a second.
"""

import asyncio
import hashlib
import logging
import math
import random
import re
import time
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from common.db import ensure_database, libpq_url
from payment_svc.ports import (
    CAPTURED,
    DECLINED,
    VOIDED,
    ChargeRecord,
    ChargeResult,
    ProviderError,
    RefundResult,
)

log = logging.getLogger(__name__)

DECLINING_TOKEN = "tok_decline"  # noqa: S105 (a test card, not a secret)
"""The documented token that the simulator always declines; ``tok_visa`` (and any other
well-formed token) is approved."""
CARD_DECLINED = "card declined"
MALFORMED_TOKEN = "invalid card token"  # noqa: S105 (a reason, not a secret)
VOIDED_REASON = "the charge was voided"
TIMEOUT_S = 2.0
"""How long a call that times out (``timeout_after_capture``) hangs before it fails."""
FAULTS_READ_EVERY_S = 1.0
SLOWEST_MS = 30_000

_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{1,255}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    key text PRIMARY KEY,
    amount numeric(12, 2) NOT NULL,
    token text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('captured', 'declined', 'voided')),
    reason text,
    reference text NOT NULL UNIQUE,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS refunds (
    key text PRIMARY KEY,
    charge_reference text NOT NULL REFERENCES charges (reference),
    amount numeric(12, 2) NOT NULL CHECK (amount > 0),
    reference text NOT NULL UNIQUE,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS refunds_charge_reference ON refunds (charge_reference);
CREATE TABLE IF NOT EXISTS faults (
    id int PRIMARY KEY CHECK (id = 1),
    spec text NOT NULL
);
"""
"""The provider's ledger: every charge (captured, declined or voided) and refund by its key."""


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


@dataclass(frozen=True)
class Faults:
    """How the simulated provider misbehaves; shares are of calls, 0 to 1."""

    error_after_capture: float = 0.0
    """Captures the money, then raises (as if its answer were lost)."""
    timeout_after_capture: float = 0.0
    """Captures the money, then hangs for ``TIMEOUT_S`` and raises."""
    unavailable: float = 0.0
    """Raises before doing anything (any call: charge, refund, retrieve, void)."""
    slow_ms: int = 0
    """Every call takes this much longer."""

    @classmethod
    def parse(cls, spec: str) -> "Faults":
        """``error_after_capture=0.2,slow_ms=50``; empty or ``off`` for none. Raises ValueError
        naming what it cannot read."""
        spec = spec.strip()
        if spec in ("", "off"):
            return cls()
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for part in spec.split(","):
            name, _, raw = part.strip().partition("=")
            if name not in known:
                raise ValueError(f"unknown provider fault {name!r} (known: {', '.join(known)})")
            try:
                value = int(raw) if name == "slow_ms" else float(raw)
            except ValueError:
                raise ValueError(f"provider fault {name} needs a number, not {raw!r}") from None
            top = SLOWEST_MS if name == "slow_ms" else 1
            if not math.isfinite(value) or not 0 <= value <= top:
                raise ValueError(f"provider fault {name} must be within 0 and {top}, not {raw}")
            values[name] = value
        return cls(**values)

    def spec(self) -> str:
        parts = [f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name)]
        return ",".join(parts) or "off"


class SimulatedProvider:
    """The default :class:`~payment_svc.ports.PaymentProvider`; see the module docstring."""

    def __init__(self, ledger_url: str, faults: Faults | None = None, *, seed: int | None = None):
        self._url = ledger_url
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]] = AsyncConnectionPool(
            libpq_url(ledger_url),
            connection_class=psycopg.AsyncConnection[DictRow],
            min_size=0,
            max_size=4,
            kwargs={"autocommit": True, "row_factory": dict_row},
            open=False,
            name="payment-provider",
        )
        self.faults = faults or Faults()
        self._own_faults = self.faults
        self._from_ledger = False
        self._faults_read = float("-inf")
        self._random = random.Random(seed)

    async def open(self) -> None:
        await ensure_database(self._url)
        await self._pool.open()
        async with self._pool.connection() as conn:
            await conn.execute(SCHEMA)

    async def close(self) -> None:
        await self._pool.close()

    async def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> ChargeResult:
        await self._misbehave_first()
        reason = simulated_decline_reason(token)
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO charges (key, amount, token, outcome, reason, reference)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING"
                " RETURNING amount, outcome, reason, reference",
                (
                    idempotency_key,
                    amount,
                    token,
                    DECLINED if reason else CAPTURED,
                    reason,
                    simulated_reference(idempotency_key),
                ),
            )
            row = await cursor.fetchone() or await self._charge_row(conn, idempotency_key)
        if row is None:
            raise ProviderError(f"charge {idempotency_key} vanished from the ledger")
        if row["outcome"] != VOIDED and row["amount"] != amount:
            raise ProviderError(
                f"idempotency key {idempotency_key} was used for {row['amount']}, not {amount}"
            )
        result = _result(row)
        if result.approved:
            await self._misbehave_after_capture()
        return result

    async def refund(
        self, *, reference: str, amount: Decimal, idempotency_key: str
    ) -> RefundResult:
        """Refund up to what the charge captured, less what was refunded before."""
        await self._misbehave_first()
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT 1 FROM charges WHERE reference = %s FOR UPDATE", (reference,)
            )  # refunds of one charge one after another: none passes the captured amount
            cursor = await conn.execute(
                "INSERT INTO refunds (key, charge_reference, amount, reference)"
                " SELECT %(key)s, %(charge)s, %(amount)s, %(reference)s"
                " FROM charges c WHERE c.reference = %(charge)s AND c.outcome = 'captured'"
                " AND c.amount >= %(amount)s + (SELECT coalesce(sum(r.amount), 0) FROM refunds r"
                "  WHERE r.charge_reference = %(charge)s)"
                " ON CONFLICT (key) DO NOTHING RETURNING reference",
                {
                    "key": idempotency_key,
                    "charge": reference,
                    "amount": amount,
                    "reference": simulated_reference(idempotency_key),
                },
            )
            row = await cursor.fetchone()
            if row is None:  # asked before, or refused
                cursor = await conn.execute(
                    "SELECT reference, charge_reference, amount FROM refunds WHERE key = %s",
                    (idempotency_key,),
                )
                row = await cursor.fetchone()
                if row is None or row["charge_reference"] != reference:
                    return RefundResult(
                        succeeded=False,
                        reference="",
                        reason="no captured charge with that reference and that much left",
                    )
        return RefundResult(succeeded=True, reference=row["reference"])

    async def retrieve(self, idempotency_key: str) -> ChargeResult | None:
        await self._misbehave_first()
        async with self._pool.connection() as conn:
            row = await self._charge_row(conn, idempotency_key)
        return None if row is None else _result(row)

    async def void(self, idempotency_key: str) -> ChargeResult:
        await self._misbehave_first()
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO charges (key, amount, token, outcome, reason, reference)"
                " VALUES (%s, 0, '', %s, %s, %s) ON CONFLICT (key) DO NOTHING",
                (
                    idempotency_key,
                    VOIDED,
                    VOIDED_REASON,
                    simulated_reference(idempotency_key),
                ),
            )
            row = await self._charge_row(conn, idempotency_key)
        if row is None:
            raise ProviderError(f"charge {idempotency_key} vanished from the ledger")
        return _result(row)

    async def charges(self) -> list[ChargeRecord]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT c.key, c.outcome, c.amount, c.reference,"
                " coalesce(sum(r.amount), 0) AS refunded, count(r.key) AS refunds"
                " FROM charges c LEFT JOIN refunds r ON r.charge_reference = c.reference"
                " GROUP BY c.key"
            )
            rows = await cursor.fetchall()
        return [
            ChargeRecord(
                idempotency_key=row["key"],
                outcome=row["outcome"],
                amount=row["amount"],
                reference=row["reference"],
                refunded=row["refunded"],
                refunds=row["refunds"],
            )
            for row in rows
        ]

    async def _charge_row(
        self, conn: "psycopg.AsyncConnection[DictRow]", key: str
    ) -> DictRow | None:
        cursor = await conn.execute(
            "SELECT amount, outcome, reason, reference FROM charges WHERE key = %s", (key,)
        )
        return await cursor.fetchone()

    async def _misbehave_first(self) -> None:
        faults = await self._current_faults()
        if faults.slow_ms:
            await asyncio.sleep(faults.slow_ms / 1000)
        if self._happens(faults.unavailable):
            raise ProviderError("the payment provider is unavailable (simulated)")

    async def _misbehave_after_capture(self) -> None:
        faults = self.faults
        if self._happens(faults.error_after_capture):
            raise ProviderError("the payment provider failed after capturing (simulated)")
        if self._happens(faults.timeout_after_capture):
            await asyncio.sleep(TIMEOUT_S)
            raise ProviderError("the payment provider timed out after capturing (simulated)")

    def _happens(self, share: float) -> bool:
        return share > 0 and self._random.random() < share

    async def _current_faults(self) -> Faults:
        """The ledger's ``faults`` row when it has one (read at most once a second), else the
        faults this provider was started with (a test may set ``faults`` meanwhile)."""
        now = time.monotonic()
        if now - self._faults_read < FAULTS_READ_EVERY_S:
            return self.faults
        self._faults_read = now
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT spec FROM faults WHERE id = 1")
            row = await cursor.fetchone()
        if row is not None:
            try:
                self._switch(Faults.parse(row["spec"]), from_ledger=True)
            except ValueError as exc:
                log.warning("ignoring the ledger's faults row: %s", exc)
        elif self._from_ledger:  # the row is gone (reset): back to this provider's own
            self._switch(self._own_faults, from_ledger=False)
        return self.faults

    def _switch(self, faults: Faults, *, from_ledger: bool) -> None:
        if faults != self.faults:
            log.warning("provider faults now: %s", faults.spec())
        self.faults = faults
        self._from_ledger = from_ledger


async def set_faults(ledger_url: str, faults: Faults | None) -> None:
    """Switch a running simulated provider's faults (every replica's, within a second); None
    gives each process back the faults it was started with."""
    await ensure_database(ledger_url)
    async with await psycopg.AsyncConnection.connect(
        libpq_url(ledger_url), autocommit=True
    ) as conn:
        await conn.execute(SCHEMA)
        if faults is None:
            await conn.execute("DELETE FROM faults")
            return
        await conn.execute(
            "INSERT INTO faults (id, spec) VALUES (1, %s)"
            " ON CONFLICT (id) DO UPDATE SET spec = excluded.spec",
            (faults.spec(),),
        )


def _result(row: dict[str, Any]) -> ChargeResult:
    return ChargeResult(
        approved=row["outcome"] == CAPTURED,
        reference=row["reference"],
        decline_reason=None if row["outcome"] == CAPTURED else row["reason"],
    )
