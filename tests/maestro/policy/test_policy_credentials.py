"""Credentials policy: each format found where it is, near misses and placeholders not, secrets unseen."""

from __future__ import annotations

import base64
import random
import string
import time

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro.policy.policies.credentials import (
    MAX_CANDIDATES,
    CredentialsPolicy,
    check,
    mask_text,
    redact,
    scan,
)
from proto.v1 import ContextFile, TaskRequest
from proto.v1.tasks import workspace_path_problem

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "_-"
B64 = ALNUM + "+/"
HEX = "0123456789abcdef"
DIGITS = string.digits


def rand(alphabet: str, n: int, seed: int = 0) -> str:
    """Random-looking characters, the same every run; key-shaped literals never sit in this file."""
    rng = random.Random(f"{alphabet}{n}{seed}")
    return "".join(rng.choice(alphabet) for _ in range(n))


PEM_BODY = "\n".join(rand(B64, 64, n) for n in range(5)) + "\n" + rand(B64, 20) + "=="
PEM = "-----BEGIN RSA " + "PRIVATE KEY-----\n" + PEM_BODY + "\n-----END RSA " + "PRIVATE KEY-----"
GCP_KEY = "-----BEGIN " + "PRIVATE KEY-----\\n" + rand(B64, 64) + "\\n-----END " + "PRIVATE KEY-----\\n"

