"""The blind spots an independent corpus found (issue 9), one class per test: each failed before its fix."""

from __future__ import annotations

import base64
import random
import string
import time

import pytest

from maestro.policy.policies.credentials import CredentialsPolicy, check
from proto.v1 import TaskRequest
from tests.maestro.policy.test_policy_credentials import MEGABYTE, plain_megabyte

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "_-"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def rand(alphabet: str, n: int, seed: int = 0) -> str:
    rng = random.Random(f"{alphabet}{n}{seed}")
    return "".join(rng.choice(alphabet) for _ in range(n))


def rules(text: str) -> list[str]:
    req = TaskRequest(id="t1", tenant="acme", role="implementer", prompt=text)
    return [f.violation.rule_id.removeprefix("credentials.") for f in check(req, CredentialsPolicy())]


def mixed(n: int, seed: int) -> str:
    """A random letters-only value: a bare identifier by its characters, random by its shape."""
    return rand(string.ascii_letters, n, seed)


@pytest.mark.parametrize(
    "text",
    [
        f"password: {mixed(18, 1)}",
        f"DB_PASSWORD={mixed(16, 2)}",
        f"client_secret = {mixed(24, 3)}",
        f"export API_TOKEN={rand(string.ascii_uppercase, 20, 4)}",
        f"secret_key: {rand(string.ascii_lowercase, 20, 5)}",
    ],
)
def test_an_unquoted_random_value_on_a_secret_named_key_is_a_secret(text: str) -> None:
    assert rules(text) == ["generic-secret"]


@pytest.mark.parametrize(
    "text",
    [
        "password = userPasswordFromConfig",
        "token: DEFAULT_ACCESS_TOKEN",
        "secret = settings.signingSecret",
        "api_key: currentApiKeyValue",
        "password: fetchPasswordForService",
    ],
)
def test_an_unquoted_name_on_a_secret_named_key_is_still_a_name(text: str) -> None:
    assert rules(text) == []


@pytest.mark.parametrize("sigil", ["&", "*", "@"])
def test_an_unquoted_value_may_start_with_a_sigil(sigil: str) -> None:
    assert rules(f"password: {sigil}{rand(ALNUM, 17, ord(sigil))}") == ["generic-secret"]
    # A sigil before a name is still a reference: a YAML alias, a pointer, a decorator.
    assert rules(f"password: {sigil}defaultDatabasePassword") == []


def long_jwt(seed: int) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"' + rand(ALNUM, 40, seed).encode() + b'"}')
    return header.decode().rstrip("=") + ".eyJ" + rand(B64URL, 700, seed) + "." + rand(B64URL, 342, seed)


@pytest.mark.parametrize(
    "template",
    ["token: {}", "Authorization: Bearer {}", 'password = "{}"', "SA_TOKEN={}", "--token {}"],
)
def test_a_jwt_longer_than_the_match_cap_is_found_after_any_trigger(template: str) -> None:
    token = long_jwt(len(template))
    prompt = "use " + template.format(token) + " now"
    req = TaskRequest(id="t1", tenant="acme", role="implementer", prompt=prompt)
    found = check(req, CredentialsPolicy())
    assert [f.violation.rule_id for f in found] == ["credentials.jwt"]
    span = found[0].span
    assert span is not None and prompt[span.start : span.end] == token


def test_an_age_secret_key_is_found_and_an_age_recipient_is_not() -> None:
    assert rules("AGE-SECRET-KEY-1" + rand(BECH32.upper(), 58)) == ["age-secret-key"]
    assert rules("age1" + rand(BECH32, 58)) == []


