"""The deploy gate's judgement: may this commit be deployed, given its tester tasks? Pure: no I/O.

A commit is proved by a tester task of the tenant carrying the labels `repo` and `commit` (exactly the asked
ones) that succeeded at most `max_age_s` ago under a guard decision that names its policy bundle (version and
hash): the bundle in force when the guard let it run. The rules, in order:

1. Only the tenant's tester tasks with both labels equal to the asked ones count; every other task is unseen.
2. The newest success within the max age (by when it finished) that has its guard decision on record proves
   the commit: `allowed`, unless a tester task of the same commit *failed or timed out after it* (finished
   later): then `failed`. The latest verdict of a test run on the same code wins, so a failure after a
   success stops a deploy until the tests pass again; a run cancelled or refused after it does not, since
   it tested nothing. A task still running beside the success does not hold the deploy back.
3. Without such a success, the newest task (by creation) gives the reason: `running` (pending, queued or
   running), `failed` (failed, timed out, cancelled), `stale` (succeeded too long ago), `not_allowed` (the
   guard rejected it or it awaits a human's approval; or it succeeded but its guard decision is no longer
   on record, so no policy can be shown for it).
4. No task at all: `no_test`.

`running` and `no_test` may still change by themselves: `maestro gate deploy --wait` waits on those only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from maestro.errors import MaestroError
from proto.v1 import Decision, TaskRecord
from proto.v1.gates import (
    COMMIT_LABEL,
    COMMIT_PATTERN,
    MAX_AGE_LIMIT_S,
    REPO_LABEL,
    REPO_PATTERN,
    GateAnswer,
    GateOutcome,
)
from proto.v1.ids import TENANT_PATTERN

DEFAULT_MAX_AGE_S = 86_400.0
"""How long ago, at most, the proving task may have finished unless the caller says otherwise: a day."""
ROLE = "tester"
"""The role whose tasks prove a commit."""
WAITED: frozenset[GateOutcome] = frozenset({"no_test", "running"})
"""The outcomes that may change without anyone doing anything but wait."""
IN_PROGRESS = frozenset({"pending", "queued", "running"})
VETOES = frozenset({"failed", "timed_out"})
"""The ends of a run after a success that stop a deploy: its tests ran and did not pass."""

_COMMIT = re.compile(COMMIT_PATTERN)
_REPO = re.compile(REPO_PATTERN)
_TENANT = re.compile(TENANT_PATTERN)


class BadAsk(MaestroError):
    """A question the gate cannot answer (a short or malformed SHA, an empty repository); `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Ask:
    """One question to the gate: may `commit` of `repo` be deployed in `tenant`?"""

    tenant: str
    repo: str
    commit: str
    max_age_s: float

    @classmethod
    def checked(cls, tenant: str, repo: str, commit: str, max_age_s: float) -> Ask:
        """A checked Ask; raises BadAsk naming the first field that is wrong (a commit in capitals too: the
        labels hold it in lowercase, as git prints it)."""
        if not _TENANT.match(tenant):
            raise BadAsk("tenant", f"not a tenant name: {tenant[:64]!r}")
        if not _REPO.match(repo):
            raise BadAsk(
                "repo", f"not a repository name (printable, no spaces, 1-256 characters): {repo[:64]!r}"
            )
        if not _COMMIT.match(commit):
            raise BadAsk("commit", f"not a full commit SHA (40 or 64 lowercase hex digits): {commit[:72]!r}")
        if not 0 < max_age_s <= MAX_AGE_LIMIT_S:
            raise BadAsk(
                "max_age_s", f"{max_age_s:g} is not above 0 and at most {MAX_AGE_LIMIT_S:g} s (a year)"
            )
        return cls(tenant, repo, commit, max_age_s)

    @property
    def labels(self) -> dict[str, str]:
        """The labels a tester task for this commit carries."""
        return {REPO_LABEL: self.repo, COMMIT_LABEL: self.commit}


def proves(record: TaskRecord, ask: Ask) -> bool:
    """Whether `record` is one of the tester tasks the gate weighs for `ask` (whatever its state)."""
    return (
        record.tenant == ask.tenant
        and record.role == ROLE
        and record.labels.get(REPO_LABEL) == ask.repo
        and record.labels.get(COMMIT_LABEL) == ask.commit
    )


def judge(
    records: Iterable[TaskRecord], decisions: Mapping[str, Decision], ask: Ask, now: datetime
) -> GateAnswer:
    """The gate's answer for `ask` at `now`, from task records (any; those that do not prove `ask` are left
    out) and the guard's decisions that queued them, by task id (a task missing here has none on record)."""
    tests = sorted(
        (r for r in records if proves(r, ask)), key=lambda r: (_utc(r.created_at), r.id), reverse=True
    )
    if not tests:
        return _answer(
            ask, "no_test", f"no tester task for {ask.repo} at {ask.commit} in tenant {ask.tenant}"
        )
    oldest = _utc(now) - timedelta(seconds=ask.max_age_s)
    proven = [r for r in successes(tests, ask, now) if on_record(decisions.get(r.id))]
    if proven:
        proof = max(proven, key=lambda r: (_finished(r), r.id))
        later = [r for r in tests if r.state in VETOES and _finished(r) > _finished(proof)]
        if later:
            veto = max(later, key=lambda r: (_finished(r), r.id))
            why = f"{_what(veto, decisions)} after task {proof.id} succeeded at {_at(_finished(proof))}"
            return _answer(ask, "failed", why, veto, decisions)
        return _answer(ask, "allowed", _what(proof, decisions), proof, decisions)
    newest = tests[0]
    return _answer(
        ask,
        _outcome(newest, oldest),
        _what(newest, decisions, oldest, ask.max_age_s),
        newest,
        decisions,
    )


def _outcome(record: TaskRecord, oldest: datetime) -> GateOutcome:
    if record.state in IN_PROGRESS:
        return "running"
    if record.state == "succeeded":
        return "stale" if _finished(record) < oldest else "not_allowed"
    if record.state in ("rejected", "awaiting_approval"):
        return "not_allowed"
    return "failed"


def _what(
    record: TaskRecord,
    decisions: Mapping[str, Decision],
    oldest: datetime | None = None,
    max_age_s: float = 0,
) -> str:
    """One line on what became of `record`, for the answer's reason."""
    task = f"tester task {record.id}"
    finished = _at(_finished(record))
    match record.state:
        case "succeeded" if oldest is not None and _finished(record) < oldest:
            return f"{task} succeeded at {finished}: stale, before {_at(oldest)} (max age {span(max_age_s)})"
        case "succeeded" if not on_record(decisions.get(record.id)):
            return f"{task} succeeded at {finished}, but no guard decision naming its policy is on record"
        case "succeeded":
            decision = decisions[record.id]
            return (
                f"{task} succeeded at {finished} under policy {decision.policy_version or '?'} "
                f"({decision.policy_hash[:12]})"
            )
        case "pending":
            return f"{task} is still waiting for the guard (submitted at {_at(record.created_at)})"
        case "queued":
            return f"{task} is still queued for a tester (since {_at(record.queued_at or record.updated_at)})"
        case "running":
            return f"{task} is still running (since {_at(record.started_at or record.updated_at)})"
        case "awaiting_approval":
            return f"{task} was never allowed: it awaits a human's approval ({_line(record.reason)})"
        case "rejected":
            return f"{task} was never allowed: the guard rejected it ({_line(record.reason)})"
        case "cancelled":
            by = f" by {record.cancelled_by}" if record.cancelled_by else ""
            return f"{task} was cancelled{by} at {finished}"
        case "timed_out":
            return f"{task} timed out at {finished} ({_line(record.reason or record.error)})"
        case _:
            return f"{task} failed at {finished}: {_line(record.error or record.reason)}"


def _answer(
    ask: Ask,
    outcome: GateOutcome,
    reason: str,
    record: TaskRecord | None = None,
    decisions: Mapping[str, Decision] | None = None,
) -> GateAnswer:
    decision = (decisions or {}).get(record.id) if record is not None else None
    return GateAnswer(
        allowed=outcome == "allowed",
        outcome=outcome,
        reason=" ".join(reason.splitlines()),  # one line, whatever a name in it holds
        tenant=ask.tenant,
        repo=ask.repo,
        commit=ask.commit,
        max_age_s=ask.max_age_s,
        task_id=record.id if record is not None else None,
        task_state=record.state if record is not None else None,
        finished_at=record.finished_at if record is not None else None,
        policy_version=decision.policy_version if decision is not None else "",
        policy_hash=decision.policy_hash if decision is not None else "",
    )


def successes(records: Iterable[TaskRecord], ask: Ask, now: datetime) -> list[TaskRecord]:
    """The tasks proving `ask` that succeeded within its max age at `now`, the last to finish first: the
    ones whose guard decision the judgement needs."""
    oldest = _utc(now) - timedelta(seconds=ask.max_age_s)
    found = [r for r in records if proves(r, ask) and r.state == "succeeded" and _finished(r) >= oldest]
    return sorted(found, key=lambda r: (_finished(r), r.id), reverse=True)


def on_record(decision: Decision | None) -> bool:
    """Whether the guard's decision to run a task is known, with the bundle it was judged by."""
    return decision is not None and decision.verdict != "deny" and bool(decision.policy_hash)


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _finished(record: TaskRecord) -> datetime:
    """When a task finished: its record's finish time (its last change for an older record without one)."""
    return _utc(record.finished_at or record.updated_at)


def _at(at: datetime) -> str:
    return _utc(at).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def span(seconds: float) -> str:
    """A duration as a person writes it: `24h`, `90m`, `7d`, `1.5s`."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _line(text: str) -> str:
    """The first line of `text`, at most 200 characters: a reason stays one line."""
    first = text.strip().splitlines()[0] if text.strip() else "no reason given"
    return first if len(first) <= 200 else first[:199] + "…"
