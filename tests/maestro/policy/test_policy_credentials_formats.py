"""Each vendor format (vendors.py) and context carrier (context.py) found as itself; its stand-ins not."""

from __future__ import annotations

import random

import pytest

from maestro.policy.policies.credentials.vendors import VENDOR_FORMATS
from tests.maestro.policy.test_policy_credentials_blind_spots import rules
from tests.services.guard.corpus.credentials.formats import expand

# rule id -> a spec of its format (the corpus' spec language: `{A36}` is 36 alphanumerics, ...).
VENDOR_SPECS: dict[str, str] = {
    "1password-secret-key": "A3-{U6}-{U11}-{U5}-{U5}-{U5}",
    "1password-service-account-token": "ops_eyJ{S300}",
    "doppler-token": "dp.pt.{A43}",
    "infisical-token": "st.{H8}-{H4}-{H4}-{H4}-{H12}.{H32}.{H32}",
    "alibaba-access-key-id": "LTAI{A20}",
    "cloudflare-origin-ca-key": "v1.0-{H24}-{H146}",
    "flyio-token": "fo1_{W43}",
    "heroku-api-key": "HRKU-AA{W58}",
    "netlify-token": "nfp_{A36}",
    "render-api-key": "rnd_{A32}",
    "supabase-token": "sbp_{H40}",
    "pulumi-token": "pul-{H40}",
    "scalingo-token": "tk-us-{W48}",
    "planetscale-token": "pscale_pw_{W43}",
    "openshift-token": "sha256~{W43}",
    "harness-token": "pat.{W22}.{A24}.{A20}",
    "dynatrace-token": "dt0c01.{U24}.{U64}",
    "new-relic-key": "NRAK-{U27}",
    "grafana-token": "glsa_{A32}_{H8}",
    "grafana-api-key": "eyJrIjoi{A90}",
    "sentry-token": "sntryu_{H64}",
    "firebase-cloud-messaging-key": "AAAA{W7}:APA91b{W134}",
    "microsoft-teams-webhook": "https://acme.webhook.office.com/webhookb2/{H8}-{H4}-{H4}-{H4}-{H12}@"
    "{H8}-{H4}-{H4}-{H4}-{H12}/IncomingWebhook/{H32}/{H8}-{H4}-{H4}-{H4}-{H12}",
    "artifactory-token": "AKCp{A69}",
    "clojars-token": "CLOJARS_{L60}",
    "crates-io-token": "cio{A32}",
    "circleci-token": "CCIPAT_{A22}_{H40}",
    "buildkite-token": "bkua_{H40}",
    "sourcegraph-token": "sgp_{H16}_{H40}",
    "postman-api-key": "PMAK-{H24}-{H34}",
    "prefect-api-key": "pnu_{A36}",
    "readme-api-key": "rdme_{L70}",
    "linear-api-key": "lin_api_{A40}",
    "notion-token": "ntn_{D11}{A35}",
    "airtable-token": "pat{A14}.{H64}",
    "octopus-deploy-key": "API-{U26}",
    "infracost-token": "ico-{A32}",
    "frameio-token": "fio-u-{W64}",
    "intra42-secret": "s-s4t2ud-{H64}",
    "maxmind-license-key": "{A6}_{A29}_mmk",
    "stripe-restricted-key": "sk_prod_{A32}",
    "square-access-token": "EAAA{W60}",
    "facebook-access-token": "EAAC{A140}",
    "adobe-client-secret": "p8e-{A32}",
    "flutterwave-secret-key": "FLWSECK_TEST-{H32}-X",
    "duffel-token": "duffel_live_{W43}",
    "easypost-api-key": "EZAK{A54}",
    "shippo-token": "shippo_live_{H40}",
    "brevo-api-key": "xkeysib-{H64}-{A16}",
    "mailgun-api-key": "key-{H32}",
    "twilio-account-sid": "AC{H32}",
    "mapbox-secret-token": "sk.eyJ1Ijoi{W60}.{W22}",
    "settlemint-token": "sm_pat_{A16}",
    "openrouter-api-key": "sk-or-v1-{H64}",
    "langsmith-api-key": "lsv2_pt_{H32}_{H10}",
    "pinecone-api-key": "pcsk_{A5}_{A60}",
    "tavily-api-key": "tvly-{A32}",
    "fireworks-api-key": "fw_{A24}",
}


def test_every_vendor_format_has_a_spec_here() -> None:
    assert {rule.rule_id for rule in VENDOR_FORMATS} == set(VENDOR_SPECS)


