"""Open tasks as a gauge counts them, noted from task records that may come in any order: the leading
orchestrator replica's own writes, the other replicas' news of theirs, and records read back from the tasks
bucket when it takes the lead."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

from maestro.overdue import time_out_at
from proto.v1 import TaskRecord, Written

V = TypeVar("V")

CLOSED_KEPT = 65_536
"""How many closed tasks are remembered, so that an older note of one (still open) that comes late is
dropped: notes of one task from two replicas come moments apart, never thousands of tasks apart."""


class OpenTasks(Generic[V]):
    """Each open task's value (what a gauge needs of it), by task id. Of two notes of one task, the one of the
    higher event sequence wins; a note of None closes the task."""

    def __init__(self, closed_kept: int = CLOSED_KEPT) -> None:
        self._open: dict[str, tuple[int, V]] = {}
        self._closed: OrderedDict[str, int] = OrderedDict()
        self._closed_kept = closed_kept

    def note(self, task_id: str, seq: int, value: V | None) -> None:
        """A record of the task at event sequence `seq`: open with `value`, or closed (None)."""
        opened = self._open.get(task_id)
        if (opened is not None and opened[0] > seq) or self._closed.get(task_id, -1) > seq:
            return
        if value is not None:
            self._open[task_id] = (seq, value)
            self._closed.pop(task_id, None)
            return
        self._open.pop(task_id, None)
        self._closed[task_id] = seq
        self._closed.move_to_end(task_id)
        while len(self._closed) > self._closed_kept:
            self._closed.popitem(last=False)

    def seq_of(self, task_id: str) -> int | None:
        """The event sequence of an open task's latest note; None when it is not open."""
        opened = self._open.get(task_id)
        return None if opened is None else opened[0]

    def ids(self) -> list[str]:
        """The open tasks."""
        return list(self._open)

    def values(self) -> Iterator[V]:
        """What was noted of each open task."""
        return (value for _, value in self._open.values())

    def __len__(self) -> int:
        return len(self._open)

    def clear(self) -> None:
        """Forget everything (the replica no longer leads)."""
        self._open.clear()
        self._closed.clear()


def written(record: TaskRecord) -> Written:
    """What the gauges of open tasks need of a record just written."""
    return Written(
        task_id=record.id,
        seq=record.last_event_seq,
        state=record.state,
        role=record.role or "",
        deadline=time_out_at(record) if record.state == "running" else None,
    )
