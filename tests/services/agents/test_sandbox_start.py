"""How an agent picks its sandbox's isolation at start: the best level that works, the level named, or a
refusal to run tester commands with no isolation unasked."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

import pytest

from maestro.children import EXIT_CONFIG
from maestro.settings import Settings, SettingsError
from maestro.supervisor import settings_env
from services.agents.isolation import IsolationError, UidPool, candidates, interpreter_mounts
from services.agents.sandbox import Sandbox, open_sandbox

NOTHING_STARTS = 1 << 20
"""An address space no program can start in: every level's probe fails."""


async def test_auto_takes_the_best_level_that_works_here(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings()
    working = [i.level for i in candidates(settings) if await Sandbox(10, i).probe() is None]
    with caplog.at_level(logging.INFO, logger="services.agents.sandbox"):
        sandbox = await open_sandbox(settings, runs_untrusted=True)
    assert sandbox.level == working[0] != "none"
    assert f"sandbox isolation in force: {sandbox.level}" in caplog.text


async def test_a_tester_worker_refuses_to_start_with_no_isolation_unasked() -> None:
    settings = Settings().with_(sandbox_memory_bytes=NOTHING_STARTS)
    with pytest.raises(IsolationError, match=r"no isolation works on this host.*MAESTRO_SANDBOX=none"):
        await open_sandbox(settings, runs_untrusted=True)


async def test_a_level_named_that_does_not_work_stops_the_start() -> None:
    settings = Settings().with_(sandbox="namespaces", sandbox_memory_bytes=NOTHING_STARTS)
    with pytest.raises(IsolationError, match="MAESTRO_SANDBOX=namespaces does not work here"):
        await open_sandbox(settings, runs_untrusted=True)


async def test_no_isolation_when_the_operator_says_so(tmp_path: Path) -> None:
    sandbox = await open_sandbox(Settings().with_(sandbox="none"), runs_untrusted=True)
    assert sandbox.level == "none"
    result = await sandbox.run("id -u", tmp_path)
    assert result.output.strip() == str(os.getuid())


@pytest.mark.parametrize("value", ["chroot", "yes", "Namespaces "])
def test_an_unknown_sandbox_setting_stops_the_start(value: str) -> None:
    with pytest.raises(SettingsError, match="MAESTRO_SANDBOX: expected one of auto, namespaces, user, none"):
        Settings.from_env({"MAESTRO_SANDBOX": value})


def test_limits_and_uids_come_from_the_settings() -> None:
    settings = Settings.from_env(
        {"MAESTRO_SANDBOX_PROCESSES": "7", "MAESTRO_SANDBOX_UID": "4000000", "MAESTRO_SANDBOX_UID_COUNT": "3"}
    )
    for isolation in candidates(settings):
        assert isolation.limits is not None and isolation.limits.processes == 7
        if isolation.level != "none" and os.geteuid() == 0:
            assert isolation.uids == (4_000_000, 3)


def test_each_running_command_has_a_uid_of_its_own_until_they_run_out() -> None:
    pool = UidPool(first=5000, count=3)
    taken = [pool.take() for _ in range(3)]
    assert sorted(uid for uid, _ in taken) == [5000, 5001, 5002] and all(alone for _, alone in taken)
    uid, alone = pool.take()
    assert 5000 <= uid < 5003 and not alone  # shared: it will not sweep the others' processes
    pool.give_back(5001)
    assert pool.take() == (5001, True)


def test_an_interpreter_in_a_private_home_is_shown_and_the_home_hidden() -> None:
    with tempfile.TemporaryDirectory() as scratch:  # pytest's own tmp_path lies in a private directory
        _an_interpreter_in_a_private_home(Path(scratch))


def _an_interpreter_in_a_private_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    interpreter = home / "pyenv" / "versions" / "3.11"
    (interpreter / "bin").mkdir(parents=True)
    venv = tmp_path / "venv"
    venv.mkdir()
    tmp_path.chmod(0o755)
    home.chmod(0o700)
    masks, shown = interpreter_mounts([str(interpreter), str(interpreter / "bin"), str(venv)])
    assert masks == (str(home),)
    assert set(shown) == {str(interpreter), str(venv)}  # a directory inside one shown is not shown twice


async def test_a_tester_worker_that_cannot_isolate_exits_as_misconfigured_not_to_be_restarted(
    settings: Settings,
) -> None:
    environ = {
        **settings_env(
            settings.with_(sandbox="namespaces", roles=("tester",), sandbox_memory_bytes=NOTHING_STARTS)
        ),
        "PATH": os.environ.get("PATH", ""),
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.agents",
        env=environ,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(child.communicate(), 30)
    # maestro up restarts a child that fails, but not one that exits saying it is misconfigured.
    assert child.returncode == EXIT_CONFIG, err.decode()
    assert "maestro-agents: error: MAESTRO_SANDBOX=namespaces does not work here" in err.decode()
