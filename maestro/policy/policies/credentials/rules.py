"""The credential formats the guard knows, as data: one RE2 pattern per rule, plus the built-in allowlist.

Patterns are written for RE2 (no backreferences, no lookarounds) and run over an ASCII view of the text,
so matching is linear whatever the input. A rule's first participating capture group is the secret (the
whole match when it has none); text a pattern consumes around that group is context, never masked.
A fixed-length token ends with `\\b` or consumes one character that cannot continue it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from proto.v1 import Severity

Judge = Literal["format", "shape", "entropy", "basic", "wrapped"]
"""How a candidate is confirmed: its format alone; also not a template, variable, number or reference to a
secret manager; also entropy; `basic`: it decodes from base64 to `user:password`; `wrapped`: it decodes
from base64 to text holding a known format."""

_B64 = "A-Za-z0-9_-"
# A run whose class holds non-word characters starts after a character outside it, never inside it:
# otherwise every `-` would start another counting thread and RE2's DFA could grow exponentially.
_AFTER_B64 = f"(?:^|[^{_B64}])"
_END_B64 = f"(?:[^{_B64}]|$)"
# A quote may be escaped (`\\"`): JSON strings holding code, as in a notebook's cells.
_ASSIGN = r"\\?[\"']?[ \t]{0,4}(?:=|:=|=>|:)[ \t]{0,4}\\?[\"']?"
_NL = r"(?:\s|\\[nr])"
_EOL = r"(?:(?:\n|\r|\\[nr])[ \t]*)"
"""A line break, real or escaped, and the indentation after it (a key in a YAML block or a JSON string)."""


@dataclass(frozen=True)
class Rule:
    """One kind of credential: how it looks, how bad a leak is, and how it is confirmed and shown."""

    rule_id: str
    name: str
    pattern: str
    severity: Severity = "critical"
    reveal: int = 4
    """Leading characters of the secret shown in evidence (never more than a third of it)."""
    judge: Judge = "format"
    nested: bool = False
    """The secret may itself be a known format (`api_key = "sk-..."`): that rule is reported instead."""
    block: bool = False
    """A multi-line block (a PEM key): evidence shows its first line, the span covers all of it."""
    user: bool = False
    """Text between the trigger and the secret is a user name, which may itself be a token: it is
    scanned too, and evidence never shows it."""
    min_len: int = 0
    max_len: int = 256
    """Lengths a secret may have, checked after matching (a run matched with `+` has no counter)."""


# Where two rules match at the same position the earlier one wins (scanner.py puts FORMATS, then
# vendors.VENDOR_FORMATS, then KEYS, then CONTEXT, the generic rules last). Every pattern begins with a
# trigger (a literal, a keyword, or a character outside the run that follows), and every loop in
# the middle of a pattern ends at a character its trigger needs, so at most one thread of a rule
# is ever counting: the DFA stays small and each search stops soon after its match.
FORMATS: tuple[Rule, ...] = (
    # Cloud providers.
    Rule("aws-access-key", "AWS access key id", r"\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})\b", reveal=6),
    Rule(
        "aws-secret-key",
        "AWS secret access key",
        r"(?i:aws[_.-]?secret(?:[_.-]?access)?(?:[_.-]?key)?|secret[_.-]?access[_.-]?key)"
        + _ASSIGN
        + r"([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
        reveal=0,
    ),
    Rule(
        "aws-session-token",
        "AWS session token",
        r"(?i:aws[_.-]?session[_.-]?token)" + _ASSIGN + r"([A-Za-z0-9/+=]+)",
        reveal=0,
        min_len=100,
        max_len=4096,
    ),
    Rule(
        "gcp-service-account-key",
        "Google Cloud service-account private key",
        r"\"private_key\"\s{0,8}:\s{0,8}\"(-----BEGIN [A-Z ]{0,16}PRIVATE KEY-----[^\"]*)\"",
        reveal=0,
        block=True,
    ),
    Rule("google-api-key", "Google API key", _AFTER_B64 + f"(AIza[{_B64}]{{35}})" + _END_B64, "high", 6),
    Rule(
        "google-oauth-secret",
        "Google OAuth client secret",
        _AFTER_B64 + f"(GOCSPX-[{_B64}]{{28}})" + _END_B64,
        reveal=7,
    ),
    Rule(
        "google-oauth-token",
        "Google OAuth access token",
        rf"\b(ya29\.[{_B64}]{{30,500}})" + _END_B64,
        "high",
        5,
        max_len=512,
    ),
    Rule(
        "azure-storage-key",
        "Azure storage account key",
        r"(?i:AccountKey)=([A-Za-z0-9+/]{60,100}={0,2})(?:[^A-Za-z0-9+/=]|$)",
        reveal=0,
    ),
    Rule(
        "azure-shared-access-key",
        "Azure Service Bus / Event Hubs / IoT shared access key",
        r"(?i:SharedAccessKey)=([A-Za-z0-9+/]{40,100}={0,2})(?:[^A-Za-z0-9+/=]|$)",
        reveal=0,
    ),
    Rule(
        "azure-sas-token",
        "shared access signature in a URL",
        r"[?&]sig=([A-Za-z0-9%+/]{30,200}(?:%3[Dd]|=){0,2})(?:[^A-Za-z0-9%+/=]|$)",
        "high",
        0,
    ),
    Rule(
        "azure-ad-client-secret",
        "Azure AD client secret",
        r"(?:^|[^A-Za-z0-9_~.-])([A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34})(?:[^A-Za-z0-9_~.-]|$)",
    ),
    Rule("digitalocean-token", "DigitalOcean token", r"\b(do[opr]_v1_[a-f0-9]{64})\b", reveal=7),
    Rule("hashicorp-vault-token", "HashiCorp Vault token", rf"\b(hv[sb]\.[{_B64}]{{24,200}})" + _END_B64),
    Rule(
        "terraform-cloud-token",
        "Terraform Cloud token",
        r"\b([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,120})(?:[^A-Za-z0-9_=-]|$)",
        reveal=0,
    ),
    Rule("databricks-token", "Databricks token", r"\b(dapi[a-f0-9]{32}(?:-[0-9])?)\b"),
    # Code hosts.
    Rule("github-token", "GitHub personal or OAuth token", r"\b(gh[po]_[A-Za-z0-9]{36,251})\b", reveal=6),
    Rule("github-app-token", "GitHub App token", r"\b(gh[usr]_[A-Za-z0-9]{36,251})\b", reveal=6),
    Rule(
        "github-fine-grained-token",
        "GitHub fine-grained token",
        r"\b(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})\b",
        reveal=11,
    ),
    Rule(
        "gitlab-token",
        "GitLab token",
        _AFTER_B64 + r"((?:glpat|gldt|glrt|glptt|glcbt|glft|glimt|glsoat|gloas|glagent)-"
        rf"[{_B64}]{{20,200}}(?:\.[{_B64}]{{1,40}}){{0,2}}|GR1348941[{_B64}]{{20,200}})" + _END_B64,
        reveal=6,
    ),
    Rule("bitbucket-app-password", "Bitbucket app password", r"\b(ATBB[A-Za-z0-9]{32,64})\b"),
    Rule(
        "atlassian-api-token",
        "Atlassian or Bitbucket access token",
        r"(?:^|[^A-Za-z0-9_=-])(AT[AC]TT3[A-Za-z0-9_=-]{60,300})(?:[^A-Za-z0-9_=-]|$)",
        reveal=6,
        max_len=320,
    ),
    # Chat and payment APIs.
    Rule(
        "slack-token",
        "Slack token",
        r"(?:^|[^A-Za-z0-9-])(xox[abposr]-[A-Za-z0-9]{6,64}-[A-Za-z0-9-]{6,250}"
        r"|xoxe(?:\.xox[bp])?-[0-9]-[A-Za-z0-9-]{20,250}|xapp-[0-9]-[A-Za-z0-9-]{20,250})(?:[^A-Za-z0-9-]|$)",
        "high",
        5,
        max_len=320,
    ),
    Rule(
        "slack-webhook",
        "Slack webhook URL",
        r"\bhooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9+/_-]{30,200})(?:[^A-Za-z0-9+/_-]|$)",
        "high",
        0,
    ),
    Rule(
        "discord-bot-token",
        "Discord bot token",
        # The first part is a user id in base64: no `-` or `_`, so it starts only at a word's start.
        rf"\b([MNO][A-Za-z0-9]{{23,27}}\.[{_B64}]{{6,7}}\.[{_B64}]{{27,40}})" + _END_B64,
        "high",
    ),
    Rule(
        "discord-webhook",
        "Discord webhook URL",
        rf"\bdiscord(?:app)?\.com/api/webhooks/[0-9]{{17,20}}/([{_B64}]{{60,100}})" + _END_B64,
        "high",
        0,
    ),
    Rule("telegram-bot-token", "Telegram bot token", rf"\b([0-9]{{8,10}}:AA[{_B64}]{{33}})" + _END_B64),
    Rule("twilio-api-key", "Twilio API key", r"\b(SK[0-9a-fA-F]{32})\b", "high"),
    Rule(
        "twilio-auth-token",
        "Twilio auth token",
        r"(?i:twilio[_.-]?(?:auth[_.-]?)?(?:token|secret))" + _ASSIGN + r"([0-9a-f]{32})\b",
        reveal=0,
    ),
    Rule("stripe-live-key", "Stripe live secret key", r"\b([sr]k_live_[A-Za-z0-9]{16,247})\b", reveal=8),
    Rule("stripe-webhook-secret", "Stripe webhook secret", r"\b(whsec_[A-Za-z0-9]{32,100})\b", "high", 6),
    Rule(
        "sendgrid-api-key",
        "SendGrid API key",
        rf"\b(SG\.[{_B64}]{{22}}\.[{_B64}]{{43}})" + _END_B64,
        reveal=3,
    ),
    Rule("mailchimp-api-key", "Mailchimp API key", r"\b([0-9a-f]{32}-us[0-9]{1,2})\b", "high", 0),
    Rule(
        "square-token",
        "Square access token",
        _AFTER_B64 + rf"(sq0(?:atp|csp)-[{_B64}]{{22,60}})" + _END_B64,
        reveal=7,
    ),
    Rule("shopify-token", "Shopify access token", r"\b(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})\b", reveal=6),
    # Model providers.
    Rule(
        "anthropic-key",
        "Anthropic API key",
        _AFTER_B64 + rf"(sk-ant-[{_B64}]{{20,250}})" + _END_B64,
        reveal=8,
    ),
    Rule(
        "openai-key",
        "OpenAI-style API key",
        # A plain `sk-` key is one long alphanumeric run (hyphenated prose never is); project,
        # service-account and admin keys carry their kind and may hold `-` and `_`.
        _AFTER_B64 + rf"(sk-(?:proj|svcacct|admin)-[{_B64}]{{20,400}}|sk-[A-Za-z0-9]{{32,200}})" + _END_B64,
        reveal=5,
        max_len=512,
    ),
    Rule(
        "huggingface-token", "Hugging Face token", r"\b(hf_[A-Za-z0-9]{30,100}|api_org_[A-Za-z0-9]{30,100})\b"
    ),
    Rule(
        "cohere-api-key",
        "Cohere API key",
        r"(?i:\bco_api_key|cohere[_.-]?(?:api[_.-]?)?(?:key|token))" + _ASSIGN + r"([A-Za-z0-9]{40})\b",
        reveal=0,
    ),
    Rule("groq-api-key", "Groq API key", r"\b(gsk_[A-Za-z0-9]{48,100})\b"),
    Rule("replicate-api-token", "Replicate API token", r"\b(r8_[A-Za-z0-9]{37})\b"),
    Rule("perplexity-api-key", "Perplexity API key", r"\b(pplx-[A-Za-z0-9]{48})\b", reveal=5),
    Rule("xai-api-key", "xAI API key", r"\b(xai-[A-Za-z0-9]{70,200})\b"),
    # Package registries.
    Rule("npm-token", "npm access token", r"\b(npm_[A-Za-z0-9]{36})\b"),
    Rule(
        "pypi-token",
        "PyPI upload token",
        _AFTER_B64 + rf"(pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[{_B64}]{{50,500}})" + _END_B64,
        reveal=5,
        max_len=600,
    ),
    Rule("rubygems-api-key", "RubyGems API key", r"\b(rubygems_[a-f0-9]{48})\b", reveal=9),
    Rule("nuget-api-key", "NuGet API key", r"\b(oy2[a-z0-9]{43})\b", "high", 3),
    Rule(
        "dockerhub-token",
        "Docker Hub access token",
        _AFTER_B64 + rf"(dckr_(?:pat|oat)_[{_B64}]{{27,100}})" + _END_B64,
        reveal=9,
    ),
)

_BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
KEYS: tuple[Rule, ...] = (
    Rule(
        "private-key",
        "private key",
        # Body lines are `Header: value` lines then long base64 runs, so a header never swallows the
        # prose after it; the END line is kept when present.
        r"(-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----"
        # At least one base64 line: a header alone (in prose about keys) holds no key.
        r"(?:" + _NL + r"+[A-Za-z][A-Za-z-]{0,32}: [^\n\\]*)*(?:" + _NL + r"+[A-Za-z0-9+/=]{16,})+"
        r"(?:(?:" + _NL + r"+[A-Za-z0-9+/=]{1,15})?" + _NL + r"*"
        r"-----END (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----)?)",
        reveal=0,
        block=True,
    ),
    Rule(
        "ssh2-private-key",
        "SSH2 (RFC 4716 / Tectia) private key",
        r"(---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----(?:" + _EOL + r"+[A-Za-z-]{1,32}: [^\n\\]*)*"
        r"(?:" + _EOL + r"+[A-Za-z0-9+/=]{16,})+(?:" + _EOL + r"+---- END SSH2 ENCRYPTED PRIVATE KEY ----)?)",
        reveal=0,
        block=True,
    ),
    Rule(
        "putty-private-key",
        "PuTTY private key",
        # Headers and base64 lines (real or escaped newlines), at least one of them a body line: the
        # first line alone, in prose or in a program's source, holds no key.
        r"(PuTTY-User-Key-File-[23]: [^\n\\]*(?:" + _EOL + r"+[A-Za-z-]{1,32}: [^\n\\]*)*"
        r"(?:"
        + _EOL
        + r"+[A-Za-z0-9+/=]{16,})(?:"
        + _EOL
        + r"+(?:[A-Za-z-]{1,32}: [^\n\\]*|[A-Za-z0-9+/=]{4,}))*)",
        reveal=0,
        block=True,
    ),
    Rule(
        "jwk-private-key",
        "private JSON Web Key (its private exponent or scalar `d`)",
        # RFC 7518 section 6: `d` is what a private RSA, EC or OKP key holds and a public one does not.
        # Its quotes may be escaped: a JWK kept as a string inside JSON.
        r"\\?\"d\\?\"[ \t]{0,4}:[ \t]{0,4}\\?\"([A-Za-z0-9_-]{32,})\\?\"",
        reveal=0,
        judge="entropy",
        max_len=2048,
    ),
    Rule(
        "age-secret-key",
        "age secret key",
        # age's Bech32 secret key (github.com/FiloSottile/age; gitleaks' age-secret-key).
        rf"\b(AGE-SECRET-KEY-1[{_BECH32}]{{58}})\b",
        reveal=15,
    ),
    Rule(
        "jwt",
        "JSON Web Token",
        _AFTER_B64 + rf"(eyJ[{_B64}]{{8,}}\.eyJ[{_B64}]{{8,}}\.[{_B64}]*)",
        "high",
        3,
        max_len=16384,
    ),
)
