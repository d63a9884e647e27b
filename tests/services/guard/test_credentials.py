"""Credential detection: each format found with its location, near misses not, secrets never shown."""

from __future__ import annotations

import time

import pytest

from proto.v1 import ContextFile, TaskRequest
from services.guard import credentials

# Built at run time so no key-shaped literal sits in the source for a secret scanner to trip on.
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_TEMP = "ASIA" + "Z2X3C4V5B6N7M8Q9"
GITHUB = "ghp_" + "a1B2c3D4" * 4 + "e5F6"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0" * 3 + "_xyz"
OPENAI = "sk-" + "T3BlbkFJ" * 6
OPENAI_PROJECT = "sk-proj-" + "Ab1_Cd2-Ef3" * 3
ANTHROPIC = "sk-ant-api03-" + "Zz9Yy8Xx7" * 4
SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKl"
STRIPE = "sk_live_" + "51HqLyjWDarjtT1zdp7dc"
GOOGLE = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
PEM = "-----BEGIN RSA PRIVATE KEY-----"
OPENSSH = "-----BEGIN OPENSSH PRIVATE KEY-----"

CASES = [
    (AWS, "credentials.aws-access-key"),
    (AWS_TEMP, "credentials.aws-access-key"),
    (GITHUB, "credentials.github-token"),
    (GITHUB_PAT, "credentials.github-token"),
    (OPENAI, "credentials.openai-key"),
    (OPENAI_PROJECT, "credentials.openai-key"),
    (ANTHROPIC, "credentials.anthropic-key"),
    (SLACK, "credentials.slack-token"),
    (STRIPE, "credentials.stripe-live-key"),
    (GOOGLE, "credentials.google-api-key"),
    (PEM, "credentials.private-key"),
    (OPENSSH, "credentials.private-key"),
]


def request(prompt: str = "", **kwargs: object) -> TaskRequest:
    return TaskRequest(id="t1", tenant="acme", role="implementer", prompt=prompt, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("secret", "rule_id"), CASES)
def test_each_format_is_found_once_in_the_prompt_with_a_redacted_preview(secret: str, rule_id: str) -> None:
    violations = credentials.scan(request(f"use key {secret} please"))
    assert [v.rule_id for v in violations] == [rule_id]
    v = violations[0]
    assert v.policy == "credentials"
    assert v.location == "prompt:1:9"
    assert v.message and v.fix and v.severity in ("high", "critical")
    if rule_id != "credentials.private-key":
        assert v.evidence.endswith("****")
        assert secret not in v.evidence
        assert len(v.evidence) - 4 <= len(secret) // 3


def test_locations_name_context_files_and_commands_with_line_and_column() -> None:
    req = request(
        "clean prompt",
        context=[
            ContextFile(path="README.md", content="nothing here\n"),
            ContextFile(path="src/app.py", content=f"import os\n\n\nx = 1\nKEY = '{AWS}'\n"),
        ],
        commands=["make test", f"curl -H 'Authorization: Bearer {GITHUB}' https://api.github.com"],
        labels={"repo": "acme/app", "token": SLACK},
    )
    found = {(v.rule_id, v.location) for v in credentials.scan(req)}
    assert found == {
        ("credentials.aws-access-key", "context:src/app.py:5:8"),
        ("credentials.github-token", "commands[1]:1:32"),
        ("credentials.slack-token", "labels[token]:1:1"),
    }


@pytest.mark.parametrize(
    "text",
    [
        "Our AKIA prefix docs say an AWS key starts with AKIA or ASIA.",
        "AKIAIOSFODNN7EXAMPL is one short",  # 19 characters
        "XAKIAIOSFODNN7EXAMPLE glued to a word",
        "AKIAIOSFODNN7EXAMPLEX one too long",
        "the sk-1234 key is short",
        "sk-learn-is-a-common-hyphenated-word-sequence-in-prose",
        "a task-abcdefghijklmnopqrstuvwxyz0123456789 id",
        "ghp_short and gho_ and github_pat_tooshort",
        "xoxb- is a slack prefix, xoxb-test too",
        "sk_test_51HqLyjWDarjtT1zdp7dc is a test key, not a live one",
        "AIzaShort is no google key",
        "-----BEGIN PUBLIC KEY----- is public",
        "-----BEGIN CERTIFICATE-----",
    ],
)
def test_near_misses_are_not_credentials(text: str) -> None:
    assert credentials.scan(request(text)) == []


def test_several_findings_are_capped() -> None:
    text = "\n".join(AWS[:-2] + f"{n:02d}" for n in range(50))
    assert len(credentials.scan(request(text), limit=7)) == 7
    assert len(credentials.scan(request(text))) == 20


def test_redact_replaces_every_credential_and_keeps_the_rest() -> None:
    text = f"first {AWS} then {OPENAI} end"
    redacted = credentials.redact(text)
    assert AWS not in redacted and OPENAI not in redacted
    assert redacted.startswith("first AKIAIO**** then sk-T3**** end")
    assert credentials.redact("nothing to hide") == "nothing to hide"


def test_hostile_input_is_scanned_in_linear_time() -> None:
    # Long runs that almost match every pattern: a backtracking pattern would take minutes here.
    hostile = " ".join(
        (
            "AKIA" + "A" * 5000,
            "ghp_" + "a" * 5000 + "!",
            "sk-" + "a-" * 5000,
            "xoxb-" + "1-" * 5000,
            "AIza" * 5000,
        )
    )
    started = time.perf_counter()
    credentials.scan(request(hostile * 20))
    assert time.perf_counter() - started < 2.0
