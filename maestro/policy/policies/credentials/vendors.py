"""Vendors' prefixed token formats beyond the best-known ones, as RE2 patterns.

Translated by hand (not copied) from the formats gitleaks' default rule set names
(github.com/gitleaks/gitleaks, config/gitleaks.toml, MIT) and checked against the vendors' own pages
on their token formats; only formats with a fixed prefix or shape are here, so each is precise alone.
Formats found only next to a vendor's name (gitleaks' `<vendor> ... = <32 hex>` rules) are left to
context.py's generic rule, which needs a secret-named key.
"""

from __future__ import annotations

from maestro.policy.policies.credentials.rules import Rule

_W = "A-Za-z0-9_-"
_AFTER = f"(?:^|[^{_W}])"
_END = f"(?:[^{_W}]|$)"
_STD = "A-Za-z0-9+/"


def _prefixed(rule_id: str, name: str, body: str, reveal: int = 4, **kw: object) -> Rule:
    """A token that is a word on its own: not glued to letters, digits, `_` or `-` on either side."""
    return Rule(rule_id, name, _AFTER + f"({body})" + _END, reveal=reveal, **kw)  # type: ignore[arg-type]


VENDOR_FORMATS: tuple[Rule, ...] = (
    # Secret stores and identity.
    _prefixed(
        "1password-secret-key",
        "1Password account secret key",
        r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}",
        3,
    ),
    _prefixed(
        "1password-service-account-token",
        "1Password service-account token",
        rf"ops_eyJ[{_STD}]{{250,}}={{0,3}}",
        4,
        max_len=8192,
    ),
    _prefixed("doppler-token", "Doppler token", r"dp\.(?:pt|st|ct|sa|scim|audit)\.[A-Za-z0-9]{40,44}", 6),
    _prefixed(
        "infisical-token", "Infisical service token", r"st\.[a-f0-9-]{36}\.[a-f0-9]{32}\.[a-f0-9]{32}", 3
    ),
    # Clouds and platforms.
    _prefixed("alibaba-access-key-id", "Alibaba Cloud AccessKey ID", r"LTAI[A-Za-z0-9]{20}", 6),
    _prefixed("cloudflare-origin-ca-key", "Cloudflare Origin CA key", r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}", 5),
    _prefixed(
        "flyio-token", "Fly.io token", rf"fo1_[{_W}]{{43}}|fm[12][ar]?_[{_STD}]{{100,}}={{0,3}}", max_len=4096
    ),
    _prefixed("heroku-api-key", "Heroku API key", rf"HRKU-AA[{_W}]{{58}}", 7),
    _prefixed("netlify-token", "Netlify personal access token", r"nfp_[A-Za-z0-9]{36}"),
    _prefixed("render-api-key", "Render API key", r"rnd_[A-Za-z0-9]{32}"),
    _prefixed(
        "supabase-token", "Supabase access or secret key", r"sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_-]{31}"
    ),
    _prefixed("pulumi-token", "Pulumi access token", r"pul-[a-f0-9]{40}"),
    _prefixed("scalingo-token", "Scalingo API token", rf"tk-us-[{_W}]{{48}}", 6),
    _prefixed(
        "planetscale-token",
        "PlanetScale token or password",
        r"pscale_(?:tkn|oauth|pw)_[A-Za-z0-9_=.-]{32,64}",
        11,
    ),
    _prefixed("openshift-token", "OpenShift user token", rf"sha256~[{_W}]{{43}}", 7),
    _prefixed(
        "harness-token",
        "Harness access token",
        r"(?:pat|sat)\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}",
    ),
    _prefixed("dynatrace-token", "Dynatrace API token", r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}", 7),
    _prefixed(
        "new-relic-key", "New Relic user API or insert key", r"NRAK-[A-Z0-9]{27}|NRII-[A-Za-z0-9-]{32}", 5
    ),
    _prefixed(
        "grafana-token",
        "Grafana Cloud or service-account token",
        r"glc_[A-Za-z0-9+/]{32,400}={0,3}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",
        5,
        max_len=512,
    ),
    _prefixed("grafana-api-key", "Grafana API key", r"eyJrIjoi[A-Za-z0-9]{70,400}={0,3}", 8, max_len=512),
    _prefixed(
        "sentry-token",
        "Sentry user or organization token",
        r"sntryu_[a-f0-9]{64}|sntrys_eyJ[A-Za-z0-9+/_=]{80,600}",
        7,
        max_len=700,
    ),
    _prefixed(
        "firebase-cloud-messaging-key",
        "Firebase Cloud Messaging server key",
        r"AAAA[A-Za-z0-9_-]{7}:APA91b[A-Za-z0-9_-]{134}",
        4,
    ),
    _prefixed(
        "microsoft-teams-webhook",
        "Microsoft Teams incoming webhook",
        r"https://[a-z0-9-]+\.webhook\.office\.com/webhookb2/[a-f0-9-]{36}@[a-f0-9-]{36}/IncomingWebhook/[a-f0-9]{32}/[a-f0-9-]{36}",
        0,
        max_len=400,
    ),
    # Developer tools, CI and registries.
    _prefixed(
        "artifactory-token",
        "JFrog Artifactory API key or reference token",
        r"AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59}",
        4,
    ),
    _prefixed("clojars-token", "Clojars deploy token", r"CLOJARS_[A-Za-z0-9]{60}", 8),
    _prefixed("crates-io-token", "crates.io API token", r"cio[A-Za-z0-9]{32}", 3, judge="entropy"),
    _prefixed("circleci-token", "CircleCI personal API token", r"CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}", 7),
    _prefixed("buildkite-token", "Buildkite API access token", r"bkua_[a-f0-9]{40}", 5),
    _prefixed(
        "sourcegraph-token", "Sourcegraph access token", r"sgp_(?:[a-f0-9]{16}_|local_)?[a-f0-9]{40}", 4
    ),
    _prefixed("postman-api-key", "Postman API key", r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}", 5),
    _prefixed("prefect-api-key", "Prefect API key", r"pnu_[A-Za-z0-9]{36}"),
    _prefixed("readme-api-key", "ReadMe API key", r"rdme_[a-z0-9]{70}", 5),
    _prefixed("linear-api-key", "Linear API key", r"lin_api_[A-Za-z0-9]{40}", 8),
    _prefixed(
        "notion-token", "Notion integration token", r"ntn_[0-9]{11}[A-Za-z0-9]{35}|secret_[A-Za-z0-9]{43}", 4
    ),
    _prefixed("airtable-token", "Airtable personal access token", r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}", 3),
    _prefixed("octopus-deploy-key", "Octopus Deploy API key", r"API-[A-Z0-9]{26}", 4, judge="entropy"),
    _prefixed("infracost-token", "Infracost API token", r"ico-[A-Za-z0-9]{32}", 4),
    _prefixed("frameio-token", "Frame.io API token", r"fio-u-[A-Za-z0-9_=-]{64}", 6),
    _prefixed("intra42-secret", "42 intra client secret", r"s-s4t2(?:ud|af)-[a-f0-9]{64}", 9),
    _prefixed("maxmind-license-key", "MaxMind license key", r"[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk", 0),
    # Payments, commerce and messaging.
    _prefixed("stripe-restricted-key", "Stripe production key", r"[sr]k_prod_[A-Za-z0-9]{16,99}", 8),
    _prefixed("square-access-token", "Square access token", rf"EAAA[{_W}]{{60}}", 4),
    _prefixed(
        "facebook-access-token", "Meta (Facebook) access token", r"EAA[CM][A-Za-z0-9]{100,}", 4, max_len=512
    ),
    _prefixed("adobe-client-secret", "Adobe client secret", r"p8e-[A-Za-z0-9]{32}", 4),
    _prefixed("flutterwave-secret-key", "Flutterwave secret key", r"FLWSECK(?:_TEST)?-[a-hA-H0-9]{32}-X", 8),
    _prefixed("duffel-token", "Duffel API token", r"duffel_(?:test|live)_[A-Za-z0-9_=-]{43}", 12),
    _prefixed("easypost-api-key", "EasyPost API key", r"EZ[AT]K[A-Za-z0-9]{54}", 4),
    _prefixed("shippo-token", "Shippo API token", r"shippo_(?:live|test)_[a-fA-F0-9]{40}", 12),
    _prefixed(
        "brevo-api-key",
        "Brevo (Sendinblue) API or SMTP key",
        r"x(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16}",
        8,
    ),
    # Short prefixes a cache key or an id may share: these must also be random enough (judge "entropy").
    _prefixed("mailgun-api-key", "Mailgun API key", r"key-[a-f0-9]{32}", 4, judge="entropy"),
    _prefixed(
        "twilio-account-sid", "Twilio account SID", r"AC[a-f0-9]{32}", 4, severity="medium", judge="entropy"
    ),
    _prefixed(
        "mapbox-secret-token",
        "Mapbox secret token",
        rf"sk\.eyJ[{_W}]{{40,300}}\.[{_W}]{{20,40}}",
        6,
        max_len=400,
    ),
    _prefixed("settlemint-token", "SettleMint access token", r"sm_(?:aat|pat|sat)_[A-Za-z0-9]{16}", 7),
    # Model and AI platforms.
    _prefixed("openrouter-api-key", "OpenRouter API key", r"sk-or-v1-[a-f0-9]{64}", 9),
    _prefixed("langsmith-api-key", "LangSmith API key", r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}", 8),
    _prefixed("pinecone-api-key", "Pinecone API key", r"pcsk_[A-Za-z0-9]{4,8}_[A-Za-z0-9]{40,80}", 5),
    _prefixed("tavily-api-key", "Tavily API key", r"tvly-(?:dev-|prod-)?[A-Za-z0-9]{32}", 5),
    _prefixed("fireworks-api-key", "Fireworks AI API key", r"fw_[A-Za-z0-9]{24}", 3, judge="entropy"),
)
