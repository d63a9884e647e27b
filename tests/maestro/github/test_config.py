"""The GitHub connection file: strict, every problem named by its line and field, secrets from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro.errors import CannotRun
from maestro.github import config
from maestro.github.config import GithubConfigError
from maestro.settings import Settings


def write(tmp_path: Path, text: str) -> str:
    (tmp_path / "acme.secret").write_text("acme-hook-secret\n")
    (tmp_path / "token").write_text("ghp_testtoken\n")
    path = tmp_path / "github.yaml"
    path.write_text(text.replace("DIR", str(tmp_path)))
    return str(path)


GOOD = """\
api_url: http://127.0.0.1:9/
token_file: DIR/token
target_url: https://maestro.example/v1/workflows/{workflow_id}
tenants:
  acme:
    webhook_secret_file: DIR/acme.secret
repositories:
  Acme/Widgets:
    tenant: acme
    test_commands: ["pytest -q"]
    exclude: ["vendor/**"]
"""


def test_a_good_file_reads_its_secrets_and_repositories(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, GOOD))
    assert loaded.api_url == "http://127.0.0.1:9"
    assert loaded.token == "ghp_testtoken" and loaded.secrets == {"acme": b"acme-hook-secret"}
    repo = loaded.repository("acme/widgets")
    assert repo is not None and repo.tenant == "acme" and repo.test_commands == ["pytest -q"]
    assert loaded.repository("acme/gadgets") is None
    assert loaded.link("pr-1") == "https://maestro.example/v1/workflows/pr-1"
    assert "ghp_testtoken" not in repr(loaded) and "acme-hook-secret" not in repr(loaded)


def test_no_setting_means_no_connection(tmp_path: Path) -> None:
    assert config.from_settings(Settings()) is None
    assert config.from_settings(Settings(github_config=write(tmp_path, GOOD))) is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("test_commands", "tset_commands"), "line 10: $.repositories.Acme/Widgets: "),
        (GOOD.replace("tenant: acme", "tenant: globex"), "line 9: $.repositories.Acme/Widgets.tenant: "),
        (GOOD.replace('["pytest -q"]', "[]"), "line 10: $.repositories.Acme/Widgets.test_commands: "),
        (GOOD.replace("Acme/Widgets", "widgets"), "line 8: $.repositories: key 'widgets'"),
        (GOOD.replace("api_url: http://127.0.0.1:9/", "api_url: [1]"), "line 1: $.api_url: "),
        (GOOD + "tenants: {}\n", "line 12: $.tenants: duplicate key"),
    ],
)
def test_a_bad_file_is_refused_naming_the_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(GithubConfigError) as refused:
        config.load(write(tmp_path, text))
    message = str(refused.value)
    assert message.startswith(f"MAESTRO_GITHUB_CONFIG {tmp_path}/github.yaml: {expected}"), message
    assert isinstance(refused.value, CannotRun)  # the orchestrator stops with this one line


def test_an_unreadable_secret_or_token_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    (tmp_path / "acme.secret").write_text("\n")
    with pytest.raises(GithubConfigError, match=r"tenants\.acme\.webhook_secret_file: .* is empty"):
        config.load(path)
    (tmp_path / "acme.secret").write_text("x")
    (tmp_path / "token").unlink()
    with pytest.raises(GithubConfigError, match=r"token_file: .*token: No such file"):
        config.load(path)
    with pytest.raises(GithubConfigError, match=r"nowhere.yaml: No such file"):
        config.load(str(tmp_path / "nowhere.yaml"))