# (rule, text as it appears, the secret inside it that must be found, masked and never shown)
SHOWN: list[tuple[str, str, str | None]] = [
    ("aws-access-key", k := "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16), k),
    ("aws-access-key", k := "ASIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, 1), k),
    ("aws-secret-key", f'aws_secret_access_key = "{(k := rand(B64, 40))}"', k),
    ("aws-secret-key", f"AWS_SECRET_ACCESS_KEY={(k := rand(B64, 40, 1))}", k),
    ("aws-session-token", f"aws_session_token={(k := rand(B64, 300))}", k),
    ("gcp-service-account-key", f'{{"type": "service_account", "private_key": "{GCP_KEY}"}}', GCP_KEY),
    ("google-api-key", k := "AIza" + rand(B64URL, 35), k),
    ("google-oauth-secret", k := "GOCSPX-" + rand(B64URL, 28), k),
    ("google-oauth-token", k := "ya29." + rand(B64URL, 120), k),
    (
        "azure-storage-key",
        "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey="
        + (k := rand(B64, 86) + "==")
        + ";EndpointSuffix=core.windows.net",
        k,
    ),
    (
        "azure-shared-access-key",
        "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey="
        + (k := rand(B64, 43) + "="),
        k,
    ),
    (
        "azure-sas-token",
        "https://acme.blob.core.windows.net/c/f.txt?sv=2022-11-02&sp=r&sig=" + (k := rand(ALNUM, 43) + "%3D"),
        k,
    ),
    ("azure-ad-client-secret", k := rand(ALNUM, 3) + "8Q~" + rand(B64URL + "~.", 34), k),
    ("digitalocean-token", k := "dop_v1_" + rand(HEX, 64), k),
    ("hashicorp-vault-token", k := "hvs." + rand(B64URL, 90), k),
    ("terraform-cloud-token", k := rand(ALNUM, 14) + ".atlasv1." + rand(B64URL, 67), k),
    ("databricks-token", k := "dapi" + rand(HEX, 32), k),
    ("github-token", k := "ghp_" + rand(ALNUM, 36), k),
    ("github-token", k := "gho_" + rand(ALNUM, 36, 1), k),
    ("github-app-token", k := "ghs_" + rand(ALNUM, 36), k),
    ("github-fine-grained-token", k := "github_pat_" + rand(ALNUM, 22) + "_" + rand(ALNUM, 59), k),
    ("gitlab-token", k := "glpat-" + rand(B64URL, 20), k),
    ("bitbucket-app-password", k := "ATBB" + rand(ALNUM, 32), k),
    ("atlassian-api-token", k := "ATATT3xFfGF0" + rand(B64URL, 180), k),
    ("slack-token", k := "xoxb-" + rand(DIGITS, 12) + "-" + rand(DIGITS, 13) + "-" + rand(ALNUM, 24), k),
    (
        "slack-webhook",
        "https://hooks.slack.com/services/"
        + (k := "T" + rand(DIGITS, 10) + "/B" + rand(DIGITS, 10) + "/")
        + rand(ALNUM, 24),
        None,
    ),
    ("discord-bot-token", k := "MT" + rand(ALNUM, 24) + "." + rand(B64URL, 6) + "." + rand(B64URL, 38), k),
    (
        "discord-webhook",
        "https://discord.com/api/webhooks/" + rand(DIGITS, 18) + "/" + (k := rand(B64URL, 68)),
        k,
    ),
    ("telegram-bot-token", k := rand(DIGITS, 10) + ":AA" + rand(B64URL, 33), k),
    ("twilio-api-key", k := "SK" + rand(HEX, 32), k),
    ("twilio-auth-token", f'TWILIO_AUTH_TOKEN="{(k := rand(HEX, 32, 1))}"', k),
    ("stripe-live-key", k := "sk_live_" + rand(ALNUM, 99), k),
    ("stripe-live-key", k := "rk_live_" + rand(ALNUM, 99, 1), k),
    ("stripe-webhook-secret", k := "whsec_" + rand(ALNUM, 32), k),
    ("sendgrid-api-key", k := "SG." + rand(B64URL, 22) + "." + rand(B64URL, 43), k),
    ("mailchimp-api-key", k := rand(HEX, 32, 2) + "-us14", k),
    ("square-token", k := "sq0atp-" + rand(B64URL, 22), k),
    ("shopify-token", k := "shpat_" + rand(HEX, 32, 3), k),
    ("anthropic-key", k := "sk-ant-api03-" + rand(B64URL, 93) + "AA", k),
    ("openai-key", k := "sk-proj-" + rand(B64URL, 156), k),
    ("openai-key", k := "sk-" + rand(ALNUM, 48), k),
    ("huggingface-token", k := "hf_" + rand(ALNUM, 34), k),
    ("cohere-api-key", f"COHERE_API_KEY={(k := rand(ALNUM, 40, 1))}", k),
    ("groq-api-key", k := "gsk_" + rand(ALNUM, 52), k),
    ("replicate-api-token", k := "r8_" + rand(ALNUM, 37), k),
    ("perplexity-api-key", k := "pplx-" + rand(ALNUM, 48), k),
    ("xai-api-key", k := "xai-" + rand(ALNUM, 80), k),
    ("npm-token", k := "npm_" + rand(ALNUM, 36), k),
    ("npm-auth-token", "//registry.npmjs.org/:_authToken=" + (k := rand(HEX, 8) + "-" + rand(HEX, 24)), k),
    ("pypi-token", k := "pypi-AgEIcHlwaS5vcmc" + rand(B64URL, 70), k),
    ("rubygems-api-key", k := "rubygems_" + rand(HEX, 48), k),
    ("nuget-api-key", k := "oy2" + rand(string.ascii_lowercase + DIGITS, 43), k),
    ("dockerhub-token", k := "dckr_pat_" + rand(B64URL, 27), k),
    ("private-key", PEM, PEM),
    (
        "putty-private-key",
        k := "PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nPrivate-Lines: 1\n" + rand(B64, 64),
        k,
    ),
    ("jwt", k := "eyJhbGciOiJIUzI1NiJ9.eyJ" + rand(B64URL, 40) + "." + rand(B64URL, 43), k),
    ("connection-string-password", f"postgres://app:{(k := rand(ALNUM, 16))}@db.internal:5432/app", k),
    ("connection-string-password", f"mongodb+srv://svc:{(k := rand(ALNUM, 16, 1))}@cluster0.mongodb.net", k),
    ("connection-string-password", f"redis://:{(k := rand(ALNUM, 16, 2))}@cache:6379/0", k),
    ("connection-string-password", f"amqp://worker:{(k := rand(ALNUM, 16, 3))}@rabbit/vhost", k),
    ("basic-auth-flag", f"curl -u deploy:{(k := rand(ALNUM, 16, 4))} https://example.org", k),
    ("authorization-header", f'curl -H "Authorization: Bearer {(k := rand(ALNUM, 40, 5))}" https://x', k),
    ("cli-secret-flag", f"mysql --password={(k := rand(ALNUM, 16, 6))} app", k),
    ("generic-secret", f'DB_PASSWORD = "{(k := rand(ALNUM + "!#%", 18))}"', k),
    ("generic-secret", f"client_secret: {(k := rand(ALNUM, 24, 7))}", k),
    ("generic-secret", f'const apiKey = "{(k := rand(HEX, 32, 8))}";', k),
]
# The webhook's secret is its whole path: find it in the text.
CASES: list[tuple[str, str, str]] = [
    (r, t, s if s is not None else t.split("/services/")[1]) for r, t, s in SHOWN
]

NEAR_MISSES = [
    "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 15),  # one short
    "X" + "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),  # glued to a word
    "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 17),  # one too long
    "Our docs say an AWS key starts with AKIA or ASIA.",
    f"aws_session_token={rand(B64, 50)}",
    '"private_key": "", "private_key_id": "abc"',
    "AIza" + rand(B64URL, 34),
    "AIza" + rand(B64URL, 36),
    "GOCSPX-" + rand(B64URL, 27),
    "ya29.short",
    "AccountKey=;",
    "SharedAccessKeyName=RootManageSharedAccessKey",
    "https://x.blob.core.windows.net/c?sig=short",
    "abc8Q~short",
    "dop_v1_" + rand(HEX, 63),
    "hvs.short",
    "host.atlasv1.short",
    "dapi" + rand(HEX, 31),
    "ghp_" + rand(ALNUM, 35),
    "ghs_" + rand(ALNUM, 35),
    "github_pat_tooshort",
    "glpat-short and a task-glpat-" + rand(B64URL, 20),
    "ATBB" + rand(ALNUM, 31),
    "ATATT3short",
    "xoxb- is a slack prefix, xoxb-test too, xoxb-1-2",
    "https://hooks.slack.com/services/T0/B0/x",
    "MTk.abc.def is no discord token",
    "https://discord.com/api/webhooks/123/short",
    "12345:AAshort",
    "SK" + rand(HEX, 31),
    "sk_test_" + rand(ALNUM, 24) + " is a test key, not a live one",
    "whsec_short",
    "SG.short.key",
    rand(HEX, 31) + "-us14",
    "sq0atp-short",
    "shpat_" + rand(HEX, 31),
    "sk-ant-short",
    "the sk-1234 key is short",
    "sk-learn-is-a-common-hyphenated-word-sequence-in-prose",
    "a task-" + rand(ALNUM, 40) + " id",
    "hf_short",
    "COHERE_API_KEY=short",
    "gsk_short r8_short pplx-short xai-short",
    "npm_" + rand(ALNUM, 35),
    "//registry.npmjs.org/:_authToken=${NPM_TOKEN}",
    "pypi-AgEIcHlwaS5vcmcshort",
    "rubygems_" + rand(HEX, 47),
    "oy2" + rand(HEX, 42),
    "dckr_pat_short",
    "-----BEGIN PUBLIC KEY----- is public",
    "-----BEGIN CERTIFICATE-----",
    "PuTTY-User-Key-File without a version",
    "eyJhbGciOi.notajwt",
    "postgres://app@db/app and postgres://app:${DB_PASSWORD}@db/app and redis://:$REDIS_PASSWORD@cache",
    "mysql://root:password@localhost/test",
    "curl -u deploy https://x and docker run -u 1000:1000 image",
    'curl -H "Authorization: Bearer $TOKEN" https://x',
    "mysql --password=$DB_PASSWORD app",
    "password = get_password()\ntoken = None\npassword: str\nsecret = os.environ['SECRET']",
    'password = "changeme"\napi_key = "<your-api-key>"\ntoken = "xxxxxxxxxxxxxxxx"\nsecret = "${SECRET}"',
    "token = TokenList()\nself.start_token = startToken\nif tok.token == tokenize.OP:",
    '"password": "Password", "token_label": "Your token"',
    "max_tokens = 4096\nPWD=/home/user/project",
]


def request(prompt: str = "", **kwargs: object) -> TaskRequest:
    return TaskRequest(id="t1", tenant="acme", role="implementer", prompt=prompt, **kwargs)  # type: ignore[arg-type]


def findings(text: str, policy: CredentialsPolicy | None = None) -> list[tuple[str, str]]:
    return [
        (f.violation.rule_id, f.violation.location)
        for f in check(request(text), policy or CredentialsPolicy())
    ]


def test_the_cases_cover_more_than_thirty_formats() -> None:
    assert len({rule for rule, _, _ in CASES}) >= 45


@pytest.mark.parametrize(("rule", "text", "secret"), CASES, ids=[c[0] for c in CASES])
def test_each_format_is_found_where_it_is_shown_redacted_and_masked(
    rule: str, text: str, secret: str
) -> None:
    prompt = f"use {text} please"
    found = check(request(prompt), CredentialsPolicy())
    assert [f.violation.rule_id for f in found] == [f"credentials.{rule}"]
    v, span = found[0].violation, found[0].span
    assert v.policy == "credentials" and v.message and v.fix and v.enforced
    assert v.location == f"prompt:1:{prompt.index(secret) + 1}"
    assert span is not None and prompt[span.start : span.end] == secret
    assert secret not in v.evidence and v.evidence.endswith("****")
    masked = redact(request(prompt), found).prompt
    assert secret not in masked and masked.startswith("use ") and masked.endswith(" please")
    assert check(request(masked), CredentialsPolicy()) == []


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_and_placeholders_are_not_credentials(text: str) -> None:
    assert findings(text) == []


@pytest.mark.parametrize(
    "text",
    [
        f'aws_secret_access_key = "{rand(B64, 39)}"',
        f'TWILIO_AUTH_TOKEN="{rand(HEX, 31)}"',
        f"AccountKey={rand(B64, 20)}",
    ],
)
def test_a_value_one_short_of_its_format_is_still_a_generic_secret(text: str) -> None:
    assert [rule for rule, _ in findings(text)] == ["credentials.generic-secret"]


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (f"export ANTHROPIC_API_KEY=sk-ant-api03-{rand(B64URL, 40)}", "anthropic-key"),
        (f'DOCKERHUB_TOKEN="dckr_pat_{rand(B64URL, 27)}"', "dockerhub-token"),
        (f"  private_token: glpat-{rand(B64URL, 20)}", "gitlab-token"),
        (f"password = pypi-AgEIcHlwaS5vcmc{rand(B64URL, 60)}", "pypi-token"),
        (f"token: ghp_{rand(ALNUM, 36)}", "github-token"),
    ],
)
def test_a_known_format_in_a_generic_assignment_is_reported_as_itself(text: str, rule: str) -> None:
    assert [r for r, _ in findings(text)] == [f"credentials.{rule}"]


