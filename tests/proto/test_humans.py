"""Human work's wire types: forms and the answers they accept, working hours, people, human roles."""

from __future__ import annotations

from datetime import time

import msgspec
import pytest

from maestro import codec
from proto.v1 import TaskRequest
from proto.v1.humans import (
    DEFAULT_FORM,
    Answer,
    AnswerField,
    AnswerForm,
    FileAnswer,
    HumanWork,
    Person,
    WorkingHours,
    answer_problem,
)
from proto.v1.ids import is_human, queue_of

FORM = AnswerForm(
    fields=[
        AnswerField(name="approved", kind="approval"),
        AnswerField(name="risk", kind="choice", choices=["low", "high"]),
        AnswerField(name="notes", kind="text", required=False),
        AnswerField(name="patch", kind="file", required=False),
    ]
)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"approved": True, "risk": "low"}, None),
        ({"approved": False, "risk": "high", "notes": "", "patch": FileAnswer(name="a.diff")}, None),
        ({"risk": "low"}, "'approved' is required (true (approve) or false (reject))"),
        (
            {"approved": "yes", "risk": "low"},
            "'approved' expects true (approve) or false (reject), got \"yes\"",
        ),
        ({"approved": True, "risk": "none"}, "'risk' expects one of 'low', 'high', got \"none\""),
        ({"approved": True, "risk": "low", "notes": False}, "'notes' expects text, got false"),
        (
            {"approved": True, "risk": "low", "patch": "x"},
            "'patch' expects a file: {name, content}, got \"x\"",
        ),
        ({"approved": True, "risk": "low", "extra": "x"}, "the form has no field 'extra'"),
    ],
)
def test_an_answer_fits_its_form_or_says_which_field_does_not(answer: Answer, problem: str | None) -> None:
    found = answer_problem(FORM, answer)
    assert found == problem if problem is None else found is not None and found.startswith(problem)


def test_a_form_refuses_a_name_twice_a_choice_without_choices_and_choices_on_text() -> None:
    with pytest.raises(ValueError, match="named twice: a"):
        AnswerForm(fields=[AnswerField(name="a", kind="text"), AnswerField(name="a", kind="text")])
    with pytest.raises(ValueError, match="at least two different choices"):
        AnswerField(name="c", kind="choice", choices=["only"])
    with pytest.raises(ValueError, match="only a choice field has choices"):
        AnswerField(name="t", kind="text", choices=["a", "b"])


def test_working_hours_cover_their_days_and_span_midnight() -> None:
    day = WorkingHours(start="09:00", end="17:00", days=[1, 2, 3, 4, 5])
    assert day.covers(1, time(9, 0)) and not day.covers(1, time(17, 0)) and not day.covers(6, time(10))
    night = WorkingHours(start="22:00", end="06:00", days=[5])
    assert night.covers(5, time(23)) and night.covers(6, time(5, 59))  # Friday night into Saturday
    assert not night.covers(5, time(5)) and not night.covers(6, time(23))


def test_a_person_names_a_real_time_zone() -> None:
    assert Person(id="a@b", timezone="Europe/Paris").timezone == "Europe/Paris"
    with pytest.raises(msgspec.ValidationError, match="not an IANA time zone"):
        msgspec.json.decode(b'{"id": "a@b", "timezone": "Mars/Olympus"}', type=Person)


def test_a_human_role_is_a_queue_and_its_request_takes_no_model_commands_or_plan() -> None:
    assert is_human("human:security") and not is_human("tester") and queue_of("human:ops") == "ops"
    request = TaskRequest(tenant="acme", role="human:security", prompt="Sign off")
    assert request.human is None and DEFAULT_FORM.fields[0].kind == "approval"
    for bad in ({"commands": ["ls"]}, {"model": "gpt-4o"}, {"expand": True}):
        with pytest.raises(ValueError, match="runs no commands"):
            TaskRequest(tenant="acme", role="human:security", prompt="x", **bad)
    with pytest.raises(ValueError, match="only for a human queue's task"):
        TaskRequest(tenant="acme", role="tester", prompt="x", human=HumanWork())
    for role in ("human:", "human:Security", "human:a.b", "humans:x", "robot"):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(
                codec.encode({"tenant": "acme", "role": role, "prompt": "x"}), type=TaskRequest
            )
