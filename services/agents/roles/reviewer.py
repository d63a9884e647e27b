"""The reviewer: the guard's credential, license and command families over the change, plus the model's
review, as findings at `path:line` with a severity and a verdict (approve / changes_requested).

The change is what the steps it needs carried (their diff from the project files); with none, every
project file is reviewed as if it were new. The output is a readable summary then the Review as JSON
(also the artifact `review.json`); it passes the changes it received on.
"""

from __future__ import annotations

import msgspec

from maestro.policy.bundle import Bundle
from proto.v1 import ContextFile, TaskRequest, Usage
from proto.v1.work import ModelReview, Review, ReviewFinding
from services.agents import patches
from services.agents.backends import structured
from services.agents.backends.base import Backend
from services.agents.roles.base import RoleResult, invalid
from services.agents.roles.changes import Tree, prompt_of, tree_or_failure
from services.agents.roles.policy import review_change, shipped_bundle
from services.agents.sandbox import Sandbox

REVIEW_PATH = "review.json"
SYSTEM = (
    "You are the reviewer of a software team. Review the change (a unified diff after the task) to the "
    "project's files (each after a `--- file: <path>` line): bugs, missing tests, unclear code, security. "
    "Answer `findings`, each with the `path`, the `line` in the new file (0 for the whole file), a "
    "`severity` (`error`: must be fixed before merging; `warning`; `note`) and a `message`; and `summary`."
)


def _change(tree: Tree) -> tuple[str, dict[str, str], dict[str, set[int]]]:
    """The diff under review, the files it leaves, and the lines it adds to each."""
    diff = patches.diff(tree.base, tree.files)
    if diff:
        return diff, tree.files, patches.added_lines(diff)
    everything = {p: set(range(1, len(c.splitlines()) + 1)) for p, c in tree.files.items()}
    return patches.diff({}, tree.files), tree.files, everything


def verdict_of(findings: list[ReviewFinding], blocking: bool) -> Review:
    """changes_requested when the guard would refuse the change or any finding is an error, else approve."""
    bad = blocking or any(f.severity == "error" for f in findings)
    return Review(verdict="changes_requested" if bad else "approve", findings=findings)


def text(review: Review) -> str:
    """The review for a reader: files, verdict, one line per finding (`path:line: severity: message`)."""
    lines = [f"Reviewed {len(review.files)} files: {', '.join(review.files)}", f"Verdict: {review.verdict}"]
    if review.findings:
        lines.append(f"Findings ({len(review.findings)}):")
        for f in review.findings:
            where = f"{f.path}:{f.line}" if f.line else f.path
            rule = f" [{f.rule}]" if f.rule else ""
            lines.append(f"- {where}: {f.severity}: {f.message}{rule}")
    else:
        lines.append("Findings: none")
    if review.summary:
        lines += ["", f"Summary: {review.summary}"]
    return "\n".join(lines)


async def run(
    request: TaskRequest, backend: Backend, sandbox: Sandbox, bundle: Bundle | None = None
) -> RoleResult:
    """Judge the change with the guard's families and ask the model for its review; ok whatever the verdict
    (the verdict is the review's answer, not a failure of the task)."""
    tree = tree_or_failure(request)
    if isinstance(tree, RoleResult):
        return tree
    if not tree.files:
        return RoleResult(
            ok=True, output="Nothing to review: no files were given.", usage=Usage(model="none")
        )
    diff, files, added = _change(tree)
    policy = review_change(files, added, bundle or shipped_bundle())
    prompt = prompt_of(f"{request.prompt}\n\nThe change under review:\n```diff\n{diff}```", tree)
    try:
        answer = await structured.ask(backend, "reviewer", prompt, request.model, ModelReview, system=SYSTEM)
    except structured.InvalidAnswer as exc:
        return invalid(str(exc), exc.usage)
    findings = [*policy.findings, *answer.value.findings]
    review = msgspec.structs.replace(
        verdict_of(findings, policy.blocking),
        summary=answer.value.summary,
        files=sorted(p for p in added if added[p]),
        policy_version=policy.policy_version,
    )
    document = msgspec.json.format(msgspec.json.encode(review)).decode() + "\n"
    parts = [text(review), f"```json\n{document}```\n", tree.carried()]
    output = "\n\n".join(p for p in parts if p)
    return RoleResult(
        ok=True, output=output, usage=answer.usage, files=[ContextFile(path=REVIEW_PATH, content=document)]
    )
