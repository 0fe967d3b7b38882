"""The garbage collector's setup in a service process: pauses counted, startup heap frozen."""

import gc
from collections.abc import Iterator

import pytest

from common import collector


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # this test process is not a service: give its objects back to the collector


def test_collections_and_their_pauses_are_counted() -> None:
    collector.count_pauses()
    collector.count_pauses()  # once per process, however often it is asked
    before = collector.counters()

    gc.collect()

    after = collector.counters()
    assert after["gc_full_collections_total"][0] == before["gc_full_collections_total"][0] + 1
    assert after["gc_collections_total"][0] == before["gc_collections_total"][0] + 1
    assert after["gc_full_pause_seconds_total"][0] > before["gc_full_pause_seconds_total"][0]
    assert gc.callbacks.count(collector._track) == 1


def test_the_startup_heap_is_frozen_out_of_full_collections(unfrozen: None) -> None:
    kept = [{"n": n} for n in range(10_000)]
    gc.collect()
    walked = len(gc.get_objects(generation=2))

    collector.freeze_startup_heap()

    assert collector.gauges()["gc_frozen_objects"][0] >= walked >= len(kept)
    assert len(gc.get_objects(generation=2)) < walked - len(kept)
