"""The soak's fault plan: drawn from a seed, every kind of fault in it, kills 30 to 90 s apart."""

import random
from itertools import pairwise

from tests.faults.soak import ONCE, plan


def test_plan_has_every_fault_and_kills_30_to_90_s_apart_when_drawn_for_a_full_run() -> None:
    planned = plan(random.Random(1), 100_000 / 60)

    kinds = [p.kind for p in planned]
    assert all(kinds.count(kind) == 1 for kind in ONCE)
    assert kinds.count("sigterm") >= 1
    kills = [p.at_s for p in planned if p.kind == "kill"]
    assert all(30 <= later - earlier <= 90 for earlier, later in pairwise(kills))
    assert [p.at_s for p in planned] == sorted(p.at_s for p in planned)


def test_plan_is_the_same_when_drawn_again_from_the_same_seed() -> None:
    assert plan(random.Random(7), 600) == plan(random.Random(7), 600)


def test_plan_kills_a_service_when_the_run_is_short() -> None:
    assert any(p.kind == "kill" for p in plan(random.Random(3), 75))
