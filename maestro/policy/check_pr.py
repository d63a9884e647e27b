"""Judge a branch's changes with the guard's own engine: only what the change adds is held against it.

Each changed file goes to the engine as a context file whose lines the change did not add are blanked
(emptied, line breaks kept), so line and column numbers are those of the file at HEAD, every finding
stands on an added line, and the engine's verdict is exactly its verdict on the added lines. Families
that judge where and at what cost a task runs (budget, residency) and the request size limit have no
meaning for a diff: they only audit here.

Shell commands the change adds to the files that carry them (scripts, Makefile recipes, Dockerfile
`RUN`, CI `run:`/`script:`, package.json scripts; see commands/carriers.py) go to the same engine and
bundle as a task's `commands` would at run time, in a second request in which only the commands family
enforces (the first already judged those files' text for everything else); each finding is placed back
on the file's line. Pure: git is read by services/guard/tools/check_pr_cli.py.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from maestro import codec
from maestro.policy import engine
from maestro.policy.bundle import Bundle
from maestro.policy.policies.commands import carriers
from proto.v1 import ContextFile, Decision, Role, TaskRequest, Verdict, Violation

TENANT = "ci"
ROLE: Role = "reviewer"
# The CI request carries whole files, and nothing travels over NATS: its size is not a policy matter.
_UNLIMITED_BYTES = 1 << 62

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
_INDEXED = re.compile(r"^context\[(\d+)\](.*)$")
_LINE_COL = re.compile(r"^(?::(\d+))?(?::(\d+))?")
_COMMAND_AT = re.compile(r"^commands\[(\d+)\]:(\d+):(\d+)$")


@dataclass(frozen=True)
class ChangedFile:
    """A file the change added or modified: its text at HEAD and the 1-based numbers of added lines."""

    path: str
    content: str
    added: frozenset[int]


@dataclass(frozen=True)
class Finding:
    """A violation placed in a file: path, 1-based line and column (0 when the rule names none)."""

    path: str
    line: int
    column: int
    violation: Violation


@dataclass(frozen=True)
class Review:
    """The engine's decision on the added lines, and each finding placed on its file and line."""

    decision: Decision
    findings: list[Finding]

    @property
    def verdict(self) -> Verdict:
        """The verdict that decides the exit code (deny fails the check)."""
        return self.decision.verdict


# -- diff ----------------------------------------------------------------------------------------------
def without(files: Iterable[ChangedFile], excludes: Iterable[str]) -> list[ChangedFile]:
    """The files whose path matches none of the globs (`**` spans folders, `*` does not)."""
    patterns = [re.compile(_glob_regex(glob)) for glob in excludes]
    return [f for f in files if not any(p.fullmatch(f.path) for p in patterns)]


def _glob_regex(glob: str) -> str:
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def _unquote(path: str) -> str:
    # git C-quotes a path with unusual characters: "b/caf\303\251.py".
    if len(path) >= 2 and path[0] == path[-1] == '"':
        raw = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        return raw.encode("latin-1").decode("utf-8", "replace")
    return path


def added_lines(diff: str) -> dict[str, set[int]]:
    """The added line numbers of each file in a `git diff --unified=0` patch (new-side paths)."""
    added: dict[str, set[int]] = {}
    current: set[int] | None = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            target = _unquote(line[4:].rstrip("\t"))
            if target == "/dev/null":
                current = None
                continue
            path = target[2:] if target.startswith(("b/", "w/", "i/")) else target
            current = added.setdefault(path, set())
        elif line.startswith("@@") and current is not None:
            hunk = _HUNK.match(line)
            if hunk:
                start, count = int(hunk.group(1)), int(hunk.group(2) or 1)
                current.update(range(start, start + count))
    return added


def only_added(content: str, added: Collection[int]) -> str:
    """`content` with every line not in `added` emptied, its line break kept, so positions stay put."""
    kept: list[str] = []
    for number, line in enumerate(content.splitlines(keepends=True), start=1):
        if number in added:
            kept.append(line)
        else:
            body = line.rstrip("\r\n")
            kept.append(line[len(body) :])
    return "".join(kept)


