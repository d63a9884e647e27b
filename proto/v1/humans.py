"""Human work: what a human step asks of a person (a form to answer), the answer, and the people who answer.

A task whose role is a human queue (`human:security`) is done by a person, not an agent: someone with the
queue among their skills claims it (exclusively, for a lease), reads its instructions and inputs, and
completes it with an answer the step's form validates; the answer, as JSON, is the step's output.
"""

from __future__ import annotations

import json
from datetime import datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

from proto.base import Message
from proto.v1.ids import END, QueueName

FIELD_PATTERN = r"^[a-z][a-z0-9_]{0,31}" + END
FieldName = Annotated[
    str, Meta(pattern=FIELD_PATTERN, description="a form field's name: lowercase, digits, `_`")
]
FieldKind = Literal["approval", "choice", "text", "file"]
MAX_TEXT = 64 * 1024
"""The longest text (or file) one field of an answer may hold."""
MAX_LEASE_S = 7 * 86_400.0
MAX_SLA_S = 30 * 86_400.0


class AnswerField(Message, frozen=True):
    """One question of a form: `approval` (true: approve, false: reject), `choice` (one of `choices`),
    `text`, or `file` (a name and its text)."""

    name: FieldName
    kind: FieldKind
    label: Annotated[str, Meta(max_length=1024)] = ""
    """What the person is asked."""
    choices: Annotated[list[Annotated[str, Meta(min_length=1, max_length=256)]], Meta(max_length=50)] = []
    required: bool = True

    def __post_init__(self) -> None:
        if self.kind == "choice" and len(set(self.choices)) < 2:
            raise ValueError(f"field {self.name!r}: a choice needs at least two different choices")
        if self.kind != "choice" and self.choices:
            raise ValueError(f"field {self.name!r}: only a choice field has choices, not a {self.kind}")


class AnswerForm(Message, frozen=True):
    """The answer a human step expects, field by field."""

    fields: Annotated[list[AnswerField], Meta(min_length=1, max_length=20)]

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"form fields named twice: {', '.join(twice)}")


DEFAULT_FORM = AnswerForm(
    fields=[
        AnswerField(name="approved", kind="approval", label="Approve?"),
        AnswerField(name="comment", kind="text", label="Why", required=False),
    ]
)
"""The form of a human step that names none: approve or reject, with an optional comment."""


def form_of(human: HumanWork | None) -> AnswerForm:
    """The form a human task's answer must fit: its own, or DEFAULT_FORM when it names none."""
    return human.form if human is not None else DEFAULT_FORM


class FileAnswer(Message, frozen=True):
    """A file given as an answer: its name and text."""

    name: Annotated[str, Meta(min_length=1, max_length=256)]
    content: Annotated[str, Meta(max_length=MAX_TEXT)] = ""


AnswerValue = bool | Annotated[str, Meta(max_length=MAX_TEXT)] | FileAnswer
Answer = dict[FieldName, AnswerValue]


def answer_problem(form: AnswerForm, answer: Answer) -> str | None:
    """What makes `answer` no answer to `form` (a missing required field, an unknown one, a value of the
    wrong kind, a choice not offered), or None."""
    fields = {f.name: f for f in form.fields}
    unknown = sorted(set(answer) - set(fields))
    if unknown:
        return f"the form has no field {unknown[0]!r} (its fields: {', '.join(fields)})"
    for field in form.fields:
        if field.name not in answer:
            if field.required:
                return f"{field.name!r} is required ({_expects(field)})"
            continue
        value = answer[field.name]
        fits = {
            "approval": isinstance(value, bool),
            "choice": isinstance(value, str) and value in field.choices,
            "text": isinstance(value, str),
            "file": isinstance(value, FileAnswer),
        }[field.kind]
        if not fits:
            return f"{field.name!r} expects {_expects(field)}, got {_shown(value)}"
    return None


