"""The simulated payment provider, from the launcher: its faults switched for every payment_svc
at once, and its ledger reconciled with payment_svc's payments, order by order. Its settings
are payment_svc's own, so that the launcher reaches the same ledger and database."""

import asyncio
import sys

from pydantic import ValidationError

from common.settings import refusal
from payment_svc.adapters import Faults, set_faults
from payment_svc.app import create_provider
from payment_svc.reconcile import reconcile as compare_ledgers
from payment_svc.settings import Settings as PaymentSettings
from stack.config import StackConfig


def reconcile(config: StackConfig) -> int:
    """Compare the payment provider's ledger with payment_svc's payments; 1 if they differ."""
    settings = payment_settings(config)
    found = asyncio.run(_reconcile(settings))
    for line in found:
        print(line)
    print(f"{len(found)} difference(s) between the provider's ledger and payment_svc")
    return 1 if found else 0


async def _reconcile(settings: PaymentSettings) -> list[str]:
    provider = create_provider(settings)
    await provider.open()
    try:
        return await compare_ledgers(settings.service_database_url(), provider)
    finally:
        await provider.close()


def provider_faults(config: StackConfig, spec: str) -> int:
    """Switch the simulated provider's faults (every payment_svc reads them within a second);
    ``reset`` gives them back to each process's PAYMENT_PROVIDER_FAULTS."""
    try:
        faults = None if spec == "reset" else Faults.parse(spec)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    asyncio.run(set_faults(payment_settings(config).provider_ledger_url(), faults))
    print(f"provider faults: {'as PAYMENT_PROVIDER_FAULTS' if faults is None else faults.spec()}")
    return 0


def payment_settings(config: StackConfig) -> PaymentSettings:
    try:
        return PaymentSettings(database_url=config.database_url)
    except ValidationError as exc:  # by name, never with the values (a password among them)
        raise SystemExit(refusal(PaymentSettings.service_name, exc)) from None