# -- judging -------------------------------------------------------------------------------------------
def ci_bundle(bundle: Bundle) -> Bundle:
    """`bundle` as check-pr applies it: the ci tenant's policy, budget and residency only auditing."""
    policy = bundle.policy(TENANT)
    changes: dict[str, Any] = {"max_request_bytes": _UNLIMITED_BYTES}
    for family in ("budget", "residency"):
        config = getattr(policy, family, None)
        if config is not None and hasattr(config, "mode"):
            changes[family] = msgspec.structs.replace(config, mode="audit")
    return dataclasses.replace(bundle, default=msgspec.structs.replace(policy, **changes), tenants={})


def request_for(files: Iterable[ChangedFile], base: str = "") -> TaskRequest:
    """The request check-pr judges: one context file per changed file, holding only its added lines."""
    return TaskRequest(
        tenant=TENANT,
        role=ROLE,
        prompt=f"Review the changes of this branch since {base}." if base else "Review this branch.",
        context=[ContextFile(path=f.path, content=only_added(f.content, f.added)) for f in files],
    )


def locate(location: str, paths: list[str]) -> tuple[str, int, int] | None:
    """The (path, line, column) a violation's location names in one of `paths`, or None.

    Understands `context[<index>]`, `context:<path>` and `<path>`, each optionally followed by
    `:<line>` and `:<line>:<column>`.
    """
    indexed = _INDEXED.match(location)
    if indexed:
        index = int(indexed.group(1))
        if index >= len(paths):
            return None
        path, tail = paths[index], indexed.group(2)
    else:
        rest = location.removeprefix("context:")
        matches = [p for p in paths if rest == p or rest.startswith(p + ":")]
        if not matches:
            return None
        path = max(matches, key=len)
        tail = rest[len(path) :]
    numbers = _LINE_COL.match(tail)
    line = int(numbers.group(1) or 0) if numbers else 0
    column = int(numbers.group(2) or 0) if numbers else 0
    return path, line, column


def commands_of(files: Iterable[ChangedFile]) -> list[tuple[str, carriers.Carried]]:
    """The shell commands the change adds, each with the file that carries it."""
    return [(f.path, c) for f in files for c in carriers.carried(f.path, f.content, f.added)]


def commands_bundle(bundle: Bundle) -> Bundle:
    """`ci_bundle(bundle)` with every family but commands only auditing (they judged the files already)."""
    ci = ci_bundle(bundle)
    policy = ci.default
    changes: dict[str, Any] = {}
    for family in ("credentials", "licenses", "residency", "budget"):
        config = getattr(policy, family, None)
        if config is not None and hasattr(config, "mode"):
            changes[family] = msgspec.structs.replace(config, mode="audit")
    return dataclasses.replace(ci, default=msgspec.structs.replace(policy, **changes))


def review(files: list[ChangedFile], bundle: Bundle, base: str = "") -> Review:
    """Judge the added lines of `files` with the engine under `bundle`; never raises on any content."""
    request = request_for(files, base)
    judgement = engine.evaluate(request, len(codec.encode(request)), ci_bundle(bundle))
    decision = judgement.decision
    paths = [f.path for f in files]
    added = {f.path: f.added for f in files}
    findings: list[Finding] = []
    for violation in decision.violations:
        placed = locate(violation.location, paths)
        if placed is None:
            continue  # about the request as a whole (budget, residency): not something the diff added
        path, line, column = placed
        if line and line not in added[path]:
            continue
        findings.append(Finding(path, line, column, violation))
    verdict = decision.verdict if any(f.violation.enforced for f in findings) else "allow"
    shell, shell_verdict = _judge_commands(files, bundle, base)
    findings += shell
    verdict = engine.strictest((verdict, shell_verdict))
    kept = [f.violation for f in findings]
    return Review(msgspec.structs.replace(decision, verdict=verdict, violations=kept), findings)


