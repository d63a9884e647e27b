"""An answer typed on the command line, read field by field as the form says."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro.desk.answers import BadAnswer, answer_from
from proto.v1.humans import FileAnswer
from tests.proto.test_humans import FORM  # the same four kinds of field


def test_each_value_is_read_as_its_field_wants(tmp_path: Path) -> None:
    (tmp_path / "fix.diff").write_text("--- a\n+++ b\n")
    answer = answer_from(
        FORM, ["approved=Reject", "risk=low", "notes=a=b, fine", f"patch=@{tmp_path / 'fix.diff'}"]
    )
    assert answer == {
        "approved": False,
        "risk": "low",
        "notes": "a=b, fine",
        "patch": FileAnswer(name="fix.diff", content="--- a\n+++ b\n"),
    }
    assert answer_from(FORM, ["approved=yes"]) == {"approved": True}


def test_json_is_taken_whole() -> None:
    assert answer_from(FORM, [], '{"approved": true, "risk": "high"}') == {"approved": True, "risk": "high"}


@pytest.mark.parametrize(
    ("pairs", "as_json", "said"),
    [
        (
            ["approved"],
            None,
            "'approved': give FIELD=VALUE (the form's fields: approved, risk, notes, patch)",
        ),
        (["approved=maybe"], None, "approved: say yes or no (approve or reject), not 'maybe'"),
        (["patch=@/nowhere/x.diff"], None, "patch: cannot read '/nowhere/x.diff'"),
        ([], "{not json", "--answer-json:"),
        ([], '{"approved": [1]}', "--answer-json:"),
    ],
)
def test_what_cannot_be_read_says_which_part(pairs: list[str], as_json: str | None, said: str) -> None:
    with pytest.raises(BadAnswer) as caught:
        answer_from(FORM, pairs, as_json)
    assert str(caught.value).startswith(said)