@pytest.mark.parametrize("rule", sorted(VENDOR_SPECS))
def test_a_vendor_format_is_found_as_itself_in_any_carrier(rule: str) -> None:
    g = random.Random(rule)
    token = expand(VENDOR_SPECS[rule], g)
    for template in ("{}", 'value = "{}"', "export X={}", '{{"v": "{}"}}', "curl -H 'X-Key: {}' https://x"):
        assert rules(template.format(token)) == [rule], template
    # Glued to a word, or shown as a stand-in, it is not one.
    assert rules("x" + token + "x") == [] or rule == "microsoft-teams-webhook"
    keep = 8
    assert rules(token[:keep] + "x" * (len(token) - keep)) == []


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("define('DB_PASSWORD', '5XA6dUdA9ChGh3hDJPHkSRBK');", "php-define-secret"),
        ("<password>5XA6dUdA9ChGh3hDJPHkSRBK</password>", "generic-secret"),
        ('<add key="DbPassword" value="5XA6dUdA9ChGh3hDJPHkSRBK" />', "xml-secret-setting"),
        ("machine api.example.com login deploy password 5XA6dUdA9ChGh3hDJPHkSRBK", "netrc-password"),
        ("mysql -h db -u app -p5XA6dUdA9ChGh3hDJPHkSRBK app", "cli-password-flag"),
        ("az login --service-principal -u app -p 5XA6dUdA9ChGh3hDJPHkSRBK", "cli-password-flag"),
        ("aws configure set aws_secret_access_key 5XA6dUdA9ChGh3hDJPHkSRBK", "cli-password-flag"),
        ("gh secret set DEPLOY_TOKEN --body 5XA6dUdA9ChGh3hDJPHkSRBK", "cli-password-flag"),
        (
            '{"key": "{\\"kty\\": \\"OKP\\", \\"d\\": \\"fgWwn8jhyHs110cggrgyosbsNKl6TTrjkT99rFRsnCi\\"}"}',
            "jwk-private-key",
        ),
        ('"source": ["api_key = \\"5XA6dUdA9ChGh3hDJPHkSRBK\\"\\n"]', "generic-secret"),
    ],
)
def test_a_context_carrier_is_found(text: str, rule: str) -> None:
    assert rules(text) == [rule]


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN RSA PRIVATE KEY----- marks a PEM private key; ours live in the vault.",
        "mapboxgl.accessToken = 'pk.eyJ1IjoiTm9zWnFYa0xtUHJTdVZ3YnlBYjNDZDRFZjVHIn0.Hk2QvL9pTzR7mXcW1nJd0a';",
        "STRIPE_PUBLISHABLE=pk_live_51H8xkLmNoPqRsTuVwXyZ0123456789",
        'app_secret: "userPasswordFromConfig"\nREDIS_PASSWORD = "loadSigningKey"',
        "secret_key := \"os.environ['API_KEY']\"",
        "stripe.api_key = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'",
        "password_hash: $2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "db_password: ENC[AES256_GCM,data:Tr7o=,iv:1=,tag:2=,type:str]",
        # Found by check-pr on this family's own source: headers without a body, templates in a URL.
        "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ---- opens an RFC 4716 key",
        'HEADER = "PuTTY-User-Key-File-3: ssh-ed25519\\nEncryption: none\\nPublic-Lines: 2\\n" + body',
        "redis-cli -u redis://default:{password}@cache:6379/0 ping",
        "DB_URL=postgres://app:{password}#x!@db/app",
        'NETRC = "machine api.example.com\\n  login deploy\\n  password {v}\\n"',
    ],
)
def test_stand_ins_public_halves_and_headers_are_not_credentials(text: str) -> None:
    assert rules(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "def step(self, shrink_pass: ShrinkPass, *, random_order: bool = False) -> None:",
        "tstr = f' for token: \"{self.token_string}\"'",
        "names = ['prop', 'pwd', 'quickcheck', 'refute']",
        "api = ('NSURLCredential', 'NSURLCredentialStorage', 'PKPass', 'PKPassLibrary')",
        "new_auth = get_netrc_auth(url) if self.trust_env else None",
        '{"license_key": "389-exception", "spdx_license_key": "LicenseRef-scancode-adobe-2006"}',
        "client = Client(cl_api_key=cl_api_key, timeout=5)",
        # A short vendor prefix on an identifier: its format must also be random enough.
        "fw_configurationManagerXYZ1 = load_firmware()",
    ],
)
def test_ordinary_third_party_code_holds_no_credential(text: str) -> None:
    # Found by scanning 28 MB of the packages installed in this repository's virtualenv: 185 findings
    # before, every one a false positive (type annotations, lists of names, license ids, format fields).
    assert rules(text) == []
