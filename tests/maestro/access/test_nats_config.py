"""`maestro nats-config`'s files: a server configuration with public keys only, a private seed per principal,
kept across runs; and a real nats-server that runs it and lets in only those seeds."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import nats
import nats.errors
import pytest

from maestro.access import nats_config
from maestro.embedded import start_nats_server
from maestro.errors import CannotRun
from maestro.runtime import connect, credentials
from maestro.settings import Settings


def test_one_private_seed_per_principal_and_a_config_holding_public_keys_only(tmp_path: Path) -> None:
    written = nats_config.write(tmp_path, ["acme"])
    assert written == ["admin", "guard", "budget", "orchestrator", "agents", "tenant-acme"]
    config = (tmp_path / nats_config.CONFIG_FILE).read_text()
    for principal in [*written, nats_config.SYSTEM_USER]:
        path = nats_config.seed_file(tmp_path, principal)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        who = nats_config.read_identity(path)
        assert who.seed.startswith("SU") and who.seed not in config
        assert who.public_key in config
    assert stat.S_IMODE((tmp_path / nats_config.CONFIG_FILE).stat().st_mode) == 0o600


def test_writing_again_keeps_every_seed_and_tenant_and_adds_new_tenants(tmp_path: Path) -> None:
    nats_config.write(tmp_path, ["acme"])
    before = {p.name: p.read_text() for p in tmp_path.glob("*.nk")}
    written = nats_config.write(tmp_path, ["globex"])
    assert written[-2:] == ["tenant-acme", "tenant-globex"]
    after = {p.name: p.read_text() for p in tmp_path.glob("*.nk")}
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) == {"tenant-globex.nk"}
    assert (
        nats_config.read_identity(tmp_path / "tenant-globex.nk").public_key
        in (tmp_path / nats_config.CONFIG_FILE).read_text()
    )


def test_a_file_that_holds_no_seed_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "guard.nk"
    bad.write_text("not a seed\n")
    with pytest.raises(nats_config.CredentialsError, match=r"guard\.nk"):
        nats_config.write(tmp_path)
    with pytest.raises(CannotRun, match=r"MAESTRO_NATS_CREDS: .*guard\.nk"):
        credentials(str(bad))
    with pytest.raises(CannotRun, match="cannot read"):
        credentials(str(tmp_path / "missing.nk"))


async def test_the_server_runs_the_config_and_lets_in_only_its_users(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    nats_config.write(auth, ["acme"])
    server = start_nats_server(tmp_path / "js", config=auth / nats_config.CONFIG_FILE)
    try:
        settings = Settings(nats_url=server.url)
        nc = await connect(
            dataclasses.replace(settings, nats_creds=str(auth / "guard.nk")), "t", patience_s=5
        )
        assert nc.is_connected
        await nc.close()
        with pytest.raises(nats.errors.Error):  # no credentials at all
            await nats.connect(server.url, allow_reconnect=False, connect_timeout=2, max_reconnect_attempts=0)
        stranger = tmp_path / "stranger.nk"
        stranger.write_text(nats_config.new_seed())
        with pytest.raises(nats.errors.Error):  # a key the config does not hold
            await nats.connect(
                server.url,
                nkeys_seed=str(stranger),
                allow_reconnect=False,
                connect_timeout=2,
                max_reconnect_attempts=0,
            )
    finally:
        server.stop()


def test_the_nats_config_command_writes_the_files_and_names_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from maestro.cli import main

    with pytest.raises(SystemExit) as ended:
        main(["nats-config", "--out", str(tmp_path / "nats"), "--tenant", "acme", "--tenant", "globex"])
    assert ended.value.code == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'nats' / nats_config.CONFIG_FILE}" in out
    for principal in ("admin", "guard", "budget", "orchestrator", "agents", "tenant-acme", "tenant-globex"):
        assert str(nats_config.seed_file(tmp_path / "nats", principal)) in out
        assert nats_config.seed_file(tmp_path / "nats", principal).exists()
