"""The output rails without a server: every secret a role produced is masked, and said where it was."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from maestro.policy.bundle import TenantPolicy, load_default
from maestro.policy.policies.credentials import CredentialsPolicy
from proto.v1 import ContextFile, Succeeded, Usage
from services.agents.rails import WITHHELD, checked, masked_text, masked_traceback
from services.agents.roles import RoleResult

# Built from parts so that this file holds nothing a secret scanner would flag.
AWS_KEY = "AKIA" + "Z7QW3RT5YU2IOP4L"
GITHUB_TOKEN = "ghp" + "_" + "Xq7rT2bN9vKp4LmW8sYd3FhJ6gZc1QaE5uRo"
SLACK_TOKEN = "xox" + "b-" + "482901736452-7719203846571-" + "Qm8Tz3Rk5Wp2Yx7Nc4Lb9Vd6"
SECRETS = (AWS_KEY, GITHUB_TOKEN, SLACK_TOKEN)
GPL_HEADER = "# SPDX-License" + "-Identifier: GPL-3.0-only\n"
MIT_HEADER = "# SPDX-License" + "-Identifier: MIT\n"
USAGE = Usage(model="offline", input_tokens=3, output_tokens=5)


@pytest.fixture(scope="module")
def policy() -> TenantPolicy:
    """The shipped bundle's default policy: what a tenant with no override is judged by."""
    return load_default().default


def leaky() -> RoleResult:
    """A result with a secret of another family in each of its output, error, file path and file content."""
    code = f'import os\n\nTOKEN = "{GITHUB_TOKEN}"\nprint(TOKEN)\n'
    return RoleResult(
        ok=True,
        output=f"Wrote app.py\n\nAWS key: {AWS_KEY}\n",
        usage=USAGE,
        files=[
            ContextFile(path="app.py", content=code),
            ContextFile(path=f"notes/{SLACK_TOKEN}.txt", content="nothing to see\n"),
        ],
        error=f"warning: used {SLACK_TOKEN}",
    )


def text_of(result: RoleResult) -> str:
    return "\n".join([result.output, result.error, *(f"{f.path}\n{f.content}" for f in result.files)])


def test_every_secret_of_every_product_is_masked_and_located(policy: TenantPolicy) -> None:
    railed = checked(leaky(), policy)
    result = railed.result
    for secret in SECRETS:
        assert secret not in text_of(result)
        assert secret not in msgspec.json.encode(railed.findings).decode()
    assert "AWS key: [REDACTED:aws-access-key]" in result.output
    assert result.files[0].content.splitlines()[2] == 'TOKEN = "[REDACTED:github-token]"'
    assert result.files[1].path == "notes/[REDACTED:slack-token].txt"
    assert result.error == "warning: used [REDACTED:slack-token]"
    # Masking keeps the attempt as it was: the work is delivered, the findings go with it.
    assert result.ok and result.usage == USAGE
    where = {(v.rule_id, v.location.rsplit(":", 1)[0]) for v in railed.findings}
    assert where == {
        ("credentials.aws-access-key", "output:3"),
        ("credentials.github-token", "files:app.py:3"),
        ("credentials.slack-token", "files[1].path:1"),
        ("credentials.slack-token", "error:1"),
    }
    assert all(v.policy == "credentials" and v.enforced for v in railed.findings)


def test_the_outcome_event_carries_the_findings(policy: TenantPolicy) -> None:
    railed = checked(leaky(), policy)
    event = Succeeded(
        task_id="t-1", tenant="acme", at=datetime.now(UTC), worker="w", output=railed.result.output
    )
    assert railed.recorded(event).rails == railed.findings
    clean = checked(RoleResult(ok=True, output="fine", usage=USAGE), policy)
    assert clean.recorded(event) is event


def test_clean_output_is_untouched(policy: TenantPolicy) -> None:
    files = [ContextFile(path="wc.py", content=MIT_HEADER + 'print("hello")\n')]
    result = RoleResult(ok=True, output="Wrote wc.py (2 lines)", usage=USAGE, files=files)
    railed = checked(result, policy)
    assert railed.result == result
    assert railed.findings == []


def test_the_rails_are_idempotent(policy: TenantPolicy) -> None:
    once = checked(leaky(), policy).result
    twice = checked(once, policy)
    assert twice.result == once
    assert twice.findings == []


def test_a_denied_license_header_in_generated_code_fails_the_attempt(policy: TenantPolicy) -> None:
    files = [ContextFile(path="lib/gpl.py", content=f'"""Helpers."""\n{GPL_HEADER}x = 1\n')]
    railed = checked(RoleResult(ok=True, output="Wrote lib/gpl.py", usage=USAGE, files=files), policy)
    [found] = railed.findings
    assert (found.policy, found.rule_id, found.location) == (
        "licenses",
        "licenses.strong-copyleft",
        "files:lib/gpl.py:2:28",
    )
    assert found.enforced
    assert not railed.result.ok
    assert railed.result.failure == "policy"  # never retried: the same code would be denied again
    assert "GPL-3.0-only" in railed.result.error and "files:lib/gpl.py:2:28" in railed.result.error


def test_a_license_in_audit_mode_is_only_recorded(policy: TenantPolicy) -> None:
    audit = msgspec.structs.replace(policy, licenses=msgspec.structs.replace(policy.licenses, mode="audit"))
    files = [ContextFile(path="gpl.py", content=GPL_HEADER + "x = 1\n")]
    railed = checked(RoleResult(ok=True, output="Wrote gpl.py", usage=USAGE, files=files), audit)
    assert railed.result.ok
    assert [(v.rule_id, v.enforced) for v in railed.findings] == [("licenses.strong-copyleft", False)]


def test_the_tenant_credentials_policy_decides_what_is_a_secret(policy: TenantPolicy) -> None:
    allowing = msgspec.structs.replace(policy, credentials=CredentialsPolicy(allow=[AWS_KEY], mode="audit"))
    railed = checked(leaky(), allowing)
    assert AWS_KEY in railed.result.output  # the tenant says it is not a secret (a published test key)
    assert GITHUB_TOKEN not in text_of(railed.result)  # audit mode still masks: only the verdict is dry
    assert railed.findings and not any(v.enforced for v in railed.findings)


def test_a_text_too_full_of_candidates_is_withheld(policy: TenantPolicy) -> None:
    flood = "\n".join(f'password = "Zq{i:04d}xW9vLr8TpK3mN7"' for i in range(400)) + f"\n{AWS_KEY}\n"
    railed = checked(RoleResult(ok=True, output=flood, usage=USAGE), policy)
    assert railed.result.output == WITHHELD
    assert railed.findings[-1].rule_id == "credentials.scan-incomplete"
    assert railed.findings[-1].location == "output"
    assert masked_text(flood, policy) == WITHHELD


def test_a_crash_traceback_is_logged_masked(policy: TenantPolicy) -> None:
    try:
        raise ValueError(f"the model answered {GITHUB_TOKEN}")
    except ValueError as exc:
        shown = masked_traceback(exc, policy)
    assert "ValueError: the model answered [REDACTED:github-token]" in shown
    assert "Traceback" in shown and GITHUB_TOKEN not in shown