def test_a_token_in_a_urls_user_or_password_is_found_and_never_shown() -> None:
    token, password = "ghp_" + rand(ALNUM, 36, 11), rand(ALNUM, 16, 11)
    cases = {
        f"git clone https://{token}:x-oauth-basic@github.com/a/b": ["credentials.github-token"],
        f"git clone https://x-access-token:{token}@github.com/a/b": ["credentials.github-token"],
        f"see https://{token}:{password}@example.org/\nok": [
            "credentials.github-token",
            "credentials.connection-string-password",
        ],
        f"curl -u {token}:x https://api.github.com": ["credentials.github-token"],
    }
    for prompt, rules in cases.items():
        found = check(request(prompt), CredentialsPolicy())
        assert [f.violation.rule_id for f in found] == rules
        assert all(token not in f.violation.evidence for f in found)
        assert found[0].violation.location == f"prompt:1:{prompt.index(token) + 1}"
        masked = redact(request(prompt), found).prompt
        assert token not in masked and password not in masked
    prompt = f"see https://{token}:{password}@example.org/"
    found = check(request(prompt), CredentialsPolicy())
    assert found[1].violation.evidence == "https://…:****"
    assert found[1].violation.location == f"prompt:1:{prompt.index(password) + 1}"


def test_documented_example_keys_are_allowed() -> None:
    assert findings("AKIA" + "IOSFODNN7EXAMPLE") == []
    assert findings("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY") == []
    jwt_io = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2"
        "MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    )
    assert findings(jwt_io) == []


