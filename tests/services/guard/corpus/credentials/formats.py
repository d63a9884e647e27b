"""The credential formats the corpus draws from: token specs, key encodings, wrapped and carried forms.

No value here is a real secret: each is drawn from a seeded generator in the format's alphabet.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from collections.abc import Callable

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
ALNUM = string.ascii_letters + DIGITS
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "_-"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
PUNCT_PASSWORD = ALNUM + "!#%^*+=_-@&"

Gen = Callable[[random.Random], str]


def r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def jwt(rng: random.Random, body: int = 120) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"' + r(rng, ALNUM, 20).encode() + b'"}')
    return header.decode().rstrip("=") + ".eyJ" + r(rng, B64URL, body) + "." + r(rng, B64URL, 86)


def pem(label: str) -> Gen:
    def gen(rng: random.Random) -> str:
        body = "\n".join(r(rng, B64, 64) for _ in range(6)) + "\n" + r(rng, B64, 30) + "=="
        return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"

    return gen


# (kind, source, the format as a spec): `{A36}` is 36 characters of class A, `{A24/99}` 24 or 99 of
# them, `{x|y}` one of the literals. Classes: A alphanumeric, N letters, U upper-case and digits, K
# AWS's base32 (A-Z, 2-7), D digits, H lower hex, W base64url, S base64, L lower-case and digits, C Bech32.
FORMATS: list[tuple[str, str, str]] = [
    ("aws-access-key", "gitleaks aws-access-token; AWS IAM user guide", "AKIA{K16}"),
    ("aws-sts-key", "gitleaks aws-access-token", "ASIA{K16}"),
    ("github-pat", "GitHub docs: token formats (ghp_)", "ghp_{A36}"),
    ("github-oauth", "GitHub docs: token formats (gho_)", "gho_{A36}"),
    ("github-app", "GitHub docs: token formats (ghs_/ghu_/ghr_)", "{ghs_|ghu_|ghr_}{A36}"),
    ("github-fine-grained", "GitHub docs: github_pat_", "github_pat_{A22}_{A59}"),
    ("gitlab-token", "GitLab docs: token prefixes", "{glpat-|gldt-|glrt-|glptt-}{W20}"),
    ("slack-token", "Slack docs: token types", "{xoxb-|xoxp-}{D12}-{D13}-{A24}"),
    ("slack-webhook", "gitleaks slack-webhook-url", "https://hooks.slack.com/services/T{U10}/B{U10}/{A24}"),
    ("stripe-live", "Stripe docs: API keys", "{sk_live_|rk_live_}{A24/99}"),
    ("anthropic-key", "gitleaks anthropic-api-key", "sk-ant-api03-{W93}AA"),
    ("openai-project-key", "gitleaks openai-api-key", "sk-proj-{W156}"),
    ("openai-key", "OpenAI API keys (sk-)", "sk-{A48}"),
    ("google-api-key", "gitleaks gcp-api-key", "AIza{W35}"),
    ("google-oauth-token", "Google OAuth 2.0 docs (ya29.)", "ya29.{W150}"),
    ("google-oauth-secret", "Google OAuth client secret (GOCSPX-)", "GOCSPX-{W28}"),
    ("npm-token", "gitleaks npm-access-token; npm docs", "npm_{A36}"),
    ("pypi-token", "gitleaks pypi-upload-token; PyPI docs", "pypi-AgEIcHlwaS5vcmc{W70}"),
    ("digitalocean-token", "gitleaks digitalocean-pat", "{dop_v1_|doo_v1_}{H64}"),
    ("huggingface-token", "gitleaks huggingface-access-token", "hf_{A34}"),
    ("sendgrid-key", "gitleaks sendgrid-api-token", "SG.{W22}.{W43}"),
    ("twilio-api-key", "gitleaks twilio-api-key", "SK{H32}"),
    ("twilio-account-sid", "GitHub secret scanning: Twilio account SID", "AC{H32}"),
    ("shopify-token", "gitleaks shopify-access-token", "{shpat_|shpca_|shppa_|shpss_}{H32}"),
    ("age-secret-key", "gitleaks age-secret-key; age spec", "AGE-SECRET-KEY-1{C58}"),
    ("databricks-token", "gitleaks databricks-api-token", "dapi{H32}"),
    ("vault-token", "gitleaks vault-service-token", "hvs.{W95}"),
    ("telegram-bot", "gitleaks telegram-bot-api-token", "{D10}:AA{W33}"),
    ("discord-bot", "Discord developer docs: bot token", "MT{A24}.{W6}.{W38}"),
    ("mailchimp-key", "gitleaks mailchimp-api-key", "{H32}-us{D1}"),
    ("square-token", "gitleaks square-access-token", "{sq0atp-|EAAA}{W60}"),
    ("groq-key", "Groq console key format (gsk_)", "gsk_{A52}"),
    ("replicate-token", "Replicate docs (r8_)", "r8_{A37}"),
    ("perplexity-key", "gitleaks perplexity-api-key", "pplx-{A48}"),
    ("xai-key", "xAI console key format", "xai-{A80}"),
    ("rubygems-key", "gitleaks rubygems-api-token", "rubygems_{H48}"),
    ("nuget-key", "NuGet API key format (oy2)", "oy2{L43}"),
    ("dockerhub-token", "Docker docs: access tokens (dckr_pat_)", "dckr_pat_{W27}"),
    ("atlassian-token", "gitleaks atlassian-api-token", "ATATT3{W186}"),
    ("azure-ad-secret", "gitleaks azure-ad-client-secret", "{A3}{D1}Q~{A34}"),
    ("doppler-token", "gitleaks doppler-api-token; Doppler docs", "dp.{pt|st|sa}.{A43}"),
    ("linear-key", "gitleaks linear-api-key", "lin_api_{A40}"),
    ("pulumi-token", "gitleaks pulumi-api-token", "pul-{H40}"),
    ("planetscale-token", "gitleaks planetscale-password", "{pscale_pw_|pscale_tkn_}{W43}"),
    ("postman-key", "gitleaks postman-api-token", "PMAK-{H24}-{H34}"),
    ("sentry-token", "gitleaks sentry-user-token", "sntryu_{H64}"),
    ("grafana-token", "gitleaks grafana-service-account-token", "glsa_{A32}_{H8}"),
    ("newrelic-key", "gitleaks new-relic-user-api-key", "NRAK-{U27}"),
    ("netlify-token", "Netlify docs (nfp_)", "nfp_{A36}"),
    ("supabase-token", "Supabase docs (sbp_)", "sbp_{H40}"),
    ("openrouter-key", "OpenRouter key format (sk-or-v1-)", "sk-or-v1-{H64}"),
    ("langsmith-key", "LangSmith key format (lsv2_)", "lsv2_{pt|sk}_{H32}_{H10}"),
    ("shippo-token", "gitleaks shippo-api-token", "shippo_live_{H40}"),
    ("brevo-key", "gitleaks sendinblue-api-token", "xkeysib-{H64}-{A16}"),
    ("heroku-key", "gitleaks heroku-api-key-v2", "HRKU-AA{W58}"),
    ("1password-secret-key", "gitleaks 1password-secret-key", "A3-{U6}-{U11}-{U5}-{U5}-{U5}"),
    ("alibaba-key", "gitleaks alibaba-access-key-id", "LTAI{A20}"),
    ("artifactory-key", "gitleaks artifactory-api-key", "AKCp{A69}"),
    ("dynatrace-token", "gitleaks dynatrace-api-token", "dt0c01.{U24}.{U64}"),
    ("easypost-key", "gitleaks easypost-api-token", "EZAK{A54}"),
    ("notion-token", "gitleaks notion-api-token", "ntn_{D11}{A35}"),
    ("airtable-token", "Airtable docs: personal access tokens", "pat{A14}.{H64}"),
    ("circleci-token", "CircleCI docs (CCIPAT_)", "CCIPAT_{A22}_{H40}"),
    ("buildkite-token", "Buildkite docs (bkua_)", "bkua_{H40}"),
    ("prefect-key", "gitleaks prefect-api-token", "pnu_{A36}"),
    ("readme-key", "gitleaks readme-api-token", "rdme_{L70}"),
    ("octopus-key", "gitleaks octopus-deploy-api-key", "API-{U26}"),
    ("facebook-token", "gitleaks facebook-page-access-token", "EAAC{A140}"),
    ("mapbox-secret", "Mapbox docs: secret tokens (sk.)", "sk.eyJ1Ijoi{W60}.{W22}"),
    ("pinecone-key", "Pinecone key format (pcsk_)", "pcsk_{A5}_{A60}"),
    ("fireworks-key", "Fireworks key format (fw_)", "fw_{A24}"),
    ("tavily-key", "Tavily key format (tvly-)", "tvly-{A32}"),
    ("flyio-token", "gitleaks flyio-access-token", "fo1_{W43}"),
    ("render-key", "Render docs (rnd_)", "rnd_{A32}"),
    ("openshift-token", "gitleaks openshift-user-token", "sha256~{W43}"),
    ("mailgun-key", "gitleaks mailgun-private-api-token", "key-{H32}"),
    ("clojars-token", "gitleaks clojars-api-token", "CLOJARS_{L60}"),
    ("infracost-token", "gitleaks infracost-api-token", "ico-{A32}"),
    ("jwt", "RFC 7519; gitleaks jwt", "eyJhbGciOiJSUzI1NiIsImtpZCI6I{W24}.eyJ{W120}.{W86}"),
    (
        "teams-webhook",
        "gitleaks microsoft-teams-webhook",
        "https://acme.webhook.office.com/webhookb2/{H8}-{H4}-{H4}-{H4}-{H12}@{H8}-{H4}-{H4}-{H4}-{H12}"
        "/IncomingWebhook/{H32}/{H8}-{H4}-{H4}-{H4}-{H12}",
    ),
]

CLASSES = {
    "A": ALNUM,
    "N": string.ascii_letters,
    "U": UPPER + DIGITS,
    "K": UPPER + "234567",
    "D": DIGITS,
    "H": HEX,
    "W": B64URL,
    "S": B64,
    "L": LOWER + DIGITS,
    "C": BECH32,
}


def expand(spec: str, g: random.Random) -> str:
    """One value of a format spec (see FORMATS)."""
    out: list[str] = []
    for i, part in enumerate(re.split(r"\{([^{}]+)\}", spec)):
        if i % 2 == 0:
            out.append(part)
        elif "|" in part:
            out.append(g.choice(part.split("|")))
        else:
            out.append(r(g, CLASSES[part[0]], int(g.choice(part[1:].split("/")))))
    return "".join(out)


def uuid(g: random.Random) -> str:
    h = r(g, HEX, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


KEYS: list[tuple[str, str, Gen]] = [
    ("pem-rsa", "RFC 7468 / PKCS#1", pem("RSA PRIVATE KEY")),
    ("pem-ec", "RFC 5915 (SEC1)", pem("EC PRIVATE KEY")),
    ("pem-pkcs8", "RFC 5208 (PKCS#8)", pem("PRIVATE KEY")),
    ("pem-pkcs8-encrypted", "RFC 5958", pem("ENCRYPTED PRIVATE KEY")),
    ("openssh-key", "OpenSSH PROTOCOL.key", pem("OPENSSH PRIVATE KEY")),
    ("pgp-key", "RFC 4880 armor", pem("PGP PRIVATE KEY BLOCK")),
    (
        "putty-key",
        "PuTTY PPK format",
        lambda g: (
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\nPublic-Lines: 2\n"
            + r(g, B64, 64)
            + "\n"
            + r(g, B64, 20)
            + "\nPrivate-Lines: 1\n"
            + r(g, B64, 44)
            + "\nPrivate-MAC: "
            + r(g, HEX, 64)
        ),
    ),
    (
        "jwk-private",
        "RFC 7517/7518 (private `d`)",
        lambda g: json.dumps(
            {"kty": "EC", "crv": "P-256", "x": r(g, B64URL, 43), "y": r(g, B64URL, 43), "d": r(g, B64URL, 43)}
        ),
    ),
]


def docker_auth(g: random.Random) -> str:
    auth = base64.b64encode(f"deploy:{r(g, ALNUM, 24)}".encode()).decode()
    return '{"auths": {"registry.example.com": {"auth": "' + auth + '"}}}\n'


def wrapped(g: random.Random) -> str:
    inner = g.choice(
        [
            "AKIA" + r(g, UPPER + "234567", 16),
            "ghp_" + r(g, ALNUM, 36),
            "sk-ant-api03-" + r(g, B64URL, 93) + "AA",
            '{"type": "service_account", "private_key": "' + r(g, B64, 40) + '"}',
            docker_auth(g),
        ]
    )
    return base64.b64encode(inner.encode()).decode()
