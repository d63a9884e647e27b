"""What the agents' roles ask a model for and what they hand back to users: the answers a model must give
(validated against their JSON Schema) and the reports a user parses (a tester's `test-report.json`, a
reviewer's `review.json`), which write every field, defaults too."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from proto.base import Message
from proto.v1.tasks import ContextFile

MAX_FILES = 200
"""The most files one answer may write."""
MAX_COMMANDS = 20
"""The most commands one answer may propose."""
MAX_FINDINGS = 500
"""The most findings one review holds."""

Text = Annotated[str, Meta(max_length=1024 * 1024)]


class FileChanges(Message, frozen=True):
    """A model's answer to a role that changes files (scaffolder, implementer, doc-writer): whole files, a
    unified diff against the context files, or both (the diff is applied first)."""

    summary: Annotated[str, Meta(max_length=4096)] = ""
    """What the change does, in a sentence or two."""
    files: Annotated[list[ContextFile], Meta(max_length=MAX_FILES)] = []
    """Each file it creates or rewrites, with its whole new content."""
    diff: Text = ""
    """A unified diff (`--- a/path`, `+++ b/path`, hunks) against the context files as given."""
    commands: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=4096)]], Meta(max_length=MAX_COMMANDS)
    ] = []
    """Shell commands that check the change (`python -m pytest -q`); the guard's commands family judges
    each before it runs."""


ReviewSeverity = Literal["error", "warning", "note"]
"""How much a finding matters: an `error` asks for changes, a `warning` should be fixed, a `note` informs."""


class ReviewFinding(Message, frozen=True, omit_defaults=False):
    """One thing a review found: where (`path:line`, line 0 for the whole file), how bad and what."""

    path: Annotated[str, Meta(max_length=4096)]
    message: Annotated[str, Meta(min_length=1, max_length=4096)]
    line: Annotated[int, Meta(ge=0)] = 0
    severity: ReviewSeverity = "warning"
    rule: Annotated[str, Meta(max_length=256)] = ""
    """The guard's rule id for a policy finding (`licenses.denied`), empty for the model's own."""


class ModelReview(Message, frozen=True):
    """A model's answer to the reviewer: its findings and a short summary."""

    summary: Annotated[str, Meta(max_length=4096)] = ""
    findings: Annotated[list[ReviewFinding], Meta(max_length=MAX_FINDINGS)] = []


ReviewVerdict = Literal["approve", "changes_requested"]


class Review(Message, frozen=True, omit_defaults=False):
    """What a reviewer hands back (its output, as JSON): the verdict and every finding, the guard's
    (credentials, licenses, commands) and the model's."""

    verdict: ReviewVerdict
    findings: list[ReviewFinding] = []
    summary: str = ""
    files: list[str] = []
    """The files reviewed."""
    policy_version: str = ""
    """The version of the policy bundle the guard's families judged the change by."""


CaseOutcome = Literal["passed", "failed", "errored", "skipped"]


class JUnitCase(Message, frozen=True, omit_defaults=False):
    """One test a JUnit XML report names, and how it ended."""

    name: str
    """`<classname>::<name>`, as the report gives them."""
    outcome: CaseOutcome
    message: str = ""
    """The failure's or error's message, cut short."""


class CommandRun(Message, frozen=True, omit_defaults=False):
    """How one of a tester's commands ended."""

    command: str
    exit_code: int
    timed_out: bool = False
    tail: str = ""
    """The end of its output, kept when it failed."""


class TesterReport(Message, frozen=True, omit_defaults=False):
    """A tester's report (`test-report.json`): each command's end and the tests its JUnit XML reports
    named, with their counts."""

    commands: list[CommandRun] = []
    passed: int = 0
    failed: int = 0
    errored: int = 0
    skipped: int = 0
    tests: list[JUnitCase] = []
