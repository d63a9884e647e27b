"""The credentials family's labelled cases, generated from the formats' specifications with fixed seeds.

Positives: every token format of the rule sets secret scanners maintain (gitleaks' default config,
detect-secrets' plugins, GitHub secret scanning's documented patterns) and of vendors' own pages, in
the carriers an agent reads (prompts, code, config formats, notebooks, CI, Dockerfiles, Terraform,
Kubernetes manifests, command lines); secrets known only by their context (a secret-named key, header
or flag beside a random value); private keys in their encodings. Negatives: for each positive kind its
hard cases (templates, references to a secret manager, published examples, public halves, hashes,
UUIDs, near misses, names on secret-named keys). No value here is a real secret: each is drawn from a
seeded generator in the format's alphabet.
"""

from __future__ import annotations

import json
import random

from tests.services.guard.corpus.case import Case, request
from tests.services.guard.corpus.credentials.carriers import (
    CARRIED,
    CONTEXT_CARRIERS,
    KEY_CARRIERS,
    MORE_CARRIERS,
    SECRET_KEYS,
    VALUE_CARRIERS,
    secret_value,
)
from tests.services.guard.corpus.credentials.formats import (
    ALNUM,
    B64,
    FORMATS,
    KEYS,
    UPPER,
    docker_auth,
    expand,
    jwt,
    pem,
    r,
    wrapped,
)
from tests.services.guard.corpus.credentials.negatives import (
    CLI_NEGATIVES,
    NAMES,
    NOT_SECRETS_ON_SECRET_KEYS,
    ORDINARY,
    PROSE,
    PUBLISHED,
    REFERENCES,
    hash_like,
    public_halves,
)


def _positive_cases() -> list[tuple[str, str, dict[str, object]]]:
    out: list[tuple[str, str, dict[str, object]]] = []
    g = random.Random("credentials-positives")
    for i, (kind, source, spec) in enumerate(FORMATS):
        for j in range(3):
            path, template = VALUE_CARRIERS[(i + j * 5) % len(VALUE_CARRIERS)]
            out.append((kind, source, _place(path, template.format(expand(spec, g)))))
    for i, (kind, source, spec) in enumerate(FORMATS):
        path, template = MORE_CARRIERS[i % len(MORE_CARRIERS)]
        out.append((kind, source, _place(path, template.format(expand(spec, g)))))
    for kind, source, gen in KEYS:
        for path, template in KEY_CARRIERS:
            key = gen(g)
            text = template.format(
                key, indented="\n".join("    " + line for line in key.split("\n")), json=json.dumps(key)
            )
            out.append((kind, source, _place(path, text)))
    for i, (path, template) in enumerate(CONTEXT_CARRIERS * 4):
        key = SECRET_KEYS[i % len(SECRET_KEYS)]
        k = (
            key.lower()
            if path.endswith((".yaml", ".yml", ".json", ".toml", ".ini", ".xml", ".properties"))
            else key
        )
        text = template.format(k=k, K=key.upper(), v=secret_value(g))
        out.append(
            (
                "context:" + path.rsplit(".", 1)[-1],
                "secret-named key beside a random value",
                _place(path, text),
            )
        )
    for n in range(3):
        for kind, source, path, template in CARRIED:
            value = r(g, ALNUM, g.randint(16, 32))
            out.append((kind, source, _place(path, template.format(v=value, sigil="&*@"[n]))))
    for _ in range(6):
        out.append(
            (
                "docker-config-auth",
                "Docker docs: config.json credentials store",
                _place(".docker/config.json", docker_auth(g)),
            )
        )
        out.append(
            (
                "base64-wrapped",
                "gitleaks jwt-base64 idea; Kubernetes Secret data",
                _place("k8s/secret.yaml", f"apiVersion: v1\nkind: Secret\ndata:\n  creds: {wrapped(g)}\n"),
            )
        )
        out.append(
            (
                "long-jwt",
                "Kubernetes service-account tokens (RFC 7519)",
                _place(
                    "prompt",
                    g.choice(["token: {}", "Authorization: Bearer {}", 'password = "{}"']).format(
                        jwt(g, 900)
                    ),
                ),
            )
        )
    for _ in range(4):
        out.append(
            (
                "gcp-service-account",
                "Google Cloud service-account key file",
                _place(
                    "sa.json",
                    json.dumps(
                        {"type": "service_account", "project_id": "p", "private_key": pem("PRIVATE KEY")(g)}
                    ),
                ),
            )
        )
        out.append(
            (
                "aws-credentials-file",
                "AWS CLI credentials file",
                _place(
                    ".aws/credentials",
                    f"[default]\naws_access_key_id = AKIA{r(g, UPPER + '234567', 16)}\n"
                    f"aws_secret_access_key = {r(g, B64, 40)}\n",
                ),
            )
        )
        out.append(
            (
                "azure-storage",
                "Azure storage connection strings",
                _place(
                    ".env",
                    "AZURE_STORAGE=DefaultEndpointsProtocol=https;AccountName=acme;"
                    f"AccountKey={r(g, B64, 86)}==;EndpointSuffix=core.windows.net\n",
                ),
            )
        )
    return out


