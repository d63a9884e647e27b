"""Output rails: what a role produced passes the guard's credential and license families before anything
of it is stored, published or logged (pure: no I/O).

Every text a role produces is scanned by the credentials family exactly as the guard scans a request, and
every credential found is masked the same way (`[REDACTED:<rule>]`), whatever the tenant's action or mode:
a secret the model wrote never reaches an event, the record, an artifact or a log. A text too full of
secret-like strings to scan to the end is withheld whole. The files are also judged by the licenses
family: generated code that declares a license the bundle denies fails the attempt (`policy`, never
retried), and its files are not kept; a license the bundle would have a human approve is only recorded.

Everything found is a Violation on the outcome event (`rails`): the family's rule and where it was
(`output:<line>:<column>`, `error:…`, `files:<path>:<line>:<column>`, `files[<i>].path:…`), with the
guard's redacted evidence, never the secret itself.
"""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass

from msgspec import structs

from maestro.policy.bundle import TenantPolicy
from maestro.policy.policies import Finding, credentials, licenses
from proto.v1 import AttemptFailed, ContextFile, Succeeded, Violation
from proto.v1.tasks import workspace_path_problem
from services.agents.roles import RoleResult

WITHHELD = "[WITHHELD: too many secret-like strings to scan to the end]"
"""What replaces a text whose scan stopped early: what was not scanned is not let through."""
FILES = "files"
"""Where a role's files are said to be in a finding's location (`files:<path>:<line>:<column>`)."""
_MAX_PATH = 4096
_INCOMPLETE = "credentials.scan-incomplete"
_MORE = "credentials.more-findings"
_LICENSE_FIX = "generate the code without that header, or change the bundle's license lists"


@dataclass(frozen=True)
class Railed:
    """A role's result after the rails: every secret masked, and what the rails found."""

    result: RoleResult
    findings: list[Violation]

    def recorded(self, outcome: Succeeded | AttemptFailed) -> Succeeded | AttemptFailed:
        """The outcome event built from `result`, carrying what the rails found."""
        return structs.replace(outcome, rails=self.findings) if self.findings else outcome


def checked(result: RoleResult, policy: TenantPolicy) -> Railed:
    """`result` with every credential in its output, error, file paths and file contents masked, and a
    denied license in its files turned into a failed attempt (`policy`)."""
    found: list[Finding] = []
    output = _masked(result.output, "output", policy, found)
    error = _masked(result.error, "error", policy, found)
    files = [_file(i, file, policy, found) for i, file in enumerate(result.files)]
    secrets = _capped([f.violation for f in found], policy.max_violations)
    railed = dataclasses.replace(result, output=output, error=error, files=files)
    judged = _licensed(files, policy) if result.ok else []
    found_licenses = [structs.replace(f.violation, fix=_LICENSE_FIX) for f in judged]
    deciding = next((f.violation for f in judged if f.action == "deny" and f.violation.enforced), None)
    if deciding is not None:
        # Code under a denied license is not delivered: the attempt fails and its files are not kept.
        error = f"the output declares a license the policy denies: {deciding.message} ({deciding.location})"
        railed = dataclasses.replace(railed, ok=False, error=error, failure="policy")
    return Railed(railed, [*secrets, *found_licenses])


def masked_text(text: str, policy: TenantPolicy) -> str:
    """`text` with every credential masked (withheld whole when it cannot be scanned to the end)."""
    masked = credentials.mask_found(text, "text", policy.credentials)
    return masked.text if masked.complete else WITHHELD


def masked_traceback(exc: BaseException, policy: TenantPolicy) -> str:
    """The traceback of `exc` as logging would print it, with every credential in it masked."""
    return masked_text("".join(traceback.format_exception(exc)).rstrip("\n"), policy)


def _masked(text: str, where: str, policy: TenantPolicy, found: list[Finding]) -> str:
    if not text:
        return text
    masked = credentials.mask_found(text, where, policy.credentials)
    found += masked.findings
    return masked.text if masked.complete else WITHHELD


def _file(index: int, file: ContextFile, policy: TenantPolicy, found: list[Finding]) -> ContextFile:
    path = _masked(file.path, f"{FILES}[{index}].path", policy, found)[:_MAX_PATH]
    if path != file.path and workspace_path_problem(path) is not None:
        path = f"withheld-{index}"  # masking made it no path at all (cut inside a marker, say)
    content = _masked(file.content, f"{FILES}:{path}", policy, found)
    if path == file.path and content == file.content:
        return file
    return ContextFile(path=path, content=content)


def _capped(found: list[Violation], limit: int) -> list[Violation]:
    """The first `limit` findings, one that says how many more there were, and every withheld text's."""
    if len(found) <= limit:
        return found
    withheld = [v for v in found[limit:] if v.rule_id == _INCOMPLETE]
    more = Violation(
        policy=credentials.POLICY,
        rule_id=_MORE,
        location="result",
        message=f"{len(found) - limit} more credentials were found and masked; the first {limit} are listed",
        fix="remove the credentials; if they are real, rotate them now",
        enforced=found[0].enforced,
    )
    return [*found[:limit], more, *withheld]


def _licensed(files: list[ContextFile], policy: TenantPolicy) -> list[Finding]:
    """The licenses the policy does not allow that the files declare, strictest first."""
    judged = licenses.check_files([(f.path, f.content) for f in files], policy.licenses, where=FILES)
    return judged[: policy.max_violations]
