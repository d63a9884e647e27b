"""Where a credential sits as an agent meets it: files, config formats, commands, prompts, and the
secret-named keys, flags, headers and URLs that make a random value a secret.
"""

from __future__ import annotations

import random
import string

from tests.services.guard.corpus.credentials.formats import ALNUM, B64, HEX, PUNCT_PASSWORD, r

# Where a value-only token sits: as an agent meets it (a {} stands for the token).
VALUE_CARRIERS: list[tuple[str, str]] = [
    ("prompt", "Deploy with this credential: {}. Thanks!"),
    ("app/settings.py", 'import os\n\nSERVICE_CREDENTIAL = "{}"\nTIMEOUT = 30\n'),
    ("config/app.json", '{{"service": {{"endpoint": "https://api.example.com", "credential": "{}"}}}}\n'),
    ("deploy/values.yaml", "service:\n  replicas: 2\n  credential: {}\n"),
    (".env", "APP_ENV=production\nSERVICE_CREDENTIAL={}\n"),
    ("Dockerfile", 'FROM python:3.11-slim\nENV SERVICE_CREDENTIAL={}\nCMD ["python", "-m", "app"]\n'),
    (
        ".github/workflows/ci.yml",
        "jobs:\n  test:\n    runs-on: ubuntu-latest\n    env:\n      SERVICE_CREDENTIAL: {}\n"
        "    steps:\n      - run: make test\n",
    ),
    ("infra/main.tf", 'provider "acme" {{\n  region     = "eu-west-1"\n  credential = "{}"\n}}\n'),
    (
        "k8s/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\nstringData:\n  SERVICE_CREDENTIAL: {}\n",
    ),
    (
        "notebooks/explore.ipynb",
        '{{"cells": [{{"cell_type": "code", "source": ["client = Client(\\"{}\\")\\n", '
        '"client.ping()"]}}]}}\n',
    ),
    ("command", 'curl -sS -H "X-Service-Credential: {}" https://api.example.com/v1/items'),
    ("scripts/setup.sh", "#!/bin/sh\nexport SERVICE_CREDENTIAL='{}'\n./run.sh\n"),
]

KEY_CARRIERS: list[tuple[str, str]] = [
    ("keys/deploy_key", "{}\n"),
    ("k8s/tls.yaml", "apiVersion: v1\nkind: Secret\nstringData:\n  key.pem: |\n{indented}\n"),
    ("config/key.json", '{{"key": {json}}}\n'),
    ("prompt", "Use this key to sign:\n{}\n"),
]

SECRET_KEYS = [
    "password",
    "db_password",
    "DB_PASSWORD",
    "client_secret",
    "api_key",
    "apiKey",
    "secret_key",
    "SECRET_KEY",
    "access_token",
    "auth_token",
    "passphrase",
    "JWT_SECRET",
    "webhook_secret",
    "signing_key",
    "encryption_key",
    "master_key",
    "app_secret",
    "account_key",
    "service_key",
    "REDIS_PASSWORD",
    "smtp_password",
    "pwd",
]


def secret_value(g: random.Random) -> str:
    kind = g.randrange(5)
    if kind == 0:
        return r(g, ALNUM, g.randint(16, 40))
    if kind == 1:
        return r(g, HEX, g.choice([32, 40, 64]))
    if kind == 2:
        return r(g, B64, g.choice([22, 30, 42])) + "=="
    if kind == 3:
        return r(g, PUNCT_PASSWORD, g.randint(14, 24))
    return r(g, string.ascii_letters, g.randint(16, 28))


