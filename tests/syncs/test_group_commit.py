"""When a group commit is due: by members or by time, and, while the previous group is still
being written, only once GATHER_WHILE_WRITING groups' worth wait (the run does not stop sending
for the write)."""

from concurrent.futures import Future

from syncs.engine.checkpoint import Checkpoint
from syncs.engine.group_commit import GATHER_WHILE_WRITING, GroupCommit

GROUP = 150


def answered() -> Checkpoint:
    return Checkpoint(run_id=1, interruptions=0, sync_id=1, counts={"added": 75})


def gathered(members: int, *, seconds: float = 3600.0) -> GroupCommit:
    group = GroupCommit(members=GROUP, seconds=seconds, off_thread=False)
    for _ in range(members // 75):
        group.add(answered(), 75)
    return group


def test_a_group_is_due_once_it_holds_its_members():
    assert not gathered(75).due()
    assert gathered(GROUP).due()


def test_a_group_is_due_once_its_oldest_batch_waited_long_enough():
    assert gathered(75, seconds=0.0).due()


def test_nothing_gathered_is_never_due():
    assert not GroupCommit(members=GROUP, seconds=0.0, off_thread=False).due()


def test_while_the_previous_group_is_written_the_next_gathers_on_up_to_its_limit():
    group = gathered(GROUP)
    group._writing = Future()  # the previous group, still being written
    assert not group.due()
    while group.pending_members < GATHER_WHILE_WRITING * GROUP:
        group.add(answered(), 75)
        assert group.due() == (group.pending_members >= GATHER_WHILE_WRITING * GROUP)
    assert group.due()


def test_once_the_previous_write_is_done_a_full_group_is_due_again():
    group = gathered(GROUP)
    writing: Future[str | None] = Future()
    group._writing = writing
    assert not group.due()
    writing.set_result("running")
    assert group.due()