def test_a_tenant_allows_its_own_placeholders_literally_or_by_pattern() -> None:
    key = "ghp_" + rand(ALNUM, 36, 9)
    assert findings(key) != []
    assert findings(key, CredentialsPolicy(allow=[key])) == []
    assert findings(key, CredentialsPolicy(allow=["re:ghp_[A-Za-z0-9]{36}"])) == []
    assert findings(key, CredentialsPolicy(disable=["credentials.github-token"])) == []


def test_a_broken_allow_pattern_is_refused_when_the_policy_is_decoded() -> None:
    with pytest.raises(msgspec.ValidationError, match="RE2"):
        msgspec.json.decode(b'{"allow": ["re:(unclosed"]}', type=CredentialsPolicy)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"actoin": "deny"}', type=CredentialsPolicy)


def test_locations_name_the_prompt_context_files_paths_commands_and_labels() -> None:
    aws = "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, 3)
    github = "ghp_" + rand(ALNUM, 36, 3)
    slack = "xoxb-" + rand(DIGITS, 12, 3) + "-" + rand(DIGITS, 13, 3) + "-" + rand(ALNUM, 24, 3)
    req = request(
        f"deploy with {aws}",
        context=[
            ContextFile(path="README.md", content="nothing here\n"),
            ContextFile(path="src/app.py", content=f"import os\n\n\nx = 1\nKEY = '{aws}'\n"),
            ContextFile(path=f"keys/{github}.txt", content=f"first line\n  {slack}\n"),
        ],
        commands=["make test", f"curl -H 'Authorization: Bearer {github}' https://api.github.com"],
        labels={"repo": "acme/app", "token": slack},
    )
    found = [(f.violation.rule_id, f.violation.location) for f in check(req, CredentialsPolicy())]
    assert found == [
        ("credentials.aws-access-key", "prompt:1:13"),
        ("credentials.aws-access-key", "context:src/app.py:5:8"),
        ("credentials.github-token", "context[2].path:1:6"),
        # The path holds a secret, so the file's location shows it masked.
        ("credentials.slack-token", "context:keys/[REDACTED:github-token].txt:2:3"),
        ("credentials.github-token", "commands[1]:1:32"),
        ("credentials.slack-token", "labels[token]:1:1"),
    ]