# Where a secret-named key beside a value sits ({k} the key, {v} the value).
CONTEXT_CARRIERS: list[tuple[str, str]] = [
    ("config/app.json", '{{"database": {{"host": "db", "{k}": "{v}"}}}}\n'),
    ("config/app.yaml", "database:\n  host: db\n  {k}: {v}\n"),
    ("config/app.yml", 'database:\n  {k}: "{v}"\n'),
    ("pyproject.toml", '[tool.app]\nhost = "db"\n{k} = "{v}"\n'),
    ("app.ini", "[database]\nhost = db\n{k} = {v}\n"),
    (".env", "HOST=db\n{K}={v}\n"),
    ("web.xml", "<config>\n  <host>db</host>\n  <{k}>{v}</{k}>\n</config>\n"),
    ("application.properties", "spring.datasource.url=jdbc:postgresql://db/app\nspring.datasource.{k}={v}\n"),
    ("app/config.py", 'HOST = "db"\n{K} = "{v}"\n'),
    ("src/config.ts", "export const host = 'db';\nexport const {k} = '{v}';\n"),
    ("internal/config.go", 'func load() {{\n\t{k} := "{v}"\n\tuse({k})\n}}\n'),
    ("infra/db.tf", 'resource "aws_db_instance" "app" {{\n  username = "app"\n  {k} = "{v}"\n}}\n'),
    ("docker-compose.yml", "services:\n  app:\n    environment:\n      - {K}={v}\n"),
    (".github/workflows/deploy.yml", "jobs:\n  deploy:\n    env:\n      {K}: {v}\n"),
    ("k8s/configmap.yaml", "apiVersion: v1\nkind: ConfigMap\ndata:\n  {k}: {v}\n"),
    ("notebooks/db.ipynb", '{{"cells": [{{"source": ["{k} = \\"{v}\\"\\n"]}}]}}\n'),
    ("command", "export {K}={v} && ./deploy.sh"),
    ("prompt", "The service reads {k}={v} at start; please wire it in."),
]

# Secrets found by the shape of their carrier: a flag, a header, a URL, a tool's file.
CARRIED: list[tuple[str, str, str, str]] = [
    # kind, source, path or "command"/"prompt", template with {v}
    ("cli-password-flag", "mysql(1) -p", "command", "mysql -h db -u app -p{v} app < dump.sql"),
    ("cli-password-flag", "docker login(1)", "command", "docker login -u deploy -p {v} registry.example.com"),
    ("cli-password-flag", "sshpass(1)", "command", "sshpass -p '{v}' ssh deploy@host uptime"),
    ("cli-password-flag", "redis-cli -a", "command", "redis-cli -h cache -a {v} ping"),
    ("cli-secret-flag", "long-option convention", "command", "./bin/migrate --password={v} --host db"),
    ("cli-secret-flag", "long-option convention", "command", "vault-sync --token {v} --path kv/app"),
    ("cli-secret-flag", "long-option convention", "command", "tool --api-key {v} fetch"),
    ("basic-auth-flag", "curl(1) -u", "command", "curl -u deploy:{v} https://api.example.com/v1"),
    (
        "authorization-header",
        "RFC 6750 / RFC 7617",
        "command",
        'curl -H "Authorization: Bearer {v}" https://api.example.com',
    ),
    (
        "http-header",
        "HTTP API key headers",
        "prompt",
        "GET /v1/items HTTP/1.1\nHost: api.example.com\nX-Api-Key: {v}\n",
    ),
    ("http-header", "HTTP API key headers", "prompt", "GET /api/v4/projects HTTP/1.1\nPRIVATE-TOKEN: {v}\n"),
    (
        "connection-url",
        "RFC 3986 userinfo",
        "config/db.yaml",
        "url: postgres://app:{v}@db.internal:5432/app\n",
    ),
    (
        "connection-url",
        "SQLAlchemy URLs (dialect+driver)",
        "app/db.py",
        'ENGINE = create_engine("postgresql+psycopg2://app:{v}@db/app")\n',
    ),
    (
        "connection-url",
        "SQLAlchemy URLs (dialect+driver)",
        ".env",
        "DATABASE_URL=mysql+pymysql://app:{v}@db:3306/app\n",
    ),
    (
        "connection-url",
        "MongoDB connection strings",
        "prompt",
        "connect to mongodb+srv://svc:{v}@cluster0.example.net/app",
    ),
    ("connection-url", "Redis URI scheme", "command", "redis-cli -u redis://default:{v}@cache:6379/0 ping"),
    (
        "connection-url",
        "AMQP URI spec",
        "config/broker.ini",
        "[broker]\nurl = amqps://worker:{v}@mq.internal/vhost\n",
    ),
    (
        "connection-url",
        "RFC 3986 userinfo",
        "git-config",
        '[remote "origin"]\n\turl = https://deploy:{v}@git.example.com/app.git\n',
    ),
    (
        "connection-url-punct",
        "RFC 3986 (unencoded # and !)",
        "config/db.env",
        "DB_URL=postgres://app:{v}#x!@db/app\n",
    ),
    ("netrc", ".netrc (ftp(1), curl)", ".netrc", "machine api.example.com\n  login deploy\n  password {v}\n"),
    ("npmrc", "npm docs: .npmrc auth", ".npmrc", "//registry.npmjs.org/:_authToken={v}\n"),
    ("pypirc", "PyPI .pypirc", ".pypirc", "[pypi]\nusername = __token__\npassword = {v}\n"),
    (
        "xml-setting",
        ".NET appSettings / NuGet.config",
        "web.config",
        '<appSettings>\n  <add key="DbPassword" value="{v}" />\n</appSettings>\n',
    ),
    ("unquoted-sigil", "issue 9 blind spot (&, *, @)", "config/app.yaml", "db:\n  password: {sigil}{v}\n"),
]


