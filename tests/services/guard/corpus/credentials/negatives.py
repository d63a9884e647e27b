"""The hard negatives: what stands where a credential would, or looks like one, and is not."""

from __future__ import annotations

import base64
import json
import random

from maestro.policy.policies.credentials.values import KNOWN_EXAMPLES
from tests.services.guard.corpus.credentials.formats import (
    ALNUM,
    B64,
    B64URL,
    BECH32,
    DIGITS,
    HEX,
    LOWER,
    pem,
    r,
    uuid,
)

# References and templates that stand where a credential would: never one.
REFERENCES = [
    "${SERVICE_CREDENTIAL}",
    "${{ secrets.SERVICE_CREDENTIAL }}",
    "{{ .Values.service.credential }}",
    "vault://secret/data/app#credential",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/app-Ab12Cd",
    "op://Platform/app/credential",
    "projects/acme-prod/secrets/app-credential/versions/latest",
    "<your-api-key>",
    "changeme",
    "REPLACE_ME",
    "xxxxxxxxxxxxxxxxxxxxxxxx",
    "%SERVICE_CREDENTIAL%",
    "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/app/)",
]

NAMES = [
    "get_password()",
    "DEFAULT_ACCESS_TOKEN",
    "settings.apiKey",
    "self.client_secret",
    "os.environ['API_KEY']",
    "&defaultDatabasePassword",
    "*sharedSecretValue",
    "userPasswordFromConfig",
    "loadSigningKey",
    "config.secrets.database",
    "process.env.STRIPE_KEY",
    "null",
    '""',
    "None",
    "required",
    "String",
]

NOT_SECRETS_ON_SECRET_KEYS = [
    "password_min_length: 12",
    "token_ttl_seconds = 3600",
    "secret_name: app-db-credentials",
    "token_url: https://auth.example.com/oauth/token",
    "api_key_header: X-Api-Key",
    "password: ''",
    "api_key: null",
    "max_tokens = 4096",
    "credentials_file = ~/.config/app/credentials.json",
    "secret_key_ref:\n  name: app\n  key: password",
    "passwordless: true",
    "token_type: Bearer",
]


def hash_like(g: random.Random) -> list[tuple[str, str]]:
    sha = r(g, HEX, 64)
    git = r(g, HEX, 40)
    integrity = base64.b64encode(random.Random(g.random()).randbytes(64)).decode()
    bcrypt = "$2b$12$" + r(g, B64.replace("+", "."), 53)
    plain = base64.b64encode(b"log_level: info\nworkers: 4\nregion: eu-west-1\n").decode()
    return [
        ("hash:sha256", f"{sha}  dist/app-1.2.0.tar.gz\n"),
        ("hash:checksum-key", f"checksum: sha256:{sha}\nurl: https://example.com/tool.tgz\n"),
        ("hash:git-sha", f"git checkout {git} && make build"),
        ("hash:git-sha", f'{{"sha": "{git}", "ref": "refs/heads/main"}}'),
        ("hash:docker-digest", f"FROM python@sha256:{sha}\nRUN pip install -r requirements.txt\n"),
        ("hash:sri", f'{{"integrity": "sha512-{integrity}"}}'),
        ("hash:bcrypt", f"users:\n  - name: admin\n    password_hash: {bcrypt}\n"),
        ("hash:htpasswd", f"admin:{bcrypt}\n"),
        ("hash:go-sum", f"github.com/acme/lib v1.2.3 h1:{r(g, B64, 43)}=\n"),
        ("uuid:id", f"request_id: {uuid(g)}\ntenant_id: {uuid(g)}\n"),
        ("uuid:client-id", f'{{"client_id": "{uuid(g)}", "redirect_uri": "https://app.example.com/cb"}}'),
        ("random-id", f"trace_id={r(g, HEX, 32)} span_id={r(g, HEX, 16)} build={r(g, ALNUM, 24)}"),
        ("base64:plain", f"apiVersion: v1\nkind: ConfigMap\nbinaryData:\n  app.yaml: {plain}\n"),
        ("base64:image", f'<img src="data:image/png;base64,iVBORw0KGgo{r(g, B64, 120)}=">'),
    ]


