"""The commit statuses a review posts, each with a one-line summary (pure).

| context | pending | final |
|---|---|---|
| `maestro/check-pr` | never: judged before the workflow starts | success, or failure on deny |
| `maestro/review` | when the workflow starts | the reviewer step's outcome |
| `maestro/test` | when the workflow starts | the tester step's: success only when every command passed |

A step that failed says why (its error's first line); one that was cancelled because a newer head came says
`error` (GitHub's word for "no verdict"), since it judged nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from maestro.github.rest import CommitStatus, StatusState
from maestro.github.review import REVIEW_STEP, TEST_STEP
from maestro.policy.check_pr import Review
from proto.v1 import TaskRecord
from proto.v1.workflows import WorkflowRecord

CHECK_PR = "maestro/check-pr"
REVIEW = "maestro/review"
TEST = "maestro/test"
CONTEXT_OF_STEP = {REVIEW_STEP: REVIEW, TEST_STEP: TEST}


def check_pr(result: Review, link: str | None = None) -> CommitStatus:
    """check-pr's status: failure when the guard denies the added lines, else success; findings counted."""
    enforced = sum(f.violation.enforced for f in result.findings)
    found = len(result.findings)
    if result.verdict == "deny":
        first = result.findings[0] if result.findings else None
        where = f"; first: {first.path}:{first.line} {first.violation.rule_id}" if first else ""
        return CommitStatus(
            CHECK_PR, "failure", f"denied: {enforced} of {found} findings enforced{where}", link
        )
    if found:
        return CommitStatus(CHECK_PR, "success", f"{result.verdict}: {found} findings, none blocking", link)
    return CommitStatus(CHECK_PR, "success", "no findings in the added lines", link)


def pending(workflow_id: str, steps: list[str], link: str | None = None) -> list[CommitStatus]:
    """The statuses of a review that just started: pending for each of its steps."""
    return [
        CommitStatus(CONTEXT_OF_STEP[name], "pending", f"running (workflow {workflow_id})", link)
        for name in steps
        if name in CONTEXT_OF_STEP
    ]


def refused(steps: list[str], reason: str, link: str | None = None) -> list[CommitStatus]:
    """The statuses of a review that could not start (its files too large, say): failure, with why."""
    return [CommitStatus(CONTEXT_OF_STEP[name], "failure", reason, link) for name in steps]


def final(
    record: WorkflowRecord, tasks: Mapping[str, TaskRecord], link: str | None = None
) -> list[CommitStatus]:
    """The statuses of an ended review workflow, one per step it had (`tasks`: step name -> its task)."""
    found: list[CommitStatus] = []
    for step in record.steps:
        context = CONTEXT_OF_STEP.get(step.name)
        if context is None:
            continue
        task = tasks.get(step.name)
        state: StatusState
        match step.state:
            case "succeeded":
                state, text = "success", _first_line(task.output if task else "") or "succeeded"
            case "cancelled":
                state, text = (
                    "error",
                    f"cancelled: {_first_line(record.reason or step.error) or 'no verdict'}",
                )
            case _:
                why = step.error or (task.error if task else "") or (task.reason if task else "")
                state, text = "failure", f"{step.state}: {_first_line(why) or 'no reason given'}"
        found.append(CommitStatus(context, state, text, link))
    return found


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