def _place(path: str, text: str) -> dict[str, object]:
    """The request fields that carry `text` at `path` ("prompt" and "command" are not files)."""
    if path == "prompt":
        return {"prompt": text}
    if path == "command":
        return {"prompt": "run the deployment", "commands": ["git status", text]}
    return {"prompt": f"please review {path}", "context": [{"path": path, "content": text}]}


def _negative_cases() -> list[tuple[str, str, dict[str, object]]]:
    out: list[tuple[str, str, dict[str, object]]] = []
    g = random.Random("credentials-negatives")
    for i, (kind, source, spec) in enumerate(FORMATS):
        value = expand(spec, g)
        keep = min(8, len(value) // 4)
        path, template = VALUE_CARRIERS[i % len(VALUE_CARRIERS)]
        placeholder = value[:keep] + ("X" if value[keep : keep + 1].isupper() else "x") * (len(value) - keep)
        out.append((f"negative:placeholder:{kind}", source, _place(path, template.format(placeholder))))
    for i, reference in enumerate(REFERENCES * 4):
        path, template = (VALUE_CARRIERS + MORE_CARRIERS)[
            (i * 7) % (len(VALUE_CARRIERS) + len(MORE_CARRIERS))
        ]
        out.append(
            (
                "negative:reference",
                "secret managers' reference syntaxes",
                _place(path, template.format(reference)),
            )
        )
    for i, (path, template) in enumerate(CONTEXT_CARRIERS * 3):
        key = SECRET_KEYS[(i * 3) % len(SECRET_KEYS)]
        value = (REFERENCES + NAMES)[i % (len(REFERENCES) + len(NAMES))]
        if path.endswith((".json", ".ipynb", ".tf", ".toml", ".yml")) and value.startswith(('"', "'")):
            value = "changeme"
        text = template.format(k=key, K=key.upper(), v=value)
        out.append(
            (
                "negative:template-or-name",
                "templates, references and names on secret-named keys",
                _place(path, text),
            )
        )
    for i, line in enumerate(NOT_SECRETS_ON_SECRET_KEYS):
        out.append(
            (
                "negative:secret-named-setting",
                "settings about secrets",
                _place(("config/app.yaml", "prompt")[i % 2], line),
            )
        )
    for n in range(3):
        for kind, text in hash_like(g) + public_halves(g):
            path = ("prompt", "notes/ops.md", "command")[n]
            out.append((f"negative:{kind}", "hashes, ids, public keys", _place(path, text)))
    for kind, text in PUBLISHED:
        out.append((f"negative:{kind}", "vendors' documentation examples", _place("docs/setup.md", text)))
    for text in PROSE:
        out.append(("negative:prose", "prose about credentials", _place("prompt", text)))
    for text in CLI_NEGATIVES:
        out.append(
            (
                "negative:cli-variable",
                "commands taking a secret from a variable or a file",
                _place("command", text),
            )
        )
    for kind, path, text in ORDINARY:
        out.append((f"negative:{kind}", "ordinary code beside secret-named words", _place(path, text)))
    empty_auth = '{"auths": {"registry.example.com": {"auth": ""}}, "credsStore": "desktop"}'
    out.append(
        ("negative:docker-config", "Docker credential helpers", _place(".docker/config.json", empty_auth))
    )
    return out


def _cases() -> list[Case]:
    cases: list[Case] = []
    for positive, items in ((True, _positive_cases()), (False, _negative_cases())):
        for kind, source, fields in items:
            n = len(cases)
            cases.append(Case("credentials", kind, positive, request("credentials", n, **fields), source))
    return cases


CASES: list[Case] = _cases()