def public_halves(g: random.Random) -> list[tuple[str, str]]:
    return [
        ("public:ssh-key", f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{r(g, B64, 43)} deploy@ci\n"),
        ("public:ssh-rsa", f"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ{r(g, B64, 300)} ops@host\n"),
        ("public:pem", pem("PUBLIC KEY")(g)),
        ("public:certificate", pem("CERTIFICATE")(g)),
        ("public:pgp", pem("PGP PUBLIC KEY BLOCK")(g)),
        ("public:age-recipient", "age1" + r(g, BECH32.lower(), 58)),
        ("public:stripe-publishable", "STRIPE_PUBLISHABLE=pk_live_" + r(g, ALNUM, 99)),
        (
            "public:mapbox",
            "mapboxgl.accessToken = 'pk.eyJ1Ijoi" + r(g, B64URL, 60) + "." + r(g, B64URL, 22) + "';",
        ),
        ("public:jwk", json.dumps({"kty": "RSA", "e": "AQAB", "kid": "k1", "n": r(g, B64URL, 342)})),
        (
            "public:oauth-client-id",
            f"GOOGLE_CLIENT_ID={r(g, DIGITS, 12)}-{r(g, LOWER + DIGITS, 32)}.apps.googleusercontent.com",
        ),
    ]


PUBLISHED = [
    (
        "published:aws",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    ),
    (
        "published:jwt-io",
        # jwt.io's example, kept whole in the allowlist (a fragment in this file would be a finding).
        "Authorization: Bearer " + next(k for k in KNOWN_EXAMPLES if k.startswith("eyJ")),
    ),
    (
        "published:azure",
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    ),
    ("published:slack", "SLACK_BOT_TOKEN=xoxb-not-a-real-token-this-will-not-work"),
    ("test-key:stripe", "stripe.api_key = 'sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc'"),
]

PROSE = [
    "GitHub tokens start with ghp_, gho_ or github_pat_; GitLab ones with glpat-.",
    "Rotate the AKIA key and the xoxb- bot token after the incident, then update the runbook.",
    "Set OPENAI_API_KEY in your shell; never commit sk- keys. See docs/secrets.md.",
    "The password must be at least 12 characters and the token expires after an hour.",
    "-----BEGIN RSA PRIVATE KEY----- marks a PEM private key; ours live in the vault.",
]

CLI_NEGATIVES = [
    'mysql -h db -u app -p"$MYSQL_PASSWORD" app',
    "mysql -u root -p app",
    'docker login -u deploy --password-stdin registry.example.com < "$TOKEN_FILE"',
    'curl -u "$API_USER:$API_PASSWORD" https://api.example.com',
    'curl -H "Authorization: Bearer $TOKEN" https://api.example.com',
    "psql postgres://app@db/app -c 'select 1'",
    "DATABASE_URL=postgres://app:${DB_PASSWORD}@db/app ./migrate",
    'redis-cli -a "$REDIS_PASSWORD" ping',
    "sshpass -f ~/.ssh/pass ssh deploy@host",
    "./tool --token-file /run/secrets/token --password-file /run/secrets/pw",
    "gh auth login --with-token < token.txt",
    'kubectl create secret generic app --from-literal=password="$DB_PASSWORD"',
]


# Ordinary code and config beside secret-named words and high-entropy strings that hold no secret.
ORDINARY = [
    (
        "code:type-hint",
        "app/models.py",
        "class Login(BaseModel):\n    password: str\n    token: Optional[str] = None\n",
    ),
    ("code:type-hint", "src/types.ts", "interface Login {\n  password: string;\n  apiKey?: string;\n}\n"),
    ("code:getpass", "cli.py", "password = getpass.getpass('Password: ')\ntoken = input('Token: ')\n"),
    ("code:spring-value", "Config.java", '@Value("${db.password}")\nprivate String password;\n'),
    (
        "code:tokenizer",
        "train.py",
        'tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")\n'
        "self.token_embeddings = nn.Embedding(30522, 768)\n",
    ),
    (
        "code:i18n",
        "locales/en.json",
        '{"password_reset_title": "Reset your password", "token_expired": "Your session expired"}\n',
    ),
    ("code:html", "login.html", '<input type="password" name="password" autocomplete="current-password">\n'),
    (
        "config:ansible-template",
        "group_vars/all.yml",
        "db_password: \"{{ vault_db_password }}\"\napi_token: \"{{ lookup('env', 'API_TOKEN') }}\"\n",
    ),
    (
        "config:ansible-vault",
        "group_vars/prod.yml",
        "db_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  66386439653765386464\n",
    ),
    (
        "config:jasypt",
        "application.yml",
        "spring:\n  datasource:\n    password: ENC(G6N718UuyPE5bHyWKyuLQSm02auQPUtm)\n",
    ),
    (
        "config:sops",
        "secrets.enc.yaml",
        "password: ENC[AES256_GCM,data:Tr7o=,iv:1=,tag:2=,type:str]\nsops:\n  version: 3.8.1\n",
    ),
    (
        "config:k8s-ref",
        "k8s/deploy.yaml",
        "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: app-db\n"
        "        key: password\n",
    ),
    ("config:masked", "docs/output.txt", 'password: "********"\ntoken: ****************\n'),
    (
        "lock:cargo",
        "Cargo.lock",
        '[[package]]\nname = "serde"\nversion = "1.0.197"\n'
        'checksum = "3fb1c873e1b9b056a4dc4c0c198b24c3ffa059243875552b2bd0933b1aee4ce2"\n',
    ),
    (
        "lock:poetry",
        "poetry.lock",
        '{file = "requests-2.31.0.tar.gz", '
        'hash = "sha256:942c5a758f98d790eaed1a29cb6eefc7ffb0d1cf7af05c3d2791656dbd6ad1e1"}\n',
    ),
    (
        "aws:ids",
        "infra/outputs.json",
        '{"role": "arn:aws:iam::123456789012:role/app", "ami": "ami-0abcdef1234567890", '
        '"kms": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}\n',
    ),
    (
        "web:csp-nonce",
        "index.html",
        '<script nonce="r4nd0mN0nc3Zx8Qw" src="/app.3f2a9c1e.js" '
        'integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC"></script>\n',
    ),
    (
        "web:sourcemap",
        "app.js.map",
        '{"version":3,"sources":["app.ts"],"mappings":"AAAA,SAASA,IAAI,CAACC,CAAC,EAAEC,CAAC;'
        'AACjB,OAAOD,CAAC,GAAGC,CAAC"}\n',
    ),
    ("sql:password-param", "migrations/0003.sql", "ALTER ROLE app WITH PASSWORD :'app_password';\n"),
    ("regex:password-rule", "config/policy.yaml", "password_regex: ^(?=.*[A-Z])(?=.*[0-9]).{12,}$\n"),
]
