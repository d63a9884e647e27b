"""Subjects built from topics: the typed subject a message is published on is the topic's own subject."""

from __future__ import annotations

import pytest

from maestro import topics


def test_a_typed_subject_names_the_same_subject_as_the_topic() -> None:
    subject = topics.EVENTS.at("acme", "t-1")
    assert subject.name == topics.EVENTS.subject("acme", "t-1") == "maestro.v1.evt.acme.t-1"
    assert topics.EVENTS.at("acme", "t-1") == topics.EVENTS.at("acme", "t-1")


@pytest.mark.parametrize("values", [("acme",), ("acme", "t.1"), ("acme", "*"), ("acme", "")])
def test_a_typed_subject_refuses_what_the_topic_refuses(values: tuple[str, ...]) -> None:
    with pytest.raises(topics.SubjectError):
        topics.EVENTS.at(*values)