def test_a_docker_config_auth_value_is_a_credential_when_it_decodes_to_user_and_password() -> None:
    auth = base64.b64encode(b"deploy:" + rand(ALNUM, 24).encode()).decode()
    config = '{"auths": {"registry.example.com": {"auth": "' + auth + '"}}}'
    assert rules(config) == ["docker-config-auth"]
    empty = base64.b64encode(b"deploy:").decode()
    assert rules('{"auths": {"r.example.com": {"auth": "' + empty + '"}}}') == []
    assert rules('{"auths": {"r.example.com": {"auth": "", "identitytoken": ""}}}') == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://app:{}@db:5432/app",
        "mysql+pymysql://app:{}@db/app",
        "mssql+pyodbc://sa:{}@sql/app?driver=ODBC",
        "oracle+cx_oracle://scott:{}@ora:1521/xe",
        "postgres://app:{}#x1@db/app",
        "mysql://app:{}!@db/app",
    ],
)
def test_a_connection_url_with_a_driver_or_a_password_with_punctuation_is_found(url: str) -> None:
    assert rules(url.format(rand(ALNUM, 14, len(url)))) == ["connection-string-password"]


@pytest.mark.parametrize(
    "wrapped",
    [
        "AKIA" + rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
        "ghp_" + rand(ALNUM, 36),
        "-----BEGIN OPENSSH "
        + "PRIVATE KEY-----\n"
        + rand(ALNUM, 64)
        + "\n-----END OPENSSH PRIVATE KEY-----",
    ],
)
def test_a_base64_wrapped_credential_is_found(wrapped: str) -> None:
    encoded = base64.b64encode(wrapped.encode()).decode()
    assert rules(f"creds_blob: {encoded}") == ["base64-wrapped-credential"]
    assert rules(base64.b64encode(b"just some configuration text, nothing secret").decode()) == []


@pytest.mark.parametrize(
    "reference",
    [
        "vault://secret/data/app#password",
        "vault:secret/data/app#db_password",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/api_key",
        "projects/my-proj/secrets/api-key/versions/latest",
        "op://Private/GitHub/credential",
        "${{ secrets.DEPLOY_TOKEN }}",
        "{{ .Values.db.password }}",
        "@Microsoft.KeyVault(SecretUri=https://kv1.vault.azure.net/secrets/db/)",
        "azurekeyvault://kv1/secrets/db-password",
        "sm://prod/payments/stripe",
    ],
)
@pytest.mark.parametrize("key", ["password: ", "API_TOKEN=", 'client_secret = "'])
def test_a_reference_to_a_secret_manager_is_not_a_secret(key: str, reference: str) -> None:
    text = key + reference + ('"' if key.endswith('"') else "")
    assert rules(text) == []


def _cpu(text: str) -> float:
    req = TaskRequest(id="t1", tenant="acme", role="implementer", prompt=text)
    check(req, CredentialsPolicy())  # RE2 builds its DFA lazily: warm up first
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        check(req, CredentialsPolicy())
        best = min(best, time.process_time() - started)
    return best


@pytest.mark.parametrize(
    "hostile",
    [
        # A long value on a secret-named key is searched for a format at its start, not rescanned whole:
        # a value holding the next key would otherwise make every key cost the rest of the text.
        ("token=" + "A" * 2000) * 500,
        # Base64 runs that open like a wrapped key: each is decoded once, and only up to the cap.
        ("QUtJQ" + "A" * 8000 + " ") * 120,
    ],
    ids=["nested long values", "wrapped-looking runs"],
)
def test_long_values_cost_no_more_than_plain_text(hostile: str) -> None:
    # Linear, not free: 120 wrapped-looking runs are each decoded and rescanned once (about 4x a plain
    # megabyte of code on a quiet machine, more where caches are smaller); rescanning the rest of the
    # text per key was 300x. The bound sits between the two, far from both.
    assert _cpu(hostile[:MEGABYTE]) < 30 * _cpu(plain_megabyte()) + 0.005


def test_a_base64_value_may_start_with_a_slash_and_a_path_is_still_a_path() -> None:
    # Found by the corpus: 1 in 32 base64 keys starts with `/`, and was taken for a file path.
    assert rules("account_key=/NXwrL7r28sKrm159W5FqvHZrsv/eX0PefPEFWEoq3==") == ["generic-secret"]
    assert rules("password_file = /run/secrets/database_password\ntoken: ~/.config/gh/hosts.yml") == []
