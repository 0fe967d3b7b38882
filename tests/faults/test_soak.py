"""The soak's short form: a few thousand orders under random faults, in ``make faults``."""

import os

import pytest

from tests.faults.conftest import SOAK, chosen_cases
from tests.faults.shop import FaultShop
from tests.faults.soak import soak

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(
        not {"all", SOAK} & set(chosen_cases()), reason="SHOP_FAULTS_CASES has no soak"
    ),
]


def test_nothing_is_lost_or_doubled_when_orders_meet_random_faults(fault_shop: FaultShop) -> None:
    report = soak(
        fault_shop,
        orders=int(os.environ.get("SHOP_SOAK_ORDERS", 3_000)),
        rate=float(os.environ.get("SHOP_SOAK_RATE", 40)),
    )

    assert report.last.lost == 0
    assert report.last.doubled_effects == 0
    assert not report.failed(), [c.problems or c.reconciliation for c in report.checkpoints]
