"""The GitHub connection (MAESTRO_GITHUB_CONFIG): which repositories send webhooks, to which tenant, with what
secret, which commands test them, and the token the REST API is called with.

```yaml
api_url: https://api.github.com          # GitHub Enterprise: https://HOST/api/v3
token_file: /run/secrets/github-token    # statuses: write, security_events: write, contents: read
target_url: https://maestro.example.com/v1/workflows/{workflow_id}   # optional: where a status links
tenants:
  acme:
    webhook_secret_file: /run/secrets/acme-webhook
repositories:
  acme/widgets:
    tenant: acme
    test_commands: ["pytest -q"]
    exclude: ["vendor/**"]               # optional: files check-pr leaves out
```

Every field is checked when the orchestrator starts: a misspelt key, a tenant without a secret, a secret or
token file that cannot be read stops it with one line naming the line and field. Secrets come from files only
(a mounted Kubernetes secret), never from the YAML itself, and are never logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from maestro.errors import CannotRun
from maestro.policy.bundle import Problem, duplicate_keys, located_problem
from maestro.settings import Settings
from proto.v1.ids import TENANT_PATTERN

REPO_PATTERN = r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$"
"""A repository's `owner/name`, as GitHub spells it in `repository.full_name`."""
DEFAULT_API_URL = "https://api.github.com"

RepoName = Annotated[str, Meta(pattern=REPO_PATTERN)]
TenantName = Annotated[str, Meta(pattern=TENANT_PATTERN)]
Command = Annotated[str, Meta(min_length=1, max_length=4096)]


class TenantHooks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How one tenant's webhooks are signed."""

    webhook_secret_file: Annotated[str, Meta(min_length=1)]
    """A file holding the webhook's secret (its first line; the same secret as in GitHub's webhook form)."""


class Repository(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One connected repository."""

    tenant: TenantName
    """The tenant its reviews run (and are paid for) in."""
    test_commands: Annotated[list[Command], Meta(min_length=1)]
    """What the tester runs in the files at the head commit, each in the workspace's root."""
    exclude: list[str] = []
    """Globs of files check-pr leaves out (`vendor/**`)."""


class GithubFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The file as written."""

    api_url: Annotated[str, Meta(pattern=r"^https?://[^\s/]+")] = DEFAULT_API_URL
    token_file: str = ""
    target_url: str = ""
    tenants: dict[TenantName, TenantHooks] = {}
    repositories: dict[RepoName, Repository] = {}


class GithubConfigError(CannotRun):
    """The GitHub configuration cannot be used; the text names the file, line and field."""


@dataclass(frozen=True)
class GithubConfig:
    """The GitHub connection, its secrets read."""

    api_url: str
    token: str = field(repr=False)
    """The REST API's token ("" : calls go unauthenticated, which only reads public repositories)."""
    secrets: dict[str, bytes] = field(repr=False)
    """Each tenant's webhook secret."""
    repositories: dict[str, Repository]
    """By `owner/name` in lowercase (GitHub's names are case-insensitive)."""
    target_url: str = ""
    """Where a status links, with `{workflow_id}` filled in ("" : no link)."""

    def repository(self, full_name: str) -> Repository | None:
        """The connected repository of that name, or None."""
        return self.repositories.get(full_name.lower())

    def link(self, workflow_id: str) -> str | None:
        """The target_url of a status about that workflow, or None."""
        return self.target_url.replace("{workflow_id}", workflow_id) if self.target_url else None


def parse(text: str | bytes) -> GithubFile:
    """Decode the YAML strictly; raises GithubConfigError naming the line and field of the first problem."""
    problems = duplicate_keys(text)
    if problems:
        raise GithubConfigError(str(problems[0]))
    try:
        file = msgspec.yaml.decode(text, type=GithubFile)
    except msgspec.ValidationError as exc:
        raise GithubConfigError(str(located_problem(text, str(exc), GithubFile, ()))) from None
    except msgspec.DecodeError as exc:
        raise GithubConfigError(f"invalid YAML: {exc}") from None
    for name, repo in file.repositories.items():
        if repo.tenant not in file.tenants:
            line = _line_of(text, name, "tenant")
            known = ", ".join(sorted(file.tenants)) or "none"
            message = f"tenant {repo.tenant!r} has no entry under tenants (known: {known})"
            raise GithubConfigError(str(Problem(line, f"$.repositories.{name}.tenant", message)))
    return file


def _line_of(text: str | bytes, *keys: str) -> int:
    """The 1-based line of the first key, then of each next key below it (0 when not found)."""
    raw = text.decode() if isinstance(text, bytes) else text
    found, start = 0, 0
    lines = raw.splitlines()
    for key in keys:
        for number in range(start, len(lines)):
            if re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*:", lines[number]):
                found, start = number + 1, number + 1
                break
    return found


def from_settings(settings: Settings) -> GithubConfig | None:
    """The connection MAESTRO_GITHUB_CONFIG names, or None when it names none; raises GithubConfigError."""
    return load(settings.github_config) if settings.github_config else None


def load(path: str) -> GithubConfig:
    """Read the file at `path` and the secret and token files it names; raises GithubConfigError."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise GithubConfigError(f"MAESTRO_GITHUB_CONFIG {path}: {exc.strerror}") from None
    try:
        file = parse(text)
        secrets = {
            tenant: _first_line(hooks.webhook_secret_file, f"tenants.{tenant}.webhook_secret_file").encode()
            for tenant, hooks in file.tenants.items()
        }
        token = _first_line(file.token_file, "token_file") if file.token_file else ""
    except GithubConfigError as exc:
        raise GithubConfigError(f"MAESTRO_GITHUB_CONFIG {path}: {exc}") from None
    return GithubConfig(
        api_url=file.api_url.rstrip("/"),
        token=token,
        secrets=secrets,
        repositories={name.lower(): repo for name, repo in file.repositories.items()},
        target_url=file.target_url,
    )


def _first_line(path: str, where: str) -> str:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise GithubConfigError(f"{where}: {path}: {exc.strerror}") from None
    value = lines[0].strip() if lines else ""
    if not value:
        raise GithubConfigError(f"{where}: {path} is empty")
    return value
