"""An answer typed on a command line (`approved=yes`, `comment=fine`, `patch=@fix.diff`), read by the form."""

from __future__ import annotations

from pathlib import Path

from maestro import codec
from proto.v1.humans import Answer, AnswerForm, FileAnswer

_YES = frozenset({"yes", "y", "true", "approve", "approved", "1"})
_NO = frozenset({"no", "n", "false", "reject", "rejected", "0"})


class BadAnswer(ValueError):
    """A given answer that cannot be read; the text says which part and why."""


def answer_from(form: AnswerForm, pairs: list[str], as_json: str | None = None) -> Answer:
    """The answer `pairs` (`FIELD=VALUE`) give, each value read as its field's kind wants (an approval:
    yes/no, approve/reject, true/false; a file: `@path`), or the JSON object `as_json`; whether it fits the
    form is checked where it is stored."""
    if as_json is not None:
        try:
            return codec.decode(Answer, as_json)
        except codec.DecodeError as exc:
            raise BadAnswer(f"--answer-json: {exc}") from None
    kinds = {f.name: f.kind for f in form.fields}
    answer: Answer = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise BadAnswer(f"{pair[:40]!r}: give FIELD=VALUE (the form's fields: {', '.join(kinds)})")
        kind = kinds.get(name)
        if kind == "approval":
            word = value.strip().lower()
            if word not in _YES | _NO:
                raise BadAnswer(f"{name}: say yes or no (approve or reject), not {value[:40]!r}")
            answer[name] = word in _YES
        elif kind == "file":
            path = Path(value[1:] if value.startswith("@") else value)
            try:
                answer[name] = FileAnswer(name=path.name, content=path.read_text())
            except (OSError, UnicodeDecodeError) as exc:
                raise BadAnswer(f"{name}: cannot read {str(path)[:200]!r}: {exc}") from None
        else:
            answer[name] = value  # a text, a choice, or a field the form lacks (refused, by name, later)
    return answer