def _judge_commands(files: list[ChangedFile], bundle: Bundle, base: str) -> tuple[list[Finding], Verdict]:
    """The commands family's findings on the commands the change adds, placed on their lines."""
    carried = commands_of(files)
    if not carried:
        return [], "allow"
    request = msgspec.structs.replace(request_for([], base), commands=[c.text for _, c in carried])
    decision = engine.evaluate(request, len(codec.encode(request)), commands_bundle(bundle)).decision
    added = {f.path: f.added for f in files}
    findings: list[Finding] = []
    for violation in decision.violations:
        m = _COMMAND_AT.match(violation.location)
        if violation.policy != "commands" or not m:
            continue
        path, command = carried[int(m.group(1))]
        row, col = int(m.group(2)), int(m.group(3))
        line = command.line + row - 1
        column = command.column + col if row == 1 else col
        findings.append(Finding(path, line if line in added[path] else command.line, column, violation))
    enforced = any(f.violation.enforced for f in findings)
    return findings, decision.verdict if enforced else "allow"


# -- output --------------------------------------------------------------------------------------------
def position(finding: Finding) -> str:
    """`path:line:col`, leaving out what the rule does not say."""
    where = finding.path
    if finding.line:
        where += f":{finding.line}"
        if finding.column:
            where += f":{finding.column}"
    return where


def level(finding: Finding) -> str:
    """How loudly to report a finding: error, warning or note (audit-only findings are notes)."""
    if not finding.violation.enforced:
        return "note"
    return "error" if finding.violation.severity in ("critical", "high") else "warning"


def text(result: Review) -> str:
    """One line per finding (`path:line:col: rule: message [evidence]`), then the verdict."""
    lines = []
    for f in result.findings:
        v = f.violation
        evidence = f" [{v.evidence}]" if v.evidence else ""
        audit = " (audit)" if not v.enforced else ""
        lines.append(f"{position(f)}: {level(f)}: {v.rule_id}{audit}: {v.message}{evidence}")
        if v.fix and v.enforced:
            lines.append(f"    fix: {v.fix}")
    d = result.decision
    count = len(result.findings)
    lines.append(
        f"check-pr: {d.verdict} ({count} finding{'s' if count != 1 else ''}; "
        f"policy {d.policy_version or '?'} {d.policy_hash[:12]})".rstrip()
    )
    return "\n".join(lines) + "\n"


def as_json(result: Review) -> str:
    """The decision (with only the placed violations) and the findings with their positions, as JSON."""
    document = {
        "decision": msgspec.to_builtins(result.decision),
        "findings": [
            {"path": f.path, "line": f.line, "column": f.column, **msgspec.to_builtins(f.violation)}
            for f in result.findings
        ],
    }
    return msgspec.json.encode(document).decode() + "\n"


def _escape(value: str, *, prop: bool) -> str:
    # GitHub workflow-command escaping; property values also escape ':' and ','.
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return value.replace(":", "%3A").replace(",", "%2C") if prop else value


def github(result: Review) -> str:
    """GitHub Actions workflow commands: one ::error/::warning/::notice per finding, on its line."""
    commands = {"error": "error", "warning": "warning", "note": "notice"}
    lines = []
    for f in result.findings:
        v = f.violation
        props = [f"file={_escape(f.path, prop=True)}"]
        if f.line:
            props.append(f"line={f.line}")
            if f.column:
                props.append(f"col={f.column}")
        props.append(f"title={_escape(v.rule_id, prop=True)}")
        message = v.message + (f" [{v.evidence}]" if v.evidence else "") + (f" Fix: {v.fix}" if v.fix else "")
        lines.append(f"::{commands[level(f)]} {','.join(props)}::{_escape(message, prop=False)}")
    lines.append(f"check-pr: {result.verdict} ({len(result.findings)} findings)")
    return "\n".join(lines) + "\n"