def _expects(field: AnswerField) -> str:
    return {
        "approval": "true (approve) or false (reject)",
        "choice": "one of " + ", ".join(repr(c) for c in field.choices),
        "text": "text",
        "file": "a file: {name, content}",
    }[field.kind]


def _shown(value: AnswerValue) -> str:
    if isinstance(value, FileAnswer):
        return f"a file {value.name!r}"
    return json.dumps(value)[:80]


class HumanWork(Message, frozen=True):
    """What a human step asks and how long it may take: its form, how long a claim lasts unless renewed,
    and its SLAs (times to claim and to complete, from being queued and from being claimed)."""

    form: AnswerForm = DEFAULT_FORM
    lease_s: Annotated[float, Meta(ge=5, le=MAX_LEASE_S)] = 1800.0
    """A claim not renewed (`maestro claim` again) or completed within this returns the task to its queue."""
    time_to_claim_s: Annotated[float, Meta(gt=0, le=MAX_SLA_S)] | None = None
    time_to_complete_s: Annotated[float, Meta(gt=0, le=MAX_SLA_S)] | None = None
    on_breach: Literal["notify", "widen", "fail"] = "notify"
    """What a breached SLA does, once: tell the notifier, also offer the task to `escalate_to`'s people, or
    fail the step."""
    escalate_to: QueueName | None = None


class HandOff(Message, frozen=True):
    """Where an agent hands its task when it cannot proceed (its last attempt failed in a way a person can
    judge: tests that fail, an answer that does not validate, an error, a model that refused): the human
    queue, and the step's form, lease and SLAs there. The person's answer is then the task's output."""

    queue: QueueName
    work: HumanWork = HumanWork()


_CLOCK = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]" + END


class WorkingHours(Message, frozen=True):
    """When a person works, in their time zone: from `start` to `end` (HH:MM) on `days` (1 Monday .. 7)."""

    start: Annotated[str, Meta(pattern=_CLOCK)] = "09:00"
    end: Annotated[str, Meta(pattern=_CLOCK)] = "17:00"
    days: Annotated[list[Annotated[int, Meta(ge=1, le=7)]], Meta(min_length=1, max_length=7)] = msgspec.field(
        default_factory=lambda: [1, 2, 3, 4, 5]
    )

    def covers(self, weekday: int, clock: time) -> bool:
        """Whether a moment (ISO weekday, local time) falls in these hours; `end` before `start` spans
        midnight."""
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        if start <= end:
            return weekday in self.days and start <= clock < end
        return (weekday in self.days and clock >= start) or (
            (weekday - 2) % 7 + 1 in self.days and clock < end
        )


PersonId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        pattern=r"^[^\s\x00-\x1f\x7f]+" + END,
        description="who the person is: the subject of the tokens they act with",
    ),
]


class Person(Message, frozen=True):
    """An operator who does human work: the queues they may serve, how many tasks they hold at once, when
    they work, whether they are available now, and whether they lead (may complete or release others'
    claims in their queues)."""

    id: PersonId
    name: Annotated[str, Meta(max_length=256)] = ""
    skills: Annotated[list[QueueName], Meta(max_length=100)] = []
    capacity: Annotated[int, Meta(ge=1, le=100)] = 1
    timezone: Annotated[str, Meta(max_length=64)] = "UTC"
    hours: WorkingHours | None = None
    """None: any time."""
    available: bool = True
    lead: bool = False

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone (Europe/Paris)") from None


class Notification(Message, frozen=True):
    """What the notifier tells the people's tools (a chat, a pager) when a human task breached an SLA: which
    task, of which queue, which SLA, what was done about it, and who held it."""

    task_id: str
    tenant: str
    queue: str
    sla: Literal["claim", "complete"]
    action: Literal["notify", "widen", "fail"]
    at: datetime
    kind: Literal["escalation"] = "escalation"
    to: str | None = None
    held_by: str = ""
    reason: str = ""
