"""Secrets known by their context: a password in a URL, a header, a flag, a config file's setting, a
secret-named key next to a random value, a credential wrapped in base64. Each rule's value is judged
(values.py) rather than trusted to its format, so templates, references and names are let through.
"""

from __future__ import annotations

import base64
import re

from maestro.policy.policies.credentials.rules import Rule

_B64STD = "A-Za-z0-9+/"


def _wrapped_prefixes() -> str:
    """How the base64 of a value that starts with a known format starts, as an RE2 alternation.

    Only the characters the prefix fixes whatever follows it (6 bits each), so the wrapped value may
    go on with anything; the scanner decodes the candidate and looks for the format inside.
    """
    prefixes = (
        "AKIA",
        "ASIA",
        "ghp_",
        "gho_",
        "ghs_",
        "github_pat_",
        "glpat-",
        "sk-ant-",
        "sk-proj-",
        "xoxb-",
        "xoxp-",
        "sk_live_",
        "rk_live_",
        "AIza",
        "hf_",
        "npm_",
        "pypi-AgE",
        "-----BEGIN",
        "AGE-SECRET-KEY-",
        '{"auths":',
        '{"type":"service_account"',
        '{"type": "service_account"',
        '{\n  "type": "service_account"',
        "eyJhbGciOi",
    )
    out = []
    for prefix in prefixes:
        encoded = base64.b64encode(prefix.encode()).decode()
        out.append(re.escape(encoded[: len(prefix) * 8 // 6]))
    return "|".join(sorted(set(out)))


_SCHEMES = (
    r"postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|oracle|cockroachdb|"
    r"clickhouse|jdbc:[a-z0-9]+|ldaps?|s?ftp|smtps?|imaps?|pop3s?|nats|kafka|https?|neo4j(?:\+s)?|bolt|"
    r"couchbases?|cassandra|snowflake|db2|redshift|vertica|presto|trino|hive|sybase|influxdb|memcached|"
    r"elasticsearch|opensearch|rabbitmq|mqtts?|stomp|ssh|git|svn|socks5h?|wss?"
)

CONTEXT: tuple[Rule, ...] = (
    # Passwords in URLs, headers, command flags and assignments.
    Rule(
        "connection-string-password",
        "password in a connection string or URL",
        # A scheme may name its driver (`postgresql+psycopg2://`, SQLAlchemy's form); a password may
        # hold `#` or `!` although a URL should encode them: the value ends at the last `@`.
        rf"\b(?:{_SCHEMES})(?:\+[a-z0-9_]{{1,24}}){{0,2}}://"
        r"[^\s:/?#@\"'<>]*:([^\s/?\"'<>]+)@",
        reveal=0,
        judge="shape",
        nested=True,
        user=True,
        min_len=4,
    ),
    Rule(
        "basic-auth-flag",
        "user:password passed as a command-line flag",
        # Not a URL (`-u redis://...`): its password is the URL rule's.
        r"(?:^|\s)(?:-u|--user)(?:=|[ \t]{0,8})[\"']?[^\s:\"']+:([^\s\"'/][^\s\"']*)",
        "high",
        0,
        judge="shape",
        nested=True,
        user=True,
        min_len=4,
    ),
    Rule(
        "authorization-header",
        "credential in an Authorization header",
        r"(?i:authorization)[\"']?[ \t]{0,8}[:=][ \t]{0,8}[\"']?(?i:bearer|basic|token)[ \t]{1,8}"
        r"([A-Za-z0-9._~+/=-]{16,})",
        "high",
        0,
        judge="shape",
        nested=True,
        max_len=8192,
    ),
    Rule(
        "docker-config-auth",
        "registry credentials in a Docker config.json `auth`",
        # base64 of `user:password` (docs.docker.com, `docker login`'s credentials store).
        rf"\"auth\"[ \t]{{0,4}}:[ \t]{{0,4}}\"([{_B64STD}]{{8,}}={{0,2}})\"",
        reveal=0,
        judge="basic",
    ),
    Rule(
        "base64-wrapped-credential",
        "credential wrapped in base64",
        rf"(?:^|[^A-Za-z0-9+/=_-])((?:{_wrapped_prefixes()})[{_B64STD}]{{8,}}={{0,2}})(?:[^A-Za-z0-9+/=_-]|$)",
        reveal=0,
        judge="wrapped",
        min_len=16,
        # A base64 service-account file or a 4096-bit PEM is under 6 KB; each candidate is decoded once.
        max_len=8192,
    ),
    Rule(
        "npm-auth-token",
        "registry auth token in an .npmrc",
        # `:_authToken=` after a registry, or `_auth=` opening a line: not `new_auth = ...` in code.
        r"(?:^|[\s:])_auth(?:Token)?[ \t]{0,8}=[ \t]{0,8}[\"']?([^\s\"']+)",
        reveal=0,
        judge="shape",
        nested=True,
        min_len=16,
    ),
    Rule(
        "netrc-password",
        "password in a .netrc",
        r"\bmachine[ \t]+[^\s]+\s+(?:login[ \t]+[^\s]+\s+)?password[ \t]+([^\s\\\"']+)",
        reveal=0,
        judge="shape",
        nested=True,
        min_len=4,
    ),
    Rule(
        "cli-secret-flag",
        "secret passed as a command-line flag",
        r"(?:^|\s)--?(?i:password|passwd|token|secret|api-key|apikey|access-token|auth-token|client-secret)"
        r"(?:=|[ \t]{1,8})[\"']?([^\s\"']+)",
        "high",
        0,
        judge="entropy",
        nested=True,
    ),
    Rule(
        "cli-password-flag",
        "password passed to a client's short flag",
        # mysql's `-p<password>` (glued), `docker login -p`, `sshpass -p`, `redis-cli -a`, `configure set`.
        r"\b(?:(?:mysql(?:dump|admin|sh|import)?|mariadb(?:-dump)?|mycli)[ \t][^\n;&|]*?"
        r"[ \t]-p([^\s\"'-][^\s\"']{3,})"
        # Any client's `login -p <password>`: docker, podman, az, oc, cf, helm registry...
        r"|\blogin[ \t][^\n;&|]*?[ \t]-p[ \t]+[\"']?([^\s\"']+)"
        r"|sshpass[ \t]+-p[ \t]*[\"']?([^\s\"']+)"
        # A CLI's own settings: `aws configure set aws_secret_access_key <v>`, `gh secret set X --body <v>`.
        r"|configure[ \t]+set[ \t]+[A-Za-z0-9_.]*(?i:secret|password|token|key)[A-Za-z0-9_.]*"
        r"[ \t]+[\"']?([^\s\"']+)"
        r"|secret[ \t]+set[ \t][^\n;&|]*?[ \t]--?(?:body|value|b)(?:=|[ \t]+)[\"']?([^\s\"']+)"
        r"|redis-cli[ \t][^\n;&|]*?-a[ \t]+[\"']?([^\s\"']+))",
        "high",
        0,
        judge="entropy",
        nested=True,
    ),
    Rule(
        "php-define-secret",
        "secret in a PHP constant",
        # `define('DB_PASSWORD', '...')` (wp-config.php and its kin); a comma is no assignment elsewhere.
        r"\bdefine\([ \t]{0,4}[\"'][A-Za-z0-9_]{0,40}(?i:pass(?:word)?|pwd|secret|token|key|salt)"
        r"[A-Za-z0-9_]{0,20}[\"'][ \t]{0,4},[ \t]{0,4}([\"'][^\"'\n]{6,}[\"'])",
        "high",
        0,
        judge="entropy",
        nested=True,
    ),
    Rule(
        "xml-secret-setting",
        "secret in an XML setting",
        # .NET appSettings and NuGet.config: `<add key="DbPassword" value="..."/>`.
        r"(?i:key|name)=\"[A-Za-z0-9_.:-]{0,40}(?i:password|secret|token|apikey|api_key|connectionstring)\""
        r"[ \t]+(?i:value)=\"([^\"\n]{6,})\"",
        "high",
        0,
        judge="entropy",
        nested=True,
    ),
    Rule(
        "generic-secret",
        "hard-coded secret",
        # A key that ends in a secret-ish word, an assignment, then a quoted or bare value. The match
        # starts at the word, not at the key's start: a loop over key characters before it would
        # stay alive through every identifier and make each search run to the end of the text.
        r"(?i:(?:pass(?:word|wd|phrase)?|pwd|secret|token|credentials?|apikey|"
        r"(?:api|secret|access|private|master|signing|encryption|client|app|auth|account|service)"
        # No plural: "tokens:" and "secrets:" head prose and lists far more often than they hold a secret.
        # No `license_key`: a product key, and in SPDX and ScanCode data a license's identifier.
        r"[_.-]?key))"
        r"\\?[\"']?[ \t]{0,8}(?::[ \t]{0,8}(?:str|string|SecretStr|Optional\[str\])[ \t]{0,8})?"
        # `>` ends an XML element's name: `<password>value</password>`.
        r"(?:==?|:=|=>|:|>|\|\|=|\?=)[ \t]{0,8}"
        r"(\\\"[^\"\\\n]{6,}\\\"|\"[^\"\n]{6,}\"|'[^'\n]{6,}'|`[^`\n]{6,}`|[^\s\"'`,;()\[\]{}<>\\]{8,})",
        "high",
        0,
        judge="entropy",
        nested=True,
    ),
)
