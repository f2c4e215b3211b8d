"""Bulk work collects garbage less often, and leaves the process's settings as it found them."""

import gc
import threading

import pytest

from core.garbage_collection import YOUNG_THRESHOLD, fewer_collections


@pytest.fixture(autouse=True)
def _settings_restored():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_inside_older_objects_are_frozen_and_young_collections_wait():
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_cycle_made_inside_is_still_collected():
    class Node:
        pass

    with fewer_collections():
        node = Node()
        node.itself = node
        del node
        assert gc.collect() >= 1


def test_the_settings_come_back_when_the_last_of_overlapping_runs_leaves():
    before = gc.get_threshold()
    first_inside = threading.Event()
    second_inside = threading.Event()
    first_may_leave = threading.Event()
    seen_after_first: list[tuple[int, int, int]] = []

    def first() -> None:
        with fewer_collections():
            first_inside.set()
            first_may_leave.wait(5)

    def second() -> None:
        first_inside.wait(5)
        with fewer_collections():
            second_inside.set()
            first_thread.join(5)
            seen_after_first.append(gc.get_threshold())

    first_thread = threading.Thread(target=first)
    second_thread = threading.Thread(target=second)
    first_thread.start()
    second_thread.start()
    second_inside.wait(5)
    first_may_leave.set()
    second_thread.join(5)
    assert seen_after_first == [(YOUNG_THRESHOLD, before[1], before[2])]
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_settings_come_back_when_the_work_fails():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the run crashed")
    assert gc.get_threshold() == before