def test_the_action_and_the_mode_come_from_the_policy() -> None:
    key = "npm_" + rand(ALNUM, 36, 4)
    (finding,) = check(request(key), CredentialsPolicy(action="approve", mode="audit"))
    assert finding.action == "approve" and finding.violation.enforced is False


def test_findings_are_capped_and_the_cap_says_so() -> None:
    keys = "\n".join("AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, n) for n in range(50))
    found = check(request(keys), CredentialsPolicy(max_findings=7))
    assert len(found) == 8 and found[-1].violation.rule_id == "credentials.more-findings"
    assert found[-1].action == "deny" and found[-1].span is None
    # A redact policy cannot mask keys it did not list: the request is denied instead.
    capped = check(request(keys), CredentialsPolicy(action="redact", max_findings=7))
    assert [f.action for f in capped] == ["redact"] * 7 + ["deny"]
    assert [v.rule_id for v in scan(request(keys), limit=20)][-1] == "credentials.more-findings"


def test_a_flood_of_candidates_stops_the_scan_and_says_so() -> None:
    flood = (
        'password = "changeme"\n' * (MAX_CANDIDATES + 10) + "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 16)
    )
    (finding,) = check(request(flood), CredentialsPolicy(action="redact"))
    assert finding.violation.rule_id == "credentials.scan-incomplete" and finding.action == "deny"


def test_redact_masks_every_span_keeps_lines_and_leaves_a_valid_request() -> None:
    pem_line = PEM.count("\n")
    github = "ghp_" + rand(ALNUM, 36, 5)
    content = f"a = 1\nKEY = '{github}'  # tail\n{PEM}\nlast = 2\n"
    req = request(
        f"x {github} y",
        context=[ContextFile(path=f"{github}.env", content=content)],
        commands=[f"echo {github}"],
        labels={"k": github},
    )
    found = check(req, CredentialsPolicy(action="redact"))
    out = redact(req, found)
    encoded = msgspec.json.encode(out)
    assert github.encode() not in encoded and PEM_BODY.split("\n")[0].encode() not in encoded
    assert msgspec.json.decode(encoded, type=TaskRequest) == out
    masked = out.context[0].content.split("\n")
    assert len(masked) == len(content.split("\n"))  # lines do not move
    assert masked[0] == "a = 1" and masked[1].startswith("KEY = '[REDACTED:github-token]'  # tail")
    assert masked[2] == "[REDACTED:private-key]" and masked[3 + pem_line] == "last = 2"
    assert out.context[0].path == "[REDACTED:github-token].env"
    assert (out.prompt, out.commands, out.labels) == (
        "x [REDACTED:github-token] y",
        ["echo [REDACTED:github-token]"],
        {"k": "[REDACTED:github-token]"},
    )
    assert check(out, CredentialsPolicy()) == []
    assert redact(req, []) is req


def test_mask_text_hides_credentials_in_free_text() -> None:
    key = "sk-ant-api03-" + rand(B64URL, 40, 6)
    assert mask_text(f"failed: bad key {key}!") == "failed: bad key [REDACTED:anthropic-key]!"
    assert mask_text("nothing to hide") == "nothing to hide"


def test_non_ascii_text_keeps_character_offsets() -> None:
    key = "glpat-" + rand(B64URL, 20, 7)
    prompt = f"clé: «{key}» ✓\n日本語 {key}"
    found = check(request(prompt), CredentialsPolicy())
    assert [f.violation.location for f in found] == ["prompt:1:7", "prompt:2:5"]
    assert all(prompt[f.span.start : f.span.end] == key for f in found if f.span)


def _best_of(runs: int, text: str) -> float:
    # CPU time of this process, not the wall clock: other processes busy on the machine (a test suite
    # beside this one) must not make a linear scan look super-linear.
    req = request(text)
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        check(req, CredentialsPolicy())
        best = min(best, time.process_time() - started)
    return best


def plain_megabyte() -> str:
    lines = [
        "def handler(event, context):",
        "    items = [transform(x) for x in event['records'] if x.get('kind') == 'order']",
        '    logger.info("processed %d items for %s", len(items), context.function_name)',
        "    return {'statusCode': 200, 'body': json.dumps(items)}",
        "",
    ]
    text = "\n".join(lines) + "\n"
    return (text * (2**20 // len(text) + 1))[: 2**20]


MEGABYTE = 2**20
HOSTILE = {
    "near-miss prefixes": ("AKIA ghp_ sk-ant- xoxb- AIza glpat- eyJ. -----BEGIN " * MEGABYTE)[:MEGABYTE],
    "one long almost-token": "ghp_" + "a" * (MEGABYTE - 4),
    "long runs that almost match": " ".join(
        p + "a" * 5000 + "!" for p in ("AKIA", "sk-", "xoxb-1-", "AIza", "eyJ", "sk-proj-")
    )
    * 40,
    "dashes and prefixes": ("-MTa-AIza-sk-ant-" + rand(B64URL, 30)) * (MEGABYTE // 47),
    "placeholder flood": 'password = "changeme"\n' * (MEGABYTE // 22),
    "a key header with a huge body": "-----BEGIN RSA "
    + "PRIVATE KEY-----\n"
    + ("A" * 64 + "\n") * (MEGABYTE // 65),
    "random base64": base64.b64encode(random.Random(1).randbytes(MEGABYTE * 3 // 4)).decode(),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_crafted_input_scans_in_linear_time(name: str) -> None:
    # What a crafted input must not do is make the scan super-linear (a backtracking engine takes
    # seconds to minutes on these). How much slower than prose a dense, candidate-rich megabyte is
    # depends on the machine's caches, so the bounds are wide: a constant factor of plain input, and
    # a doubled input taking about twice as long, never four times.
    plain, hostile = plain_megabyte(), HOSTILE[name]
    half = hostile[: len(hostile) // 2]
    for text in (hostile, half, plain):
        _best_of(1, text)  # RE2 builds its DFA states lazily: warm up first
    whole = _best_of(5, hostile)
    assert whole < 20 * _best_of(5, plain) + 0.005, name
    assert whole < 3 * _best_of(5, half) + 0.005, name


SECRETS = [secret for _, _, secret in CASES]
texts = st.one_of(
    st.text(),
    st.binary().map(lambda b: b.decode("utf-8", "replace")),
    st.binary().map(lambda b: b.decode("latin-1")),
    st.text(alphabet=st.sampled_from(list(B64URL + '.:=/@"\n -~')), max_size=2000),
    st.tuples(st.text(max_size=50), st.integers(1, 20_000)).map(lambda t: t[0] * t[1]),
    st.tuples(st.text(max_size=200), st.sampled_from(SECRETS), st.text(max_size=200)).map("".join),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=texts, path=texts, command=texts, label=texts)
def test_any_input_yields_findings_and_redacting_them_leaves_nothing_to_find(
    prompt: str, path: str, command: str, label: str
) -> None:
    path = path if workspace_path_problem(path) is None else "p"  # a path no edge lets in
    req = request(prompt, context=[ContextFile(path=path, content=prompt)], commands=[command])
    req = msgspec.structs.replace(req, labels={"l": label})
    found = check(req, CredentialsPolicy(max_findings=1000))
    assert isinstance(found, list)
    for f in found:
        assert f.span is None or f.span.start < f.span.end
    if not any(f.span is None for f in found):
        assert check(redact(req, found), CredentialsPolicy(max_findings=1000)) == []


def test_plural_keywords_in_prose_are_not_secrets() -> None:
    # Found by running check-pr on this repository: a README table row about model prices.
    line = "| `MAESTRO_PRICING` | model prices, USD per million tokens: `offline=0:0,gpt-4o=2.5:10,*=3:15` |"
    assert findings(line) == []


@pytest.mark.parametrize("value", ["%a027X2ILCd6MnHGxx", "&D9WOrJjjVyYqWWuhA", "*VvJEHBlAAn2ykL40P"])
def test_a_quoted_password_may_start_with_a_symbol(value: str) -> None:
    # Found by bench/guard's planted corpus: 6% of random passwords start with one of these.
    assert [rule for rule, _ in findings(f'db_password = "{value}"')] == ["credentials.generic-secret"]


def test_unquoted_references_and_windows_variables_are_not_secrets() -> None:
    assert (
        findings("password = &DefaultPasswordFromConfig1\ntoken = *tokenPointerValue9\nsecret = %APPSECRET%")
        == []
    )