# More carriers of a secret by context: tools' own flags and files, URLs' query strings, code idioms.
CARRIED += [
    (
        "cli-secret-flag",
        "kubectl create secret(1)",
        "command",
        "kubectl create secret generic app --from-literal=password={v}",
    ),
    ("cli-secret-flag", "docker run -e", "command", "docker run -e MYSQL_ROOT_PASSWORD={v} -d mysql:8"),
    ("cli-secret-flag", "helm --set", "command", "helm upgrade app ./chart --set auth.password={v}"),
    ("cli-secret-flag", "aws configure set", "command", "aws configure set aws_secret_access_key {v}"),
    ("cli-secret-flag", "heroku config:set", "command", "heroku config:set API_KEY={v} -a app"),
    ("cli-secret-flag", "az login", "command", "az login --service-principal -u app -p {v} --tenant t"),
    (
        "url-query",
        "OAuth 2.0 access_token query parameter (RFC 6750 2.3)",
        "prompt",
        "fetch https://api.example.com/v1/me?access_token={v}&fields=id",
    ),
    (
        "url-query",
        "API keys in query strings",
        "app/client.js",
        "const url = `https://api.example.com/data?api_key={v}&q=1`;\n",
    ),
    ("code-idiom", "PHP define()", "wp-config.php", "<?php\ndefine('DB_PASSWORD', '{v}');\n"),
    ("code-idiom", "Ruby hash", "config/initializers/app.rb", "App.configure(:password => '{v}')\n"),
    (
        "code-idiom",
        "camelCase JSON keys",
        "appsettings.json",
        '{{"Auth": {{"clientSecret": "{v}", "authority": "https://login.example.com"}}}}\n',
    ),
    (
        "code-idiom",
        "ADO.NET connection strings",
        "appsettings.json",
        '{{"ConnectionStrings": {{"Db": "Server=db;Database=app;User Id=app;Password={v};"}}}}\n',
    ),
    ("code-idiom", "Ansible inventory", "inventory/hosts.yml", "all:\n  vars:\n    ansible_password: {v}\n"),
    ("code-idiom", "PostgreSQL libpq env", "command", "PGPASSWORD={v} psql -h db -U app -c 'select 1'"),
    (
        "code-idiom",
        "HTTP auth headers",
        "prompt",
        "POST /v1/jobs HTTP/1.1\nX-Auth-Token: {v}\nContent-Type: application/json\n",
    ),
]

# More places a token turns up, each format put in one of them: docs, shells of other systems, logs,
# block scalars and heredocs, a Secret's base64 data, a requirement's URL, a Makefile recipe.
MORE_CARRIERS: list[tuple[str, str]] = [
    ("README.md", "## Setup\n\n```bash\nexport SERVICE_VALUE={}\n```\n"),
    ("deploy.ps1", '$env:SERVICE_VALUE = "{}"\n& ./deploy.ps1\n'),
    ("setup.bat", "@echo off\nset SERVICE_VALUE={}\ncall run.bat\n"),
    ("deploy/values.yaml", "service:\n  value: |\n    {}\n"),
    ("infra/blob.tf", "locals {{\n  blob = <<EOT\n{}\nEOT\n}}\n"),
    ("Makefile", "deploy:\n\tcurl -sS -H 'X-Value: {}' https://api.example.com/deploy\n"),
    ("logs/app.log", "2024-05-01T10:00:00Z INFO outgoing headers={{'x-value': '{}', 'accept': '*/*'}}\n"),
    ("requirements.txt", "requests==2.31.0\ngit+https://{}@git.example.com/acme/private.git\n"),
    ("chat.md", "> can you check why this fails?\n> `client = Client({})`\n"),
    ("config.xml", "<settings>\n  <value>{}</value>\n</settings>\n"),
]
